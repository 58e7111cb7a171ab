import type { Clock } from '../actor/Clock.js';
import { RealClock } from '../actor/Clock.js';
import { guardOf, TaggedError } from '../internal/errors.js';

export interface PhiAccrualOptions {
  /** φ at or above which the peer is suspected. Default 8 (Akka). Must be > 0. */
  readonly threshold?: number;
  /** Number of intervals kept in the window. Default 1000 (Akka). Integer in [1, 1_000_000]. */
  readonly maxSampleSize?: number;
  /** Floor under the standard deviation, in ms. Default 100 (Akka). Must be > 0. */
  readonly minStdDeviationMs?: number;
  /** Pause accepted on top of the mean before suspicion rises, in ms. Default 0 (Akka). */
  readonly acceptableHeartbeatPauseMs?: number;
  /** Expected interval before any is measured, in ms. Default 1000 (Akka). Must be > 0. */
  readonly firstHeartbeatEstimateMs?: number;
  /** Time source. Default: a `RealClock`. */
  readonly clock?: Clock;
}

/** Statistics of the current window, for diagnostics and tests. */
export interface PhiAccrualStats {
  readonly sampleCount: number;
  readonly meanMs: number;
  /** Standard deviation before the `minStdDeviationMs` floor is applied. */
  readonly stdDeviationMs: number;
  /** Heartbeats whose interval was not recorded because the peer was suspected. */
  readonly ignoredIntervals: number;
}

/** Raised for an option outside its documented range. */
export class InvalidDetectorOption extends TaggedError('InvalidDetectorOption') {
  constructor(
    readonly option: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`PhiAccrualDetector: option '${option}' must be ${allowed}, got ${String(value)}`);
  }
}

export const isInvalidDetectorOption = guardOf(InvalidDetectorOption);

export const PHI_DEFAULTS = {
  threshold: 8,
  maxSampleSize: 1000,
  minStdDeviationMs: 100,
  acceptableHeartbeatPauseMs: 0,
  firstHeartbeatEstimateMs: 1000,
} as const;

/** Largest window accepted, so that a typo cannot allocate gigabytes. */
export const PHI_MAX_SAMPLE_SIZE = 1_000_000;

/**
 * The φ accrual failure detector of Hayashibara et al. (2004), with the defaults and the
 * bootstrap of Akka's `PhiAccrualFailureDetector`.
 *
 * Instead of a yes/no answer it gives a suspicion level
 *
 *     φ = -log10(1 - F(timeSinceLastHeartbeat))
 *
 * where F is the normal CDF with the mean and standard deviation of the recent heartbeat
 * intervals (the mean shifted by `acceptableHeartbeatPauseMs`). φ = 1 means a 10% chance that
 * suspecting the peer is a mistake, φ = 8 (the default threshold) about 1e-8.
 *
 * Window: the last `maxSampleSize` intervals in a ring buffer with running sums, so `heartbeat()`
 * and `phi()` are O(1). The sums are recomputed from the ring once per `maxSampleSize`
 * replacements, which bounds the floating-point drift of add/subtract updates.
 *
 * Rejoin rule (as Akka): when a heartbeat arrives while the detector already suspects the peer
 * (φ at arrival >= threshold), the interval that ends with it is NOT recorded; the heartbeat only
 * resets the "last heartbeat" time. A long outage therefore never inflates the mean and the
 * deviation, and a peer that comes back is judged on its usual rhythm.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { SimulatedClock } from 'zbmd';
 * import { PhiAccrualDetector } from 'zbmd/fault';
 *
 * const clock = new SimulatedClock();
 * const detector = new PhiAccrualDetector({ clock });
 * for (let i = 0; i < 10; i++) { detector.heartbeat(); clock.advance(1000); }
 * assert.equal(detector.isAvailable(), true);
 * clock.advance(10_000);
 * assert.equal(detector.isAvailable(), false);
 * ```
 */
export class PhiAccrualDetector {
  readonly threshold: number;
  readonly maxSampleSize: number;
  readonly minStdDeviationMs: number;
  readonly acceptableHeartbeatPauseMs: number;
  readonly firstHeartbeatEstimateMs: number;
  private readonly clock: Clock;
  private readonly window: IntervalWindow;
  private lastHeartbeatAt: number | undefined;
  private ignored = 0;

  constructor(options: PhiAccrualOptions = {}) {
    this.threshold = checkPositive('threshold', options.threshold ?? PHI_DEFAULTS.threshold);
    this.maxSampleSize = checkSampleSize(options.maxSampleSize ?? PHI_DEFAULTS.maxSampleSize);
    this.minStdDeviationMs = checkPositive(
      'minStdDeviationMs',
      options.minStdDeviationMs ?? PHI_DEFAULTS.minStdDeviationMs,
    );
    this.acceptableHeartbeatPauseMs = checkNonNegative(
      'acceptableHeartbeatPauseMs',
      options.acceptableHeartbeatPauseMs ?? PHI_DEFAULTS.acceptableHeartbeatPauseMs,
    );
    this.firstHeartbeatEstimateMs = checkPositive(
      'firstHeartbeatEstimateMs',
      options.firstHeartbeatEstimateMs ?? PHI_DEFAULTS.firstHeartbeatEstimateMs,
    );
    this.clock = options.clock ?? new RealClock();
    this.window = new IntervalWindow(this.maxSampleSize);
  }

