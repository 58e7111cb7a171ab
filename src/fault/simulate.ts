import { guardOf, TaggedError } from '../internal/errors.js';
import { ACTOR_SCENARIOS } from './actorScenarios.js';
import type { CoverageReport } from './Coverage.js';
import { CLUSTER_SCENARIOS } from './clusterScenarios.js';
import { ELASTIC_SCENARIOS } from './elasticScenarios.js';
import type { FaultChoice } from './FaultInjector.js';
import { FILE_SCENARIOS } from './fileScenarios.js';
import type { SimulationReport, SimulationRun } from './Simulation.js';
import { InvalidSimulationOption, replaySimulation, runSimulation } from './Simulation.js';
import type { Scenario } from './scenarios.js';
import { BUILT_IN_SCENARIOS } from './scenarios.js';
import { SERVING_SCENARIOS } from './servingScenarios.js';
import { type ShrinkResult, shrinkFailure } from './shrink.js';
import { SUPERVISOR_SCENARIOS } from './supervisorScenarios.js';
import { THREAD_SCENARIOS } from './threadScenarios.js';

/**
 * The scenario registry behind `zbmd simulate <scenario> --seeds N`. The built-in scenarios
 * (`scenarios.ts`) are registered at load; other layers add theirs with `registerScenario`.
 */
const registry = new Map<string, Scenario>(
  [
    ...BUILT_IN_SCENARIOS,
    ...ACTOR_SCENARIOS,
    ...SUPERVISOR_SCENARIOS,
    ...FILE_SCENARIOS,
    ...CLUSTER_SCENARIOS,
    ...SERVING_SCENARIOS,
    ...ELASTIC_SCENARIOS,
    ...THREAD_SCENARIOS,
  ].map((scenario) => [scenario.name, scenario]),
);

export class UnknownScenario extends TaggedError('UnknownScenario') {
  constructor(
    readonly scenario: string,
    readonly known: readonly string[],
  ) {
    super(`unknown scenario '${scenario}'; choose one of: ${known.join(', ')}`);
  }
}

export const isUnknownScenario = guardOf(UnknownScenario);

export class DuplicateScenario extends TaggedError('DuplicateScenario') {
  constructor(readonly scenario: string) {
    super(`a scenario named '${scenario}' is already registered`);
  }
}

export const isDuplicateScenario = guardOf(DuplicateScenario);

const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Adds a scenario; names are lowercase words joined by '-', at most 64 characters. */
export function registerScenario(scenario: Scenario): void {
  if (!NAME_PATTERN.test(scenario.name)) {
    throw new InvalidSimulationOption(
      'scenario name',
      `lowercase letters, digits and '-', at most 64 characters, got '${scenario.name}'`,
    );
  }
  if (registry.has(scenario.name)) throw new DuplicateScenario(scenario.name);
  registry.set(scenario.name, scenario);
}

/** Registered scenarios, sorted by name. */
export function listScenarios(): readonly { readonly name: string; readonly description: string }[] {
  return [...registry.values()]
    .map(({ name, description }) => ({ name, description }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function lookup(name: string): Scenario {
  const scenario = registry.get(name);
  if (scenario === undefined)
    throw new UnknownScenario(
      name,
      listScenarios().map((entry) => entry.name),
    );
  return scenario;
}

/** Runs a registered scenario under `seeds` seeds from `firstSeed` (default 0). */
export function runScenarioByName(
  name: string,
  options: {
    readonly seeds: number;
    readonly firstSeed?: number;
    readonly stopAfterFailures?: number;
    readonly onRun?: (run: SimulationRun) => void;
  },
): Promise<SimulationReport> {
  const scenario = lookup(name);
  return runSimulation({
    ...options,
    scenario: scenario.run,
    faults: scenario.faults,
    branches: scenario.branches ?? [],
  });
}

/**
 * Replays one seed of a registered scenario; the run carries its fault log and fingerprint.
 * With `only`, just those faults of the seed's trace are injected (a shrunk trace).
 */
export function replayScenarioByName(
  name: string,
  seed: number,
  only?: readonly FaultChoice[],
): Promise<SimulationRun> {
  const scenario = lookup(name);
  return replaySimulation({
    scenario: scenario.run,
    faults: scenario.faults,
    seed,
    ...(only === undefined ? {} : { only }),
  });
}

/** Shrinks a failing run of a registered scenario to the shortest fault trace that still fails. */
export function shrinkScenarioFailure(
  name: string,
  failure: SimulationRun,
  maxAttempts?: number,
): Promise<ShrinkResult> {
  const scenario = lookup(name);
  return shrinkFailure({
    scenario: scenario.run,
    faults: scenario.faults,
    seed: failure.seed,
    faultLog: failure.faultLog,
    error: failure.error,
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
  });
}

/** Lines for a person: injected faults per kind and hits per branch, and what no seed reached. */
export function describeCoverage(coverage: CoverageReport): string[] {
  const faults = Object.entries(coverage.faults)
    .filter(([, count]) => count.hits > 0)
    .map(([kind, count]) => `${kind} ${count.hits} (${count.seeds} seeds)`);
  const lines = [`  faults: ${faults.length === 0 ? 'none injected' : faults.join(', ')}`];
  if (coverage.unreachedFaults.length > 0)
    lines.push(`  faults enabled but never injected: ${coverage.unreachedFaults.join(', ')}`);
  const branches = Object.entries(coverage.branches);
  if (branches.length > 0) {
    lines.push('  branches:');
    for (const [branch, count] of branches)
      lines.push(
        `    ${branch.padEnd(40)} ${count.hits === 0 ? 'NEVER REACHED' : `${count.hits} hits in ${count.seeds} seeds`}`,
      );
  }
  if (coverage.unreachedBranches.length > 0)
    lines.push(`  branches never reached: ${coverage.unreachedBranches.join(', ')}`);
  return lines;
}

/**
 * Lines for a person: the totals, then each kept failure with its seed, its error and its fault
 * fingerprint, and how to replay it (`replayCommand` renders the command, e.g. the CLI's flags).
 */
export function describeSimulationReport(
  name: string,
  report: SimulationReport,
  replayCommand: (seed: number) => string = (seed) => `replayScenarioByName('${name}', ${seed})`,
): string[] {
  const lines = [
    `scenario ${name}: ${report.runs} seeds, ${report.passed} passed, ${report.failedRuns} failed`,
  ];
  if (report.stoppedEarly) lines.push('  (stopped early after the failure limit)');
  lines.push(...describeCoverage(report.coverage));
  for (const failure of report.failures) {
    const error =
      failure.error instanceof Error
        ? `${failure.error.name}: ${failure.error.message}`
        : String(failure.error);
    lines.push(`  seed ${failure.seed}: ${error}`);
    lines.push(
      `    ${failure.faultLog.length} faults injected (fingerprint ${failure.faultFingerprint}); replay: ${replayCommand(failure.seed)}`,
    );
  }
  if (report.failedRuns > report.failures.length) {
    lines.push(`  ... and ${report.failedRuns - report.failures.length} more failing seeds`);
  }
  return lines;
}
