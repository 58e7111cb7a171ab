/**
 * The published types work in a consumer project: the package is built with `npm run build`
 * (into a temporary directory laid out as an installed package, so the dist/ other tests use is
 * not rewritten under them), then a tiny project importing every entry point, `zbmd/gpu`
 * included, is type-checked with `strict` and `skipLibCheck: false`. Bounded in time.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repository = fileURLToPath(new URL('../..', import.meta.url));
const tsc = join(repository, 'node_modules', 'typescript', 'bin', 'tsc');
const LIMIT_MS = 240_000;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-consumer-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `node_modules/zbmd` as an install leaves it: package.json, the built dist/, its dependencies. */
async function installPackage(consumer: string): Promise<void> {
  const installed = join(consumer, 'node_modules', 'zbmd');
  await mkdir(installed, { recursive: true });
  await cp(join(repository, 'package.json'), join(installed, 'package.json'));
  await run('npm', ['run', 'build', '--', '--outDir', join(installed, 'dist')], {
    cwd: repository,
    timeout: LIMIT_MS,
  });
  // The package's dependencies (and @types/node for the consumer), as npm would install them.
  for (const name of ['webgpu', '@webgpu', 'commander', 'koffi', '@types']) {
    await mkdir(join(consumer, 'node_modules', name, '..'), { recursive: true });
    await symlink(join(repository, 'node_modules', name), join(consumer, 'node_modules', name));
  }
}

describe('the published package', () => {
  it(
    "type-checks in a strict consumer project with skipLibCheck false, 'zbmd/gpu' included",
    async () => {
      const consumer = join(root, 'consumer');
      await mkdir(consumer, { recursive: true });
      await installPackage(consumer);
      await writeFile(
        join(consumer, 'package.json'),
        JSON.stringify({ name: 'consumer', type: 'module', private: true }),
      );
      await writeFile(
        join(consumer, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            skipLibCheck: false,
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            target: 'ES2022',
            noEmit: true,
            types: ['node'],
          },
          include: ['index.ts'],
        }),
      );
      await writeFile(
        join(consumer, 'index.ts'),
        [
          "import { ActorSystem, startGenServer, reply, castTo, callServer } from 'zbmd';",
          "import * as actor from 'zbmd/actor';",
          "import * as fault from 'zbmd/fault';",
          "import * as gpu from 'zbmd/gpu';",
          "import * as ml from 'zbmd/ml';",
          "import * as supervision from 'zbmd/supervision';",
          'const Counter = { init: (n: number) => n, handleCast: (n: number, c: number) => c + n,',
          "  handleCall: (_r: 'get', _f: unknown, c: number) => reply(c, c) };",
          'export async function main(): Promise<number> {',
          '  const system = new ActorSystem();',
          '  const counter = await startGenServer(system, Counter, 0);',
          '  castTo(system, counter, 1);',
          '  const adapters: Promise<gpu.WebGpuAdapterReport[]> = gpu.requestWebGpuAdapters();',
          '  void adapters; void actor; void fault; void ml; void supervision;',
          "  return callServer(system, counter, 'get');",
          '}',
          '',
        ].join('\n'),
      );
      const result = await run(process.execPath, [tsc, '-p', consumer], { timeout: LIMIT_MS }).then(
        () => ({ ok: true, output: '' }),
        (error: { stdout?: string; stderr?: string; message: string }) => ({
          ok: false,
          output: `${error.stdout ?? ''}${error.stderr ?? ''}` || error.message,
        }),
      );
      expect(result.output).toBe('');
      expect(result.ok).toBe(true);
    },
    2 * LIMIT_MS + 10_000,
  );
});
