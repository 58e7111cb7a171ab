/**
 * Actor runtime benchmarks: the classic Erlang workloads (ring, ping-pong, spawn, skynet), a
 * GenServer call round trip and the heap cost of an idle actor. Run with
 * `npx zbmd bench actors --json`. Each figure is also given as a ratio to a plain-JavaScript
 * reference measured in the same run (an array-queue loop doing the same hops), since the
 * machine is shared and noisy; when Erlang/OTP (`erl`) is installed, the same workloads run on
 * it too and the ratios to Erlang are reported.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread } from 'node:worker_threads';
import {
  ActorSystem,
  type Context,
  type GenServer,
  type Pid,
  reply,
  startGenServer,
} from '../src/actor/index.js';
import { parallelCapacity, transportFigures } from './transport.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const quiet = { onCrash: () => {} };

/** A token passed around a ring of `actors` actors for `hops` hops. Returns messages per second. */
export async function ring(actors: number, hops: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const { promise, resolve } = deferred();
  const pids: Pid[] = [];
  for (let i = 0; i < actors; i++) {
    const next = (i + 1) % actors;
    pids.push(
      system.spawn({
        handle: (token: number, ctx: Context) => (token === 0 ? resolve() : ctx.send(pids[next], token - 1)),
      }),
    );
  }
  const start = performance.now();
  system.send(pids[0], hops);
  await promise;
  return hops / ((performance.now() - start) / 1000);
}

/** Round trips between two actors. Returns nanoseconds per round trip. */
export async function pingPong(roundTrips: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const { promise, resolve } = deferred();
  let pong!: Pid;
  const ping = system.spawn({
    handle: (n: number, ctx: Context) => (n === roundTrips ? resolve() : ctx.send(pong, n + 1)),
  });
  pong = system.spawn({ handle: (n: number, ctx: Context) => ctx.send(ping, n) });
  const start = performance.now();
  system.send(ping, 0);
  await promise;
  return ((performance.now() - start) * 1e6) / roundTrips;
}

/** Spawns `count` actors that exit at once and waits for all of them. Returns ns per actor. */
export async function spawnMany(count: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const { promise, resolve } = deferred();
  let exited = 0;
  const body = (): void => {
    if (++exited === count) resolve();
  };
  const start = performance.now();
  for (let i = 0; i < count; i++) system.spawn(body);
  await promise;
  return ((performance.now() - start) * 1e6) / count;
}

/**
 * One skynet node: spawns 10 children (or reports its number, as a leaf) and sums their answers.
 * It holds what an Erlang skynet process holds (its parent, number and size, the running sum and
 * the answers still due); what only the root needs is in `SkynetRoot`.
 */
export class SkynetNode {
  private sum = 0;
  private pending = 10;

  constructor(
    private readonly parent: Pid,
    private readonly number: number,
    private readonly size: number,
  ) {}

  init(ctx: Context): void {
    if (this.size === 1) {
      this.report(ctx, this.number);
      return;
    }
    const childSize = this.size / 10;
    for (let i = 0; i < 10; i++) this.spawnChild(ctx, this.number + i * childSize, childSize, i);
  }

  handle(value: number, ctx: Context): void {
    this.sum += value;
    if (--this.pending === 0) this.report(ctx, this.sum);
  }

  protected spawnChild(ctx: Context, number: number, size: number, _index: number): void {
    ctx.spawn(new SkynetNode(ctx.self, number, size));
  }

  protected report(ctx: Context, value: number): void {
    ctx.send(this.parent, value);
    ctx.stop();
  }
}

/** The root of a skynet tree: hands the sum to `done`, and spreads its 10 children over `spread` threads. */
class SkynetRoot extends SkynetNode {
  constructor(
    leaves: number,
    private readonly done: (sum: number) => void,
    /** Threads to spread the children over; 1: all on this thread. */
    private readonly spread = 1,
  ) {
    super(undefined as unknown as Pid, 0, leaves);
  }

  protected override spawnChild(ctx: Context, number: number, size: number, index: number): void {
    if (this.spread === 1) super.spawnChild(ctx, number, size, index);
    else ctx.spawn(SKYNET_CODE, [ctx.self, number, size], { thread: index % this.spread });
  }

