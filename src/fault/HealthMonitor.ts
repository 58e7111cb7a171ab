import type { Clock, TimerHandle } from '../actor/Clock.js';
import { RealClock } from '../actor/Clock.js';
import { guardOf, TaggedError } from '../internal/errors.js';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

/** What a check returns: a status, or a status with a message. Returning nothing means healthy. */
export type HealthCheckOutcome = HealthStatus | { readonly status: HealthStatus; readonly message?: string };

/** What a probe may return: an outcome, or nothing (an `async` probe that just completes). */
// biome-ignore lint/suspicious/noConfusingVoidType: lets `async () => { await ping(); }` be a probe
export type HealthProbeResult = HealthCheckOutcome | undefined | void;

export interface HealthCheckSpec {
  /** The probe. Throwing, rejecting or timing out is a failure; returning nothing is healthy. */
  readonly check: (signal: AbortSignal) => Promise<HealthProbeResult> | HealthProbeResult;
  /** Time between the end of one run and the start of the next, in ms. Default 10_000. */
  readonly intervalMs?: number;
  /** A run still pending after this long fails (and its signal is aborted). Default 5_000. */
  readonly timeoutMs?: number;
  /** Consecutive failures before the check is unhealthy; fewer make it degraded. Default 1. */
  readonly failureThreshold?: number;
  /** An unhealthy critical check makes the whole monitor unhealthy; others degrade it. Default true. */
  readonly critical?: boolean;
}

/** The state of one check. `pending` until its first run completes. */
export interface HealthCheckState {
  readonly name: string;
  readonly status: HealthStatus | 'pending';
  readonly critical: boolean;
  readonly message: string | undefined;
  readonly consecutiveFailures: number;
  readonly runs: number;
  readonly lastCheckedAtMs: number | undefined;
  readonly lastDurationMs: number | undefined;
}

export interface HealthReport {
  readonly status: HealthStatus;
  readonly checks: readonly HealthCheckState[];
}

export interface HealthCheckChange {
  readonly name: string;
  readonly from: HealthCheckState['status'];
  readonly to: HealthStatus;
  readonly state: HealthCheckState;
}

export interface HealthStatusChange {
  readonly from: HealthStatus;
  readonly to: HealthStatus;
  readonly report: HealthReport;
}

/** Most checks one monitor holds. */
export const HEALTH_MAX_CHECKS = 1024;
/** Longest message kept from a check or an error; longer ones are cut. */
export const HEALTH_MAX_MESSAGE_LENGTH = 1024;

export class HealthCheckError extends TaggedError('HealthCheckError') {
  constructor(
    readonly reason: 'duplicate_check' | 'unknown_check' | 'too_many_checks' | 'invalid_option',
    readonly check: string,
    detail: string,
  ) {
    super(`HealthMonitor: ${reason} '${check}': ${detail}`);
  }
}

export const isHealthCheckError = guardOf(HealthCheckError);

interface Entry {
  readonly name: string;
  readonly spec: Required<Omit<HealthCheckSpec, 'check'>> & Pick<HealthCheckSpec, 'check'>;
  state: HealthCheckState;
  timer: TimerHandle | undefined;
  inFlight: Promise<HealthCheckState> | undefined;
  controller: AbortController | undefined;
}

/**
 * Periodic health checks on the injected clock, aggregated into one status (seed 004's
 * `HealthMonitor`):
 * - unhealthy: some critical check is unhealthy;
 * - degraded: some check is degraded, or a non-critical check is unhealthy;
 * - healthy: otherwise (pending checks, not yet run, do not count).
 *
 * Runs of one check never overlap: the next run is scheduled `intervalMs` after the previous one
 * settles. Results of runs that were superseded (`stop`, `unregister`) are ignored.
 */
export class HealthMonitor {
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private readonly checkListeners = new Set<(change: HealthCheckChange) => void>();
  private readonly statusListeners = new Set<(change: HealthStatusChange) => void>();
  private running = false;
  private aggregate: HealthStatus = 'healthy';

