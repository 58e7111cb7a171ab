import type { Clock } from '../actor/Clock.js';
import { RealClock, SimulatedClock } from '../actor/Clock.js';
import { Random } from '../actor/Random.js';
import { guardOf, TaggedError } from '../internal/errors.js';
import { Coverage, type CoverageReport, CoverageTally } from './Coverage.js';
import type { FaultConfig } from './FaultConfig.js';
import type { FaultChoice, FaultKind, InjectedFault } from './FaultInjector.js';
import { FAULT_KINDS, FaultInjector } from './FaultInjector.js';

/** What a scenario receives: everything that can vary in a run comes from `seed`. */
export interface SimulationContext {
  readonly seed: number;
  readonly random: Random;
  readonly clock: SimulatedClock;
  readonly faults: FaultInjector;
  /** Where the scenario records the decision branches its run reached. */
  readonly coverage: Coverage;
}

/**
 * A scenario drives a system on the context and throws when an invariant is violated. It must
 * handle every promise it starts (attach a `catch` at once, or await it): a rejection nobody
 * handles ends the process, as Node does by default, instead of failing one seed.
 */
export type ScenarioFunction = (context: SimulationContext) => Promise<void>;

export interface SimulationRunOptions {
  readonly scenario: ScenarioFunction;
  /** Fault rates for every run; the seed of each run replaces `seed`. Default: no faults. */
  readonly faults?: Partial<Omit<FaultConfig, 'seed'>>;
  /**
   * Wall-clock limit for one run, in ms (default 10_000). A scenario that awaits something that
   * never happens (a simulated timer nobody advances) fails with `SimulationTimeout` instead of
   * hanging the runner. This is the only real time the runner uses.
   */
  readonly runTimeoutMs?: number;
  /** Clock for the watchdog; a `RealClock` by default. */
  readonly watchdogClock?: Clock;
  /** Inject only these faults of each seed's trace (a shrunk trace); default: all of them. */
  readonly only?: readonly FaultChoice[];
}

export interface SimulationOptions extends SimulationRunOptions {
  /** How many seeds to run (firstSeed, firstSeed + 1, ...) or the exact seeds. At most 1_000_000. */
  readonly seeds: number | readonly number[];
  /** First seed when `seeds` is a count. Default 0. */
  readonly firstSeed?: number;
  /** Stop after this many failing seeds. Default: run them all. */
  readonly stopAfterFailures?: number;
  /** Called after each run, for progress output. */
  readonly onRun?: (run: SimulationRun) => void;
  /** Branches the scenario declares, so the report lists those no seed reached. */
  readonly branches?: readonly string[];
}

/** One run: its seed, whether it passed, and the faults it saw. */
export interface SimulationRun {
  readonly seed: number;
  readonly ok: boolean;
  readonly error: unknown;
  readonly faultLog: readonly InjectedFault[];
  readonly faultFingerprint: string;
  readonly faultCounts: Readonly<Record<FaultKind, number>>;
  readonly simulatedTimeMs: number;
  /** Hits per decision branch in this run (`context.coverage`). */
  readonly coverage: Readonly<Record<string, number>>;
}

export interface SimulationReport {
  readonly runs: number;
  readonly passed: number;
  /** Failing runs, at most `SIMULATION_MAX_KEPT_FAILURES` (the count is in `failedRuns`). */
  readonly failures: readonly SimulationRun[];
  readonly failedRuns: number;
  readonly stoppedEarly: boolean;
  /** Fault kinds and branches the runs reached, and those none reached. */
  readonly coverage: CoverageReport;
}

/** Most seeds one `runSimulation` accepts. */
export const SIMULATION_MAX_SEEDS = 1_000_000;
/** Failing runs kept in a report (each holds its fault log). */
export const SIMULATION_MAX_KEPT_FAILURES = 100;

/** An option of `runSimulation` / `replaySimulation` / `registerScenario` outside its range. */
export class InvalidSimulationOption extends TaggedError('InvalidSimulationOption') {
  constructor(
    readonly option: string,
    readonly allowed: string,
  ) {
    super(`simulation: invalid ${option}: expected ${allowed}`);
  }
}