  protected override report(ctx: Context, value: number): void {
    this.done(value);
    ctx.stop();
  }
}

/** Skynet: a tree of actors, 10 children per node, `leaves` leaves; returns ms and checks the sum. */
export async function skynet(leaves: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const { promise, resolve } = deferred<number>();
  const start = performance.now();
  system.spawn(new SkynetRoot(leaves, resolve));
  const sum = await promise;
  const elapsed = performance.now() - start;
  const expected = (leaves * (leaves - 1)) / 2;
  if (sum !== expected) throw new Error(`skynet: sum ${sum}, expected ${expected}`);
  return elapsed;
}

const SKYNET_CODE = { module: import.meta.url, export: 'SkynetNode' };

/** Skynet with the root's 10 children spread over the threads of `system`. Returns ms. */
export async function skynetThreads(system: ActorSystem, leaves: number): Promise<number> {
  const { promise, resolve } = deferred<number>();
  const start = performance.now();
  system.spawn(new SkynetRoot(leaves, resolve, system.threads));
  const sum = await promise;
  const elapsed = performance.now() - start;
  const expected = (leaves * (leaves - 1)) / 2;
  if (sum !== expected) throw new Error(`skynet on threads: sum ${sum}, expected ${expected}`);
  return elapsed;
}

/** A ring node spawnable on any thread: learns its successor, passes the token on. */
export class RingNode {
  private next: Pid | undefined;

  constructor(private readonly done: Pid) {}

  handle(message: number | { next: Pid }, ctx: Context): void {
    if (typeof message !== 'number') this.next = message.next;
    else if (message === 0) ctx.send(this.done, 'done');
    else ctx.send(this.next!, message - 1);
  }
}

/** The ring with its actors in contiguous blocks, one block per thread. Returns messages per second. */
export async function ringThreads(system: ActorSystem, actors: number, hops: number): Promise<number> {
  let lap = deferred();
  const done = system.spawn({ handle: () => lap.resolve() });
  const code = { module: import.meta.url, export: 'RingNode' };
  const pids: Pid[] = [];
  for (let i = 0; i < actors; i++)
    pids.push(system.spawn(code, [done], { thread: Math.floor((i * system.threads) / actors) }));
  for (let i = 0; i < actors; i++) system.send(pids[i], { next: pids[(i + 1) % actors] });
  system.send(pids[0], actors); // a first lap, untimed: every node has its successor
  await lap.promise;
  lap = deferred();
  const start = performance.now();
  system.send(pids[0], hops);
  await lap.promise;
  const elapsed = performance.now() - start;
  for (const pid of pids) system.exit(pid, 'kill');
  return hops / (elapsed / 1000);
}

/** Answers each number with the same number (ping-pong across threads). */
export class Ponger {
  constructor(private readonly ping: Pid) {}

  handle(n: number, ctx: Context): void {
    ctx.send(this.ping, n);
  }
}

/** Round trips between an actor on thread 0 and one on thread 1. Returns ns per round trip. */
export async function crossThreadPingPong(system: ActorSystem, roundTrips: number): Promise<number> {
  const { promise, resolve } = deferred();
  let pong!: Pid;
  let start = 0;
  const warmUp = 1000;
  const ping = system.spawn({
    handle: (n: number, ctx: Context) => {
      if (n === warmUp) start = performance.now();
      if (n === warmUp + roundTrips) resolve();
      else ctx.send(pong, n + 1);
    },
  });
  pong = system.spawn({ module: import.meta.url, export: 'Ponger' }, [ping], { thread: 1 });
  system.send(ping, 0);
  await promise;
  const elapsed = performance.now() - start;
  system.exit(pong, 'kill');
  return (elapsed * 1e6) / roundTrips;
}

/** Counts numbers; tells `done` when it has seen `expected` of them. */
export class Counter {
  private seen = 0;

  constructor(
    private readonly expected: number,
    private readonly done: Pid,
  ) {}

  handle(_n: number, ctx: Context): void {
    if (++this.seen === this.expected) ctx.send(this.done, this.seen);
  }
}

