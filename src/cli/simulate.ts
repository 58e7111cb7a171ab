import {
  describeSimulationReport,
  isUnknownScenario,
  listScenarios,
  replayScenarioByName,
  runScenarioByName,
} from '../fault/index.js';

/** The options of `zbmd simulate`. */
export interface SimulateOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly replay?: number;
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
    if (options.replay !== undefined) return await replay(scenario, options, write);
    const report = await runScenarioByName(scenario, { seeds: options.seeds, firstSeed: options.firstSeed });
    if (options.json)
      write(
        JSON.stringify({
          scenario,
          ...report,
          failures: report.failures.map((f) => ({
            seed: f.seed,
            error: String(f.error),
            faults: f.faultLog.length,
            fingerprint: f.faultFingerprint,
          })),
        }),
      );
    else
      for (const line of describeSimulationReport(
        scenario,
        report,
        (seed) => `npx zbmd simulate ${scenario} --replay ${seed}`,
      ))
        write(line);
    return report.failedRuns === 0 ? 0 : 1;
  } catch (error) {
    if (!isUnknownScenario(error)) throw error;
    write(`zbmd: ${error.message}`);
    return 2;
  }
}

async function replay(
  scenario: string,
  options: SimulateOptions,
  write: (line: string) => void,
): Promise<number> {
  const run = await replayScenarioByName(scenario, options.replay!);
  if (options.json) {
    write(
      JSON.stringify({
        scenario,
        seed: run.seed,
        ok: run.ok,
        error: run.ok ? null : String(run.error),
        faults: run.faultLog,
        fingerprint: run.faultFingerprint,
      }),
    );
  } else {
    write(`scenario ${scenario}, seed ${run.seed}: ${run.ok ? 'passed' : `FAILED: ${String(run.error)}`}`);
    write(
      `  ${run.faultLog.length} faults (fingerprint ${run.faultFingerprint}), ${run.simulatedTimeMs} simulated ms`,
    );
    for (const fault of run.faultLog.slice(0, 50))
      write(`  #${fault.sequence} ${fault.kind}${fault.detail === undefined ? '' : ` (${fault.detail})`}`);
    if (run.faultLog.length > 50) write(`  ... ${run.faultLog.length - 50} more`);
  }
  return run.ok ? 0 : 1;
}
