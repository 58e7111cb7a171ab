/**
 * Logs through pino, with levels. The level comes from `--log-level`, else `ZBMD_LOG`, else
 * `info`. Output is JSON lines when stderr is piped (for log collectors) and one readable line
 * per record on a TTY (`12:03:04.123 WARN  child model restarted ...`). This recording side
 * imports no other layer of zbmd.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { createLogger } from 'zbmd/observe';
 *
 * const lines: string[] = [];
 * const logger = createLogger({ level: 'debug', stream: { write: (line: string) => lines.push(line) } as never });
 * logger.warn({ pid: '<0.4.0>' }, 'mailbox is long');
 * assert.equal(JSON.parse(lines[0]!).msg, 'mailbox is long'); // one JSON object a line
 * ```
 */
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger } from 'pino';
import { InvalidObserveOption } from './errors.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The level to log at: `option` (from `--log-level`), else `ZBMD_LOG`, else 'info'. */
export function resolveLogLevel(option: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const [value, source] =
    option !== undefined ? [option, '--log-level'] : [env.ZBMD_LOG ?? 'info', 'ZBMD_LOG'];
  const level = value.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new InvalidObserveOption(source, value, `a log level: ${LOG_LEVELS.join(', ')}`);
  return level as LogLevel;
}

export interface LoggerOptions {
  /** Default: `resolveLogLevel(undefined)` (ZBMD_LOG, else info). */
  readonly level?: LogLevel;
  /** Where lines go; default stderr. */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Readable lines instead of JSON; default: when `stream` is a TTY. */
  readonly pretty?: boolean;
  /** Name put on every record; default 'zbmd'. */
  readonly name?: string;
}

/** A pino logger as the options say. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const pretty = options.pretty ?? (stream as { isTTY?: boolean }).isTTY === true;
  const destination: DestinationStream = pretty ? readableStream(stream) : (stream as DestinationStream);
  return pino(
    { name: options.name ?? 'zbmd', level: options.level ?? resolveLogLevel(undefined), base: undefined },
    destination,
  );
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLOURS: Readonly<Record<number, string>> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
const RECORD_FIELDS = new Set(['level', 'time', 'msg', 'name', 'report']);

/** One readable line (and the report's lines below it) from one JSON record. */
export function formatRecord(line: string, colour = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = Number(record.level);
  const time = new Date(Number(record.time)).toISOString().slice(11, 23);
  const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const tag = colour && LEVEL_COLOURS[level] !== undefined ? `${LEVEL_COLOURS[level]}${name}\x1b[0m` : name;
  const report = Array.isArray(record.report) ? record.report.map((entry) => `    ${entry}`) : [];
  // a record with a report says it all there: its fields are left to the JSON form
  const extra = Object.entries(record)
    .filter(([key]) => !RECORD_FIELDS.has(key) && report.length === 0)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const head = [time, tag, String(record.msg ?? ''), ...extra].join(' ');
  return [head, ...report].join('\n');
}

function readableStream(out: NodeJS.WritableStream & { isTTY?: boolean }): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      // on a terminal, first clear the line a progress display may have left without a newline
      const clear = out.isTTY === true ? '\r\x1b[K' : '';
      for (const line of lines)
        if (line !== '') out.write(`${clear}${formatRecord(line, out.isTTY === true)}\n`);
      done();
    },
  });
}
