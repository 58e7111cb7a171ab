/**
 * The `threads` scenario (a scheduler thread dying mid-conversation) and the simulated transport
 * under it: several real runtimes in one JS thread, per-pair order kept, a death and its
 * replacement as ThreadPool.ts does them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { Remote } from '../../src/actor/internal/Remote.js';
import { Random } from '../../src/actor/Random.js';
import { SimulatedNetwork } from '../../src/fault/internal/SimulatedThreads.js';
import {
  closeProbe,
  openProbe,
  THREAD_ACTORS_MODULE,
  type ThreadProbe,
} from '../../src/fault/internal/threadActors.js';
import { replayScenarioByName, runScenarioByName, shrinkScenarioFailure } from '../../src/fault/simulate.js';

const code = (name: string) => ({ module: THREAD_ACTORS_MODULE, export: name });

function node(seed: number, threads: number, maxDelayMs: number): SimulatedNetwork {
  const random = new Random(seed);
  return new SimulatedNetwork({
    threads,
    clock: new SimulatedClock(),
    random,
    maxDelayMs,
    detectDelayMs: () => 7,
    bootDelayMs: () => 5,
    warmModule: THREAD_ACTORS_MODULE,
  });
}

/** Opens a probe on `network`'s clock, starts it, runs `body`, and closes both however it ends. */
async function inNetwork(
  network: SimulatedNetwork,
  body: (id: number, probe: ThreadProbe) => Promise<void>,
): Promise<void> {
  const { id, probe } = openProbe(() => network.clock.now());
  try {
    await network.start();
    await body(id, probe);
  } finally {
    network.close();
    closeProbe(id);
  }
}

/** The link and the monitor to w2 both came back noproc, and thread 2 holds no process. */
function expectNoprocFromW2(probe: ThreadProbe, network: SimulatedNetwork): void {
  expect(probe.signals.map((signal) => [signal.kind, signal.partner, signal.reason])).toEqual([
    ['exit', 'w2', 'noproc'],
    ['down', 'w2', 'noproc'],
  ]);
  expect(network.threads[2].system.processes()).toHaveLength(0);
}

describe('the simulated transport between runtimes', () => {
  it('keeps the order of one sender to one receiver while the seed varies every delay', async () => {
    const network = node(11, 3, 12);
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const receiver = system0.spawn(code('Watcher'), [id, 'w2'], { thread: 2 });
      const sender = system0.spawn(code('Watcher'), [id, 'w1'], { thread: 1 });
      await network.runUntil(20);
      system0.send(sender, { setup: [{ name: 'w2', pid: receiver, link: false, monitor: false }] });
      await network.runUntil(40);
      // 200 numbers, one emit per millisecond or several in the same instant
      for (let n = 0; n < 200; n++) network.schedule(n >> 1, () => system0.send(sender, { emit: 'w2' }));
      await network.runUntil(400);
      expect(probe.received.get('w1>w2')).toEqual(Array.from({ length: 200 }, (_, n) => n));
      const delays = new Set(
        network.wire.filter((batch) => batch.from === 1).map((batch) => batch.dueAt - batch.postedAt),
      );
      expect(delays.size).toBeGreaterThan(5);
      expect(network.wire.every((batch) => batch.fate === 'delivered')).toBe(true);
    });
  });

  it('a killed worker: batches to it are lost, thread 0 learns it after the detection delay and the replacement gets what was posted while it booted', async () => {
    const network = node(3, 2, 0);
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const watcher = system0.spawn(code('Watcher'), [id, 'w0'], { trapExit: true });
      const far = system0.spawn(code('Watcher'), [id, 'w1'], { thread: 1 });
      await network.runUntil(5);
      system0.send(watcher, { setup: [{ name: 'w1', pid: far, link: true, monitor: true }] });
      await network.runUntil(10);
      network.kill(1);
      system0.send(far, { emit: 'nobody' }); // to the dead thread: receiver-dead
      await network.runUntil(16);
      expect(network.lossAt(0, 0, 1)).toBeUndefined(); // not yet detected
      await network.runUntil(17);
      expect(network.lossAt(0, 0, 1)?.at).toBe(17);
      expect(probe.signals.map((signal) => [signal.kind, signal.partner, signal.reason, signal.at])).toEqual([
        ['down', 'w1', 'noconnection', 17],
        ['exit', 'w1', 'noconnection', 17],
      ]);
      // posted before the replacement booted (at 22): it waits, then arrives
      const child = system0.spawn(code('Idle'), [], { thread: 1 });
      await network.runUntil(30);
      expect(network.threads[1].incarnation).toBe(1);
      expect(network.waited).toBeGreaterThan(0);
      expect(system0.isAlive(child)).toBe(true);
      expect(network.wire.some((batch) => batch.fate === 'receiver-dead')).toBe(true);
    });
  });
});

