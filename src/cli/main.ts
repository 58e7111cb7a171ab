import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerClusterCommands } from './cluster.js';
import { registerObserveCommands } from './observe.js';
import { integerOption, UsageError } from './options.js';
import { registerSampleCommand } from './sample.js';
import { registerServeCommand } from './serve.js';
import type { SimulateOptions } from './simulate.js';
import { registerTrainCommand } from './train.js';

/** Benchmark suites: each is `bench/<name>.ts`, exporting `run(options)` that returns figures. */
const BENCH_SUITES = [
  'actors',
  'supervision',
  'fault',
  'gpu',
  'ml',
  'gpt',
  'train',
  'cluster',
  'observe',
  'serve',
  'data',
  'elastic',
] as const;

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

/**
 * zbmd's own version, from the package.json of the zbmd package this module belongs to (found
 * by walking up from this file), not `npm_package_version`, which names the project npm runs in.
 */
export function zbmdVersion(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 8; level++) {
    try {
      const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (manifest.name === 'zbmd' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // no package.json here (or not JSON): look one level up
    }
    const parent = dirname(directory);
    if (parent === directory) break;
    directory = parent;
  }
  return 'unknown';
}

/** Builds the `zbmd` command line. Exported for tests, which parse argv without spawning. */
export function buildProgram(): Command {
  const program = new Command('zbmd')
    .description('Erlang/OTP-style actors and supervision for machine learning on Node.js')
    .showHelpAfterError('(run with --help for usage)')
    .version(zbmdVersion());

  registerTrainCommand(program);
  registerClusterCommands(program);
  registerObserveCommands(program);
  registerServeCommand(program);
  registerSampleCommand(program);

  program
    .command('demo')
    .description('run a small supervised system with injected crashes and print what happens')
    .option(
      '--crashes <n>',
      'number of the 100 operations that are injected crashes (1 to 100)',
      integerOption(1, 100),
      5,
    )
    .option('--seed <n>', 'seed for the crash schedule', integerOption(0), 42)
    .action(async (options: { crashes: number; seed: number }) => {
      const { runDemo } = await import('./demo.js');
      const result = await runDemo({
        crashes: options.crashes,
        seed: options.seed,
        write: (line) => console.log(line),
      });
      // The job failed: say so on stderr too, and exit 1.
      if (result.supervisorGaveUp !== undefined) {
        console.error(`zbmd demo: ${result.supervisorGaveUp}`);
        process.exitCode = 1;
      }
    });

  program
    .command('bench')
    .description(`run a benchmark suite (${BENCH_SUITES.join(', ')}) and print its figures`)
    .argument('<suite>', `one of: ${BENCH_SUITES.join(', ')}`)
    .option('--json', 'print one JSON object instead of a table', false)
    .option('--quick', 'smaller workloads, for a smoke test', false)
    .action(async (suite: string, options: BenchOptions) => {
      if (!(BENCH_SUITES as readonly string[]).includes(suite)) {
        throw new UsageError(`unknown suite '${suite}'; choose one of: ${BENCH_SUITES.join(', ')}`);
      }
      const module = (await import(`../../bench/${suite}.js`)) as {
        run(options: BenchOptions): Promise<Record<string, unknown>>;
      };
      const figures = await module.run(options);
      if (options.json) console.log(JSON.stringify(figures));
      else for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(32)} ${value}`);
    });

  program
    .command('devices')
    .description(
      'list the compute devices present (CPU, WebGPU adapters, CUDA GPUs) and which is the default',
    )
    .option('--json', 'print JSON instead of a table', false)
    .action(async (options: { json: boolean }) => {
      const { devicesCommand } = await import('./devices.js');
      process.exitCode = await devicesCommand(options, (line) => console.log(line));
    });

  program
    .command('simulate')
    .description('run a fault-injection scenario under many seeds; print the seeds of failing runs')
    .argument('[scenario]', 'scenario name (omit to list them)')
    .option(
      '--seeds <n>',
      `how many seeds to run (1 to ${SIMULATE_MAX_SEEDS})`,
      integerOption(1, SIMULATE_MAX_SEEDS),
      100,
    )
    .option('--first-seed <n>', 'first seed', integerOption(0), 0)
    .option('--replay <seed>', 'replay one seed and print its fault log', integerOption(0))
    .option(
      '--only <faults>',
      "with --replay: inject only these faults of the seed (a shrunk trace: 'kind#decision[=ms],...' or 'none')",
    )
    .option('--no-shrink', 'do not shrink the first failing seed to its shortest failing fault trace')
    .option('--json', 'print the report as JSON', false)
    .action(async (scenario: string | undefined, options: SimulateOptions) => {
      const { simulateCommand } = await import('./simulate.js');
      process.exitCode = await simulateCommand(scenario, options, (line) => console.log(line));
    });

  return program;
}

/** The most seeds one `zbmd simulate` runs. */
export const SIMULATE_MAX_SEEDS = 1_000_000;

/** Where a CLI run writes (stdout and stderr); tests pass their own. */
export interface CliOutput {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const PROCESS_OUTPUT: CliOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/**
 * Runs the CLI on `argv` (node, script, arguments...) and resolves to the exit code it should
 * end with: 0, 2 for a bad invocation (commander's one-line error, or an operating error such
 * as a bad value found later), or what the command set in `process.exitCode`. Bugs are thrown.
 */
export async function runCli(argv: string[], output: CliOutput = PROCESS_OUTPUT): Promise<number> {
  const program = buildProgram();
  const configure = (command: Command): void => {
    command.exitOverride().configureOutput({ writeOut: output.out, writeErr: output.err });
    for (const inner of command.commands) configure(inner);
  };
  configure(program);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof InvalidArgumentError || isOperatingError(error)) {
      output.err(`zbmd: ${(error as Error).message}\n`);
      return 2;
    }
    throw error; // a bug: the full stack is worth seeing
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runCli(argv);
}

/**
 * An expected failure caused by the input or the environment (a typed error of a zbmd layer,
 * which carries a `_tag`, or a system error with a `code` such as ENOENT): one line, no stack.
 */
export function isOperatingError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const tagged = error as Error & { code?: unknown; _tag?: unknown };
  return typeof tagged.code === 'string' || typeof tagged._tag === 'string';
}
