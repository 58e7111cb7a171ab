// One mutant's check, in its own process: imports the fault layer of a (patched) copy of dist/
// and runs scenarios until one fails. Prints one JSON line. Used by scripts/mutants.mjs.
//   node scripts/mutant-worker.mjs run <distRoot> <seeds> <scenario,...>
//   node scripts/mutant-worker.mjs replay <distRoot> <scenario> <seed>
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [mode, distRoot, ...rest] = process.argv.slice(2);
const fault = await import(pathToFileURL(join(distRoot, 'src', 'fault', 'index.js')).href);

if (mode === 'run') {
  const [seedText, scenarioList] = rest;
  const seeds = Number(seedText);
  let seedsRun = 0;
  let result = { caught: false, seedsRun: 0 };
  for (const scenario of scenarioList.split(',')) {
    const report = await fault.runScenarioByName(scenario, { seeds, stopAfterFailures: 1 });
    seedsRun += report.runs;
    if (report.failedRuns > 0) {
      const failure = report.failures[0];
      result = { caught: true, scenario, seed: failure.seed, seedsRun, error: describe(failure.error) };
      break;
    }
    result = { caught: false, seedsRun };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else if (mode === 'replay') {
  const [scenario, seedText] = rest;
  const run = await fault.replayScenarioByName(scenario, Number(seedText));
  process.stdout.write(`${JSON.stringify({ ok: run.ok, error: run.ok ? null : describe(run.error) })}\n`);
} else {
  process.stderr.write(`mutant-worker: unknown mode '${mode}'\n`);
  process.exit(2);
}

function describe(error) {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}