describe('a pid handed on before its spawn arrived (OTP: a pid exists once its process does)', () => {
  // A spawn on another thread returns its pid at once, before the process exists there, so a third
  // thread can reach the target thread before the spawn does. Its operations wait there for the
  // spawn (they would get noproc for a process that then starts and lives).
  it('a link and a monitor from a third thread that overtake the spawn wait for it', async () => {
    const network = node(1, 3, 10);
    let delayMs = 10;
    network.drawDelay = () => delayMs;
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const target = system0.spawn(code('Watcher'), [id, 'w2'], { thread: 2, trapExit: true });
      await new Promise<void>((resolve) => setImmediate(resolve)); // posted: thread 0 to 2 takes 10 ms
      delayMs = 0;
      const linker = system0.spawn(code('Watcher'), [id, 'w1'], { thread: 1, trapExit: true });
      system0.send(linker, { setup: [{ name: 'w2', pid: target, link: true, monitor: true }] });
      await network.runUntil(50);
      expect(probe.signals).toEqual([]); // no noproc: the link and the monitor took
      expect(network.threads[2].system.processes()).toHaveLength(1);
      system0.exit(target, 'kill');
      await network.runUntil(60);
      expect(probe.signals.map((signal) => [signal.kind, signal.partner, signal.reason])).toEqual([
        ['exit', 'w2', 'killed'],
        ['down', 'w2', 'killed'],
      ]);
    });
  });

  it('when the spawner dies with its spawn on the way, what waited gets noproc', async () => {
    const network = node(1, 4, 10);
    let delayMs = 30;
    network.drawDelay = () => delayMs;
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const linker = system0.spawn(code('Watcher'), [id, 'w3'], { thread: 3, trapExit: true });
      await network.runUntil(network.clock.now() + 40); // the linker exists on thread 3
      const spawner = network.threads[1].system;
      const target = spawner.spawn(code('Watcher'), [id, 'w2'], { thread: 2 });
      await new Promise<void>((resolve) => setImmediate(resolve)); // posted: thread 1 to 2 takes 30 ms
      delayMs = 0;
      spawner.send(linker, { setup: [{ name: 'w2', pid: target, link: true, monitor: true }] });
      const start = network.clock.now();
      await network.runUntil(start + 2);
      network.kill(1); // its spawn never reaches thread 2
      await network.runUntil(start + 60);
      expectNoprocFromW2(probe, network);
    });
  });

  it('a spawn onto a thread that died, made before the spawner learned it, gives noproc once the replacement has booted and every thread answered', async () => {
    const network = node(1, 4, 0);
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const linker = system0.spawn(code('Watcher'), [id, 'w3'], { thread: 3, trapExit: true });
      await network.runUntil(network.clock.now() + 5);
      network.drawDelay = (from, to) => (from === 0 && to === 1 ? 30 : 0); // thread 1 learns late
      const start = network.clock.now();
      network.kill(2); // thread 0 detects it 7 ms later and starts a replacement (booted 5 ms later)
      await network.runUntil(start + 8);
      // thread 1 still takes thread 2 for alive: its spawn goes to the dead thread and is lost,
      // while the pid it hands on reaches the replacement by thread 3, which knows of it
      const spawner = network.threads[1].system;
      const target = spawner.spawn(code('Watcher'), [id, 'w2'], { thread: 2 });
      spawner.send(linker, { setup: [{ name: 'w2', pid: target, link: true, monitor: true }] });
      await network.runUntil(start + 30);
      expect(probe.signals).toEqual([]); // the link and monitor wait: thread 1 has not answered
      await network.runUntil(start + 80);
      expectNoprocFromW2(probe, network);
    });
  });

  it('a spawn onto a lost thread made after its replacement booted, by a thread not yet told, gives noproc once that thread is told', async () => {
    const network = node(1, 4, 0);
    await inNetwork(network, async (id, probe) => {
      const system0 = network.system0;
      const linker = system0.spawn(code('Watcher'), [id, 'w3'], { thread: 3, trapExit: true });
      await network.runUntil(network.clock.now() + 5);
      network.drawDelay = (from, to) => (from === 0 && to === 1 ? 30 : 0); // thread 1 learns late
      const start = network.clock.now();
      network.kill(2); // detected at +7, the replacement booted at +12 (its round settles nothing)
      await network.runUntil(start + 15);
      const spawner = network.threads[1].system;
      const target = spawner.spawn(code('Watcher'), [id, 'w2'], { thread: 2 });
      spawner.send(linker, { setup: [{ name: 'w2', pid: target, link: true, monitor: true }] });
      await network.runUntil(start + 30);
      expect(probe.signals).toEqual([]); // they wait on the replacement for the spawn
      await network.runUntil(start + 80); // thread 1 told at +37: it says the spawn never comes
      expectNoprocFromW2(probe, network);
    });
  });
});

