/**
 * Supervision benchmark, on a real-clock ActorSystem (wall time from performance.now()):
 *
 *   restart_us                   a child's crash -> its replacement has handled the next message
 *                                (target <= 50 us); mean over many restarts
 *   one_for_all_100_children_us  one crash under one_for_all with 100 children -> all 100 stopped
 *                                (reverse order, monitor + shutdown) and started again
 *   storm_restarts_per_sec       10,000 crashes over 1,000 one_for_one children; every message sent
 *                                to a live child is counted, and storm_messages_lost must be 0
 *
 *   zbmd bench supervision --json          full run
 *   zbmd bench supervision --json --quick  smaller workloads (smoke test)
 */
import { ActorSystem, type Context, type Handler, type Pid } from '../src/actor/index.js';
import {
  type SupervisionEvent,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../src/supervision/index.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const CRASH = 'crash';
/** A crash worth reporting in a real system is an Error with a stack: the bench pays for it too. */
const crashingWorker = (onMessage: (message: unknown, ctx: Context) => void): Handler => ({
  handle(message, ctx) {
    if (message === CRASH) throw new Error('injected crash');
    onMessage(message, ctx);
  },
});

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const restartUs = await measureRestart(options.quick ? 2_000 : 20_000);
  const oneForAllUs = await measureOneForAll(options.quick ? 20 : 200, 100);
  const storm = await measureStorm(options.quick ? 2_000 : 10_000, 1_000);
  return {
    restart_us: round(restartUs),
    one_for_all_100_children_us: round(oneForAllUs),
    storm_restarts_per_sec: Math.round(storm.restartsPerSecond),
    storm_crashes: storm.crashes,
    storm_messages_sent: storm.sent,
    storm_messages_lost: storm.lost,
    node: process.version,
  };
}

/** Crash -> EXIT -> restart -> the next message (sent as soon as the replacement exists) is handled. */
async function measureRestart(iterations: number): Promise<number> {
  const system = new ActorSystem({ onCrash: () => {} });
  let handled: (() => void) | undefined;
  let sequence = 0;
  let pid: Pid | undefined;
  const supervisor = await startSupervisor(system, {
    intensity: 2 * iterations + 1000, // warm-up included: the bench must never trip it
    periodMs: 60_000,
    onEvent: (event: SupervisionEvent) => {
      // the next message goes to the replacement the moment it exists
      if (event.kind !== 'child_restarted') return;
      pid = event.pid!;
      system.send(pid, sequence);
    },
    children: [{ id: 'worker', start: (ctx) => ctx.spawnLink(crashingWorker(() => handled?.())) }],
  });
  pid = (await whichChildren(system, supervisor))[0].pid as Pid;
  const once = async (): Promise<number> => {
    sequence++;
    const done = new Promise<void>((resolve) => {
      handled = resolve;
    });
    const started = performance.now();
    system.send(pid!, CRASH);
    await done;
    return performance.now() - started;
  };
  for (let warmup = 0; warmup < Math.min(1000, iterations / 10); warmup++) await once();
  let total = 0;
  for (let iteration = 0; iteration < iterations; iteration++) total += await once();
  await stopSupervisor(system, supervisor);
  return (total / iterations) * 1000;
}

/** One crash under one_for_all: the 99 siblings stop (reverse order), then all 100 start again. */
async function measureOneForAll(iterations: number, size: number): Promise<number> {
  const system = new ActorSystem({ onCrash: () => {} });
  let restarted = 0;
  let allBack: (() => void) | undefined;
  const supervisor = await startSupervisor(system, {
    strategy: 'one_for_all',
    intensity: 2 * iterations + 1000, // warm-up included: the bench must never trip it
    periodMs: 60_000,
    onEvent: (event: SupervisionEvent) => {
      if (event.kind === 'child_restarted' && ++restarted === size) allBack?.();
    },
    children: Array.from({ length: size }, (_, index) => ({
      id: `worker${index}`,
      start: (ctx: Context) => ctx.spawnLink(crashingWorker(() => {})),
    })),
  });
  let total = 0;
  for (let iteration = 0; iteration < iterations + 5; iteration++) {
    const victim = (await whichChildren(system, supervisor))[iteration % size].pid as Pid;
    restarted = 0;
    const done = new Promise<void>((resolve) => {
      allBack = resolve;
    });
    const started = performance.now();
    system.send(victim, CRASH);
    await done;
    if (iteration >= 5) total += performance.now() - started; // the first 5 warm up
  }
  await stopSupervisor(system, supervisor);
  return (total / iterations) * 1000;
}

interface StormResult {
  readonly restartsPerSecond: number;
  readonly crashes: number;
  readonly sent: number;
  readonly lost: number;
}

/**
 * Rounds of: one work message then a crash to every child (the work is queued first, so it must be
 * handled before the crash), and one more work message to each replacement as soon as it exists.
 * Every work message went to a live child, so every one must be handled.
 */
async function measureStorm(crashes: number, size: number): Promise<StormResult> {
  const system = new ActorSystem({ onCrash: () => {} });
  let handledCount = 0;
  let sent = 0;
  let restartedInRound = 0;
  let roundDone: (() => void) | undefined;
  const pids: Pid[] = [];
  const indexOf = new Map<string, number>();
  const supervisor = await startSupervisor(system, {
    intensity: crashes + 10,
    periodMs: 60_000,
    onEvent: (event: SupervisionEvent) => {
      if (event.kind !== 'child_restarted') return;
      pids[indexOf.get(event.childId!)!] = event.pid!;
      system.send(event.pid!, 'work');
      sent++;
      if (++restartedInRound === size) roundDone?.();
    },
    children: Array.from({ length: size }, (_, index) => ({
      id: `worker${index}`,
      start: (ctx: Context) => ctx.spawnLink(crashingWorker(() => void handledCount++)),
    })),
  });
  (await whichChildren(system, supervisor)).forEach((child, index) => {
    pids[index] = child.pid as Pid;
    indexOf.set(child.id, index);
  });
  const rounds = Math.ceil(crashes / size);
  const started = performance.now();
  for (let round = 0; round < rounds; round++) {
    restartedInRound = 0;
    const done = new Promise<void>((resolve) => {
      roundDone = resolve;
    });
    for (let index = 0; index < size; index++) {
      system.send(pids[index], 'work');
      sent++;
      system.send(pids[index], CRASH);
    }
    await done;
  }
  const elapsedMs = performance.now() - started;
  await system.settle();
  const alive = pids.every((pid) => system.isAlive(pid));
  await stopSupervisor(system, supervisor);
  if (!alive) throw new Error('storm: a child was left dead');
  return {
    restartsPerSecond: (rounds * size) / (elapsedMs / 1000),
    crashes: rounds * size,
    sent,
    lost: sent - handledCount,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
