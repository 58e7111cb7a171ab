/**
 * The wire of elastic data-parallel training, on plain NATS subjects of the job's cluster:
 *
 * | subject                         | who publishes  | what                                              |
 * | ------------------------------- | -------------- | ------------------------------------------------- |
 * | `zbmd.<cluster>.dp.bcast`       | the leader     | assign, commit chunks, state chunks, sync, upload, done |
 * | `zbmd.<cluster>.dp.hello`       | every worker   | hello / status (name, incarnation, step, admitted) |
 * | `zbmd.<cluster>.dp.up.<leader>` | every worker   | gradient parts and state uploads, to one leader   |
 * | `zbmd.<cluster>.dp.events`      | the leader     | steps, joins, losses, recoveries, the result      |
 *
 * Everything the leader broadcasts goes on one subject, so every worker sees it in the order it
 * was sent (NATS keeps order per publisher and subject): a worker always has a commit before the
 * next step's assignment, and a state transfer before the assignments that follow it. A message
 * is one msgpack map; large vectors travel as chunks of at most the server's max_payload less
 * `CHUNK_HEADROOM_BYTES`, each chunk naming its term, step, index and count.
 */
import { Packr } from 'msgpackr';
import type { ReplicaState } from './ShardedReplica.js';

/** Bytes of a chunk's payload are at most max_payload less this (room for the message's other fields). */
export const CHUNK_HEADROOM_BYTES = 4096;

const packr = new Packr({ useRecords: false });

export function subjects(cluster: string, leader?: string) {
  const base = `zbmd.${cluster}.dp`;
  return {
    bcast: `${base}.bcast`,
    hello: `${base}.hello`,
    up: (name: string) => `${base}.up.${name}`,
    upSelf: leader === undefined ? '' : `${base}.up.${leader}`,
    events: `${base}.events`,
  };
}

export type Message = Record<string, unknown> & { readonly t: string };

export function encode(message: Message): Uint8Array {
  return packr.pack(message);
}

export function decode(data: Uint8Array): Message | undefined {
  try {
    const value = packr.unpack(data) as unknown;
    if (typeof value !== 'object' || value === null || typeof (value as Message).t !== 'string')
      return undefined;
    return value as Message;
  } catch {
    return undefined;
  }
}

/** The bytes of a typed array, without a copy. */
export function bytesOf(array: Float32Array | Float64Array | Int32Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** A Float32Array over a copy of `bytes` (aligned). */
export function floatsOf(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

/** Cuts `bytes` into chunks of at most `size` bytes (at least one chunk, possibly empty). */
export function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; start += size) chunks.push(bytes.subarray(start, start + size));
  if (chunks.length === 0) chunks.push(new Uint8Array(0));
  return chunks;
}

/** Collects the chunks of one transfer; `add` returns the whole once every chunk has come. */
export class Assembly {
  readonly #chunks: (Uint8Array | undefined)[];
  #received = 0;
  #bytes = 0;

  constructor(readonly count: number) {
    this.#chunks = new Array(count);
  }

  add(index: number, data: Uint8Array): Uint8Array | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.count || this.#chunks[index] !== undefined)
      return;
    this.#chunks[index] = data;
    this.#received++;
    this.#bytes += data.length;
    if (this.#received < this.count) return undefined;
    const whole = new Uint8Array(this.#bytes);
    let offset = 0;
    for (const chunk of this.#chunks) {
      whole.set(chunk!, offset);
      offset += chunk!.length;
    }
    return whole;
  }
}

/** A replica's state as bytes (msgpack with the vectors as byte strings). */
export function encodeState(state: ReplicaState): Uint8Array {
  return packr.pack({
    step: state.step,
    weights: state.weights.map(bytesOf),
    slots: Object.fromEntries(
      Object.entries(state.slots).map(([name, buffers]) => [name, buffers.map(bytesOf)]),
    ),
    optimizerStepCount: state.optimizerStepCount,
    learningRate: state.learningRate,
    loader: state.loader,
    randoms: state.randoms,
    epochs: bytesOf(state.lineage.epochs),
    starts: bytesOf(state.lineage.starts),
    sizes: bytesOf(state.lineage.sizes),
    applied: bytesOf(state.lineage.applied),
    losses: bytesOf(state.losses),
  });
}

export function decodeState(bytes: Uint8Array): ReplicaState {
  const raw = packr.unpack(bytes) as Record<string, unknown>;
  const ints = (value: unknown): Int32Array => new Int32Array((value as Uint8Array).slice().buffer);
  return {
    step: raw.step as number,
    weights: (raw.weights as Uint8Array[]).map(floatsOf),
    slots: Object.fromEntries(
      Object.entries(raw.slots as Record<string, Uint8Array[]>).map(([name, buffers]) => [
        name,
        buffers.map(floatsOf),
      ]),
    ),
    optimizerStepCount: raw.optimizerStepCount as number,
    learningRate: raw.learningRate as number,
    loader: raw.loader as ReplicaState['loader'],
    randoms: raw.randoms as ReplicaState['randoms'],
    lineage: {
      epochs: ints(raw.epochs),
      starts: ints(raw.starts),
      sizes: ints(raw.sizes),
      applied: ints(raw.applied),
    },
    losses: new Float64Array((raw.losses as Uint8Array).slice().buffer),
  };
}
