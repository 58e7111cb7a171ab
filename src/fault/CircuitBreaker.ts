import type { Clock, TimerHandle } from '../actor/Clock.js';
import { RealClock } from '../actor/Clock.js';
import { guardOf, TaggedError } from '../internal/errors.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Name used in errors and events. Default 'circuit'. */
  readonly name?: string;
  /** Consecutive failures in `closed` that open the circuit. Default 5 (seeds/001). Integer >= 1. */
  readonly failureThreshold?: number;
  /** Successful trial calls in `half-open` that close it again. Default 3 (seeds/001). Integer >= 1. */
  readonly successThreshold?: number;
  /** Time spent `open` before trial calls are allowed, in ms. Default 30_000 (seeds/001). */
  readonly resetTimeoutMs?: number;
  /** Trial calls allowed in flight at once in `half-open`; more are rejected. Default 1. */
  readonly halfOpenMaxCalls?: number;
  /** A call still pending after this long counts as a failure (`BreakerCallTimeout`). Default: none. */
  readonly callTimeoutMs?: number;
  /** Decides which errors count as failures. Default: every error. */
  readonly isFailure?: (error: unknown) => boolean;
  readonly clock?: Clock;
}

/** A state change, given to listeners. */
export interface CircuitStateChange {
  readonly name: string;
  readonly from: CircuitState;
  readonly to: CircuitState;
  readonly atMs: number;
}

/** Thrown by `call` while the circuit is open (or half-open with all trial slots taken). */
export class CircuitOpen extends TaggedError('CircuitOpen') {
  constructor(
    readonly circuit: string,
    readonly state: 'open' | 'half-open',
    /** Time until trial calls are allowed; 0 when half-open. */
    readonly retryAfterMs: number,
  ) {
    super(
      state === 'open'
        ? `circuit '${circuit}' is open; calls are rejected for another ${retryAfterMs} ms`
        : `circuit '${circuit}' is half-open and all trial call slots are taken`,
    );
  }
}

export const isCircuitOpen = guardOf(CircuitOpen);

/**
 * Rejection of a call through the breaker that exceeded `callTimeoutMs`; it counts as a failure.
 * Its own name: the actor layer's `CallTimeout` (a `call` that got no reply) is another error.
 */
export class BreakerCallTimeout extends TaggedError('BreakerCallTimeout') {
  constructor(
    readonly circuit: string,
    readonly timeoutMs: number,
  ) {
    super(`call through circuit '${circuit}' did not settle within ${timeoutMs} ms`);
  }
}

export const isBreakerCallTimeout = guardOf(BreakerCallTimeout);

export class InvalidBreakerOption extends TaggedError('InvalidBreakerOption') {
  constructor(
    readonly option: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`CircuitBreaker: option '${option}' must be ${allowed}, got ${String(value)}`);
  }
}

export const isInvalidBreakerOption = guardOf(InvalidBreakerOption);

type Listener = (change: CircuitStateChange) => void;

const NEVER_ABORTED = new AbortController();

/**
 * Circuit breaker (Nygard; Akka's `CircuitBreaker`; seeds/001 ch. 5).
 *
 * - closed: calls pass; `failureThreshold` consecutive failures open the circuit (a success
 *   resets the count).
 * - open: calls are rejected with `CircuitOpen` without running; after `resetTimeoutMs` (a timer
 *   on the injected clock) the circuit becomes half-open.
 * - half-open: up to `halfOpenMaxCalls` trial calls at once; any failure reopens the circuit
 *   (and restarts the reset timeout), `successThreshold` successes close it.
 *
 * Calls that settle after the circuit changed state (for example a slow call started while
 * closed that fails after the circuit opened) are not counted: each state has an epoch, and
 * only results from the current epoch move the counters.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { SimulatedClock } from 'zbmd';
 * import { CircuitBreaker, isCircuitOpen } from 'zbmd/fault';
 *
 * const clock = new SimulatedClock();
 * const breaker = new CircuitBreaker({ failureThreshold: 3, resetTimeoutMs: 1000, clock });
 * const fetchModel = async (): Promise<string> => { throw new Error('model store unreachable'); };
 * for (let i = 0; i < 3; i++) await breaker.call(fetchModel).catch(() => {});
 * assert.equal(breaker.state, 'open'); // three failures in a row: calls fail fast now
 * const refused = await breaker.call(fetchModel).catch((error: unknown) => error);
 * assert.ok(isCircuitOpen(refused));
 * ```
 */
export class CircuitBreaker {
  readonly name: string;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly resetTimeoutMs: number;
  readonly halfOpenMaxCalls: number;
  readonly callTimeoutMs: number | undefined;
  private readonly isFailure: (error: unknown) => boolean;
  private readonly clock: Clock;
  private readonly listeners = new Set<Listener>();
  private current: CircuitState = 'closed';
  private epoch = 0;
  private failureCount = 0;
  private successCount = 0;
  private trialsInFlight = 0;
  private openedAtMs = 0;
  private resetTimer: TimerHandle | undefined;

