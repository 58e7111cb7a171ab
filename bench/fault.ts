/**
 * Fault-tolerance benchmarks: the phi-accrual detector, the circuit breaker's call overhead,
 * durable checkpoints (with fsync), event appends (fsync per append and group commit), and
 * recovering an actor from its checkpoint. Run with `npx zbmd bench fault --json`.
 *
 * Disk figures depend on the machine's storage (they include fsync), so compare them as ratios
 * between runs on the same machine; `await_baseline_ns` lets `breaker_call_ns` be read as a
 * ratio to a bare `await`. Files go to a temporary directory under `os.tmpdir()`, removed after.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealClock, SimulatedClock } from '../src/actor/Clock.js';
import {
  CheckpointManager,
  CircuitBreaker,
  DirectoryCheckpointStore,
  FileEventStore,
  PhiAccrualDetector,
} from '../src/fault/index.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const clock = new RealClock();

/** Nanoseconds per `phi()` on a full 1000-sample window, and per `heartbeat()`. */
export function phiNs(calls: number): { phiNs: number; heartbeatNs: number } {
  const simulated = new SimulatedClock();
  const detector = new PhiAccrualDetector({ clock: simulated, threshold: 1e9 });
  let start = clock.now();
  for (let index = 0; index < calls; index++) {
    detector.heartbeat();
    simulated.advance(900 + (index % 200));
  }
  const heartbeatNs = ((clock.now() - start) * 1e6) / calls;
  let sink = 0;
  start = clock.now();
  for (let index = 0; index < calls; index++) sink += detector.phi();
  const phi = ((clock.now() - start) * 1e6) / calls;
  if (Number.isNaN(sink)) throw new Error('phi produced NaN');
  return { phiNs: phi, heartbeatNs };
}

/** Nanoseconds per `await breaker.call(fn)` in the closed state, and per bare `await fn()`. */
export async function breakerCallNs(calls: number): Promise<{ breakerNs: number; baselineNs: number }> {
  const breaker = new CircuitBreaker({ clock: new SimulatedClock() });
  const operation = (): number => 1;
  let sum = 0;
  let start = clock.now();
  for (let index = 0; index < calls; index++) sum += await Promise.resolve(operation());
  const baselineNs = ((clock.now() - start) * 1e6) / calls;
  start = clock.now();
  for (let index = 0; index < calls; index++) sum += await breaker.call(operation);
  const breakerNs = ((clock.now() - start) * 1e6) / calls;
  if (sum !== 2 * calls) throw new Error('breaker benchmark lost calls');
  return { breakerNs, baselineNs };
}

/** MB (10^6 bytes) per second of durable checkpoint saves (write, fsync, rename, dir fsync). */
export async function checkpointMbPerSec(
  directory: string,
  payloadBytes: number,
  saves: number,
): Promise<number> {
  const store = new DirectoryCheckpointStore(directory);
  const payload = Buffer.alloc(payloadBytes, 7);
  await store.save('warmup', payload);
  const start = clock.now();
  for (let index = 0; index < saves; index++) await store.save('bench', payload, { index });
  const seconds = (clock.now() - start) / 1000;
  return (payloadBytes * saves) / 1e6 / seconds;
}

/** Appends per second with fsync per append (one at a time, each awaited). */
export async function appendsFsync(path: string, appends: number): Promise<number> {
  const store = await FileEventStore.open(path, { sync: 'always' });
  const start = clock.now();
  for (let index = 0; index < appends; index++) {
    await store.append('bench', [{ type: 'step', data: { index, loss: 0.5 } }], index);
  }
  const seconds = (clock.now() - start) / 1000;
  await store.close();
  return appends / seconds;
}

/** Appends per second with group commit: `perTurn` appends issued per turn, `rounds` times. */
export async function appendsBatched(path: string, perTurn: number, rounds: number): Promise<number> {
  const store = await FileEventStore.open(path, { sync: 'batch' });
  const start = clock.now();
  for (let round = 0; round < rounds; round++) {
    const appends = Array.from({ length: perTurn }, (_, index) =>
      store.append(`stream-${index % 16}`, [{ type: 'step', data: { round, index, loss: 0.5 } }], 'any'),
    );
    await Promise.all(appends);
  }
  const seconds = (clock.now() - start) / 1000;
  await store.close();
  return (perTurn * rounds) / seconds;
}

/** Microseconds to restore an actor (1 MiB state, 1000 queued messages); the median of `runs`. */
export async function recoveryUs(directory: string, runs: number): Promise<number> {
  const store = new DirectoryCheckpointStore(directory);
  const manager = new CheckpointManager<Buffer, { step: number }>({
    store,
    serialize: (state) => state,
    deserialize: (bytes) => Buffer.from(bytes),
  });
  const messages = Array.from({ length: 1000 }, (_, step) => ({ step }));
  await manager.checkpoint('actor', { state: Buffer.alloc(1024 * 1024, 3), messages });
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    const start = clock.now();
    const restored = await manager.restore('actor');
    times.push((clock.now() - start) * 1000);
    if (restored?.messages.length !== 1000)
      throw new Error('recovery benchmark restored the wrong checkpoint');
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const quick = options.quick;
  const directory = await mkdtemp(join(tmpdir(), 'zbmd-bench-fault-'));
  try {
    const phi = phiNs(quick ? 20_000 : 1_000_000);
    const breaker = await breakerCallNs(quick ? 20_000 : 1_000_000);
    const checkpointBytes = quick ? 4 * 1024 * 1024 : 16 * 1024 * 1024;
    return {
      phi_ns: round(phi.phiNs),
      heartbeat_ns: round(phi.heartbeatNs),
      breaker_call_ns: round(breaker.breakerNs),
      await_baseline_ns: round(breaker.baselineNs),
      checkpoint_mb_per_sec: round(
        await checkpointMbPerSec(join(directory, 'checkpoints'), checkpointBytes, quick ? 3 : 10),
      ),
      checkpoint_payload_bytes: checkpointBytes,
      event_appends_per_sec_fsync: round(
        await appendsFsync(join(directory, 'fsync.zlog'), quick ? 50 : 1000),
      ),
      event_appends_per_sec_batched: round(
        await appendsBatched(join(directory, 'batched.zlog'), 256, quick ? 5 : 100),
      ),
      event_batch_appends_per_turn: 256,
      recovery_from_checkpoint_us: round(await recoveryUs(join(directory, 'recovery'), quick ? 5 : 50)),
      recovery_state_bytes: 1024 * 1024,
      storage: tmpdir(),
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
