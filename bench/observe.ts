/**
 * What observing costs: the actor ring of bench/actors.ts without any tracer, with the
 * last-message table a `SystemObserver` keeps for crash reports (what `zbmd train` runs with),
 * and with one process of the ring traced; and how long one `/metrics` scrape and one snapshot
 * take with 1000 live processes. Ratios are to the untraced ring of the same run (best of
 * `ROUNDS`, interleaved, since the machine is shared). `npx zbmd bench observe --json`.
 */
import { ActorSystem, type Context, type Pid } from '../src/actor/index.js';
import { metricsRegistry, SystemObserver, trace, trackLastMessages } from '../src/observe/index.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const ROUNDS = 3;

type Mode = 'untraced' | 'last_messages' | 'traced_one';

async function ring(actors: number, hops: number, mode: Mode): Promise<number> {
  const system = new ActorSystem({ onCrash: () => {} });
  let resolve!: () => void;
  const done = new Promise<void>((settle) => {
    resolve = settle;
  });
  const pids: Pid[] = [];
  for (let index = 0; index < actors; index++) {
    const next = (index + 1) % actors;
    pids.push(
      system.spawn({
        handle: (token: number, context: Context) =>
          token === 0 ? resolve() : context.send(pids[next], token - 1),
      }),
    );
  }
  const tracking = mode === 'last_messages' ? trackLastMessages(system) : undefined;
  const tracing = mode === 'traced_one' ? trace(system, pids[0]) : undefined;
  const startedMs = performance.now();
  system.send(pids[0], hops);
  await done;
  const seconds = (performance.now() - startedMs) / 1000;
  tracking?.stop();
  tracing?.stop();
  system.shutdown();
  return hops / seconds;
}

async function scrapeMs(processes: number): Promise<{ metrics: number; snapshot: number }> {
  const system = new ActorSystem({ onCrash: () => {} });
  for (let index = 0; index < processes; index++) system.spawn({ handle() {} });
  const observer = new SystemObserver(system);
  let metrics = Number.POSITIVE_INFINITY;
  let snapshot = Number.POSITIVE_INFINITY;
  // the best of 20: the first calls run before the JIT has compiled them
  for (let attempt = 0; attempt < 20; attempt++) {
    let startedMs = performance.now();
    await metricsRegistry.metrics();
    metrics = Math.min(metrics, performance.now() - startedMs);
    startedMs = performance.now();
    observer.snapshot();
    snapshot = Math.min(snapshot, performance.now() - startedMs);
  }
  observer.stop();
  system.shutdown();
  return { metrics, snapshot };
}

const round = (value: number, digits = 3): number => Number(value.toFixed(digits));

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const hops = options.quick ? 200_000 : 2_000_000;
  const best: Record<Mode, number> = { untraced: 0, last_messages: 0, traced_one: 0 };
  for (let roundIndex = 0; roundIndex < ROUNDS; roundIndex++)
    for (const mode of Object.keys(best) as Mode[])
      best[mode] = Math.max(best[mode], await ring(1000, hops, mode));
  const scrape = await scrapeMs(1000);
  return {
    ring_msgs_per_sec_untraced: Math.round(best.untraced),
    ring_msgs_per_sec_last_messages: Math.round(best.last_messages),
    ring_msgs_per_sec_traced_one: Math.round(best.traced_one),
    last_messages_vs_untraced: round(best.last_messages / best.untraced),
    traced_one_vs_untraced: round(best.traced_one / best.untraced),
    metrics_scrape_ms_1000_processes: round(scrape.metrics, 2),
    snapshot_ms_1000_processes: round(scrape.snapshot, 2),
    quick: options.quick ? 'yes' : 'no',
  };
}
