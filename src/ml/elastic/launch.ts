/**
 * `train({ workers: N })` / `zbmd train --workers N`: starts a local nats-server with JetStream
 * (127.0.0.1, the cluster layer's launcher), writes the job's spec into the job's bucket, starts
 * N worker processes (`zbmd train --join URL --name wI`, titled `zbmd worker wI`), follows the
 * leader's events (steps, joins, losses, recoveries), and returns the result once the job is
 * done, with a model holding the final weights. Everything it started is stopped before it
 * returns, whatever happened.
 *
 * `train({ join: URL, name })` / `zbmd train --join URL --name w3` runs one worker in this process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../actor/Random.js';
import { DEFAULT_LEASE_MS } from '../../cluster/ClusterNode.js';
import { startNatsServer } from '../../cluster/internal/natsServer.js';
import { checkName } from '../../cluster/Membership.js';
import { NatsTransport } from '../../cluster/NatsTransport.js';
import { evaluateAccuracy } from '../train.js';
import { readManifest } from '../training/checkpointFiles.js';
import { TrainingError } from '../training/errors.js';
import { modelFactoryOf } from '../training/models.js';
import { claimDirectory, lockRunDirectory } from '../training/runDirectory.js';
import type { Recovery, RecoveryCause, ResolvedTrainingConfig } from '../training/TrainingConfig.js';
import type { TrainingResult } from '../training/train.js';
import { loadTrainingData } from '../training/trainingData.js';
import { weightsSha256 } from '../training/weightsHash.js';
import {
  decodeWeights,
  ElasticWorker,
  JOB_SPEC_KEY,
  type JobResult,
  jobBucketName,
} from './ElasticWorker.js';
import { jobSpecOf, MAX_WORKERS } from './jobSpec.js';
import { Assembly, decode, subjects } from './protocol.js';

/** A launcher that hears nothing from the job for this long gives up (stops everything, throws). */
export const JOB_SILENCE_TIMEOUT_MS = 60_000;
/**
 * Once every worker process this launcher started has exited, a job silent for this long has
 * no worker left (workers that joined from elsewhere keep it alive by being heard).
 */
export const ORPHAN_SILENCE_MS = 5_000;
/** After the result, workers get this long to exit before they are killed. */
export const WORKER_EXIT_WAIT_MS = 5_000;

export interface ElasticOptions {
  /** Worker processes to start on a local cluster (1 to 64). */
  readonly workers?: number;
  /** Join the job on this NATS server as one worker (`name` required). */
  readonly join?: string;
  readonly name?: string;
  /** Shards per global batch (1 to 1,024); default 8. */
  readonly shards?: number;
  /** The job's cluster name; default 'zbmd-dp'. */
  readonly cluster?: string;
  /** BLAS threads in each worker process (OPENBLAS_NUM_THREADS); default 1. */
  readonly blasThreads?: number;
  /** Workers a fresh job waits for before its first step (the launcher passes N). */
  readonly initialWorkers?: number;
  /** Told of each worker process started (name, pid) and of the server's URL. */
  readonly onWorkerStarted?: (info: { name: string; pid: number; url: string; cluster: string }) => void;
  /** Every event of the job as the leader published it. */
  readonly onJobEvent?: (event: JobEvent) => void;
  /** Give up when nothing is heard from the job for this long; default `JOB_SILENCE_TIMEOUT_MS`. */
  readonly jobSilenceTimeoutMs?: number;
  /** The same once every worker process started here has exited; default `ORPHAN_SILENCE_MS`. */
  readonly orphanSilenceMs?: number;
}

/** A job event (`kind` step, joined, left, recovery, checkpoint, initialized). */
export type JobEvent = Record<string, unknown> & { readonly kind: string };

export interface WorkerChange {
  readonly worker: string;
  readonly step: number;
  readonly cause?: string;
}

/** A recovery across processes: cause worker_lost, worker_left, fell_behind, step_timeout or leader_lost. */
export interface ElasticRecovery {
  readonly cause: string;
  readonly worker: string;
  readonly step: number;
  readonly recoveryMs: number;
  readonly reassignedShards: number;
}

export interface ElasticReport {
  readonly workers: number;
  readonly shards: number;
  readonly blasThreadsPerWorker: number;
  readonly joined: WorkerChange[];
  readonly left: WorkerChange[];
  readonly recoveries: ElasticRecovery[];
  readonly repeatedSteps: number;
  readonly leaders: string[];
  readonly gradientBytes: number;
  /** Median of the leader's step times (assign to commit), ms. */
  readonly medianStepMs: number;
  readonly natsUrl: string;
}

