import { Command, InvalidArgumentError } from 'commander';
import { registerServeCommand } from './serve.js';
import { registerTrainCommand } from './train.js';

/** Benchmark suites: each is `bench/<name>.ts`, exporting `run(options)` that returns figures. */
const BENCH_SUITES = ['actors', 'supervision', 'fault', 'gpu', 'ml', 'train', 'serve'] as const;

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

/** Builds the `zbmd` command line. Exported for tests, which parse argv without spawning. */
export function buildProgram(): Command {
  const program = new Command('zbmd')
    .description('Erlang/OTP-style actors and supervision for machine learning on Node.js')
    .showHelpAfterError('(run with --help for usage)')
    .version(process.env.npm_package_version ?? '0.1.0');

  registerTrainCommand(program);
  registerServeCommand(program);

  program
    .command('demo')
    .description('run a small supervised system with injected crashes and print what happens')
    .option('--crashes <n>', 'number of injected crashes', parsePositiveInt, 5)
    .option('--seed <n>', 'seed for the crash schedule', parseNonNegativeInt, 42)
    .action(async (options: { crashes: number; seed: number }) => {
      const { runDemo } = await import('./demo.js');
      await runDemo({ crashes: options.crashes, seed: options.seed, write: (line) => console.log(line) });
    });

  program
    .command('bench')
    .description(`run a benchmark suite (${BENCH_SUITES.join(', ')}) and print its figures`)
    .argument('<suite>', `one of: ${BENCH_SUITES.join(', ')}`)
    .option('--json', 'print one JSON object instead of a table', false)
    .option('--quick', 'smaller workloads, for a smoke test', false)
    .action(async (suite: string, options: BenchOptions) => {
      if (!(BENCH_SUITES as readonly string[]).includes(suite)) {
        throw new InvalidArgumentError(`unknown suite '${suite}'; choose one of: ${BENCH_SUITES.join(', ')}`);
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
      const { devicesCommand } = await import('../gpu/devicesCommand.js');
      await devicesCommand(options, (line) => console.log(line));
    });

  program
    .command('simulate')
    .description('run a fault-injection scenario under many seeds; print the seeds of failing runs')
    .argument('[scenario]', 'scenario name (omit to list them)')
    .option('--seeds <n>', 'how many seeds to run', parsePositiveInt, 100)
    .option('--first-seed <n>', 'first seed', parseNonNegativeInt, 0)
    .option('--replay <seed>', 'replay one seed and print its fault log', parseNonNegativeInt)
    .option('--json', 'print the report as JSON', false)
    .action(async (scenario: string | undefined, options: SimulateOptions) => {
      const { simulateCommand } = await import('./simulate.js');
      process.exitCode = await simulateCommand(scenario, options, (line) => console.log(line));
    });

  return program;
}

export interface SimulateOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly replay?: number;
  readonly json: boolean;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof InvalidArgumentError || isOperatingError(error)) {
      console.error(`zbmd: ${(error as Error).message}`);
      process.exitCode = 2;
      return;
    }
    throw error; // a bug: the full stack is worth seeing
  }
}

/**
 * An expected failure caused by the input or the environment (a typed error of a zbmd layer,
 * which carries a `code` or `_tag`, or a system error such as ENOENT): one line, no stack.
 */
export function isOperatingError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const tagged = error as Error & { code?: unknown; _tag?: unknown };
  return typeof tagged.code === 'string' || typeof tagged._tag === 'string';
}

function parsePositiveInt(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0)
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return parsed;
}

function parseNonNegativeInt(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0)
    throw new InvalidArgumentError(`expected an integer >= 0, got '${value}'`);
  return parsed;
}
