/**
 * Elastic data-parallel training with real processes on a real nats-server (127.0.0.1): worker
 * processes started by `train({ workers })` (they run `zbmd train --join` from dist, so
 * `npm run build` must come first, as for the real-cluster tests), SIGKILLed at random, the
 * leader among them, and replacements joining with `zbmd train --join`. The weights must come
 * out bit-identical to the single-process reference that sums the same shards, with no step lost
 * or repeated, and nothing left running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliEntry, type ElasticTrainingResult } from '../../src/ml/elastic/launch.js';
import { train } from '../../src/ml/training/train.js';

const DATA = 'data/tiny';
/** The SIGKILL test's kills and steps (the kills are done by step ~90; the rest runs on). */
const KILLS = 10;
const KILL_TEST_STEPS = 300;
const spawned: ChildProcess[] = [];
const directories: string[] = [];

afterAll(async () => {
  for (const child of spawned)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves true when something listens on the URL's port. */
function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace('nats://', 'http://'));
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('elastic data-parallel training across processes', () => {
  it('survives SIGKILLs of random workers and of the leader, with joins: no step lost or repeated, reference weights', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-elastic-'));
    directories.push(directory);
    const pids = new Map<string, number>();
    const processes: ChildProcess[] = [];
    let url = '';
    let cluster = '';
    // 10 kills, 8 steps apart from step 6: the leader every third kill (4 of them), else a random
    // other worker (the acceptance: 10 SIGKILLs, the leader among them, replacements joining)
    const plan: Array<{ atStep: number; target: 'random' | 'leader' }> = Array.from(
      { length: KILLS },
      (_, i) => ({
        atStep: 6 + 8 * i,
        target: i % 3 === 1 ? 'leader' : 'random',
      }),
    );
    const killed: string[] = [];
    const killedLeaders: string[] = [];
    const joined = new Set<string>();
    let replacements = 0;
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const result = (await train({
      model: 'mlp',
      data: DATA,
      maxSteps: KILL_TEST_STEPS,
      epochs: 20,
      workers: 3,
      shards: 8,
      checkpointDir: directory,
      checkpointIntervalSteps: 10,
      // Once the three workers started here are killed, only replacements keep the job: a
      // recovery after a leader kill may be silent for more than the default 5 s when the
      // whole suite loads the machine.
      orphanSilenceMs: 30_000,
      onWorkerStarted: (info) => {
        pids.set(info.name, info.pid);
        url = info.url;
        cluster = info.cluster;
      },
      onJobEvent: (event) => {
        if (event.kind === 'joined') joined.add(event.worker as string);
        if (event.kind === 'initialized') joined.add(event.leader as string);
        // Each kill leaves at least one worker holding the state; replacements take ~4 s to start here.
        if (event.kind !== 'step' || plan.length === 0 || (event.workers as number) < 2) return;
        const step = event.step as number;
        if (step < plan[0].atStep) return;
        const { target } = plan.shift()!;
        if (plan.length > 0) plan[0].atStep = Math.max(plan[0].atStep, step + 6);
        const leader = event.leader as string;
        const others = [...joined].filter((name) => name !== leader && !killed.includes(name));
        const victim =
          target === 'leader' || others.length === 0 ? leader : others[Math.floor(random() * others.length)];
        process.kill(pids.get(victim)!, 'SIGKILL');
        killed.push(victim);
        if (victim === leader) killedLeaders.push(victim);
        const name = `r${++replacements}`;
        const child = spawn(
          process.execPath,
          [cliEntry(), 'train', '--join', url, '--name', name, '--cluster', cluster],
          { stdio: 'ignore' },
        );
        spawned.push(child);
        processes.push(child);
        pids.set(name, child.pid!);
      },
    })) as ElasticTrainingResult;
    expect(plan).toEqual([]);
    expect(result.steps).toBe(KILL_TEST_STEPS);
    expect(result.lostSteps).toBe(0);
    expect(result.elastic.repeatedSteps).toBe(0);
    // every kill was seen as a loss, replacements joined, a new leader took over after each leader kill
    for (const victim of killed)
      expect(
        result.elastic.left.some((left) => left.worker === victim),
        JSON.stringify({
          killed,
          left: result.elastic.left,
          recoveries: result.elastic.recoveries,
          leaders: result.elastic.leaders,
        }),
      ).toBe(true);
    expect(
      result.elastic.joined.filter((change) => change.worker.startsWith('r')).length,
    ).toBeGreaterThanOrEqual(1);
    for (const leader of killedLeaders)
      expect(
        result.elastic.recoveries.some(
          (recovery) => recovery.cause === 'leader_lost' && recovery.worker === leader,
        ),
      ).toBe(true);
    expect(killed.length).toBe(KILLS);
    expect(killedLeaders.length).toBeGreaterThanOrEqual(3);
    // the leader persisted checkpoints in the training format, the last at the final step
    const manifest = JSON.parse(await readFile(join(directory, 'latest.json'), 'utf8'));
    expect(manifest.step).toBe(KILL_TEST_STEPS);
    expect(manifest.format).toBe('zbmd-training-checkpoint');

    const reference = await train({
      model: 'mlp',
      data: DATA,
      maxSteps: KILL_TEST_STEPS,
      epochs: 20,
      shards: 8,
      evaluateEachEpoch: false,
    });
    expect(result.weightsSha256).toBe(reference.weightsSha256);

    // nothing left running: the workers started and joined, and the server
    // Replacements still running are stopped (one started too late to join is no part of the job).
    for (const child of processes)
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => {
          child.once('exit', resolve);
          setTimeout(resolve, 5_000);
        });
        child.kill('SIGKILL');
        await exited;
      }
    for (const [name, pid] of pids) expect(alive(pid), `worker ${name} (${pid}) still runs`).toBe(false);
    expect(await listening(url)).toBe(false);
  }, 240_000);

  it('resumes after every worker died, from the checkpoint the leader persisted, to the reference weights', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-elastic-resume-'));
    directories.push(directory);
    const pids: number[] = [];
    let killedAt = 0;
    await expect(
      train({
        model: 'mlp',
        data: DATA,
        maxSteps: 30,
        workers: 2,
        checkpointDir: directory,
        checkpointIntervalSteps: 5,
        onWorkerStarted: (info) => pids.push(info.pid),
        onJobEvent: (event) => {
          if (event.kind === 'checkpoint' && (event.step as number) >= 10 && killedAt === 0) {
            killedAt = event.step as number;
            for (const pid of pids) process.kill(pid, 'SIGKILL');
          }
        },
      }),
    ).rejects.toThrow(/every worker/);
    const resumed = (await train({
      model: 'mlp',
      data: DATA,
      maxSteps: 30,
      workers: 2,
      checkpointDir: directory,
      checkpointIntervalSteps: 5,
      resume: true,
    })) as ElasticTrainingResult;
    expect(resumed.resumedFromStep).toBeGreaterThanOrEqual(killedAt);
    expect(resumed.steps).toBe(30);
    expect(resumed.lostSteps).toBe(0);
    const reference = await train({
      model: 'mlp',
      data: DATA,
      maxSteps: 30,
      shards: 8,
      evaluateEachEpoch: false,
    });
    expect(resumed.weightsSha256).toBe(reference.weightsSha256);
  }, 180_000);
});