export type ElasticTrainingResult = TrainingResult & { readonly elastic: ElasticReport };

/** The CLI's entry (bin/zbmd.js) in the package this module belongs to. */
export function cliEntry(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 8; level++) {
    const candidate = join(directory, 'bin', 'zbmd.js');
    if (existsSync(candidate) && existsSync(join(directory, 'package.json'))) return candidate;
    directory = dirname(directory);
  }
  throw new TrainingError('invalid_config', 'cannot find bin/zbmd.js to start the workers with');
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** Runs one worker in this process until the job is done (`--join`). */
export async function joinJob(
  resolved: ResolvedTrainingConfig,
  options: ElasticOptions,
): Promise<ElasticTrainingResult> {
  const started = performance.now();
  if (options.name === undefined)
    throw new TrainingError('invalid_config', 'join needs a worker name (name / --name)');
  checkWorkerName(options.name);
  const outcome = await ElasticWorker.run({
    nats: options.join!,
    name: options.name,
    cluster: options.cluster,
    initialWorkers: options.initialWorkers,
    log:
      resolved.progress === undefined
        ? undefined
        : (line) => resolved.progress!(`${options.name}: ${line}\n`),
  });
  return {
    ...baseResult(outcome.result, started),
    model: outcome.module,
    dataset: resolved.data === undefined ? 'default' : String(resolved.data),
    elastic: {
      workers: 1,
      shards: outcome.result.shards,
      blasThreadsPerWorker: Number(process.env.OPENBLAS_NUM_THREADS ?? 0),
      joined: [],
      left: [],
      recoveries: [],
      repeatedSteps: outcome.result.repeatedSteps,
      leaders: [outcome.result.leader],
      gradientBytes: outcome.result.gradientBytes,
      medianStepMs: 0,
      natsUrl: options.join!,
    },
  };
}

function checkWorkerName(name: string): void {
  try {
    checkName('worker name', name);
  } catch (error) {
    throw new TrainingError('invalid_config', (error as Error).message, { cause: error });
  }
}

function baseResult(result: JobResult, startedMs: number): Omit<TrainingResult, 'model' | 'dataset'> {
  const elapsedMs = performance.now() - startedMs;
  return {
    finalTestAccuracy: result.finalTestAccuracy,
    loss: result.loss,
    elapsedMs,
    steps: result.steps,
    stepsPerSec: 0,
    recoveries: [],
    lostSteps: result.lostSteps,
    weightsSha256: result.weightsSha256,
    epochs: result.epochs.map((epoch, index) => ({
      epoch: epoch.epoch,
      meanLoss: epoch.meanLoss,
      testAccuracy: undefined,
      stepsPerSec: 0,
      steps: epoch.steps,
      step: result.epochs.slice(0, index + 1).reduce((total, each) => total + each.steps, 0),
    })),
    resumedFromStep: 0,
    devicesUsed: ['cpu:0'],
    tensorBackend: 'cpu',
    finalMicroBatchSize: 0,
    faultsInjected: {},
    snapshotIntervalSteps: 0,
    interrupted: false,
  };
}

