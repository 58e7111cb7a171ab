import type { FaultChoice, FaultKind, InjectedFault } from './FaultInjector.js';
import { FAULT_KINDS } from './FaultInjector.js';
import type { SimulationRun, SimulationRunOptions } from './Simulation.js';
import { InvalidSimulationOption, replaySimulation } from './Simulation.js';

/** The shortest fault trace found that still fails the way the original run failed. */
export interface ShrinkResult {
  readonly seed: number;
  /** The faults of the shrunk trace, in injection order (a replay with `only` injects just these). */
  readonly faults: readonly FaultChoice[];
  /** Faults in the original failing run. */
  readonly originalFaults: number;
  /** The replay of the shrunk trace (it fails). */
  readonly run: SimulationRun;
  /** Replays tried while shrinking. */
  readonly attempts: number;
}

/** Most replays one shrink tries by default. */
export const SHRINK_DEFAULT_MAX_ATTEMPTS = 400;

/**
 * Shrinks a failing seed's injected faults, deterministically: first it drops chunks of the
 * trace (halves, quarters, ... single faults, as delta debugging does), keeping a removal when
 * the replay still fails with an error of the same name; then it shortens each kept message
 * delay (halving toward 1 ms). After each kept step the trace becomes what the replay actually
 * injected, so the result never lists a fault that no longer happens. At most `maxAttempts`
 * replays (default 400); the best trace so far is returned when the limit is reached.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { formatFaultChoices, runSimulation, type SimulationContext, shrinkFailure } from 'zbmd/fault';
 *
 * // fails whenever a message is dropped: the shortest failing trace is one drop
 * const scenario = async ({ clock, faults }: SimulationContext): Promise<void> => {
 *   const system = new ActorSystem({ clock });
 *   let handled = 0;
 *   const pid = system.spawn({ handle: () => void handled++ });
 *   for (let i = 0; i < 20; i++) if (!faults.shouldDropMessage()) system.send(pid, i);
 *   await system.settle();
 *   system.shutdown();
 *   if (handled !== 20) throw new Error(`lost ${20 - handled} messages`);
 * };
 * const faults = { messageDropRate: 0.3 };
 * const report = await runSimulation({ scenario, faults, seeds: 10, stopAfterFailures: 1 });
 * const failure = report.failures[0];
 * assert.ok(failure !== undefined);
 * const shrunk = await shrinkFailure({ scenario, faults, seed: failure.seed, faultLog: failure.faultLog, error: failure.error });
 * assert.equal(shrunk.faults.length, 1);
 * console.log(formatFaultChoices(shrunk.faults)); // for example 'message_drop#3'
 * ```
 */
export async function shrinkFailure(
  options: SimulationRunOptions & {
    readonly seed: number;
    readonly faultLog: readonly InjectedFault[];
    readonly error: unknown;
    readonly maxAttempts?: number;
  },
): Promise<ShrinkResult> {
  const maxAttempts = options.maxAttempts ?? SHRINK_DEFAULT_MAX_ATTEMPTS;
  const expected = errorName(options.error);
  let attempts = 0;
  let current = options.faultLog.map(toChoice);
  let best: SimulationRun | undefined;
  const tryTrace = async (candidate: readonly FaultChoice[]): Promise<boolean> => {
    if (attempts >= maxAttempts) return false;
    attempts++;
    const run = await replaySimulation({ ...options, only: candidate });
    if (run.ok || errorName(run.error) !== expected) return false;
    best = run;
    current = run.faultLog.map((fault) => withDetail(toChoice(fault), candidate));
    return true;
  };
  if (!(await tryTrace(current))) {
    // the trace does not fail on its own (a fault log cut short by maxLogEntries): keep the seed
    const run = best ?? (await replaySimulation(options));
    return { seed: options.seed, faults: current, originalFaults: options.faultLog.length, run, attempts };
  }
  for (
    let chunk = Math.ceil(current.length / 2);
    chunk >= 1 && attempts < maxAttempts;
    chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)
  ) {
    for (let start = 0; start < current.length && attempts < maxAttempts; ) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (!(await tryTrace(candidate))) start += chunk;
    }
  }
  for (let index = 0; index < current.length && attempts < maxAttempts; index++) {
    for (;;) {
      const fault = current[index];
      if (fault.kind !== 'message_delay' || (fault.detail ?? 1) <= 1) break;
      const shorter = { ...fault, detail: Math.floor((fault.detail ?? 1) / 2) };
      const candidate = current.map((choice, position) => (position === index ? shorter : choice));
      if (!(await tryTrace(candidate)) || current[index]?.decision !== fault.decision) break;
    }
  }
  return {
    seed: options.seed,
    faults: current,
    originalFaults: options.faultLog.length,
    run: best!,
    attempts,
  };
}

function toChoice(fault: InjectedFault): FaultChoice {
  return typeof fault.detail === 'number'
    ? { kind: fault.kind, decision: fault.decision, detail: fault.detail }
    : { kind: fault.kind, decision: fault.decision };
}

function withDetail(choice: FaultChoice, candidate: readonly FaultChoice[]): FaultChoice {
  if (choice.kind !== 'message_delay') return choice;
  const asked = candidate.find((entry) => entry.kind === choice.kind && entry.decision === choice.decision);
  return asked?.detail === undefined
    ? choice
    : { ...choice, detail: Math.min(asked.detail, choice.detail ?? asked.detail) };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/** `actor_crash#3,message_delay#5=2`; `none` for an empty trace. */
export function formatFaultChoices(faults: readonly FaultChoice[]): string {
  if (faults.length === 0) return 'none';
  return faults
    .map((fault) => `${fault.kind}#${fault.decision}${fault.detail === undefined ? '' : `=${fault.detail}`}`)
    .join(',');
}

const CHOICE_PATTERN = /^([a-z_]+)#(\d{1,9})(?:=(\d{1,9}))?$/;
/** Most entries `parseFaultChoices` accepts. */
export const FAULT_CHOICES_MAX = 100_000;

/** Parses `formatFaultChoices`' text (the CLI's `--only`); `InvalidSimulationOption` names the bad entry. */
export function parseFaultChoices(text: string): FaultChoice[] {
  const trimmed = text.trim();
  if (trimmed === 'none') return [];
  const entries = trimmed.split(',');
  if (entries.length > FAULT_CHOICES_MAX)
    throw new InvalidSimulationOption('only', `at most ${FAULT_CHOICES_MAX} faults, got ${entries.length}`);
  return entries.map((entry) => {
    const match = CHOICE_PATTERN.exec(entry.trim());
    if (match === null || !FAULT_KINDS.includes(match[1] as FaultKind)) {
      throw new InvalidSimulationOption(
        'only',
        `'none' or kind#decision[=delayMs] entries joined by ',' (kinds: ${FAULT_KINDS.join(', ')}), got '${entry}'`,
      );
    }
    const kind = match[1] as FaultKind;
    const decision = Number(match[2]);
    return match[3] === undefined ? { kind, decision } : { kind, decision, detail: Number(match[3]) };
  });
}
