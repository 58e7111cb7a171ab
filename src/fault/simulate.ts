import { ACTOR_SCENARIOS } from './actorScenarios.js';
import type { SimulationReport, SimulationRun } from './Simulation.js';
import { InvalidSimulationOption, replaySimulation, runSimulation } from './Simulation.js';
import type { Scenario } from './scenarios.js';
import { BUILT_IN_SCENARIOS } from './scenarios.js';

/**
 * The scenario registry behind `zbmd simulate <scenario> --seeds N`. The built-in scenarios
 * (`scenarios.ts`) are registered at load; other layers add theirs with `registerScenario`.
 */
const registry = new Map<string, Scenario>(
  [...BUILT_IN_SCENARIOS, ...ACTOR_SCENARIOS].map((scenario) => [scenario.name, scenario]),
);

export class UnknownScenario extends Error {
  readonly _tag = 'UnknownScenario';
  constructor(
    readonly scenario: string,
    readonly known: readonly string[],
  ) {
    super(`unknown scenario '${scenario}'; choose one of: ${known.join(', ')}`);
    this.name = 'UnknownScenario';
  }
}

export function isUnknownScenario(error: unknown): error is UnknownScenario {
  return error instanceof UnknownScenario;
}

export class DuplicateScenario extends Error {
  readonly _tag = 'DuplicateScenario';
  constructor(readonly scenario: string) {
    super(`a scenario named '${scenario}' is already registered`);
    this.name = 'DuplicateScenario';
  }
}

export function isDuplicateScenario(error: unknown): error is DuplicateScenario {
  return error instanceof DuplicateScenario;
}

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
  return runSimulation({ ...options, scenario: scenario.run, faults: scenario.faults });
}

/** Replays one seed of a registered scenario; the run carries its fault log and fingerprint. */
export function replayScenarioByName(name: string, seed: number): Promise<SimulationRun> {
  const scenario = lookup(name);
  return replaySimulation({ scenario: scenario.run, faults: scenario.faults, seed });
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
