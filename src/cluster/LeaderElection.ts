/**
 * Leader election on a key-value bucket (JetStream KV, replicated by Raft): a lease is one key
 * in a bucket whose TTL is the lease length. A candidate takes the lead by creating the key
 * (create-if-absent) and keeps it by rewriting it at its revision (compare-and-set) every
 * `renewEveryMs`; each write restarts the entry's TTL on the server. A leader that cannot renew
 * steps down `safetyMarginMs` before its lease can end: it counts its lease from the moment it
 * *sent* the write that the server accepted, and the server cannot expire the entry before the
 * write arrived, so two leaders never overlap (given clocks that run at about the same rate).
 * The lease key's revision is the term: it only grows, so it fences stale leaders' writes.
 */
import { type Clock, RealClock, type TimerHandle } from '../actor/Clock.js';
import { ClusterError } from './errors.js';
import { type Bucket, isBucketConflict } from './Transport.js';

export interface LeaderElectionOptions {
  /** The bucket, opened with `ttlMs` equal to `leaseMs`. */
  readonly bucket: Bucket;
  /** Who this candidate is (a node name with its incarnation). */
  readonly candidate: string;
  /** Lease length in ms: the bucket's TTL. */
  readonly leaseMs: number;
  /** Key of the lease in the bucket. Default 'leader'. */
  readonly key?: string;
  /** Renewal (and, for followers, polling) interval. Default leaseMs / 4. */
  readonly renewEveryMs?: number;
  /** A leader steps down this long before its lease could end. Default leaseMs / 5. */
  readonly safetyMarginMs?: number;
  readonly clock?: Clock;
  readonly onLeader?: (term: number) => void;
  /** A follower learns who leads (undefined: nobody holds the lease right now). */
  readonly onFollower?: (leader: string | undefined) => void;
  /** Bucket errors (a server failover, a partition): the election retries on its next tick. */
  readonly onError?: (error: unknown) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LeaderElection {
  readonly #bucket: Bucket;
  readonly #key: string;
  readonly #clock: Clock;
  readonly #leaseMs: number;
  readonly #renewEveryMs: number;
  readonly #safetyMarginMs: number;
  #revision = 0;
  #validUntil = Number.NEGATIVE_INFINITY;
  #leading = false;
  #leader: string | undefined;
  #tickTimer: TimerHandle | undefined;
  #stepDownTimer: TimerHandle | undefined;
  #ticking = false;
  #stopped = true;

  constructor(private readonly options: LeaderElectionOptions) {
    const { leaseMs } = options;
    if (!Number.isFinite(leaseMs) || leaseMs < 100) {
      throw new ClusterError('invalid_option', `leaseMs must be at least 100 ms, not ${leaseMs}`);
    }
    this.#bucket = options.bucket;
    this.#key = options.key ?? 'leader';
    this.#clock = options.clock ?? new RealClock();
    this.#leaseMs = leaseMs;
    this.#renewEveryMs = options.renewEveryMs ?? leaseMs / 4;
    this.#safetyMarginMs = options.safetyMarginMs ?? leaseMs / 5;
    if (!(this.#renewEveryMs > 0 && this.#renewEveryMs + this.#safetyMarginMs < leaseMs)) {
      throw new ClusterError(
        'invalid_option',
        `renewEveryMs (${this.#renewEveryMs}) plus safetyMarginMs (${this.#safetyMarginMs}) must be under leaseMs (${leaseMs})`,
      );
    }
  }

  /** True while this candidate holds a lease that cannot have ended. */
  get isLeader(): boolean {
    return this.#leading && this.#clock.now() < this.#validUntil;
  }

  /** The leader as last seen (this candidate when leading). */
  get leader(): string | undefined {
    return this.isLeader ? this.options.candidate : this.#leader;
  }

  /** The lease's revision while leading (grows with every new leader): a fencing token. */
  get term(): number {
    return this.isLeader ? this.#revision : 0;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Stops; a leader gives its lease up at once, so the others need not wait for it to expire. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#tickTimer !== undefined) this.#clock.cancelTimer(this.#tickTimer);
    const wasLeading = this.isLeader;
    const revision = this.#revision;
    this.#stepDown();
    if (wasLeading) await this.#bucket.delete(this.#key, revision).catch(() => undefined);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#tickTimer = this.#clock.setTimer(delayMs, () => void this.#tick());
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    try {
      if (this.#leading && this.#clock.now() >= this.#validUntil) this.#stepDown();
      if (this.#leading) await this.#renew();
      else await this.#campaign();
    } catch (error) {
      this.options.onError?.(error);
    } finally {
      this.#ticking = false;
      this.#schedule(this.#renewEveryMs);
    }
  }

  async #renew(): Promise<void> {
    const sentAt = this.#clock.now();
    try {
      const revision = await this.#bucket.update(
        this.#key,
        encoder.encode(this.options.candidate),
        this.#revision,
      );
      if (this.#stopped || !this.#leading) return;
      this.#hold(revision, sentAt);
    } catch (error) {
      if (isBucketConflict(error))
        this.#stepDown(); // someone else holds it now
      else throw error; // keep leading until the step-down timer says otherwise
    }
  }

  async #campaign(): Promise<void> {
    const entry = await this.#bucket.get(this.#key);
    if (entry !== undefined) {
      this.#follow(decoder.decode(entry.value));
      return;
    }
    const sentAt = this.#clock.now();
    try {
      const revision = await this.#bucket.create(this.#key, encoder.encode(this.options.candidate));
      if (this.#stopped) {
        await this.#bucket.delete(this.#key, revision).catch(() => undefined);
        return;
      }
      this.#leading = true;
      this.#hold(revision, sentAt);
      this.#leader = this.options.candidate;
      this.options.onLeader?.(revision);
    } catch (error) {
      if (!isBucketConflict(error)) throw error; // lost the race: follow on the next tick
    }
  }

  #hold(revision: number, sentAt: number): void {
    this.#revision = revision;
    this.#validUntil = sentAt + this.#leaseMs - this.#safetyMarginMs;
    if (this.#stepDownTimer !== undefined) this.#clock.cancelTimer(this.#stepDownTimer);
    this.#stepDownTimer = this.#clock.setTimer(Math.max(0, this.#validUntil - this.#clock.now()), () => {
      if (this.#leading && this.#clock.now() >= this.#validUntil) this.#stepDown();
    });
  }

  #follow(leader: string | undefined): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    this.options.onFollower?.(leader);
  }

  #stepDown(): void {
    if (this.#stepDownTimer !== undefined) this.#clock.cancelTimer(this.#stepDownTimer);
    this.#stepDownTimer = undefined;
    if (!this.#leading) return;
    this.#leading = false;
    this.#validUntil = Number.NEGATIVE_INFINITY;
    this.#leader = undefined;
    this.options.onFollower?.(undefined);
  }
}
