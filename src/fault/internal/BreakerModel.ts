/**
 * A reference model of the circuit breaker's state machine (Nygard's; the rules in
 * CircuitBreaker's documentation), fed the same calls and results as a real breaker:
 *
 * - closed: `failureThreshold` consecutive failures open it; a success resets the count;
 * - open: every call is rejected; exactly `resetTimeoutMs` after opening it turns half-open;
 * - half-open: at most `halfOpenMaxCalls` trial calls at once (more are rejected); one failure
 *   reopens it, `successThreshold` successes close it;
 * - a call that settles after the state changed since it was admitted counts for nothing.
 *
 * The model keeps its own counters; the scenario compares its admissions, its state and its
 * transitions with the real breaker's after every step.
 */

export type ModelCircuitState = 'closed' | 'open' | 'half-open';

export interface BreakerModelOptions {
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly resetTimeoutMs: number;
  readonly halfOpenMaxCalls: number;
}

/** An admitted call: the state period it belongs to, and whether it holds a trial slot. */
export interface ModelTicket {
  readonly period: number;
  readonly trial: boolean;
}

export interface ModelTransition {
  readonly from: ModelCircuitState;
  readonly to: ModelCircuitState;
  readonly atMs: number;
}

export class BreakerModel {
  state: ModelCircuitState = 'closed';
  openedAtMs = 0;
  /** Transitions the model made, oldest first (the scenario drains them). */
  readonly transitions: ModelTransition[] = [];
  private period = 0;
  private consecutiveFailures = 0;
  private trialSuccesses = 0;
  private trialsRunning = 0;

  constructor(
    readonly options: BreakerModelOptions,
    private readonly hit: (branch: string) => void,
  ) {}

  /** When the open circuit must turn half-open. */
  get halfOpenDueAtMs(): number {
    return this.openedAtMs + this.options.resetTimeoutMs;
  }

  /** A call arrives: undefined when it must be rejected. */
  admit(): ModelTicket | undefined {
    if (this.state === 'open') {
      this.hit('rejected-open');
      return undefined;
    }
    if (this.state === 'closed') {
      this.hit('admitted-closed');
      return { period: this.period, trial: false };
    }
    if (this.trialsRunning >= this.options.halfOpenMaxCalls) {
      this.hit('rejected-half-open-full');
      return undefined;
    }
    this.trialsRunning++;
    this.hit('admitted-trial');
    return { period: this.period, trial: true };
  }

  /** An admitted call settled. */
  settle(ticket: ModelTicket, failed: boolean, nowMs: number): void {
    if (ticket.period !== this.period) {
      this.hit('stale-result-ignored');
      return;
    }
    if (ticket.trial) this.trialsRunning--;
    if (this.state === 'closed') {
      if (!failed) {
        this.consecutiveFailures = 0;
        return;
      }
      this.consecutiveFailures++;
      if (this.consecutiveFailures >= this.options.failureThreshold) {
        this.hit('opened-at-threshold');
        this.move('open', nowMs);
      } else this.hit('failure-below-threshold');
      return;
    }
    if (failed) {
      this.hit('trial-failed-reopened');
      this.move('open', nowMs);
      return;
    }
    this.trialSuccesses++;
    if (this.trialSuccesses >= this.options.successThreshold) {
      this.hit('closed-after-trials');
      this.move('closed', nowMs);
    } else this.hit('trial-succeeded-below-threshold');
  }

  /** The reset timeout elapsed (the scenario checks it happens exactly at `halfOpenDueAtMs`). */
  resetTimeoutElapsed(nowMs: number): void {
    this.hit('half-open-after-timeout');
    this.move('half-open', nowMs);
  }

  private move(to: ModelCircuitState, nowMs: number): void {
    this.transitions.push({ from: this.state, to, atMs: nowMs });
    this.state = to;
    this.period++;
    this.consecutiveFailures = 0;
    this.trialSuccesses = 0;
    this.trialsRunning = 0;
    if (to === 'open') this.openedAtMs = nowMs;
  }
}
