/**
 * The design book's examples (examples/*.ts) run as written, against the source (vitest maps
 * `zbmd` and `zbmd/<layer>` to src/, as tsconfig's `paths` do for the type check).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main as helloActor } from '../../examples/01-hello-actor.js';
import { main as supervisedCounter } from '../../examples/02-supervised-counter.js';
import { main as vectorAdd } from '../../examples/03-gpu-vector-add.js';
import { main as training } from '../../examples/04-neural-network-training.js';
import { main as cluster } from '../../examples/05-cluster.js';
import { main as distributed } from '../../examples/05-distributed-training.js';
import { main as customLoop } from '../../examples/07-custom-training-loop.js';
import { main as faultInjection } from '../../examples/08-fault-injection.js';
import { startNatsServer } from '../../src/cluster/index.js';

const quiet = (): void => {};
const directories: string[] = [];
afterAll(async () => {
  for (const dir of directories) await rm(dir, { recursive: true, force: true });
});

describe('design book examples', () => {
  it('1: hello actor answers with the last text', async () => {
    const lines: string[] = [];
    expect(await helloActor((line) => lines.push(line))).toBe('Hello, Actor!');
    expect(lines).toEqual(['Reply: Hello, Actor!']);
  });

  it('2: the supervised counter keeps every increment through 5 crashes', async () => {
    const lines: string[] = [];
    expect(await supervisedCounter((line) => lines.push(line))).toBe(95);
    expect(lines.at(-1)).toBe('Final counter value: 95 (restarts: 5)');
  });

  it('3: vector addition on the cpu device', async () => {
    const first = await vectorAdd(quiet, 'cpu');
    expect(Array.from(first)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('4: supervised training recovers every injected crash and loses no step', async () => {
    const result = await training(quiet, { maxSteps: 60, evaluateEachEpoch: false });
    expect(result.steps).toBe(60);
    expect(result.lostSteps).toBe(0);
    expect(Number.isFinite(result.loss)).toBe(true);
  });

  it('5: three nodes on a real nats-server; workers on two of them find the global coordinator and the work flows to it', async () => {
    const server = await startNatsServer();
    try {
      const lines: string[] = [];
      const result = await cluster({
        nats: server.url,
        nodes: 3,
        tasks: 24,
        batchSize: 500,
        write: (l) => lines.push(l),
      });
      // the same statistics computed here, in one place
      let sum = 0;
      let squares = 0;
      for (let task = 0; task < 24; task++)
        for (let i = 0; i < 500; i++) {
          const value = Math.sin(task * 500 + i) * 10;
          sum += value;
          squares += value * value;
        }
      const mean = sum / 12_000;
      expect(result.mean).toBeCloseTo(mean, 9);
      expect(result.variance).toBeCloseTo(squares / 12_000 - mean * mean, 9);
      expect(Object.keys(result.byNode).sort()).toEqual(['node1', 'node2']);
      expect(Object.values(result.byNode).reduce((a, b) => a + b, 0)).toBe(24);
      expect(lines).toContain("node0 registered the global name 'coordinator'");
      expect(lines).toContain("node1 found 'coordinator' on node0 and started 2 workers");
    } finally {
      await server.stop();
    }
  }, 60_000);

  // Worker processes run `zbmd train --join` from dist: `npm run build` first, as for the cluster tests.
  it('5: nodes join a cluster, find the coordinator by its global name, and train data-parallel', async () => {
    const lines: string[] = [];
    const { job, joined, sameAsOneProcess } = await distributed((line) => lines.push(line), { maxSteps: 80 });
    expect(job.steps).toBe(80);
    expect(job.lostSteps).toBe(0);
    expect(sameAsOneProcess).toBe(true);
    expect(joined.steps).toBe(80);
    expect(lines.find((line) => line.startsWith('Coordinator: '))).toMatch(
      /^Coordinator: w[12] \(w[12] term \d+\)$/,
    );
    expect(lines.at(-1)).toBe('Same weights as one process summing the same shards: true');
  }, 120_000);

  it('7: the custom loop resumes from its checkpoint with the same outcome as an unbroken run', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'zbmd-example7-'));
    const whole = await mkdtemp(join(tmpdir(), 'zbmd-example7-'));
    directories.push(broken, whole);
    const first = await customLoop(quiet, { dir: broken, steps: 20, checkpointEvery: 10 });
    expect(first).toMatchObject({ step: 20, resumedFrom: 0 });
    const lines: string[] = [];
    const resumed = await customLoop((line) => lines.push(line), {
      dir: broken,
      steps: 40,
      checkpointEvery: 10,
    });
    expect(lines[0]).toBe('resumed from step 20');
    const unbroken = await customLoop(quiet, { dir: whole, steps: 40, checkpointEvery: 10 });
    expect(resumed.step).toBe(40);
    expect(unbroken.step).toBe(40);
    // the metrics actor only saw this process's steps; compare the checkpoints' weights instead
    const { readSafetensorsFile } = await import('../../src/ml/index.js');
    const a = await readSafetensorsFile(join(broken, 'latest.safetensors'));
    const b = await readSafetensorsFile(join(whole, 'latest.safetensors'));
    for (const name of Object.keys(b.tensors)) {
      expect(Buffer.from(a.tensors[name].data).equals(Buffer.from(b.tensors[name].data)), name).toBe(true);
    }
  });

  it('8: under injected faults every worker still answers, and the seed replays', async () => {
    const outcome = await faultInjection(quiet, 7);
    expect(outcome.alive).toBe(100);
    expect(outcome.faults.actor_crash).toBeGreaterThan(0);
    const again = await faultInjection(quiet, 7);
    expect(again.faults).toEqual(outcome.faults);
  });
});