  /** True once the first heartbeat has arrived. */
  get isMonitoring(): boolean {
    return this.lastHeartbeatAt !== undefined;
  }

  /** Records a heartbeat from the peer at the clock's current time. */
  heartbeat(): void {
    const now = this.clock.now();
    const last = this.lastHeartbeatAt;
    if (last === undefined) {
      // Bootstrap as Akka does: two intervals around the estimate with a wide deviation, so
      // that a peer seen only once still becomes suspected when it goes silent.
      const deviation = this.firstHeartbeatEstimateMs / 4;
      this.window.reset();
      this.window.push(this.firstHeartbeatEstimateMs - deviation);
      this.window.push(this.firstHeartbeatEstimateMs + deviation);
    } else if (this.phiAt(now) < this.threshold) {
      this.window.push(Math.max(0, now - last));
    } else {
      this.ignored++;
    }
    this.lastHeartbeatAt = now;
  }

  /** Suspicion level now; 0 before the first heartbeat (an unmonitored peer counts as healthy). */
  phi(): number {
    return this.phiAt(this.clock.now());
  }

  /** True while φ is below the threshold. */
  isAvailable(): boolean {
    return this.phi() < this.threshold;
  }

  stats(): PhiAccrualStats {
    return {
      sampleCount: this.window.size,
      meanMs: this.window.mean(),
      stdDeviationMs: this.window.stdDeviation(),
      ignoredIntervals: this.ignored,
    };
  }

  private phiAt(timeMs: number): number {
    if (this.lastHeartbeatAt === undefined) return 0;
    const elapsedMs = Math.max(0, timeMs - this.lastHeartbeatAt);
    const meanMs = this.window.mean() + this.acceptableHeartbeatPauseMs;
    const stdDeviationMs = Math.max(this.window.stdDeviation(), this.minStdDeviationMs);
    return phiOf(elapsedMs, meanMs, stdDeviationMs);
  }
}

/**
 * -log10(1 - F(x)) with F the logistic approximation of the normal CDF used by Akka
 * (F(y) ≈ 1 / (1 + exp(-y (1.5976 + 0.070566 y²))), error 0.00014 at ±3.16).
 *
 * With z = y (1.5976 + 0.070566 y²), 1 - F = e^{-z} / (1 + e^{-z}), so
 * φ = (z + ln(1 + e^{-z})) / ln 10 for z > 0 and ln(1 + e^{z}) / ln 10 otherwise. Both forms
 * never overflow or underflow: φ grows smoothly past 300 where the textbook form returns
 * Infinity, and it is monotonic in x.
 */
export function phiOf(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const z = y * (1.5976 + 0.070566 * y * y);
  const naturalLog = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
  return naturalLog / Math.LN10;
}

/** Ring buffer of intervals with running sum and sum of squares. */
class IntervalWindow {
  private readonly values: Float64Array;
  private start = 0;
  size = 0;
  private sum = 0;
  private squaredSum = 0;
  private replacementsSinceRecompute = 0;

  constructor(private readonly capacity: number) {
    this.values = new Float64Array(capacity);
  }

  reset(): void {
    this.start = 0;
    this.size = 0;
    this.sum = 0;
    this.squaredSum = 0;
    this.replacementsSinceRecompute = 0;
  }

  push(intervalMs: number): void {
    if (this.size < this.capacity) {
      this.values[(this.start + this.size) % this.capacity] = intervalMs;
      this.size++;
    } else {
      const oldest = this.values[this.start];
      this.sum -= oldest;
      this.squaredSum -= oldest * oldest;
      this.values[this.start] = intervalMs;
      this.start = (this.start + 1) % this.capacity;
      this.replacementsSinceRecompute++;
    }
    this.sum += intervalMs;
    this.squaredSum += intervalMs * intervalMs;
    if (this.replacementsSinceRecompute >= this.capacity) this.recompute();
  }

  mean(): number {
    return this.size === 0 ? 0 : this.sum / this.size;
  }

  stdDeviation(): number {
    if (this.size === 0) return 0;
    const mean = this.sum / this.size;
    // Population variance as in Akka; clamp the tiny negatives that cancellation can produce.
    return Math.sqrt(Math.max(0, this.squaredSum / this.size - mean * mean));
  }

  private recompute(): void {
    let sum = 0;
    let squaredSum = 0;
    for (let index = 0; index < this.size; index++) {
      const value = this.values[(this.start + index) % this.capacity];
      sum += value;
      squaredSum += value * value;
    }
    this.sum = sum;
    this.squaredSum = squaredSum;
    this.replacementsSinceRecompute = 0;
  }
}

function checkPositive(option: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidDetectorOption(option, value, 'a finite number > 0');
  }
  return value;
}

function checkNonNegative(option: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidDetectorOption(option, value, 'a finite number >= 0');
  }
  return value;
}

function checkSampleSize(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > PHI_MAX_SAMPLE_SIZE) {
    throw new InvalidDetectorOption('maxSampleSize', value, `an integer in [1, ${PHI_MAX_SAMPLE_SIZE}]`);
  }
  return value;
}
