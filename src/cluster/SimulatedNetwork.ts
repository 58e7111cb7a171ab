/**
 * A deterministic stand-in for NATS beside the real one (never instead of it in tests of the
 * real transport): transports for named nodes that deliver on a `SimulatedClock` after seeded
 * delays, with partitions, heals and node kills, and key-value buckets with the same
 * compare-and-set and TTL rules as JetStream KV. Per publisher and receiver, messages keep
 * their order (as NATS keeps them per connection). The buckets live on "the store side" of a
 * partition (the group holding the JetStream majority); a node cut off from it gets its bucket
 * operations failed after `BUCKET_OPERATION_TIMEOUT_MS`, as a real client would.
 */
import type { SimulatedClock } from '../actor/Clock.js';
import { Random } from '../actor/Random.js';
import { ClusterError } from './errors.js';
import { BUCKET_OPERATION_TIMEOUT_MS } from './NatsTransport.js';
import {
  type Bucket,
  BucketConflict,
  type BucketEntry,
  type ClusterTransport,
  type MessageHandler,
} from './Transport.js';

export interface SimulatedNetworkOptions {
  readonly clock: SimulatedClock;
  readonly seed?: number;
  /** One-way delay of a message or half a bucket round trip, uniform in [min, max] ms. */
  readonly delayMs?: { readonly min: number; readonly max: number };
  readonly maxPayloadBytes?: number;
}

interface Subscription {
  readonly node: string;
  readonly pattern: string[];
  readonly handler: MessageHandler;
}

interface StoredEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly writtenAt: number;
}

interface StoredBucket {
  readonly ttlMs: number;
  readonly entries: Map<string, StoredEntry>;
  revision: number;
}

/** True when the NATS subject pattern (tokens, `*` one token, `>` the rest) matches. */
export function subjectMatches(pattern: readonly string[], subject: string): boolean {
  const tokens = subject.split('.');
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '>') return tokens.length > i;
    if (i >= tokens.length || (pattern[i] !== '*' && pattern[i] !== tokens[i])) return false;
  }
  return tokens.length === pattern.length;
}

export class SimulatedNetwork {
  readonly clock: SimulatedClock;
  readonly #random: Random;
  readonly #delay: { readonly min: number; readonly max: number };
  readonly #maxPayloadBytes: number;
  readonly #subscriptions = new Set<Subscription>();
  readonly #buckets = new Map<string, StoredBucket>();
  readonly #dead = new Set<string>();
  /** Node -> partition group index; nodes not listed are in group 0 (the store side). */
  #groups = new Map<string, number>();
  /** Last delivery time per sender -> receiver pair, so delays never reorder a pair. */
  readonly #lastDelivery = new Map<string, number>();
  readonly #interruptListeners = new Map<string, Set<() => void>>();
  #lose: ((from: string, to: string, subject: string) => boolean) | undefined;
  /** Messages delivered and dropped, for scenario reports. */
  delivered = 0;
  dropped = 0;

  constructor(options: SimulatedNetworkOptions) {
    this.clock = options.clock;
    this.#random = new Random(options.seed ?? 0);
    this.#delay = options.delayMs ?? { min: 1, max: 1 };
    this.#maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
  }

  /** The transport of node `node` (a new node starts alive, on the store side). */
  transport(node: string): ClusterTransport {
    this.#dead.delete(node);
    return new SimulatedTransport(this, node);
  }

  /**
   * Loses every message for which `filter` answers true (as NATS core, at most once, loses one
   * to a slow consumer); `undefined` stops losing. Bucket operations are not affected.
   */
  lose(filter: ((from: string, to: string, subject: string) => boolean) | undefined): void {
    this.#lose = filter;
  }

