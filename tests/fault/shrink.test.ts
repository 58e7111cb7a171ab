import { describe, expect, it } from 'vitest';
import { simulateCommand } from '../../src/cli/simulate.js';
import {
  CoverageTally,
  enabledFaultKinds,
  FaultInjector,
  formatFaultChoices,
  isInvalidSimulationOption,
  listScenarios,
  parseFaultChoices,
  replayScenarioByName,
  replaySimulation,
  runScenarioByName,
  runSimulation,
  type SimulationContext,
  shrinkFailure,
} from '../../src/fault/index.js';

describe('FaultInjector only (a shrunk trace)', () => {
  it('injects just the listed faults, with the same decision numbers, and shortens delays', () => {
    const config = { actorCrashRate: 0.3, messageDelayRate: 0.5, messageDelayMs: 50, seed: 3 };
    const full = new FaultInjector(config);
    for (let index = 0; index < 40; index++) {
      full.shouldCrashActor();
      full.messageDelayMs();
    }
    const crashes = full.log.filter((fault) => fault.kind === 'actor_crash');
    const delay = full.log.find((fault) => fault.kind === 'message_delay')!;
    const keep = [
      { kind: crashes[1].kind, decision: crashes[1].decision },
      { kind: 'message_delay' as const, decision: delay.decision, detail: 1 },
    ];
    const shrunk = new FaultInjector(config, { only: keep });
    for (let index = 0; index < 40; index++) {
      shrunk.shouldCrashActor();
      shrunk.messageDelayMs();
    }
    expect(shrunk.log).toHaveLength(2);
    expect(shrunk.counts().actor_crash).toBe(1);
    expect(shrunk.log.find((fault) => fault.kind === 'actor_crash')!.decision).toBe(crashes[1].decision);
    expect(shrunk.log.find((fault) => fault.kind === 'message_delay')).toMatchObject({
      decision: delay.decision,
      detail: 1,
    });
  });

  it('formats and parses traces, and names a bad entry', () => {
    const trace = [
      { kind: 'actor_crash' as const, decision: 3 },
      { kind: 'message_delay' as const, decision: 5, detail: 2 },
    ];
    expect(formatFaultChoices(trace)).toBe('actor_crash#3,message_delay#5=2');
    expect(parseFaultChoices('actor_crash#3,message_delay#5=2')).toEqual(trace);
    expect(parseFaultChoices('none')).toEqual([]);
    expect(formatFaultChoices([])).toBe('none');
    expect(() => parseFaultChoices('meteor#1')).toThrow(/meteor#1/);
    try {
      parseFaultChoices('actor_crash#x');
    } catch (error) {
      expect(isInvalidSimulationOption(error)).toBe(true);
    }
  });
});

/** Fails when two crashes were injected in a row, or when a message was delayed by 10 ms or more. */
async function pickyScenario(context: SimulationContext): Promise<void> {
  let previous = false;
  for (let step = 0; step < 200; step++) {
    const crash = context.faults.shouldCrashActor();
    if (crash && previous) throw new Error('two crashes in a row');
    previous = crash;
    context.faults.shouldDropMessage();
    if (context.faults.messageDelayMs() >= 10) throw new RangeError('a long delay');
  }
}

describe('shrinkFailure', () => {
  it('drops every fault the failure does not need', async () => {
    const faults = { actorCrashRate: 0.4, messageDropRate: 0.3 };
    const report = await runSimulation({ scenario: pickyScenario, faults, seeds: 20, stopAfterFailures: 1 });
    const failure = report.failures[0];
    expect(failure.faultLog.length).toBeGreaterThan(4);
    const shrunk = await shrinkFailure({ scenario: pickyScenario, faults, ...failure });
    expect(shrunk.faults.map((fault) => fault.kind)).toEqual(['actor_crash', 'actor_crash']);
    expect(shrunk.faults[1].decision).toBe(shrunk.faults[0].decision + 1);
    expect(shrunk.originalFaults).toBe(failure.faultLog.length);
    // deterministic, and the trace replays to the same failure
    const again = await shrinkFailure({ scenario: pickyScenario, faults, ...failure });
    expect(again.faults).toEqual(shrunk.faults);
    const replay = await replaySimulation({
      scenario: pickyScenario,
      faults,
      seed: failure.seed,
      only: shrunk.faults,
    });
    expect(String(replay.error)).toBe('Error: two crashes in a row');
  });

  it('shortens a delay to the shortest that still fails', async () => {
    const faults = { messageDelayRate: 0.5, messageDelayMs: 1000 };
    const report = await runSimulation({ scenario: pickyScenario, faults, seeds: 5, stopAfterFailures: 1 });
    const shrunk = await shrinkFailure({ scenario: pickyScenario, faults, ...report.failures[0] });
    expect(shrunk.faults).toHaveLength(1);
    expect(shrunk.faults[0].detail).toBeGreaterThanOrEqual(10);
    expect(shrunk.faults[0].detail).toBeLessThan(20);
  });
});

describe('coverage', () => {
  it('adds up hits and seeds and lists what no seed reached', () => {
    const tally = new CoverageTally(
      ['a', 'b'],
      enabledFaultKinds({ actorCrashRate: 0.1, messageDelayRate: 0.5 }),
    );
    const none = {
      actor_crash: 0,
      message_drop: 0,
      message_delay: 0,
      gpu_error: 0,
      oom: 0,
      kernel_timeout: 0,
    };
    tally.add({ ...none, actor_crash: 2 }, { a: 3 });
    tally.add(none, { a: 1, extra: 1 });
    const report = tally.report();
    expect(report.branches).toEqual({
      a: { hits: 4, seeds: 2 },
      b: { hits: 0, seeds: 0 },
      extra: { hits: 1, seeds: 1 },
    });
    expect(report.unreachedBranches).toEqual(['b']);
    // a delay rate without a delay length injects nothing, so it is not listed as enabled
    expect(report.unreachedFaults).toEqual([]);
    expect(report.faults.actor_crash).toEqual({ hits: 2, seeds: 1 });
  });

  it('every registered scenario reaches every branch it declares within 40 seeds', async () => {
    for (const { name } of listScenarios().filter((scenario) => !scenario.name.startsWith('test-'))) {
      const report = await runScenarioByName(name, { seeds: 40 });
      expect(report.failedRuns, name).toBe(0);
      expect(report.coverage.unreachedBranches, name).toEqual([]);
      expect(report.coverage.unreachedFaults, name).toEqual([]);
    }
  }, 60_000);

  it('replays a file scenario to the same faults and branches', async () => {
    const first = await replayScenarioByName('event-store-crash', 11);
    const second = await replayScenarioByName('event-store-crash', 11);
    expect(second.faultFingerprint).toBe(first.faultFingerprint);
    expect(second.coverage).toEqual(first.coverage);
  });
});

describe('zbmd simulate', () => {
  it('prints coverage and refuses --only without --replay', async () => {
    const lines: string[] = [];
    const code = await simulateCommand('circuit-breaker', { seeds: 3, firstSeed: 0, json: false }, (line) =>
      lines.push(line),
    );
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(/faults: kernel_timeout \d+ \(3 seeds\)/);
    expect(lines.join('\n')).toMatch(/opened-at-threshold +\d+ hits in \d seeds/);
    const refused: string[] = [];
    expect(
      await simulateCommand('saga', { seeds: 1, firstSeed: 0, json: false, only: 'none' }, (line) =>
        refused.push(line),
      ),
    ).toBe(2);
    expect(refused[0]).toMatch(/--only/);
  });

  it('replays a shrunk trace given with --only, and names a bad one', async () => {
    const lines: string[] = [];
    const code = await simulateCommand(
      'genserver-calls',
      { seeds: 1, firstSeed: 0, json: true, replay: 4, only: 'none' },
      (line) => lines.push(line),
    );
    expect(code).toBe(0);
    expect(JSON.parse(lines[0])).toMatchObject({ seed: 4, ok: true, faults: [] });
    const bad: string[] = [];
    expect(
      await simulateCommand(
        'saga',
        { seeds: 1, firstSeed: 0, json: false, replay: 1, only: 'crash' },
        (line) => bad.push(line),
      ),
    ).toBe(2);
    expect(bad[0]).toMatch(/invalid only/);
  });
});
