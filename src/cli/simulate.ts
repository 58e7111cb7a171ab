import {
  describeSimulationReport,
  type FaultChoice,
  formatFaultChoices,
  isInvalidSimulationOption,
  isUnknownScenario,
  listScenarios,
  parseFaultChoices,
  replayScenarioByName,
  runScenarioByName,
  type ShrinkResult,
  type SimulationReport,
  shrinkScenarioFailure,
} from '../fault/index.js';

/** The options of `zbmd simulate`. */
export interface SimulateOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly replay?: number;
  /** With `replay`: the faults to keep (`formatFaultChoices` text). */
  readonly only?: string;
  /** Shrink the first failing seed (default true; `--no-shrink`). */
  readonly shrink?: boolean;
  readonly json: boolean;
}

/** `zbmd simulate`: lists scenarios, runs one under many seeds, or replays one seed. Returns the exit code. */
export async function simulateCommand(
  scenario: string | undefined,
  options: SimulateOptions,
  write: (line: string) => void,
): Promise<number> {
  if (scenario === undefined) {
    write('scenarios:');
    for (const entry of listScenarios()) write(`  ${entry.name.padEnd(20)} ${entry.description}`);
    return 0;
  }
  try {
    if (options.only !== undefined && options.replay === undefined) {
      write('zbmd: --only selects faults of one seed: give it with --replay <seed>');
      return 2;
    }
    if (options.replay !== undefined) return await replay(scenario, options, write);
    const report = await runScenarioByName(scenario, { seeds: options.seeds, firstSeed: options.firstSeed });
    const first = report.failures[0];
    const shrunk =
      first === undefined || options.shrink === false
        ? undefined
        : await shrinkScenarioFailure(scenario, first);
    if (options.json) write(JSON.stringify(reportJson(scenario, report, shrunk)));
    else {
      for (const line of describeSimulationReport(scenario, report, (seed) => replayCommand(scenario, seed)))
        write(line);
      if (shrunk !== undefined) for (const line of describeShrink(scenario, shrunk)) write(line);
    }
    return report.failedRuns === 0 ? 0 : 1;
  } catch (error) {
    if (!isUnknownScenario(error) && !isInvalidSimulationOption(error)) throw error;
    write(`zbmd: ${error.message}`);
    return 2;
  }
}

function replayCommand(scenario: string, seed: number, only?: readonly FaultChoice[]): string {
  const base = `npx zbmd simulate ${scenario} --replay ${seed}`;
  return only === undefined ? base : `${base} --only '${formatFaultChoices(only)}'`;
}

function describeShrink(scenario: string, shrunk: ShrinkResult): string[] {
  const lines = [
    `  shortest failing trace of seed ${shrunk.seed}: ${shrunk.faults.length} of ${shrunk.originalFaults} faults (${shrunk.attempts} replays)`,
  ];
  for (const fault of shrunk.faults.slice(0, 50))
    lines.push(
      `    ${fault.kind}#${fault.decision}${fault.detail === undefined ? '' : ` (${fault.detail} ms)`}`,
    );
  if (shrunk.faults.length > 50) lines.push(`    ... ${shrunk.faults.length - 50} more`);
  lines.push(`    fails with: ${String(shrunk.run.error)}`);
  lines.push(`    replay: ${replayCommand(scenario, shrunk.seed, shrunk.faults)}`);
  return lines;
}

function reportJson(scenario: string, report: SimulationReport, shrunk: ShrinkResult | undefined): unknown {
  return {
    scenario,
    ...report,
    failures: report.failures.map((f) => ({
      seed: f.seed,
      error: String(f.error),
      faults: f.faultLog.length,
      fingerprint: f.faultFingerprint,
      replay: replayCommand(scenario, f.seed),
    })),
    shrunk:
      shrunk === undefined
        ? null
        : {
            seed: shrunk.seed,
            faults: shrunk.faults,
            originalFaults: shrunk.originalFaults,
            attempts: shrunk.attempts,
            error: String(shrunk.run.error),
            replay: replayCommand(scenario, shrunk.seed, shrunk.faults),
          },
  };
}

async function replay(
  scenario: string,
  options: SimulateOptions,
  write: (line: string) => void,
): Promise<number> {
  const only = options.only === undefined ? undefined : parseFaultChoices(options.only);
  const run = await replayScenarioByName(scenario, options.replay!, only);
  if (options.json) {
    write(
      JSON.stringify({
        scenario,
        seed: run.seed,
        ok: run.ok,
        error: run.ok ? null : String(run.error),
        faults: run.faultLog,
        fingerprint: run.faultFingerprint,
        coverage: run.coverage,
      }),
    );
  } else {
    write(`scenario ${scenario}, seed ${run.seed}: ${run.ok ? 'passed' : `FAILED: ${String(run.error)}`}`);
    write(
      `  ${run.faultLog.length} faults${only === undefined ? '' : ' (a shrunk trace)'} (fingerprint ${run.faultFingerprint}), ${run.simulatedTimeMs} simulated ms`,
    );
    for (const fault of run.faultLog.slice(0, 50))
      write(`  #${fault.sequence} ${fault.kind}${fault.detail === undefined ? '' : ` (${fault.detail})`}`);
    if (run.faultLog.length > 50) write(`  ... ${run.faultLog.length - 50} more`);
  }
  return run.ok ? 0 : 1;
}