  /**
   * Node `node`'s connection drops and comes back at once (a NATS disconnect and reconnect):
   * its transport tells its `onInterrupted` listeners. Messages are not affected by itself;
   * combine with `lose` to lose the ones in flight.
   */
  interrupt(node: string): void {
    for (const listener of [...(this.#interruptListeners.get(node) ?? [])]) listener();
  }

  /** @internal */
  onInterrupted(node: string, listener: () => void): () => void {
    let listeners = this.#interruptListeners.get(node);
    if (listeners === undefined) {
      listeners = new Set();
      this.#interruptListeners.set(node, listeners);
    }
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /** Splits the nodes into groups that cannot reach each other; group 0 holds the buckets. */
  partition(groups: readonly (readonly string[])[]): void {
    this.#groups = new Map(groups.flatMap((members, index) => members.map((node) => [node, index] as const)));
  }

  heal(): void {
    this.#groups = new Map();
  }

  /** The node's process is gone: nothing more is sent by it or delivered to it. */
  kill(node: string): void {
    this.#dead.add(node);
    for (const subscription of [...this.#subscriptions]) {
      if (subscription.node === node) this.#subscriptions.delete(subscription);
    }
  }

  isAlive(node: string): boolean {
    return !this.#dead.has(node);
  }

  /** @internal */
  reachable(a: string, b: string): boolean {
    return (
      !this.#dead.has(a) && !this.#dead.has(b) && (this.#groups.get(a) ?? 0) === (this.#groups.get(b) ?? 0)
    );
  }

  /** @internal */
  storeReachable(node: string): boolean {
    return !this.#dead.has(node) && (this.#groups.get(node) ?? 0) === 0;
  }

  /** @internal */
  delay(): number {
    const { min, max } = this.#delay;
    return min + this.#random.next() * (max - min);
  }

  get maxPayloadBytes(): number {
    return this.#maxPayloadBytes;
  }

  /** @internal */
  publish(from: string, subject: string, data: Uint8Array): void {
    if (this.#dead.has(from)) return;
    for (const subscription of this.#subscriptions) {
      if (!subjectMatches(subscription.pattern, subject)) continue;
      if (
        !this.reachable(from, subscription.node) ||
        this.#lose?.(from, subscription.node, subject) === true
      ) {
        this.dropped++;
        continue;
      }
      const pair = `${from}\u0000${subscription.node}`;
      const at = Math.max(this.clock.now() + this.delay(), this.#lastDelivery.get(pair) ?? 0);
      this.#lastDelivery.set(pair, at);
      const copy = data.slice();
      this.clock.setTimer(at - this.clock.now(), () => {
        // a partition or kill after the send loses the message in flight, as a cut link would
        if (!this.#subscriptions.has(subscription) || !this.reachable(from, subscription.node)) {
          this.dropped++;
          return;
        }
        this.delivered++;
        subscription.handler(copy, subject);
      });
    }
  }

  /** @internal */
  subscribe(node: string, subject: string, handler: MessageHandler): () => void {
    const subscription: Subscription = { node, pattern: subject.split('.'), handler };
    if (!this.#dead.has(node)) this.#subscriptions.add(subscription);
    return () => this.#subscriptions.delete(subscription);
  }

  /** @internal */
  bucket(name: string, ttlMs: number): StoredBucket {
    let bucket = this.#buckets.get(name);
    if (bucket === undefined) {
      bucket = { ttlMs, entries: new Map(), revision: 0 };
      this.#buckets.set(name, bucket);
    }
    return bucket;
  }

  /** @internal A live entry (not expired) of a bucket. */
  live(bucket: StoredBucket, key: string): StoredEntry | undefined {
    const entry = bucket.entries.get(key);
    if (entry === undefined) return undefined;
    if (bucket.ttlMs > 0 && this.clock.now() >= entry.writtenAt + bucket.ttlMs) {
      bucket.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * @internal Runs a bucket operation as a round trip: applied on arrival, answered a delay
   * later; a node off the store side waits for the client's timeout and fails.
   */
  roundTrip<T>(node: string, apply: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.storeReachable(node)) {
        this.clock.setTimer(BUCKET_OPERATION_TIMEOUT_MS, () =>
          reject(
            new ClusterError(
              'not_connected',
              `${node}: bucket operation timed out (no JetStream quorum reachable)`,
            ),
          ),
        );
        return;
      }
      this.clock.setTimer(this.delay(), () => {
        if (!this.storeReachable(node)) {
          this.clock.setTimer(BUCKET_OPERATION_TIMEOUT_MS, () =>
            reject(new ClusterError('not_connected', `${node}: bucket operation timed out`)),
          );
          return;
        }
        let outcome: { ok: true; value: T } | { ok: false; error: unknown };
        try {
          outcome = { ok: true, value: apply() };
        } catch (error) {
          outcome = { ok: false, error };
        }
        this.clock.setTimer(this.delay(), () => {
          if (this.#dead.has(node)) return; // the asker is gone
          if (outcome.ok) resolve(outcome.value);
          else reject(outcome.error);
        });
      });
    });
  }
}

class SimulatedTransport implements ClusterTransport {
  #closed = false;
  readonly #unsubscribes = new Set<() => void>();

  constructor(
    private readonly network: SimulatedNetwork,
    private readonly node: string,
  ) {}

  get maxPayloadBytes(): number {
    return this.network.maxPayloadBytes;
  }

  publish(subject: string, data: Uint8Array): void {
    if (!this.#closed) this.network.publish(this.node, subject, data);
  }

  onInterrupted(listener: () => void): () => void {
    return this.network.onInterrupted(this.node, listener);
  }

  subscribe(subject: string, handler: MessageHandler): () => void {
    const unsubscribe = this.network.subscribe(this.node, subject, handler);
    this.#unsubscribes.add(unsubscribe);
    return () => {
      this.#unsubscribes.delete(unsubscribe);
      unsubscribe();
    };
  }

  async openBucket(name: string, options: { readonly ttlMs?: number } = {}): Promise<Bucket> {
    const stored = await this.network.roundTrip(this.node, () =>
      this.network.bucket(name, options.ttlMs ?? 0),
    );
    return new SimulatedBucket(this.network, this.node, name, stored);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.clear();
  }
}

class SimulatedBucket implements Bucket {
  constructor(
    private readonly network: SimulatedNetwork,
    private readonly node: string,
    private readonly name: string,
    private readonly stored: StoredBucket,
  ) {}

  get(key: string): Promise<BucketEntry | undefined> {
    return this.network.roundTrip(this.node, () => {
      const entry = this.network.live(this.stored, key);
      return entry === undefined ? undefined : { value: entry.value.slice(), revision: entry.revision };
    });
  }

  create(key: string, value: Uint8Array): Promise<number> {
    const copy = value.slice();
    return this.network.roundTrip(this.node, () => {
      if (this.network.live(this.stored, key) !== undefined)
        throw new BucketConflict(this.name, key, 'already present');
      return this.#write(key, copy);
    });
  }

  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    const copy = value.slice();
    return this.network.roundTrip(this.node, () => {
      const entry = this.network.live(this.stored, key);
      if (entry?.revision !== revision)
        throw new BucketConflict(this.name, key, `not at revision ${revision}`);
      return this.#write(key, copy);
    });
  }

  delete(key: string, revision?: number): Promise<void> {
    return this.network.roundTrip(this.node, () => {
      const entry = this.network.live(this.stored, key);
      if (revision !== undefined && entry?.revision !== revision) {
        throw new BucketConflict(this.name, key, `not at revision ${revision}`);
      }
      this.stored.revision++;
      this.stored.entries.delete(key);
    });
  }

  keys(): Promise<string[]> {
    return this.network.roundTrip(this.node, () =>
      [...this.stored.entries.keys()].filter((key) => this.network.live(this.stored, key) !== undefined),
    );
  }

  #write(key: string, value: Uint8Array): number {
    const revision = ++this.stored.revision;
    this.stored.entries.set(key, { value, revision, writtenAt: this.network.clock.now() });
    return revision;
  }
}