/** `messages` numbers from thread 0 to an actor on thread 1. Returns messages per second. */
export async function crossThreadThroughput(system: ActorSystem, messages: number): Promise<number> {
  const warm = deferred();
  const warmDone = system.spawn({ handle: () => warm.resolve() });
  const code = { module: import.meta.url, export: 'Counter' };
  const warmCounter = system.spawn(code, [1000, warmDone], { thread: 1 });
  for (let i = 0; i < 1000; i++) system.send(warmCounter, i);
  await warm.promise;
  const { promise, resolve } = deferred();
  const done = system.spawn({ handle: () => resolve() });
  const counter = system.spawn(code, [messages, done], { thread: 1, mailbox: { capacity: messages } });
  const start = performance.now();
  for (let i = 0; i < messages; i++) system.send(counter, i);
  await promise;
  const elapsed = performance.now() - start;
  system.exit(counter, 'kill');
  return messages / (elapsed / 1000);
}

/**
 * What the idle stages of the scheduler threads (spin, then block, then sleep: Ring.ts) cost in
 * CPU, as a share of one core for the whole process: a system left alone (it must go quiet), and
 * one message to thread 1 every millisecond (each one is a burst followed by an idle spin).
 */
export async function idleCost(system: ActorSystem): Promise<Record<string, number>> {
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const cpuShare = async (work: (until: number) => Promise<void>): Promise<number> => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await work(start + 500);
    const used = process.cpuUsage(cpu);
    return (used.user + used.system) / 10 / (performance.now() - start);
  };
  await sleep(100); // what the figures before left spinning or blocked is over
  const idle = await cpuShare((until) => sleep(until - performance.now()));
  const sink = system.spawn({ handle: () => {} });
  const counter = system.spawn({ module: import.meta.url, export: 'Counter' }, [1e9, sink], { thread: 1 });
  let sent = 0;
  const trickle = await cpuShare(async (until) => {
    while (performance.now() < until) {
      system.send(counter, sent++);
      await sleep(1);
    }
  });
  system.exit(counter, 'kill');
  system.exit(sink, 'kill');
  return {
    thread_idle_cpu_percent: round(idle, 1),
    thread_trickle_cpu_percent: round(trickle, 1),
    thread_trickle_msgs: sent,
  };
}

/** The thread figures: one system with every core's thread, started (and warmed) before timing. */
export async function threadFigures(quick: boolean): Promise<Record<string, number>> {
  const threads = Math.max(2, availableParallelism());
  const system = new ActorSystem({ ...quiet, threads });
  try {
    await skynetThreads(system, 1000); // loads the bench module on every thread
    const capacityBefore = await parallelCapacity();
    const skynetMs = await skynetThreads(system, quick ? 100_000 : 1_000_000);
    const capacityAfter = await parallelCapacity();
    return {
      threads,
      skynet_1m_threads_ms: round(skynetMs),
      // two threads' work at once / one thread's, right before and after the skynet (2.0: two free cores)
      cpu_parallel_capacity: round((capacityBefore + capacityAfter) / 2, 2),
      ring_threads_msgs_per_sec: Math.round(await ringThreads(system, 1000, 2_000_000 / (quick ? 10 : 1))),
      cross_thread_pingpong_ns: round(await crossThreadPingPong(system, quick ? 2000 : 20_000)),
      cross_thread_msgs_per_sec: Math.round(await crossThreadThroughput(system, quick ? 200_000 : 2_000_000)),
      ...(await idleCost(system)),
    };
  } finally {
    await system.close();
  }
}

/**
 * The same cross-thread ping-pong and stream with `threadTransport: 'port'` (every batch posted
 * on the MessagePort): the in-run comparison for the default ring.
 */
export async function portTransportFigures(quick: boolean): Promise<Record<string, number>> {
  const system = new ActorSystem({ ...quiet, threads: 2, threadTransport: 'port' });
  try {
    await skynetThreads(system, 1000);
    return {
      cross_thread_pingpong_port_ns: round(await crossThreadPingPong(system, quick ? 2000 : 20_000)),
      cross_thread_msgs_per_sec_port: Math.round(
        await crossThreadThroughput(system, quick ? 200_000 : 2_000_000),
      ),
    };
  } finally {
    await system.close();
  }
}

