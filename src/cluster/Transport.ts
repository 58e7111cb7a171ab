import { TaggedError } from '../internal/errors.js';
/**
 * What the cluster layer needs from the network: subjects to publish and subscribe on, and
 * key-value buckets with compare-and-set. `NatsTransport` is the real one (NATS with
 * JetStream KV); `SimulatedNetwork` gives transports with the same interface that run on a
 * simulated clock, with partitions, delays and node kills, for deterministic simulation.
 */

/** A subscription's handler: the payload and the subject it came on. */
export type MessageHandler = (data: Uint8Array, subject: string) => void;

export interface ClusterTransport {
  /** The largest payload one publish carries (NATS' `max_payload`, 1 MiB by default). */
  readonly maxPayloadBytes: number;
  /** Fire and forget; order is kept per publisher and subject. */
  publish(subject: string, data: Uint8Array): void;
  /** Subscribes to a subject (NATS wildcards `*` and `>` allowed); returns the unsubscribe. */
  subscribe(subject: string, handler: MessageHandler): () => void;
  /** Opens (creating if absent) a bucket whose entries expire `ttlMs` after their last write. */
  openBucket(name: string, options?: { readonly ttlMs?: number }): Promise<Bucket>;
  /**
   * Tells `listener` each time this transport's connection was interrupted (NATS: a disconnect,
   * after which the client reconnects): what was in flight may be lost. Returns the unsubscribe.
   * Optional: a transport without it never reports one.
   */
  onInterrupted?(listener: () => void): () => void;
  /** Resolves once everything published so far has reached the server. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** One entry of a bucket: the value and the revision that wrote it. */
export interface BucketEntry {
  readonly value: Uint8Array;
  readonly revision: number;
}

/**
 * A key-value bucket with compare-and-set (JetStream KV: revisions are the stream's sequence
 * numbers, so they only grow, across all keys of a bucket).
 */
export interface Bucket {
  get(key: string): Promise<BucketEntry | undefined>;
  /** Writes only if the key is absent (or deleted, or expired); else `BucketConflict`. */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Writes only if the key's last revision is `revision`; else `BucketConflict`. */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /** Deletes; with `revision`, only if that is still the key's last revision (else `BucketConflict`). */
  delete(key: string, revision?: number): Promise<void>;
  /** The keys present. */
  keys(): Promise<string[]>;
}

/** A compare-and-set that lost: the key was present, absent, or at another revision. */
export class BucketConflict extends TaggedError('BucketConflict') {
  constructor(
    readonly bucket: string,
    readonly key: string,
    detail: string,
  ) {
    super(`bucket ${bucket}, key ${key}: ${detail}`);
  }
}

export function isBucketConflict(error: unknown): error is BucketConflict {
  return error instanceof BucketConflict;
}
