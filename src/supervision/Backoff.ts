import { Random } from '../actor/index.js';
import { InvalidSupervisorOptions } from './errors.js';

/**
 * How long a failed child waits before it is started again (seed 004's backoff strategies).
 * The wait runs on a timer: the supervisor keeps answering calls meanwhile, and `whichChildren`
 * shows the child as `'restarting'`.
 *
 * - `none` (default): restart at once, as OTP.
 * - `fixed`: always `delayMs`.
 * - `exponential`: `initialDelayMs * multiplier^attempt`, capped at `maxDelayMs`, then reduced by
 *   up to `jitter` (a fraction in [0, 1]) with a seeded generator, so a run replays exactly.
 *
 * `attempt` counts the child's restarts since it last ran for at least `resetAfterMs` (default:
 * the supervisor's period). Restarts after a backoff still count against the intensity.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { Backoff, type BackoffSpec } from 'zbmd/supervision';
 *
 * const spec: BackoffSpec = { type: 'exponential', initialDelayMs: 100, maxDelayMs: 10_000, jitter: 0.2, seed: 7 };
 * const backoff = Backoff.from(spec, 5000);
 * const delays = [0, 1, 2, 10].map((attempt) => backoff.delayMs(attempt));
 * assert.ok(delays[0]! >= 80 && delays[0]! <= 100); // 100 ms less up to 20% jitter
 * assert.ok(delays[3]! <= 10_000); // capped
 * ```
 */
export type BackoffSpec =
  | { readonly type: 'none' }
  | { readonly type: 'fixed'; readonly delayMs: number; readonly resetAfterMs?: number }
  | {
      readonly type: 'exponential';
      readonly initialDelayMs: number;
      readonly maxDelayMs: number;
      /** Growth per attempt; default 2. */
      readonly multiplier?: number;
      /** Fraction of the delay removed at random, in [0, 1]; default 0. */
      readonly jitter?: number;
      /** Seed of the jitter generator; default 1. */
      readonly seed?: number;
      readonly resetAfterMs?: number;
    };

/** Longest backoff delay accepted (one hour). */
export const MAX_BACKOFF_DELAY_MS = 3_600_000;

/** A validated backoff policy with its own seeded generator. */
export class Backoff {
  private readonly random: Random | undefined;

  private constructor(
    readonly spec: BackoffSpec,
    /** A child that ran at least this long before failing starts again from attempt 0. */
    readonly resetAfterMs: number,
  ) {
    this.random =
      spec.type === 'exponential' && (spec.jitter ?? 0) > 0 ? new Random(spec.seed ?? 1) : undefined;
  }

  /** Validates `spec` (throws `InvalidSupervisorOptions` with `invalid_backoff`). */
  static from(spec: unknown, defaultResetAfterMs: number): Backoff {
    if (spec === undefined) return new Backoff({ type: 'none' }, defaultResetAfterMs);
    if (typeof spec !== 'object' || spec === null)
      throw invalid(spec, 'backoff must be an object with a type');
    const candidate = spec as Record<string, unknown>;
    if (candidate.type === 'none') return new Backoff({ type: 'none' }, defaultResetAfterMs);
    const resetAfterMs = candidate.resetAfterMs ?? defaultResetAfterMs;
    checkDelay(resetAfterMs, 'resetAfterMs', spec);
    if (candidate.type === 'fixed') {
      checkDelay(candidate.delayMs, 'delayMs', spec);
      return new Backoff(spec as BackoffSpec, resetAfterMs as number);
    }
    if (candidate.type === 'exponential') {
      checkExponential(candidate);
      return new Backoff(spec as BackoffSpec, resetAfterMs as number);
    }
    throw invalid(spec, "backoff.type must be 'none', 'fixed' or 'exponential'");
  }

  /** True when restarts wait (any policy but `none`). */
  get delays(): boolean {
    return this.spec.type !== 'none';
  }

  /** The wait before restart number `attempt` (0 for the first restart after a reset). */
  delayMs(attempt: number): number {
    const spec = this.spec;
    if (spec.type === 'none') return 0;
    if (spec.type === 'fixed') return spec.delayMs;
    const grown = spec.initialDelayMs * (spec.multiplier ?? 2) ** attempt;
    const capped = Math.min(spec.maxDelayMs, grown);
    const jitter = spec.jitter ?? 0;
    if (this.random === undefined || jitter === 0) return capped;
    return capped * (1 - jitter * this.random.next());
  }
}

function checkExponential(spec: Record<string, unknown>): void {
  checkDelay(spec.initialDelayMs, 'initialDelayMs', spec);
  checkDelay(spec.maxDelayMs, 'maxDelayMs', spec);
  if ((spec.maxDelayMs as number) < (spec.initialDelayMs as number))
    throw invalid(spec, 'maxDelayMs must be >= initialDelayMs');
  const multiplier = spec.multiplier ?? 2;
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier < 1) {
    throw invalid(spec, 'multiplier must be a number >= 1');
  }
  const jitter = spec.jitter ?? 0;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1))
    throw invalid(spec, 'jitter must be a fraction in [0, 1]');
  const seed = spec.seed ?? 1;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) throw invalid(spec, 'seed must be an integer');
}

function checkDelay(value: unknown, field: string, spec: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_BACKOFF_DELAY_MS) {
    throw invalid(spec, `${field} must be a number of milliseconds in [0, ${MAX_BACKOFF_DELAY_MS}]`);
  }
}

function invalid(spec: unknown, detail: string): InvalidSupervisorOptions {
  return new InvalidSupervisorOptions('invalid_backoff', spec, detail);
}