describe('threads scenario', () => {
  const restore: (() => void)[] = [];
  afterEach(() => {
    for (const undo of restore.splice(0)) undo();
  });

  it('passes 100 seeds and reaches every branch it declares', async () => {
    const report = await runScenarioByName('threads', { seeds: 100 });
    expect(report.failures.map((run) => `seed ${run.seed}: ${String(run.error)}`)).toEqual([]);
    expect(report.coverage.unreachedBranches).toEqual([]);
    expect(report.coverage.faults.actor_crash.seeds).toBeGreaterThan(60);
  });

  it('replays a seed to the same simulated time, faults and branch counts', async () => {
    for (const seed of [4, 9]) {
      const first = await replayScenarioByName('threads', seed);
      const again = await replayScenarioByName('threads', seed);
      expect(first.ok).toBe(true);
      expect(again.simulatedTimeMs).toBe(first.simulatedTimeMs);
      expect(again.faultLog).toEqual(first.faultLog);
      expect(again.coverage).toEqual(first.coverage);
    }
  });

  it('fails when a lost thread does not fire the links to its processes, and shrinks to the death', async () => {
    const prototype = Remote.prototype as unknown as { loseLinks: (record: unknown, peer: number) => void };
    const original = prototype.loseLinks;
    prototype.loseLinks = () => {};
    restore.push(() => {
      prototype.loseLinks = original;
    });
    const report = await runScenarioByName('threads', { seeds: 10, stopAfterFailures: 1 });
    expect(report.failedRuns).toBe(1);
    const failure = report.failures[0];
    expect(String(failure.error)).toMatch(/never got (EXIT|DOWN) noconnection|supervisor/);
    const shrunk = await shrinkScenarioFailure('threads', failure);
    expect(shrunk.faults.length).toBeGreaterThanOrEqual(1); // without a death nothing fails
    expect(shrunk.faults.length).toBeLessThanOrEqual(failure.faultLog.length);
    expect(shrunk.faults.every((fault) => fault.kind === 'actor_crash')).toBe(true);
  });

  it('fails when calls to a lost thread are left to time out', async () => {
    const prototype = Remote.prototype as unknown as {
      lost: (peer: number) => void;
      calls: Map<number, unknown>;
    };
    const original = prototype.lost;
    prototype.lost = function (this: typeof prototype, peer: number) {
      const calls = this.calls;
      const kept = new Map(calls);
      calls.clear();
      original.call(this, peer);
      for (const [key, value] of kept) calls.set(key, value);
    };
    restore.push(() => {
      prototype.lost = original;
    });
    const report = await runScenarioByName('threads', { seeds: 20, stopAfterFailures: 1 });
    expect(report.failedRuns).toBe(1);
    expect(String(report.failures[0].error)).toMatch(/expected CallExit\(noconnection\).*got CallTimeout/);
  });
});
