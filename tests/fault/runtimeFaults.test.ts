import { describe, expect, it } from 'vitest';
import { ActorSystem, type Context, InjectedCrash, SimulatedClock } from '../../src/actor/index.js';
import {
  FaultInjector,
  isFaultConfigError,
  replayScenarioByName,
  runScenarioByName,
  runtimeFaults,
  runtimeFaultsFromEnvironment,
} from '../../src/fault/index.js';

/** A ring of actors passing a counter under faults; returns what happened. */
async function faultyRing(seed: number) {
  const clock = new SimulatedClock();
  const injector = new FaultInjector({
    messageDropRate: 0.05,
    messageDelayRate: 0.2,
    messageDelayMs: 20,
    actorCrashRate: 0.02,
    seed,
  });
  const crashes: string[] = [];
  const system = new ActorSystem({
    clock,
    faults: runtimeFaults(injector),
    onCrash: (pid) => crashes.push(String(pid)),
  });
  const received: number[] = [];
  const pids = Array.from({ length: 5 }, (_, index) =>
    system.spawn({
      handle: (n: number, ctx: Context) => {
        received.push(index * 1000 + n);
        if (n < 200) ctx.send(pids[(index + 1) % 5], n + 1);
      },
    }),
  );
  for (let start = 0; start < 20; start++) system.send(pids[start % 5], start * 10);
  await system.advance(1000);
  return { fingerprint: injector.fingerprint(), received, crashes, stats: system.stats() };
}

describe('runtime fault injection', () => {
  it('a seed replays the same faults in the same order, with the same outcome', async () => {
    const first = await faultyRing(11);
    const second = await faultyRing(11);
    expect(second).toEqual(first);
    expect(first.crashes.length + first.stats.messagesDropped).toBeGreaterThan(0);
    const other = await faultyRing(12);
    expect(other.fingerprint).not.toBe(first.fingerprint);
  });

  it('drop rate 1 loses every user message and counts it', async () => {
    const injector = new FaultInjector({ messageDropRate: 1, seed: 1 });
    const system = new ActorSystem({ clock: new SimulatedClock(), faults: runtimeFaults(injector) });
    const got: unknown[] = [];
    const pid = system.spawn({ handle: (message: unknown) => void got.push(message) });
    for (let i = 0; i < 10; i++) system.send(pid, i);
    await system.settle();
    expect(got).toEqual([]);
    expect(system.stats().messagesDropped).toBe(10);
    expect(injector.counts().message_drop).toBe(10);
  });

  it('a delayed message arrives after its delay on the simulated clock', async () => {
    const injector = new FaultInjector({ messageDelayRate: 1, messageDelayMs: 50, seed: 3 });
    const system = new ActorSystem({ clock: new SimulatedClock(), faults: runtimeFaults(injector) });
    const got: number[] = [];
    const pid = system.spawn({ handle: () => void got.push(system.clock.now()) });
    system.send(pid, 'late');
    await system.advance(50);
    expect(got).toHaveLength(1);
    expect(got[0]).toBe(injector.log[0].detail);
  });

  it('crash rate 1 crashes a process with InjectedCrash before its handler runs', async () => {
    const injector = new FaultInjector({ actorCrashRate: 1, seed: 5 });
    const reasons: unknown[] = [];
    const system = new ActorSystem({
      clock: new SimulatedClock(),
      faults: runtimeFaults(injector),
      onCrash: (_pid, reason) => reasons.push(reason),
    });
    let handled = 0;
    const pid = system.spawn({ handle: () => void handled++ });
    const exited = system.whenExited(pid);
    system.send(pid, 'x');
    expect(await exited).toBeInstanceOf(InjectedCrash);
    expect(handled).toBe(0);
    expect(reasons).toHaveLength(1);
  });

  it('ZBMD_FAULTS configures the hooks; bad values are rejected with the key named', () => {
    expect(runtimeFaultsFromEnvironment({})).toBeUndefined();
    const configured = runtimeFaultsFromEnvironment({ ZBMD_FAULTS: 'actorCrashRate=0.1,seed=9' });
    expect(configured?.injector.config.actorCrashRate).toBe(0.1);
    let error: unknown;
    try {
      runtimeFaultsFromEnvironment({ ZBMD_FAULTS: 'actorCrashRate=2' });
    } catch (caught) {
      error = caught;
    }
    expect(isFaultConfigError(error)).toBe(true);
    expect(String(error)).toMatch(/actorCrashRate/);
  });

  it('the genserver-calls scenario holds under many seeds and replays a seed exactly', async () => {
    const report = await runScenarioByName('genserver-calls', { seeds: 100 });
    expect(report.failedRuns).toBe(0);
    const a = await replayScenarioByName('genserver-calls', 42);
    const b = await replayScenarioByName('genserver-calls', 42);
    expect(a.faultFingerprint).toBe(b.faultFingerprint);
    expect(a.faultLog.length).toBeGreaterThan(0);
    expect(a.simulatedTimeMs).toBe(b.simulatedTimeMs);
  });
});

describe('supervised-storm scenario', () => {
  it('no permanent child stays dead under crash storms, over many seeds', async () => {
    const report = await runScenarioByName('supervised-storm', { seeds: 200 });
    expect(report.failures.map((failure) => [failure.seed, String(failure.error)])).toEqual([]);
  });
});