/** Starts a local server and `workers` worker processes, and follows the job to its end. */
export async function launchJob(
  resolved: ResolvedTrainingConfig,
  options: ElasticOptions,
): Promise<ElasticTrainingResult> {
  const startedMs = performance.now();
  const workers = options.workers!;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS)
    throw new TrainingError(
      'invalid_config',
      `workers = ${workers}: expected an integer from 1 to ${MAX_WORKERS}`,
    );
  const cluster = options.cluster ?? 'zbmd-dp';
  const blasThreads = options.blasThreads ?? 1;
  const spec = jobSpecOf(resolved, options.shards ?? 8, DEFAULT_LEASE_MS, blasThreads);
  const data = await loadTrainingData(resolved.data);
  const release =
    resolved.checkpointDir === undefined
      ? undefined
      : await lockRunDirectory(resolved.checkpointDir, resolved.resume);
  let resumedFromStep = 0;
  const server = await startNatsServer({ jetstream: true }).catch(async (error) => {
    await release?.();
    throw error;
  });
  const children: ChildProcess[] = [];
  let transport: NatsTransport | undefined;
  try {
    if (resolved.checkpointDir !== undefined) {
      if (resolved.resume) {
        const manifest = await readManifest(resolved.checkpointDir);
        if (manifest === undefined)
          throw new TrainingError(
            'no_checkpoint',
            `${resolved.checkpointDir} holds no latest.json to resume from`,
          );
        resumedFromStep = manifest.step;
      } else await claimDirectory(resolved.checkpointDir, resolved.fresh);
    }
    transport = await NatsTransport.connect({ servers: server.url, name: 'zbmd train launcher' });
    const bucket = await transport.openBucket(jobBucketName(cluster));
    await bucket.create(JOB_SPEC_KEY, new TextEncoder().encode(JSON.stringify(spec)));
    const follower = followJob(transport, cluster, resolved, options);
    const entry = cliEntry();
    for (let index = 1; index <= workers; index++) {
      const name = `w${index}`;
      const child = spawn(
        process.execPath,
        [
          entry,
          'train',
          '--join',
          server.url,
          '--name',
          name,
          '--cluster',
          cluster,
          '--initial-workers',
          String(workers),
        ],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, OPENBLAS_NUM_THREADS: String(blasThreads) },
        },
      );
      let errors = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        errors = (errors + chunk.toString('utf8')).slice(-4000);
      });
      child.once('exit', (code, signal) => {
        if (code !== 0 && signal === null) follower.workerFailed(name, code, errors);
        follower.childExited();
      });
      children.push(child);
      options.onWorkerStarted?.({ name, pid: child.pid ?? -1, url: server.url, cluster });
    }
    const { result, weights, report } = await follower.done;
    const shape = { featureShape: data.train.featureShape, numClasses: data.train.numClasses };
    const model = modelFactoryOf(spec.model)(shape, new Random(spec.seed));
    model.namedParameters().forEach(([, parameter], index) => {
      parameter.data.set(weights[index]);
    });
    const hash = weightsSha256(model);
    if (hash !== result.weightsSha256)
      throw new TrainingError(
        'lineage_broken',
        `the weights received hash to ${hash}, the leader's to ${result.weightsSha256}`,
      );
    const base = baseResult(result, startedMs);
    const loopMs = report.lastStepMs - report.firstStepMs;
    const stepsHere = result.steps - resumedFromStep;
    return {
      ...base,
      model,
      finalTestAccuracy: Number.isNaN(result.finalTestAccuracy)
        ? evaluateAccuracy(model, data.test)
        : result.finalTestAccuracy,
      dataset: data.name ?? 'in-memory',
      resumedFromStep,
      stepsPerSec: loopMs > 0 ? ((stepsHere - 1) / loopMs) * 1000 : 0,
      recoveries: report.recoveries.map(
        (recovery): Recovery => ({
          cause: recovery.cause as RecoveryCause,
          recoveryMs: recovery.recoveryMs,
          step: recovery.step,
          replayedSteps: 0,
          detail: `${recovery.cause}: ${recovery.worker}${recovery.reassignedShards > 0 ? `, ${recovery.reassignedShards} shards recomputed` : ''}`,
        }),
      ),
      elastic: {
        workers,
        shards: spec.shards,
        blasThreadsPerWorker: blasThreads,
        joined: report.joined,
        left: report.left,
        recoveries: report.recoveries,
        repeatedSteps: result.repeatedSteps,
        leaders: report.leaders,
        gradientBytes: result.gradientBytes,
        medianStepMs: median(report.stepMs),
        natsUrl: server.url,
      },
    };
  } finally {
    await stopChildren(children);
    await transport?.close().catch(() => undefined);
    await server.stop();
    await release?.();
  }
}

async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), WORKER_EXIT_WAIT_MS);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
}

interface FollowedReport {
  readonly joined: WorkerChange[];
  readonly left: WorkerChange[];
  readonly recoveries: ElasticRecovery[];
  readonly leaders: string[];
  readonly stepMs: number[];
  firstStepMs: number;
  lastStepMs: number;
}

