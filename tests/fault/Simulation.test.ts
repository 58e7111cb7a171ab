import { describe, expect, it } from 'vitest';
import type { SimulationContext } from '../../src/fault/index.js';
import {
  describeSimulationReport,
  drive,
  isInvalidSimulationOption,
  isSimulationDeadlock,
  isSimulationTimeout,
  isUnknownScenario,
  listScenarios,
  registerScenario,
  replayScenarioByName,
  replaySimulation,
  runScenarioByName,
  runSimulation,
} from '../../src/fault/index.js';

/** Fails for seeds whose first crash decision fires: a failure that depends only on the seed. */
async function flakyScenario({ faults, clock }: SimulationContext): Promise<void> {
  for (let step = 0; step < 10; step++) {
    clock.advance(5);
    if (faults.shouldCrashActor()) throw new Error(`crashed at step ${step}`);
  }
}

describe('runSimulation', () => {
  it('runs every seed and collects the failing ones with their seeds', async () => {
    const report = await runSimulation({
      scenario: flakyScenario,
      seeds: 50,
      firstSeed: 100,
      faults: { actorCrashRate: 0.1 },
    });
    expect(report.runs).toBe(50);
    expect(report.passed + report.failedRuns).toBe(50);
    expect(report.failedRuns).toBeGreaterThan(0);
    expect(report.passed).toBeGreaterThan(0);
    for (const failure of report.failures) {
      expect(failure.seed).toBeGreaterThanOrEqual(100);
      expect(String(failure.error)).toMatch(/crashed at step/);
      expect(failure.faultLog.length).toBeGreaterThan(0);
    }
  });

  it('replays a failing seed with the same fault log, fingerprint and outcome', async () => {
    const report = await runSimulation({
      scenario: flakyScenario,
      seeds: 50,
      faults: { actorCrashRate: 0.1 },
    });
    const failure = report.failures[0];
    const replay = await replaySimulation({
      scenario: flakyScenario,
      seed: failure.seed,
      faults: { actorCrashRate: 0.1 },
    });
    expect(replay.ok).toBe(false);
    expect(replay.faultLog).toEqual(failure.faultLog);
    expect(replay.faultFingerprint).toBe(failure.faultFingerprint);
    expect(String(replay.error)).toBe(String(failure.error));
    expect(replay.simulatedTimeMs).toBe(failure.simulatedTimeMs);
  });

  it('accepts an explicit seed list and can stop after the first failures', async () => {
    const report = await runSimulation({
      scenario: flakyScenario,
      seeds: 200,
      faults: { actorCrashRate: 0.5 },
      stopAfterFailures: 2,
    });
    expect(report.failedRuns).toBe(2);
    expect(report.stoppedEarly).toBe(true);
    const listed = await runSimulation({ scenario: async () => {}, seeds: [7, 9, 11] });
    expect(listed.runs).toBe(3);
  });

  it('turns a scenario that never finishes into SimulationTimeout', async () => {
    const run = await replaySimulation({ scenario: () => new Promise(() => {}), seed: 1, runTimeoutMs: 50 });
    expect(run.ok).toBe(false);
    expect(isSimulationTimeout(run.error)).toBe(true);
  });

  it('rejects bad seed counts', async () => {
    await expect(runSimulation({ scenario: async () => {}, seeds: 0 })).rejects.toSatisfy(
      isInvalidSimulationOption,
    );
  });
});

describe('drive', () => {
  it('advances simulated time until the work settles', async () => {
    const { clock } = { clock: new (await import('../../src/actor/Clock.js')).SimulatedClock() };
    const work = new Promise<string>((resolve) =>
      clock.setTimer(1000, () => clock.setTimer(500, () => resolve('done'))),
    );
    await expect(drive(clock, work)).resolves.toBe('done');
    expect(clock.now()).toBe(1500);
  });

  it('gives up on a livelock (timers firing forever) after maxSteps', async () => {
    const { SimulatedClock } = await import('../../src/actor/Clock.js');
    const clock = new SimulatedClock();
    const tick = (): void => void clock.setTimer(10, tick);
    tick();
    const error = await drive(clock, new Promise(() => {}), 100).catch((caught) => caught);
    expect(isSimulationDeadlock(error) && error.stepLimitReached).toBe(true);
    expect(clock.now()).toBe(1000);
  });

  it('reports a deadlock when nothing is scheduled and the work is pending', async () => {
    const { SimulatedClock } = await import('../../src/actor/Clock.js');
    const error = await drive(new SimulatedClock(), new Promise(() => {})).catch((caught) => caught);
    expect(isSimulationDeadlock(error)).toBe(true);
  });
});

describe('scenario registry', () => {
  it('lists the built-in scenarios', () => {
    const names = listScenarios().map((scenario) => scenario.name);
    expect(names).toEqual(expect.arrayContaining(['circuit-breaker', 'event-store', 'phi-detector', 'saga']));
  });

  it('passes every built-in scenario under 20 seeds', async () => {
    for (const { name } of listScenarios().filter((scenario) => !scenario.name.startsWith('test-'))) {
      const report = await runScenarioByName(name, { seeds: 20 });
      expect(
        report.failures.map((failure) => `${name} seed ${failure.seed}: ${String(failure.error)}`),
      ).toEqual([]);
      expect(report.runs).toBe(20);
    }
  }, 60_000);

  it('replays a built-in scenario with the same fault log', async () => {
    const first = await replayScenarioByName('phi-detector', 5);
    const second = await replayScenarioByName('phi-detector', 5);
    expect(first.faultLog.length).toBeGreaterThan(0);
    expect(second.faultLog).toEqual(first.faultLog);
  });

  it('finds a bug in a registered scenario and names the seed', async () => {
    registerScenario({
      name: 'test-flaky',
      description: 'fails when a crash is injected',
      faults: { actorCrashRate: 0.2 },
      run: flakyScenario,
    });
    const report = await runScenarioByName('test-flaky', { seeds: 30, firstSeed: 1000 });
    expect(report.failedRuns).toBeGreaterThan(0);
    expect(() =>
      registerScenario({ name: 'test-flaky', description: '', faults: {}, run: flakyScenario }),
    ).toThrow(/already registered/);
  });

  it('describes a report for people, with the seeds to replay', async () => {
    const report = await runSimulation({
      scenario: flakyScenario,
      seeds: 20,
      faults: { actorCrashRate: 0.3 },
    });
    const lines = describeSimulationReport(
      'flaky',
      report,
      (seed) => `zbmd simulate flaky --seeds 1 --first-seed ${seed}`,
    );
    expect(lines[0]).toBe(`scenario flaky: 20 seeds, ${report.passed} passed, ${report.failedRuns} failed`);
    expect(lines.join('\n')).toContain(`seed ${report.failures[0].seed}: Error: crashed at step`);
    expect(lines.join('\n')).toContain(`--first-seed ${report.failures[0].seed}`);
  });

  it('rejects unknown scenario names with the list of known ones', () => {
    try {
      runScenarioByName('nope', { seeds: 1 });
      expect.unreachable();
    } catch (error) {
      expect(isUnknownScenario(error)).toBe(true);
      expect(String(error)).toMatch(/circuit-breaker/);
    }
  });
});