export const isInvalidSimulationOption = guardOf(InvalidSimulationOption);

export class SimulationTimeout extends TaggedError('SimulationTimeout') {
  constructor(
    readonly seed: number,
    readonly timeoutMs: number,
  ) {
    super(
      `simulation with seed ${seed} did not finish within ${timeoutMs} ms of real time (is it awaiting a timer nobody advances?)`,
    );
  }
}

export const isSimulationTimeout = guardOf(SimulationTimeout);

/**
 * Runs `scenario` once per seed and collects the seeds whose invariants failed.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { runSimulation, type SimulationContext } from 'zbmd/fault';
 *
 * // a scenario drives a system on the seeded clock and throws when an invariant fails
 * const scenario = async ({ clock }: SimulationContext): Promise<void> => {
 *   const system = new ActorSystem({ clock });
 *   let handled = 0;
 *   const pid = system.spawn({ handle: () => void handled++ });
 *   for (let i = 0; i < 10; i++) system.send(pid, i);
 *   await system.settle();
 *   system.shutdown();
 *   if (handled !== 10) throw new Error(`handled ${handled} of 10`);
 * };
 * const report = await runSimulation({ scenario, seeds: 20 });
 * for (const failure of report.failures) console.log(`replay with seed ${failure.seed}`);
 * assert.equal(report.failures.length, 0);
 * ```
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationReport> {
  const seeds = seedList(options.seeds, options.firstSeed ?? 0);
  const stopAfter = options.stopAfterFailures ?? Number.POSITIVE_INFINITY;
  const failures: SimulationRun[] = [];
  const tally = new CoverageTally(options.branches ?? [], enabledFaultKinds(options.faults ?? {}));
  let runs = 0;
  let failedRuns = 0;
  for (const seed of seeds) {
    const run = await replaySimulation({ ...options, seed });
    runs++;
    tally.add(run.faultCounts, run.coverage);
    options.onRun?.(run);
    if (run.ok) continue;
    failedRuns++;
    if (failures.length < SIMULATION_MAX_KEPT_FAILURES) failures.push(run);
    if (failedRuns >= stopAfter) break;
  }
  return {
    runs,
    passed: runs - failedRuns,
    failures,
    failedRuns,
    stoppedEarly: runs < seeds.length,
    coverage: tally.report(),
  };
}

/** The fault kinds a configuration can inject (a rate above zero). */
export function enabledFaultKinds(faults: Partial<Omit<FaultConfig, 'seed'>>): FaultKind[] {
  const rates: Record<FaultKind, number> = {
    actor_crash: faults.actorCrashRate ?? 0,
    message_drop: faults.messageDropRate ?? 0,
    message_delay: (faults.messageDelayMs ?? 0) > 0 ? (faults.messageDelayRate ?? 0) : 0,
    gpu_error: faults.gpuErrorRate ?? 0,
    oom: faults.oomRate ?? 0,
    kernel_timeout: faults.kernelTimeoutRate ?? 0,
  };
  return FAULT_KINDS.filter((kind) => rates[kind] > 0);
}

/** Runs `scenario` with one seed: the same seed gives the same fault log. */
export async function replaySimulation(
  options: SimulationRunOptions & { readonly seed: number },
): Promise<SimulationRun> {
  const { seed } = options;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new InvalidSimulationOption('seed', `a safe integer >= 0, got ${seed}`);
  const context: SimulationContext = {
    seed,
    random: new Random(seed),
    clock: new SimulatedClock(),
    faults: new FaultInjector(
      { ...options.faults, seed },
      options.only === undefined ? {} : { only: options.only },
    ),
    coverage: new Coverage(),
  };
  const timeoutMs = options.runTimeoutMs ?? 10_000;
  let error: unknown;
  let ok = true;
  try {
    await withWatchdog(options.scenario(context), seed, timeoutMs, options.watchdogClock ?? new RealClock());
  } catch (caught) {
    ok = false;
    error = caught;
  }
  return {
    seed,
    ok,
    error,
    faultLog: context.faults.log,
    faultFingerprint: context.faults.fingerprint(),
    faultCounts: context.faults.counts(),
    simulatedTimeMs: context.clock.now(),
    coverage: context.coverage.snapshot(),
  };
}

