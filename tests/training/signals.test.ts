import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TrainCommandOptions, trainCommand } from '../../src/cli/train.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { readManifest } from '../../src/ml/training/index.js';

const CLI = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
/** data/tiny: 8,000 training images; at batch 64, 125 steps per epoch. */
const STEPS_PER_EPOCH = 125;

let directory: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-signal-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await rm(directory, { recursive: true, force: true });
});

function start(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines, exit, stderr: () => stderr };
}

async function rest(lines: AsyncIterableIterator<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

const trainArgs = ['train', '--data', TINY_DATASET_DIR, '--epochs', '2', '--batch-size', '64', '--seed', '3'];

describe('zbmd train: SIGINT and SIGTERM', () => {
  it('SIGINT writes a checkpoint, says how to resume, exits 130; the resumed epoch reports all its steps', async () => {
    const args = [...trainArgs, '--checkpoint-dir', directory];
    const first = start(args);
    const header = (await first.lines.next()).value as string;
    expect(header).toMatch(/^training mlp with adam on .*: 250 steps \(125 per epoch\), device cpu:0$/);
    expect((await first.lines.next()).value).toMatch(/^epoch 1: mean loss /);
    first.child.kill('SIGINT');
    const output = await rest(first.lines);
    expect(await first.exit).toBe(130);
    const manifest = await readManifest(directory);
    expect(manifest?.reason).toBe('interrupted');
    const stoppedAt = manifest!.step;
    // Normally mid-epoch 2; exactly at its start if the signal is handled before its first step.
    expect(stoppedAt).toBeGreaterThanOrEqual(STEPS_PER_EPOCH);
    expect(output).toContain(
      `interrupted by SIGINT at step ${stoppedAt}; checkpoint ${join(directory, 'latest.json')} (step ${stoppedAt})`,
    );
    const hint = output.find((line) => line.startsWith('resume with: '))!;
    expect(hint).toBe(`resume with: zbmd ${args.join(' ')} --resume`);
    expect(first.stderr()).toContain('SIGINT');

    const resumed = start([...args, '--resume']);
    const resumedHeader = (await resumed.lines.next()).value as string;
    expect(resumedHeader).toContain(`resumed from step ${stoppedAt}`);
    const resumedLines = await rest(resumed.lines);
    expect(await resumed.exit).toBe(0);
    expect(resumedLines[0]).toMatch(
      /^epoch 2: mean loss \d\.\d+ test accuracy [\d.]+ [\d.]+ steps\/s \(125 steps\)$/,
    );

    const json = start([...args, '--resume', '--json']);
    const rerun = JSON.parse((await rest(json.lines)).at(-1)!);
    expect(rerun.resumed_from_step).toBe(250);

    const reference = start([...trainArgs, '--json']);
    const uninterrupted = JSON.parse((await rest(reference.lines)).at(-1)!);
    expect(uninterrupted.epochs.map((epoch: { epoch: number }) => epoch.epoch)).toEqual([1, 2]);
    const epoch2 = uninterrupted.epochs[1];
    expect(epoch2.steps).toBe(STEPS_PER_EPOCH);
    expect(resumedLines[0]).toContain(`mean loss ${epoch2.mean_loss.toFixed(4)}`);
    expect(resumedLines.at(-1)).toBe(`weights sha256 ${uninterrupted.weights_sha256}`);
  }, 60_000);

  it('SIGTERM exits 143 with a checkpoint', async () => {
    const run = start([...trainArgs, '--checkpoint-dir', directory, '--epochs', '50']);
    expect((await run.lines.next()).value).toMatch(/^training mlp/);
    run.child.kill('SIGTERM');
    const output = await rest(run.lines);
    expect(await run.exit).toBe(143);
    const manifest = await readManifest(directory);
    expect(manifest?.reason).toBe('interrupted');
    expect(output).toContain(
      `resume with: zbmd ${trainArgs.join(' ')} --checkpoint-dir ${directory} --epochs 50 --resume`,
    );
    expect(output.some((line) => line.startsWith(`steps ${manifest!.step},`))).toBe(true);
  }, 60_000);

  it('--json reports the stop in its one object', async () => {
    const stop = new AbortController();
    stop.abort('SIGINT');
    const lines: string[] = [];
    const result = await trainCommand(
      { ...OPTIONS, checkpointDir: directory, json: true },
      (line) => lines.push(line),
      stop.signal,
    );
    expect(result.interrupted).toBe(true);
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]);
    expect(report.interrupted).toBe(true);
    expect(report.final_test_accuracy).toBeNull();
    expect(report.lost_steps).toBe(0);
    expect((await readManifest(directory))?.step).toBe(report.steps);
  });
});

const OPTIONS: TrainCommandOptions = {
  model: 'mlp',
  optimizer: 'adam',
  epochs: 1,
  batchSize: 64,
  seed: 1,
  checkpointInterval: 100,
  resume: false,
  json: false,
  data: TINY_DATASET_DIR,
};
