import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/gpu/backends/CpuBackend.js';
import { loadMnistFormat, sliceDataset, TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { train } from '../../src/ml/training/index.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/train-child.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/src/ml/training/index.js', import.meta.url));
/** Steps per epoch of the fixture: 2,400 samples at batch 8. */
const STEPS_PER_EPOCH = 300;

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-sigkill-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function startChild(...args: string[]): { child: ChildProcess; lines: AsyncIterableIterator<string> } {
  const child = spawn(process.execPath, [FIXTURE, directory, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
}

async function lastLine(lines: AsyncIterableIterator<string>): Promise<string> {
  let last = '';
  for await (const line of lines) last = line;
  return last;
}

describe('train: the whole process killed', () => {
  it('resumes after SIGKILL mid-epoch and ends with the weights of an uninterrupted run', async () => {
    expect(existsSync(BUILT), 'the compiled code is missing: run `npm run build` before the tests').toBe(
      true,
    );
    const killed = startChild();
    let seen = 0;
    for await (const line of killed.lines) {
      seen = Number(line.split(' ')[1]);
      if (seen >= STEPS_PER_EPOCH + 130) break;
    }
    killed.child.kill('SIGKILL');
    expect(await exited(killed.child)).toBe('SIGKILL');
    expect(seen % STEPS_PER_EPOCH).not.toBe(0);

    const resumed = startChild('resume');
    const report = JSON.parse(await lastLine(resumed.lines));
    expect(await exited(resumed.child)).toBe(0);
    // Checkpoints are written in the background (fsync'd), so the last one may lag the progress seen.
    expect(report.resumedFromStep).toBeGreaterThan(0);
    expect(report.resumedFromStep).toBeLessThanOrEqual(seen);
    expect(report.resumedFromStep % 20).toBe(0);
    expect(report.steps).toBe(3 * STEPS_PER_EPOCH);
    expect(report.lostSteps).toBe(0);

    const tiny = await loadMnistFormat(TINY_DATASET_DIR);
    const uninterrupted = await train({
      model: 'mlp',
      data: { train: sliceDataset(tiny.train, 0, 2400), test: sliceDataset(tiny.test, 0, 300) },
      batchSize: 8,
      epochs: 3,
      seed: 5,
      devices: [new CpuBackend(0).info()],
      evaluateEachEpoch: false,
    });
    expect(report.weightsSha256).toBe(uninterrupted.weightsSha256);
  });
});