/** The one-thread figures. */
export async function oneThreadFigures(quick: boolean): Promise<Record<string, number>> {
  const scale = quick ? 10 : 1;
  return {
    ring_msgs_per_sec: Math.round(await ring(1000, 2_000_000 / scale)),
    pingpong_ns_per_roundtrip: round(await pingPong(500_000 / scale)),
    spawn_ns_per_actor: round(await spawnMany(1_000_000 / scale)),
    call_ns: round(await callRoundTrip(200_000 / scale)),
    idle_actor_bytes: Math.round(await idleActorBytes(100_000)),
  };
}

/**
 * The one-thread skynet, on its own in a fresh process, the way the threads group measures
 * skynet on all threads: first thing after the same small warm-up, in a heap nothing else used.
 * `skynet_thread_speedup` compares the two, so both sides get the same conditions (and the same
 * Node flags: `inFreshProcess`).
 */
export async function skynetFigures(quick: boolean): Promise<Record<string, number>> {
  await skynet(1000);
  return { skynet_1m_ms: round(await skynet(quick ? 100_000 : 1_000_000)) };
}

/**
 * The cross-thread ping-pong with the idle stages off (`idleSpinUs: 0, idleWaitUs: 0`): every
 * wake-up goes through the event loop (`Atomics.waitAsync`). The in-run reference for what the
 * spin and the blocking wait give.
 */
export async function noIdleWaitFigures(quick: boolean): Promise<Record<string, number>> {
  const system = new ActorSystem({ ...quiet, threads: 2, idleSpinUs: 0, idleWaitUs: 0 });
  try {
    await skynetThreads(system, 1000);
    return {
      cross_thread_pingpong_event_loop_ns: round(await crossThreadPingPong(system, quick ? 2000 : 20_000)),
    };
  } finally {
    await system.close();
  }
}

const GROUPS: Record<string, (quick: boolean) => Promise<Record<string, number>>> = {
  'one-thread': oneThreadFigures,
  skynet: skynetFigures,
  threads: threadFigures,
  'port-transport': portTransportFigures,
  'no-idle-wait': noIdleWaitFigures,
  transport: transportFigures,
};

/**
 * Runs one group of figures in a fresh Node process (from the built bench; in-process from
 * sources), so one group's heap, JIT state and worker threads do not weigh on the next.
 */