function withWatchdog(run: Promise<void>, seed: number, timeoutMs: number, clock: Clock): Promise<void> {
  // The watchdog timer of a RealClock is unref'd; this handle keeps the process alive until the
  // run settles, so a stuck scenario ends in SimulationTimeout rather than a silent exit.
  const keepAlive = setInterval(() => {}, 1 << 30);
  return new Promise<void>((resolve, reject) => {
    const timer = clock.setTimer(timeoutMs, () => reject(new SimulationTimeout(seed, timeoutMs)));
    run.then(resolve, reject).finally(() => {
      clock.cancelTimer(timer);
      clearInterval(keepAlive);
    });
  }).finally(() => clearInterval(keepAlive));
}

function seedList(seeds: number | readonly number[], firstSeed: number): readonly number[] {
  if (typeof seeds !== 'number') {
    if (seeds.length > SIMULATION_MAX_SEEDS)
      throw new InvalidSimulationOption(
        'seeds',
        `at most ${SIMULATION_MAX_SEEDS} seeds, got ${seeds.length}`,
      );
    return seeds;
  }
  if (!Number.isInteger(seeds) || seeds < 1 || seeds > SIMULATION_MAX_SEEDS) {
    throw new InvalidSimulationOption('seeds', `an integer in [1, ${SIMULATION_MAX_SEEDS}], got ${seeds}`);
  }
  if (!Number.isSafeInteger(firstSeed) || firstSeed < 0)
    throw new InvalidSimulationOption('firstSeed', `a safe integer >= 0, got ${firstSeed}`);
  return Array.from({ length: seeds }, (_, index) => firstSeed + index);
}

/** Raised by `drive` when the awaited work is stuck: no timer left and it has not settled. */
export class SimulationDeadlock extends TaggedError('SimulationDeadlock') {
  constructor(
    readonly simulatedTimeMs: number,
    readonly steps: number,
    /** True when timers kept firing but the work did not finish within the step limit (a livelock). */
    readonly stepLimitReached = false,
  ) {
    super(
      stepLimitReached
        ? `simulation still running at ${simulatedTimeMs} ms after the limit of ${steps} timer steps (livelock?)`
        : `simulation stuck at ${simulatedTimeMs} ms after ${steps} timer steps: nothing is scheduled and the work has not finished`,
    );
  }
}

export const isSimulationDeadlock = guardOf(SimulationDeadlock);

/** Most timer steps `drive` takes by default before it gives up. */
export const DRIVE_DEFAULT_MAX_STEPS = 1_000_000;

/**
 * Moves a simulated clock timer by timer until `work` settles, letting promise callbacks run
 * between timers. Throws `SimulationDeadlock` if no timer is left while `work` is pending, and
 * `SimulationDeadlock` with `stepLimitReached` after `maxSteps` timers (a livelock).
 */
export async function drive<T>(
  clock: SimulatedClock,
  work: Promise<T>,
  maxSteps = DRIVE_DEFAULT_MAX_STEPS,
): Promise<T> {
  let settled = false;
  const tracked = work.finally(() => {
    settled = true;
  });
  tracked.catch(() => {}); // the rejection is delivered by the final await below
  let steps = 0;
  await settleCallbacks();
  while (!settled) {
    if (steps >= maxSteps) throw new SimulationDeadlock(clock.now(), steps, true);
    if (!clock.step()) {
      await settleCallbacks();
      if (!settled) throw new SimulationDeadlock(clock.now(), steps);
      break;
    }
    steps++;
    await settleCallbacks();
  }
  return tracked;
}

/** Lets every pending promise callback run (one macrotask turn). */
export function settleCallbacks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