  constructor(options: { readonly clock?: Clock } = {}) {
    this.clock = options.clock ?? new RealClock();
  }

  get isRunning(): boolean {
    return this.running;
  }

  register(name: string, spec: HealthCheckSpec): void {
    if (this.entries.has(name)) throw new HealthCheckError('duplicate_check', name, 'already registered');
    if (this.entries.size >= HEALTH_MAX_CHECKS) {
      throw new HealthCheckError('too_many_checks', name, `at most ${HEALTH_MAX_CHECKS} checks`);
    }
    const entry: Entry = {
      name,
      spec: validateSpec(name, spec),
      state: initialState(name, spec.critical ?? true),
      timer: undefined,
      inFlight: undefined,
      controller: undefined,
    };
    this.entries.set(name, entry);
    if (this.running) void this.runEntry(entry);
  }

  unregister(name: string): boolean {
    const entry = this.entries.get(name);
    if (entry === undefined) return false;
    this.cancel(entry);
    this.entries.delete(name);
    this.updateAggregate();
    return true;
  }

  /** Starts periodic runs; every check runs once at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const entry of this.entries.values()) void this.runEntry(entry);
  }

  /** Stops periodic runs and aborts runs in flight (their results are ignored). */
  stop(): void {
    this.running = false;
    for (const entry of this.entries.values()) this.cancel(entry);
  }

  /** Runs one check now (or joins its run in flight) and returns its new state. */
  runCheck(name: string): Promise<HealthCheckState> {
    const entry = this.entries.get(name);
    if (entry === undefined)
      return Promise.reject(new HealthCheckError('unknown_check', name, 'not registered'));
    if (entry.timer !== undefined) this.clock.cancelTimer(entry.timer);
    entry.timer = undefined;
    return this.runEntry(entry);
  }

  /** Runs every check now and returns the report once all have settled. */
  async checkAll(): Promise<HealthReport> {
    await Promise.all([...this.entries.keys()].map((name) => this.runCheck(name)));
    return this.report();
  }

  report(): HealthReport {
    const checks = [...this.entries.values()].map((entry) => entry.state);
    return { status: aggregateStatus(checks), checks };
  }

  get status(): HealthStatus {
    return this.aggregate;
  }

  onCheckChange(listener: (change: HealthCheckChange) => void): () => void {
    this.checkListeners.add(listener);
    return () => this.checkListeners.delete(listener);
  }