/** Follows the job's events; `done` resolves with the result and the final weights. */
function followJob(
  transport: NatsTransport,
  cluster: string,
  resolved: ResolvedTrainingConfig,
  options: ElasticOptions,
): {
  done: Promise<{ result: JobResult; weights: Float32Array[]; report: FollowedReport }>;
  workerFailed: (name: string, code: number | null, errors: string) => void;
  childExited: () => void;
} {
  const report: FollowedReport = {
    joined: [],
    left: [],
    recoveries: [],
    leaders: [],
    stepMs: [],
    firstStepMs: 0,
    lastStepMs: 0,
  };
  let resolveDone!: (value: { result: JobResult; weights: Float32Array[]; report: FollowedReport }) => void;
  let rejectDone!: (error: unknown) => void;
  const done = new Promise<{ result: JobResult; weights: Float32Array[]; report: FollowedReport }>(
    (resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    },
  );
  let lastHeard = performance.now();
  let highestStep = 0;
  let weightsAssembly: Assembly | undefined;
  let weights: Float32Array[] | undefined;
  let finished = false;
  let childrenLeft = options.workers ?? 0;
  const silenceLimit = options.jobSilenceTimeoutMs ?? JOB_SILENCE_TIMEOUT_MS;
  const orphanLimit = Math.min(options.orphanSilenceMs ?? ORPHAN_SILENCE_MS, silenceLimit);
  const silence = setInterval(() => {
    const quiet = performance.now() - lastHeard;
    if (childrenLeft === 0 && quiet > orphanLimit) {
      finish();
      const resume = resolved.checkpointDir === undefined ? '' : '; continue it with --resume (resume: true)';
      rejectDone(
        new TrainingError(
          'supervisor_gave_up',
          `every worker process of the job has exited and nothing was heard from it for ${orphanLimit} ms (last step ${highestStep})${resume}`,
        ),
      );
    } else if (quiet > silenceLimit) {
      finish();
      rejectDone(
        new TrainingError(
          'supervisor_gave_up',
          `nothing heard from the job for ${silenceLimit} ms (last step ${highestStep})`,
        ),
      );
    }
  }, 250);
  const finish = () => {
    finished = true;
    clearInterval(silence);
    unsubscribe();
  };
  const unsubscribe = transport.subscribe(subjects(cluster).events, (data) => {
    if (finished) return;
    const message = decode(data);
    if (message?.t !== 'event') return;
    lastHeard = performance.now();
    const event = message as unknown as JobEvent;
    try {
      options.onJobEvent?.(event);
    } catch (error) {
      // the caller's hook failed: stop following, and end the run with its error
      finish();
      rejectDone(error);
      return;
    }
    const leader = event.leader as string | undefined;
    if (leader !== undefined && report.leaders.at(-1) !== leader) report.leaders.push(leader);
    switch (event.kind) {
      case 'step': {
        const step = event.step as number;
        if (step <= highestStep) return;
        highestStep = step;
        if (report.firstStepMs === 0) report.firstStepMs = lastHeard;
        report.lastStepMs = lastHeard;
        report.stepMs.push(event.ms as number);
        resolved.onStep?.({ step, epoch: 0, loss: event.loss as number });
        resolved.progress?.(
          `step ${step}, loss ${(event.loss as number).toFixed(4)}, ${event.workers} workers, leader ${leader}`,
        );
        return;
      }
      case 'initialized':
        report.joined.push({
          worker: leader ?? '',
          step: event.step as number,
          cause: `leader, from the ${event.from}`,
        });
        return;
      case 'joined':
        report.joined.push({ worker: event.worker as string, step: event.step as number });
        return;
      case 'left':
        report.left.push({
          worker: event.worker as string,
          step: event.step as number,
          cause: event.cause as string,
        });
        return;
      case 'recovery':
        report.recoveries.push({
          cause: event.cause as string,
          worker: event.worker as string,
          step: event.step as number,
          recoveryMs: event.recoveryMs as number,
          reassignedShards: event.reassignedShards as number,
        });
        return;
      case 'weights': {
        weightsAssembly ??= new Assembly(event.chunks as number);
        const whole = weightsAssembly.add(event.chunk as number, event.data as Uint8Array);
        if (whole !== undefined) weights = decodeWeights(whole);
        return;
      }
      case 'done':
        if (weights === undefined) return;
        finish();
        resolveDone({ result: event.result as JobResult, weights, report });
        return;
    }
  });
  return {
    done,
    childExited: () => {
      childrenLeft--;
    },
    workerFailed: (name, code, errors) => {
      if (finished) return;
      // A worker that fails by itself (not killed) is reported; the others go on without it.
      process.stderr.write(
        `zbmd train: worker ${name} exited with ${code}: ${errors.trim().split('\n').slice(-3).join(' | ')}\n`,
      );
    },
  };
}
