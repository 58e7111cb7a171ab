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
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  ActorSystem,
  type Context,
  type GenServer,
  type Pid,
  reply,
  startGenServer,
} from '../src/actor/index.js';

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

/** One skynet node: spawns 10 children (or reports its number, as a leaf) and sums their answers. */
class SkynetNode {
  private sum = 0;
  private pending = 10;

  constructor(
    private readonly parent: Pid | undefined,
    private readonly number: number,
    private readonly size: number,
    private readonly done: (sum: number) => void,
  ) {}

  init(ctx: Context): void {
    if (this.size === 1) {
      this.report(ctx, this.number);
      return;
    }
    const childSize = this.size / 10;
    for (let i = 0; i < 10; i++)
      ctx.spawn(new SkynetNode(ctx.self, this.number + i * childSize, childSize, this.done));
  }

  handle(value: number, ctx: Context): void {
    this.sum += value;
    if (--this.pending === 0) this.report(ctx, this.sum);
  }

  private report(ctx: Context, value: number): void {
    if (this.parent === undefined) this.done(value);
    else ctx.send(this.parent, value);
    ctx.stop();
  }
}

/** Skynet: a tree of actors, 10 children per node, `leaves` leaves; returns ms and checks the sum. */
export async function skynet(leaves: number): Promise<number> {
  const system = new ActorSystem(quiet);
  const { promise, resolve } = deferred<number>();
  const start = performance.now();
  system.spawn(new SkynetNode(undefined, 0, leaves, resolve));
  const sum = await promise;
  const elapsed = performance.now() - start;
  const expected = (leaves * (leaves - 1)) / 2;
  if (sum !== expected) throw new Error(`skynet: sum ${sum}, expected ${expected}`);
  return elapsed;
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
  figures.ring_msgs_per_sec = Math.round(await ring(1000, 2_000_000 / scale));
  figures.pingpong_ns_per_roundtrip = round(await pingPong(500_000 / scale));
  figures.spawn_ns_per_actor = round(await spawnMany(1_000_000 / scale));
  figures.skynet_1m_ms = round(await skynet(options.quick ? 100_000 : 1_000_000));
  figures.call_ns = round(await callRoundTrip(200_000 / scale));
  figures.idle_actor_bytes = Math.round(await idleActorBytes(100_000));
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
  } else {
    figures.erlang = 'not installed (apt-get install erlang-base to compare in the same run)';
  }
  figures.quick = options.quick ? 'yes' : 'no';
  return figures;
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