  onStatusChange(listener: (change: HealthStatusChange) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private runEntry(entry: Entry): Promise<HealthCheckState> {
    if (entry.inFlight !== undefined) return entry.inFlight;
    const controller = new AbortController();
    entry.controller = controller;
    const startedAtMs = this.clock.now();
    const run = this.probe(entry, controller).then((outcome) => {
      if (entry.controller !== controller) return entry.state; // superseded by stop/unregister
      entry.inFlight = undefined;
      entry.controller = undefined;
      this.applyOutcome(entry, outcome, startedAtMs);
      if (this.running && this.entries.get(entry.name) === entry) {
        entry.timer = this.clock.setTimer(entry.spec.intervalMs, () => {
          entry.timer = undefined;
          void this.runEntry(entry);
        });
      }
      return entry.state;
    });
    entry.inFlight = run;
    return run;
  }

  /** Runs the probe with a timeout; never rejects. */
  private probe(
    entry: Entry,
    controller: AbortController,
  ): Promise<{ status: HealthStatus; message?: string; failed: boolean }> {
    return new Promise((resolve) => {
      const timeoutMs = entry.spec.timeoutMs;
      const timer = this.clock.setTimer(timeoutMs, () => {
        controller.abort();
        resolve({ status: 'unhealthy', message: `timed out after ${timeoutMs} ms`, failed: true });
      });
      // The probe starts synchronously, so its timeout counts from the moment it runs.
      let running: Promise<HealthProbeResult>;
      try {
        running = Promise.resolve(entry.spec.check(controller.signal));
      } catch (error) {
        running = Promise.reject(error);
      }
      running
        .then(
          (outcome) => resolve(normalizeOutcome(outcome)),
          (error: unknown) => resolve({ status: 'unhealthy', message: describeError(error), failed: true }),
        )
        .finally(() => this.clock.cancelTimer(timer));
    });
  }

  private applyOutcome(
    entry: Entry,
    outcome: { status: HealthStatus; message?: string; failed: boolean },
    startedAtMs: number,
  ): void {
    const previous = entry.state;
    const consecutiveFailures = outcome.failed ? previous.consecutiveFailures + 1 : 0;
    let status = outcome.status;
    if (outcome.failed)
      status = consecutiveFailures >= entry.spec.failureThreshold ? 'unhealthy' : 'degraded';
    const now = this.clock.now();
    entry.state = {
      ...previous,
      status,
      message: outcome.message?.slice(0, HEALTH_MAX_MESSAGE_LENGTH),
      consecutiveFailures,
      runs: previous.runs + 1,
      lastCheckedAtMs: now,
      lastDurationMs: now - startedAtMs,
    };
    if (previous.status !== status) {
      const change: HealthCheckChange = {
        name: entry.name,
        from: previous.status,
        to: status,
        state: entry.state,
      };
      for (const listener of [...this.checkListeners]) listener(change);
    }
    this.updateAggregate();
  }

  private updateAggregate(): void {
    const report = this.report();
    const from = this.aggregate;
    if (report.status === from) return;
    this.aggregate = report.status;
    for (const listener of [...this.statusListeners]) listener({ from, to: report.status, report });
  }

  private cancel(entry: Entry): void {
    if (entry.timer !== undefined) this.clock.cancelTimer(entry.timer);
    entry.timer = undefined;
    entry.controller?.abort();
    entry.controller = undefined;
    entry.inFlight = undefined;
  }
}

/** The aggregation rule, exported for callers that combine reports. */
export function aggregateStatus(checks: readonly HealthCheckState[]): HealthStatus {
  let status: HealthStatus = 'healthy';
  for (const check of checks) {
    if (check.status === 'unhealthy' && check.critical) return 'unhealthy';
    if (check.status === 'unhealthy' || check.status === 'degraded') status = 'degraded';
  }
  return status;
}

function normalizeOutcome(outcome: HealthProbeResult): {
  status: HealthStatus;
  message?: string;
  failed: boolean;
} {
  if (outcome === undefined) return { status: 'healthy', failed: false };
  const status = typeof outcome === 'string' ? outcome : outcome?.status;
  if (status !== 'healthy' && status !== 'degraded' && status !== 'unhealthy') {
    return {
      status: 'unhealthy',
      message: `check returned an invalid outcome: ${String(status)}`,
      failed: true,
    };
  }
  const message = typeof outcome === 'string' ? undefined : outcome.message;
  return { status, message, failed: status === 'unhealthy' };
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function initialState(name: string, critical: boolean): HealthCheckState {
  return {
    name,
    status: 'pending',
    critical,
    message: undefined,
    consecutiveFailures: 0,
    runs: 0,
    lastCheckedAtMs: undefined,
    lastDurationMs: undefined,
  };
}

function validateSpec(name: string, spec: HealthCheckSpec): Entry['spec'] {
  if (typeof spec?.check !== 'function')
    throw new HealthCheckError('invalid_option', name, 'check must be a function');
  const intervalMs = spec.intervalMs ?? 10_000;
  const timeoutMs = spec.timeoutMs ?? 5_000;
  const failureThreshold = spec.failureThreshold ?? 1;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new HealthCheckError('invalid_option', name, `intervalMs must be a number > 0, got ${intervalMs}`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new HealthCheckError('invalid_option', name, `timeoutMs must be a number > 0, got ${timeoutMs}`);
  }
  if (!Number.isInteger(failureThreshold) || failureThreshold < 1) {
    throw new HealthCheckError(
      'invalid_option',
      name,
      `failureThreshold must be an integer >= 1, got ${failureThreshold}`,
    );
  }
  return { check: spec.check, intervalMs, timeoutMs, failureThreshold, critical: spec.critical ?? true };
}
