/**
 * Elastic training under repeated SIGKILLs (the acceptance run at full size; the CI test
 * in tests/elastic does four kills): 3 worker processes on data/tiny, 10 SIGKILLs of random
 * workers, the leader among them (every third kill), each followed by a replacement joining with
 * `zbmd train --join`. A kill waits until at least two workers hold the state, so one always
 * survives it. Prints the audit (lost and repeated steps), whether the weights equal the
 * single-process reference of the same shards, the recoveries with their causes and durations,
 * and that no worker process is left.
 *
 *   zbmd bench elastic --json           10 kills, 1,500 steps
 *   zbmd bench elastic --json --quick   4 kills, 400 steps
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cliEntry, type ElasticTrainingResult } from '../src/ml/elastic/launch.js';
import { train } from '../src/ml/training/index.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function run(options: BenchOptions): Promise<Record<string, unknown>> {
  const kills = options.quick ? 4 : 10;
  const steps = options.quick ? 400 : 1500;
  const common = { model: 'mlp' as const, data: 'data/tiny', maxSteps: steps, epochs: 20, shards: 8 };
  const pids = new Map<string, number>();
  const joined = new Set<string>();
  const children: ChildProcess[] = [];
  const killed: { worker: string; leader: boolean; step: number }[] = [];
  let url = '';
  let cluster = '';
  let nextKillStep = 10;
  let seed = 5;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const started = performance.now();
  let result: ElasticTrainingResult;
  try {
    result = (await train({
      ...common,
      workers: 3,
      onWorkerStarted: (info) => {
        pids.set(info.name, info.pid);
        url = info.url;
        cluster = info.cluster;
      },
      onJobEvent: (event) => {
        if (event.kind === 'joined') joined.add(event.worker as string);
        if (event.kind === 'initialized') joined.add(event.leader as string);
        if (event.kind !== 'step' || killed.length >= kills || (event.workers as number) < 2) return;
        const step = event.step as number;
        if (step < nextKillStep) return;
        nextKillStep = step + 8;
        const leader = event.leader as string;
        const others = [...joined].filter(
          (name) => name !== leader && !killed.some((kill) => kill.worker === name),
        );
        const killLeader = killed.length % 3 === 1 || others.length === 0;
        const victim = killLeader ? leader : others[Math.floor(random() * others.length)];
        process.kill(pids.get(victim)!, 'SIGKILL');
        killed.push({ worker: victim, leader: victim === leader, step });
        const name = `r${killed.length}`;
        const child = spawn(
          process.execPath,
          [cliEntry(), 'train', '--join', url, '--name', name, '--cluster', cluster],
          {
            stdio: 'ignore',
          },
        );
        children.push(child);
        pids.set(name, child.pid!);
      },
    })) as ElasticTrainingResult;
  } finally {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  const elapsedMs = performance.now() - started;
  const reference = await train({ ...common, evaluateEachEpoch: false });
  await new Promise((resolve) => setTimeout(resolve, 500)); // let the killed children's exits be reaped
  return {
    kills: killed.length,
    leader_kills: killed.filter((kill) => kill.leader).length,
    steps: result.steps,
    lost_steps: result.lostSteps,
    repeated_steps: result.elastic.repeatedSteps,
    weights_sha256: result.weightsSha256,
    same_weights_as_reference: result.weightsSha256 === reference.weightsSha256,
    workers_joined: result.elastic.joined.length,
    workers_left: result.elastic.left.length,
    recoveries: result.elastic.recoveries.map((recovery) => ({
      cause: recovery.cause,
      worker: recovery.worker,
      step: recovery.step,
      recovery_ms: Math.round(recovery.recoveryMs),
    })),
    elapsed_ms: Math.round(elapsedMs),
    workers_left_running: [...pids].filter(([, pid]) => alive(pid)).map(([name]) => name),
  };
}