async function inFreshProcess(group: string, quick: boolean): Promise<Record<string, number>> {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.js')) return GROUPS[group](quick);
  const output = execFileSync(process.execPath, [here, group, quick ? 'quick' : 'full'], {
    encoding: 'utf8',
    timeout: 600_000,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(output.trim().split('\n').pop()!) as Record<string, number>;
}

/** Sequential GenServer calls from outside any actor. Returns ns per call. */
export async function callRoundTrip(calls: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const Echo: GenServer<number> = {
    init: () => 0,
    handleCall: (request: number, _from, state) => reply(request, state),
  };
  const server = await startGenServer(system, Echo, undefined);
  for (let i = 0; i < 1000; i++) await system.call(server, i); // warm up
  const start = performance.now();
  for (let i = 0; i < calls; i++) await system.call(server, i);
  return ((performance.now() - start) * 1e6) / calls;
}

/** Heap bytes per idle actor, with `count` alive. */
export async function idleActorBytes(count: number): Promise<number> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const system = new ActorSystem(quiet);
  gc();
  const before = process.memoryUsage().heapUsed;
  const handler = { handle: () => {} };
  for (let i = 0; i < count; i++) system.spawn(handler);
  await system.settle();
  gc();
  const after = process.memoryUsage().heapUsed;
  if (system.stats().alive !== count) throw new Error('idle actors exited');
  return (after - before) / count;
}

/** The same hops as `ring`, as a plain loop over an array queue: the in-run reference. */
export function referenceRing(actors: number, hops: number): number {
  const queue: number[] = [];
  const targets = new Int32Array(actors).map((_, i) => (i + 1) % actors);
  let actor = 0;
  const start = performance.now();
  queue.push(hops);
  while (queue.length > 0) {
    const token = queue.shift()!;
    if (token === 0) break;
    actor = targets[actor];
    queue.push(token - 1);
  }
  return hops / ((performance.now() - start) / 1000);
}

/** Runs the Erlang/OTP versions of the workloads when `erl` is installed (bench/erlang/). */
export function erlangFigures(quick: boolean): Record<string, number> | undefined {
  const erl = ['/usr/bin/erl', '/usr/local/bin/erl'].find((path) => existsSync(path));
  if (erl === undefined) return undefined;
  const here = dirname(fileURLToPath(import.meta.url));
  const source = [join(here, 'erlang'), join(here, '..', '..', 'bench', 'erlang')].find((dir) =>
    existsSync(join(dir, 'zbmd_bench.erl')),
  );
  if (source === undefined) return undefined;
  const output = execFileSync(
    erl,
    [
      '+P',
      '4000000',
      '+S',
      '2',
      '-noshell',
      '-pa',
      '/tmp',
      '-eval',
      `{ok, _} = compile:file("${join(source, 'zbmd_bench.erl')}", [{outdir, "/tmp"}]), zbmd_bench:main(${quick}), halt().`,
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  return JSON.parse(output.trim().split('\n').pop()!) as Record<string, number>;
}

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const scale = options.quick ? 10 : 1;
  const figures: Record<string, number | string> = {};
  // each group in its own process: the thread groups start workers and leave garbage behind
  for (const group of Object.keys(GROUPS)) Object.assign(figures, await inFreshProcess(group, options.quick));
  figures.cross_thread_pingpong_ring_vs_port = round(
    (figures.cross_thread_pingpong_port_ns as number) / (figures.cross_thread_pingpong_ns as number),
    2,
  );
  figures.cross_thread_pingpong_idle_stages_gain = round(
    (figures.cross_thread_pingpong_event_loop_ns as number) / (figures.cross_thread_pingpong_ns as number),
    2,
  );
  figures.cross_thread_msgs_ring_vs_port = round(
    (figures.cross_thread_msgs_per_sec as number) / (figures.cross_thread_msgs_per_sec_port as number),
    2,
  );
  figures.skynet_thread_speedup = round(
    (figures.skynet_1m_ms as number) / (figures.skynet_1m_threads_ms as number),
    2,
  );
  figures.reference_plain_loop_msgs_per_sec = Math.round(referenceRing(1000, 2_000_000 / scale));
  figures.ring_vs_plain_loop = round(
    (figures.ring_msgs_per_sec as number) / figures.reference_plain_loop_msgs_per_sec,
    3,
  );
  const erlang = erlangFigures(options.quick);
  if (erlang !== undefined) {
    for (const [key, value] of Object.entries(erlang)) figures[`erlang_${key}`] = value;
    figures.ring_vs_erlang = round((figures.ring_msgs_per_sec as number) / erlang.ring_msgs_per_sec, 2);
    figures.pingpong_speedup_vs_erlang = round(
      erlang.pingpong_ns_per_roundtrip / (figures.pingpong_ns_per_roundtrip as number),
      2,
    );
    figures.spawn_speedup_vs_erlang = round(
      erlang.spawn_ns_per_actor / (figures.spawn_ns_per_actor as number),
      2,
    );
    figures.skynet_speedup_vs_erlang = round(erlang.skynet_1m_ms / (figures.skynet_1m_ms as number), 2);
    figures.skynet_threads_vs_erlang = round(
      (figures.skynet_1m_threads_ms as number) / erlang.skynet_1m_ms,
      3,
    );
  } else {
    figures.erlang = 'not installed (apt-get install erlang-base to compare in the same run)';
  }
  figures.quick = options.quick ? 'yes' : 'no';
  return figures;
}

// `node bench/actors.js <group> quick|full`: one group's figures as a JSON line (see inFreshProcess).
if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] in GROUPS) {
  // not awaited at the top level: the group's spawns by module URL import this very module
  GROUPS[process.argv[2]](process.argv[3] === 'quick').then((figures) =>
    process.stdout.write(`${JSON.stringify(figures)}\n`),
  );
}

function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
