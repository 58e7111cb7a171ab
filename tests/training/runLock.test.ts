import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { isTrainingError, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

const CLI = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

let directory: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-lock-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await rm(directory, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('train: one writer per checkpoint directory', () => {
  it('a second process is refused, naming the holder; the first is not disturbed', async () => {
    expect(existsSync(BUILT), 'run `npm run build` before the tests').toBe(true);
    // The first run holds the lock until it is stopped (SIGINT), so the second always meets it.
    const args = ['train', '--checkpoint-dir', directory, '--data', TINY_DATASET_DIR, '--epochs', '1000'];
    const first = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(first);
    const firstExit = new Promise<number | null>((resolve) => first.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: first.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toMatch(/^training mlp/);
    const second = await run([
      'train',
      '--checkpoint-dir',
      directory,
      '--data',
      TINY_DATASET_DIR,
      '--max-steps',
      '5',
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('checkpoint_locked');
    expect(second.stderr).toContain(`process ${first.pid}`);
    expect(second.stderr.trim().split('\n')).toHaveLength(1);
    first.kill('SIGINT');
    const output: string[] = [];
    for await (const line of lines) output.push(line);
    expect(await firstExit).toBe(130);
    expect(output.some((line) => /lost steps 0/.test(line))).toBe(true);
    expect(existsSync(join(directory, 'train.lock')), 'the lock is released at the end').toBe(false);
  }, 60_000);

  it('within one process too, and the lock is released at the end', async () => {
    const config = await smallRun({ checkpointDir: directory, maxSteps: 30 });
    const outcomes = await Promise.allSettled([train(config), train({ ...config, fresh: true })]);
    // Whichever takes the lock first runs; the other is refused.
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.find((outcome) => outcome.status === 'rejected');
    expect(isTrainingError(refused?.reason, 'checkpoint_locked'), String(refused?.reason)).toBe(true);
    const resumed = await train(await smallRun({ checkpointDir: directory, resume: true, maxSteps: 40 }));
    expect(resumed.resumedFromStep).toBe(30);
  });

  it('a directory that cannot be made is an error at once, not a hang (under /proc)', async () => {
    const attempt = train(await smallRun({ checkpointDir: '/proc/zbmd-no/such', maxSteps: 5 }));
    await expect(attempt).rejects.toSatisfy(
      (error: unknown) => isTrainingError(error, 'invalid_config') && /checkpointDir/.test(String(error)),
    );
  });
});