  constructor(options: CircuitBreakerOptions = {}) {
    this.name = options.name ?? 'circuit';
    this.failureThreshold = checkCount('failureThreshold', options.failureThreshold ?? 5);
    this.successThreshold = checkCount('successThreshold', options.successThreshold ?? 3);
    this.halfOpenMaxCalls = checkCount('halfOpenMaxCalls', options.halfOpenMaxCalls ?? 1);
    this.resetTimeoutMs = checkDuration('resetTimeoutMs', options.resetTimeoutMs ?? 30_000);
    this.callTimeoutMs =
      options.callTimeoutMs === undefined ? undefined : checkDuration('callTimeoutMs', options.callTimeoutMs);
    this.isFailure = options.isFailure ?? (() => true);
    this.clock = options.clock ?? new RealClock();
  }

  get state(): CircuitState {
    return this.current;
  }

  /** Consecutive failures counted in the current state. */
  get failures(): number {
    return this.failureCount;
  }

  /** Trial calls currently running in half-open. */
  get trialCallsInFlight(): number {
    return this.trialsInFlight;
  }

  /** Subscribes to state changes; returns the unsubscribe function. */
  onStateChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `operation` through the breaker. Rejects with `CircuitOpen` (without running it) while
   * open; otherwise settles as `operation` does, or with `BreakerCallTimeout`. The signal is aborted
   * when the call times out, so the operation can stop its work.
   */
  async call<T>(operation: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
    const admittedAsTrial = this.admit();
    const epoch = this.epoch;
    // Only a call that can time out can be aborted; the others share one signal that never fires.
    const controller = this.callTimeoutMs === undefined ? NEVER_ABORTED : new AbortController();
    try {
      const value = await this.runWithTimeout(operation, controller);
      this.recordSuccess(epoch, admittedAsTrial);
      return value;
    } catch (error) {
      this.recordFailure(epoch, admittedAsTrial, error);
      throw error;
    }
  }

  /** Forces the circuit open (for example from a health check); starts the reset timeout. */
  trip(): void {
    this.transition('open');
  }

  /** Forces the circuit closed and clears the counters. */
  reset(): void {
    this.transition('closed');
  }

  private admit(): boolean {
    if (this.current === 'open') {
      const retryAfterMs = Math.max(0, this.openedAtMs + this.resetTimeoutMs - this.clock.now());
      throw new CircuitOpen(this.name, 'open', retryAfterMs);
    }
    if (this.current === 'closed') return false;
    if (this.trialsInFlight >= this.halfOpenMaxCalls) throw new CircuitOpen(this.name, 'half-open', 0);
    this.trialsInFlight++;
    return true;
  }

  private runWithTimeout<T>(
    operation: (signal: AbortSignal) => Promise<T> | T,
    controller: AbortController,
  ): Promise<T> {
    const timeoutMs = this.callTimeoutMs;
    // The operation starts synchronously, in the same turn as the admission check, so no state
    // change can slip between "admitted" and "running".
    let running: Promise<T>;
    try {
      running = Promise.resolve(operation(controller.signal));
    } catch (error) {
      running = Promise.reject(error);
    }
    if (timeoutMs === undefined) return running;
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimer(timeoutMs, () => {
        controller.abort();
        reject(new BreakerCallTimeout(this.name, timeoutMs));
      });
      running.then(
        (value) => {
          this.clock.cancelTimer(timer);
          resolve(value);
        },
        (error) => {
          this.clock.cancelTimer(timer);
          reject(error);
        },
      );
    });
  }

  private recordSuccess(epoch: number, admittedAsTrial: boolean): void {
    if (admittedAsTrial && epoch === this.epoch) this.trialsInFlight--;
    if (epoch !== this.epoch) return;
    if (this.current === 'closed') {
      this.failureCount = 0;
    } else if (this.current === 'half-open') {
      this.successCount++;
      if (this.successCount >= this.successThreshold) this.transition('closed');
    }
  }

  private recordFailure(epoch: number, admittedAsTrial: boolean, error: unknown): void {
    if (admittedAsTrial && epoch === this.epoch) this.trialsInFlight--;
    if (epoch !== this.epoch) return;
    if (!isBreakerCallTimeout(error) && !this.isFailure(error)) {
      this.recordSuccess(epoch, false);
      return;
    }
    if (this.current === 'half-open') {
      this.transition('open');
      return;
    }
    this.failureCount++;
    if (this.failureCount >= this.failureThreshold) this.transition('open');
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    if (this.resetTimer !== undefined) this.clock.cancelTimer(this.resetTimer);
    this.resetTimer = undefined;
    this.current = to;
    this.epoch++;
    this.failureCount = 0;
    this.successCount = 0;
    this.trialsInFlight = 0;
    if (to === 'open') {
      this.openedAtMs = this.clock.now();
      this.resetTimer = this.clock.setTimer(this.resetTimeoutMs, () => {
        this.resetTimer = undefined;
        this.transition('half-open');
      });
    }
    if (from === to) return;
    const change: CircuitStateChange = { name: this.name, from, to, atMs: this.clock.now() };
    for (const listener of [...this.listeners]) listener(change);
  }
}

function checkCount(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 1_000_000) {
    throw new InvalidBreakerOption(option, value, 'an integer in [1, 1000000]');
  }
  return value;
}

function checkDuration(option: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidBreakerOption(option, value, 'a finite number of milliseconds >= 0');
  }
  return value;
}
