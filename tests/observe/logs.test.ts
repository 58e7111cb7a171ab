import { afterEach, describe, expect, it } from 'vitest';
import { castTo, type GenServer, startGenServer } from '../../src/actor/index.js';
import {
  crashReportLines,
  createLogger,
  formatRecord,
  InvalidObserveOption,
  resolveLogLevel,
  SystemObserver,
} from '../../src/observe/index.js';
import { startSupervisor } from '../../src/supervision/index.js';
import { Counter, LineSink, supervisedFixture } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

describe('log levels', () => {
  it('--log-level wins over ZBMD_LOG, which wins over the default', () => {
    expect(resolveLogLevel('debug', { ZBMD_LOG: 'warn' })).toBe('debug');
    expect(resolveLogLevel(undefined, { ZBMD_LOG: 'WARN' })).toBe('warn');
    expect(resolveLogLevel(undefined, {})).toBe('info');
  });

  it('an unknown level names the option it came from', () => {
    expect(() => resolveLogLevel('loud', {})).toThrow(/--log-level: expected a log level: fatal, error/);
    const error = (() => {
      try {
        resolveLogLevel(undefined, { ZBMD_LOG: 'chatty' });
      } catch (caught) {
        return caught;
      }
    })();
    expect(InvalidObserveOption.is(error) && error.option).toBe('ZBMD_LOG');
  });

  it('writes JSON lines when piped and drops records below the level', () => {
    const sink = new LineSink();
    const logger = createLogger({ level: 'warn', stream: sink });
    logger.info('hidden');
    logger.warn({ pid: '<0.4.0>' }, 'shown');
    expect(sink.lines).toHaveLength(1);
    expect(JSON.parse(sink.lines[0])).toMatchObject({
      level: 40,
      msg: 'shown',
      pid: '<0.4.0>',
      name: 'zbmd',
    });
  });

  it('writes one readable line (and the report below it) on a TTY', () => {
    const sink = new LineSink();
    sink.isTTY = true;
    const logger = createLogger({ level: 'info', stream: sink, pretty: true });
    logger.info({ step: 3 }, 'checkpoint written');
    logger.warn(
      { child: 'model', report: ['crasher: <0.2.0> (model)', 'reason: boom'] },
      'crash report: model crashed',
    );
    // each line first clears what a progress display left on the terminal's line
    const clear = '\r\x1b[K';
    expect(sink.lines[0].startsWith(clear) && sink.lines[1].startsWith(clear)).toBe(true);
    expect(sink.lines[0].slice(clear.length)).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}checkpoint written step=3$/,
    );
    const warning = sink.lines[1].slice(clear.length);
    expect(warning).toContain(' \x1b[33mWARN \x1b[0m crash report: model crashed');
    expect(warning.endsWith('crash report: model crashed')).toBe(true);
    expect(sink.lines.slice(2)).toEqual(['    crasher: <0.2.0> (model)', '    reason: boom']);
    expect(formatRecord('not json')).toBe('not json');
  });
});

describe('crash reports', () => {
  it("say who crashed, why, the last message and what the supervisor did, as OTP's do", async () => {
    const fixture = await supervisedFixture();
    const sink = new LineSink();
    const observer = new SystemObserver(fixture.system, {
      logger: createLogger({ level: 'info', stream: sink }),
    });
    cleanups.push(
      () => fixture.system.shutdown(),
      () => observer.stop(),
    );
    const crashed = fixture.system.whereis('counter')!;
    const restarted = await fixture.crashCounter();
    expect(sink.lines).toHaveLength(1);
    const record = JSON.parse(sink.lines[0]);
    expect(record.level).toBe(40);
    expect(record.report).toEqual([
      `crasher: ${crashed} (counter)`,
      'reason: Error: counter: asked to crash',
      'last message: cast crash',
      `supervisor ${fixture.supervisor}: restarted it as ${restarted.pid}`,
    ]);
    expect(sink.lines[0]).not.toMatch(/\n|at .*\.ts:\d+/); // no stack
  });

  it('report that the supervisor gave up when the restart intensity is reached', async () => {
    const { system } = await supervisedFixture();
    const sink = new LineSink();
    const observer = new SystemObserver(system, { logger: createLogger({ level: 'info', stream: sink }) });
    cleanups.push(
      () => system.shutdown(),
      () => observer.stop(),
    );
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 0,
      periodMs: 1000,
      children: [
        {
          id: 'fragile',
          start: (ctx) =>
            startGenServer(ctx, Counter as GenServer<number, number>, 0, { link: true, name: 'fragile' }),
        },
      ],
    });
    const gone = system.whenExited(supervisor);
    castTo(system, 'fragile', 'crash');
    expect(await gone).toBe('shutdown');
    const record = JSON.parse(sink.lines.at(-1)!);
    expect(record.level).toBe(50);
    expect(record.action).toBe('gave_up');
    expect(record.report.at(-1)).toBe(
      `supervisor ${supervisor}: gave up (restart intensity reached) and shut down`,
    );
  });

  it('lines clip long reasons and messages', () => {
    const lines = crashReportLines({
      pid: '<0.1.0>',
      name: undefined,
      supervisor: undefined,
      reason: 'x'.repeat(400),
      lastMessage: undefined,
      action: 'unsupervised',
      actionDetail: undefined,
    });
    expect(lines[0]).toBe('crasher: <0.1.0>');
    expect(lines[1]).toMatch(/^reason: x{300}\.\.\. \(100 more chars\)$/);
    expect(lines[2]).toBe('supervisor: none (nobody restarts it)');
  });
});
