/**
 * `zbmd serve MODEL`: the model server (Open Inference Protocol v2 over HTTP).
 *
 *   zbmd serve ckpt                     a checkpoint directory of `zbmd train --checkpoint-dir ckpt`
 *   zbmd serve model.onnx --replicas 2 --max-batch 64 --max-delay-us 2000
 *
 * It listens on 127.0.0.1 unless `--host` says otherwise. SIGTERM or SIGINT: stop accepting,
 * finish the requests in flight, exit 0 (or exit 1 when `--shutdown-timeout-ms`, default 10 s,
 * passed first). SIGHUP: rolling upgrade, the model is read again from MODEL (for example after
 * a new training run wrote the checkpoint directory) and takes over without dropping a request.
 * A `SystemObserver` watches the server's actors: `GET /metrics` shows the runtime's metrics
 * beside zbmd_serve_*, crashes are logged as crash reports, and `--control` / `--view` open the
 * control socket (`zbmd top`) and the web view. The log level is `--log-level`, else `ZBMD_LOG`,
 * else info.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { SERVE_DEFAULTS, SERVE_LIMITS } from '../serve/limits.js';
import { addObserveOptions } from './observe.js';

export interface ServeCommandOptions {
  readonly port: number;
  readonly host: string;
  readonly name?: string;
  readonly replicas: number;
  readonly maxBatch: number;
  readonly maxDelayUs: number;
  readonly maxQueue: number;
  readonly timeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly device?: string;
  readonly logLevel?: string;
  readonly control?: string | true;
  readonly view?: number | true;
}

function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max)
      throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got '${value}'`);
    return parsed;
  };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(value: string): string {
  if (!LOG_LEVELS.includes(value))
    throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  return value;
}

export function registerServeCommand(program: Command): void {
  const d = SERVE_DEFAULTS;
  const command = program
    .command('serve')
    .description(
      'serve a model (a zbmd checkpoint directory or an .onnx file) over the Open Inference Protocol v2',
    )
    .argument(
      '<model>',
      'checkpoint directory written by zbmd train --checkpoint-dir, a saveModel directory, or an .onnx file',
    )
    .option('--port <n>', 'TCP port (0: any free port)', integerIn(0, 65535), d.port)
    .option('--host <address>', 'address to listen on', d.host)
    .option('--name <name>', 'model name in URLs (default: the file or directory name)')
    .option(
      '--replicas <n>',
      'model replicas under the supervisor',
      integerIn(1, SERVE_LIMITS.replicas),
      d.replicas,
    )
    .option(
      '--max-batch <n>',
      'largest batch the dynamic batcher forms (rows)',
      integerIn(1, SERVE_LIMITS.maxBatchSize),
      d.maxBatchSize,
    )
    .option(
      '--max-delay-us <n>',
      'longest a request waits for a batch to fill (microseconds)',
      integerIn(0, SERVE_LIMITS.maxQueueDelayUs),
      d.maxQueueDelayUs,
    )
    .option(
      '--max-queue <n>',
      'requests that may wait; one more is answered 429',
      integerIn(1, SERVE_LIMITS.maxQueueSize),
      d.maxQueueSize,
    )
    .option(
      '--timeout-ms <n>',
      'per-request timeout (504 after it)',
      integerIn(1, 3_600_000),
      d.requestTimeoutMs,
    )
    .option(
      '--shutdown-timeout-ms <n>',
      'on SIGTERM, how long requests in flight may take',
      integerIn(0, 3_600_000),
      d.shutdownTimeoutMs,
    )
    .option(
      '--device <device>',
      'device to run on: cpu, or for a zbmd checkpoint webgpu[:N] / cuda:N (ONNX: cpu only)',
    )
    .option(
      '--log-level <level>',
      `pino log level (${LOG_LEVELS.join(', ')}; default: ZBMD_LOG, else info)`,
      logLevel,
    );
  addObserveOptions(command, ['control', 'view']).action(
    async (model: string, options: ServeCommandOptions) => {
      await serveCommand(model, options, (line) => console.log(line));
    },
  );
}

/** Runs the server until SIGTERM or SIGINT; sets the exit code (0 drained, 1 cut short by the deadline). */
export async function serveCommand(
  model: string,
  options: ServeCommandOptions,
  write: (line: string) => void,
): Promise<void> {
  const { pino } = await import('pino');
  const { resolveLogLevel } = await import('../observe/logger.js');
  const logger = pino({ level: resolveLogLevel(options.logLevel, process.env) }, pino.destination(2));
  // Loaded here, so other commands do not load fastify and onnxruntime.
  const { startInferenceServer } = await import('../serve/InferenceServer.js');
  const server = await startInferenceServer({
    models: [{ path: model, name: options.name }],
    host: options.host,
    port: options.port,
    replicas: options.replicas,
    maxBatchSize: options.maxBatch,
    maxQueueDelayUs: options.maxDelayUs,
    maxQueueSize: options.maxQueue,
    requestTimeoutMs: options.timeoutMs,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    device: options.device,
    logger,
  });
  const { observeSystem } = await import('./observe.js');
  const observation = await observeSystem(server.system, options, logger, (line) =>
    process.stderr.write(`${line}\n`),
  ).catch(async (error: unknown) => {
    await server.close();
    throw error;
  });
  const onHangUp = (): void => {
    for (const status of server.models()) {
      server.reloadModel(status.name).then(
        (version) => logger.info({ model: status.name, version }, 'SIGHUP: model reloaded'),
        (error: unknown) =>
          logger.error(
            { model: status.name, error: String((error as Error)?.message ?? error) },
            'SIGHUP: reload failed; the old version keeps serving',
          ),
      );
    }
  };
  // The handlers are in place before the listening line, which tells a parent process it may signal.
  process.on('SIGHUP', onHangUp);
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  for (const status of server.models()) {
    write(
      `zbmd serve: model '${status.name}' (${status.platform}) at ${server.url}/v2/models/${status.name} ` +
        `(replicas ${options.replicas}, max batch ${options.maxBatch}, max delay ${options.maxDelayUs} us)`,
    );
  }
  const signal = await stopped;
  process.off('SIGHUP', onHangUp);
  const { drained } = await server.close();
  await observation.close();
  write(
    `zbmd serve: ${signal}: ${drained ? 'finished the requests in flight' : `stopped after ${options.shutdownTimeoutMs} ms with requests unfinished`}`,
  );
  logger.flush();
  process.exit(drained ? 0 : 1);
}
