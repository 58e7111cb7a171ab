/**
 * `train(config)`: supervised, fault-tolerant training. A driver runs the steps, one call to
 * the model actor per step; the actors live under the rest_for_one `TrainingSupervisor`. When a
 * step fails (an actor crashed, the device failed, an allocation ran out of memory), the driver
 * waits for the supervisor to have restarted what died, writes the last snapshot back, asks
 * the checkpoint actor for an emergency checkpoint, logs the recovery, and runs the step again.
 * Nothing is lost: a step is committed only with its snapshot, and the step lineage proves at
 * the end that every step ran once, on the samples it should have.
 *
 * The tensor math runs on the device the config names: zbmd's host CPU ops for `cpu`, or a
 * GPU-layer device (WebGPU, CUDA, the cpu reference backend with `cpuDevice: 'reference'`) with
 * parameters, optimizer state and batches there (`deviceReplica.ts`). Devices (from
 * `detectDevices`) are tracked with their health; a device error, raised by the device itself
 * (`deviceFaults.ts`), moves training to the healthiest other device.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { TINY_DATASET_DIR, train } from 'zbmd/ml';
 *
 * // the model and optimizer actors crash at random; supervision restores the last snapshot
 * const result = await train({ model: 'mlp', data: TINY_DATASET_DIR, maxSteps: 40, faults: 'actorCrashRate=0.05,seed=7' });
 * assert.equal(result.steps, 40);
 * assert.equal(result.lostSteps, 0);
 * ```
 */
import { dirname } from 'node:path';
import { ActorSystem } from '../../actor/ActorSystem.js';
import { type ExitReason, formatReason } from '../../actor/ExitReason.js';
import { CallExit, isCallTimeout } from '../../actor/errors.js';
import { castTo } from '../../actor/GenServer.js';
import type { Pid } from '../../actor/Pid.js';
import { stopSupervisor } from '../../supervision/Supervisor.js';
import { isTensorError } from '../errors.js';
import type { Module } from '../nn/Module.js';
import { evaluateAccuracy } from '../train.js';
import {
  DeviceFailure,
  InjectedActorCrash,
  isDeviceFailure,
  isInjectedActorCrash,
  OutOfMemory,
  TrainingError,
} from './errors.js';
import { NO_STEP_FAULTS } from './FaultPlan.js';
import { METRICS_BATCH_STEPS, type MetricsTotals } from './MetricsActor.js';
import {
  CaptureRequest,
  CrashRequest,
  EpochRecord,
  FlushRequest,
  MoveRequest,
  PersistRequest,
  RecoveryRecord,
  RestoreRequest,
  STEP_OUT_OF_MEMORY,
  type StepRecord,
  StepRecords,
  StepRequest,
} from './messages.js';
import { type PreparedRun, prepareRun } from './prepareRun.js';
import { lockRunDirectory, makeDirectory } from './runDirectory.js';
import { SnapshotPolicy } from './SnapshotPolicy.js';
import {
  type EpochReport,
  type Recovery,
  type RecoveryCause,
  type ResolvedTrainingConfig,
  resolveTrainingConfig,
  TRAINING_LIMITS,
  type TrainingConfig,
} from './TrainingConfig.js';
import type { TensorBackend } from './TrainingSession.js';
import { startTrainingSupervisor } from './TrainingSupervisor.js';
import { loadTrainingData } from './trainingData.js';
import { weightsSha256 } from './weightsHash.js';

/** A step that takes longer than this is treated as hung (the call times out and is recovered). */
export const STEP_CALL_TIMEOUT_MS = 600_000;

export type EpochSummary = EpochReport;

export interface TrainingResult {
  /** The trained model (in eval mode after the final evaluation); `saveModel` writes it to disk. */
  readonly model: Module;
  readonly finalTestAccuracy: number;
  /** Loss of the last step. */
  readonly loss: number;
  readonly elapsedMs: number;
  /** Steps committed in all (those of a resumed run's earlier processes included). */
  readonly steps: number;
  /** Steps this process ran per second of training (evaluation excluded, recoveries included). */
  readonly stepsPerSec: number;
  readonly recoveries: readonly Recovery[];
  /** Planned steps never committed plus gaps and overlaps in the samples steps consumed: 0. */
  readonly lostSteps: number;
  readonly weightsSha256: string;
  readonly epochs: readonly EpochSummary[];
  readonly resumedFromStep: number;
  readonly devicesUsed: readonly string[];
  /**
   * Where the tensor math of the last step ran: `cpu` (zbmd's host CPU ops), `cpu-reference`
   * (the GPU layer's cpu reference backend), `webgpu` or `cuda`.
   */
  readonly tensorBackend: TensorBackend;
  readonly finalMicroBatchSize: number;
  readonly dataset: string;
  readonly faultsInjected: Readonly<Record<string, number>>;
  /** Steps between in-memory snapshots at the end of the run (see `SnapshotPolicy`). */
  readonly snapshotIntervalSteps: number;
  /** True when `stopSignal` stopped the run before its last step (`finalTestAccuracy` is then NaN). */
  readonly interrupted: boolean;
}

interface Run extends PreparedRun {
  readonly system: ActorSystem;
  readonly totals: MetricsTotals;
  readonly recoveries: Recovery[];
  readonly epochs: EpochSummary[];
  readonly records: StepRecord[];
  lastLoss: number;
  epochLossSum: number;
  /** Steps of the current epoch committed (those before a resume included). */
  epochSteps: number;
  /** Steps of the current epoch this process ran (for its rate). */
  epochStepsHere: number;
  /** `epochLossSums[i]`: the loss sum of the epoch's first `epochBaseSteps + i` steps. */
  epochLossSums: number[];
  epochBaseSteps: number;
  epochStartedMs: number;
  evaluationMs: number;
  failedStep: number;
  attempts: number;
  /** Steps committed live (the snapshot may be up to one snapshot interval behind). */
  nextStep: number;
  /** The most steps ever committed: steps below it that run again are replays. */
  highestCommitted: number;
  readonly policy: SnapshotPolicy;
  /** A recovery whose replay has not yet reached the failed step. */
  pending: PendingRecovery | undefined;
  /** The planned device move happened (or the run resumed past it). */
  moved: boolean;
}

interface PendingRecovery {
  readonly startedMs: number;
  readonly cause: RecoveryCause;
  readonly step: number;
  readonly detail: string;
  readonly replayedSteps: number;
}

/** Expected crashes (injected, device errors) are logged as recoveries; anything else is reported. */
function reportCrash(_pid: Pid, reason: ExitReason): void {
  if (isInjectedActorCrash(reason) || isDeviceFailure(reason)) return;
  process.stderr.write(`zbmd train: an actor crashed: ${formatReason(reason)}\n`);
}

/** Trains as `config` says, through every failure the supervisor can repair. */
export async function train(config: TrainingConfig): Promise<TrainingResult> {
  if (config?.shards !== undefined || config?.workers !== undefined || config?.join !== undefined) {
    // Data-parallel (or its single-process reference): src/ml/elastic, loaded on use.
    const { trainDataParallel } = await import('../elastic/trainDataParallel.js');
    return trainDataParallel(config);
  }
  const startedMs = performance.now();
  const resolved = resolveTrainingConfig(config);
  const release =
    resolved.checkpointDir === undefined
      ? undefined
      : await lockRunDirectory(resolved.checkpointDir, resolved.resume);
  try {
    if (resolved.metricsPath !== undefined) await makeDirectory(dirname(resolved.metricsPath), 'metricsPath');
    return await trainLocked(resolved, startedMs);
  } finally {
    await release?.();
  }
}

async function trainLocked(resolved: ResolvedTrainingConfig, startedMs: number): Promise<TrainingResult> {
  const data = await loadTrainingData(resolved.data, resolved.gpt);
  const system = new ActorSystem({ onCrash: reportCrash });
  const prepared = await prepareRun(system, resolved, data);
  const totals: MetricsTotals = {
    startedMs: performance.now(),
    plannedSteps: prepared.plannedSteps,
    stepsPerEpoch: prepared.stepsPerEpoch,
    recoveries: 0,
    lastProgressMs: 0,
  };
  const run: Run = {
    ...prepared,
    system,
    totals,
    recoveries: [],
    epochs: [],
    records: [],
    lastLoss: Number.NaN,
    epochLossSum: prepared.session.snapshot.epochProgress.lossSum,
    epochSteps: prepared.session.snapshot.epochProgress.steps,
    epochStepsHere: 0,
    epochLossSums: [prepared.session.snapshot.epochProgress.lossSum],
    epochBaseSteps: prepared.session.snapshot.epochProgress.steps,
    epochStartedMs: performance.now(),
    evaluationMs: 0,
    failedStep: -1,
    attempts: 0,
    nextStep: prepared.firstStep,
    highestCommitted: prepared.firstStep,
    policy: new SnapshotPolicy(resolved.snapshotIntervalSteps),
    pending: undefined,
    moved: resolved.moveDevice !== undefined && prepared.firstStep >= resolved.moveDevice.atStep,
  };
  const supervisor = await startTrainingSupervisor(
    system,
    prepared.session,
    totals,
    resolved.onSupervisionEvent,
  );
  resolved.onStarted?.({
    system,
    supervisor,
    devices: prepared.session.devices,
    currentDevice: () => prepared.session.deviceId,
    deviceHealth: () => prepared.session.deviceHealth.reports(system.clock.now()),
  });
  try {
    if (!prepared.session.snapshot.taken)
      await system.call(prepared.session.pidOf('model'), new CaptureRequest());
    resolved.onStart?.({
      dataset: data.name ?? 'in-memory',
      plannedSteps: prepared.plannedSteps,
      stepsPerEpoch: prepared.stepsPerEpoch,
      resumedFromStep: prepared.firstStep,
      deviceId: prepared.session.deviceId,
    });
    const loopStartedMs = performance.now();
    await runSteps(run);
    const loopMs = performance.now() - loopStartedMs - run.evaluationMs;
    return await finish(run, loopMs, startedMs);
  } finally {
    if (system.isAlive(supervisor)) await stopSupervisor(system, supervisor);
    await prepared.session.commitsSettled();
    system.shutdown();
    prepared.session.replica?.release();
    prepared.session.closeDevices();
  }
}

/** True when the step that brings the count to `committed` must end with a snapshot. */
function snapshotForced(run: Run, committed: number): boolean {
  const { checkpointDir, checkpointIntervalSteps } = run.session.config;
  return (
    committed === run.plannedSteps ||
    committed % run.stepsPerEpoch === 0 ||
    (checkpointDir !== undefined && committed % checkpointIntervalSteps === 0)
  );
}

async function runSteps(run: Run): Promise<void> {
  const { session, system } = run;
  const snapshot = session.snapshot;
  const request = new StepRequest(0, NO_STEP_FAULTS, false);
  const stop = session.config.stopSignal;
  while (run.nextStep < run.plannedSteps) {
    // Asked to stop: go on (capturing every step) until the snapshot holds the last step run.
    if (stop?.aborted && snapshot.step === run.nextStep) break;
    const step = run.nextStep;
    if (run.pending !== undefined && step >= run.pending.step) finishRecovery(run);
    const move = session.config.moveDevice;
    if (move !== undefined && !run.moved && step === move.atStep) {
      await moveDevice(run, step, move.device);
      continue;
    }
    const faults = run.plan.decide(step, session.deviceId);
    request.step = step;
    request.faults = faults;
    request.capture = run.policy.shouldCapture(
      step + 1,
      snapshot.step,
      snapshotForced(run, step + 1) || stop?.aborted === true,
    );
    let outcome: unknown;
    try {
      if (faults.crash !== undefined && faults.crash !== 'model') {
        await system.call(session.pidOf(faults.crash), new CrashRequest(step));
      }
      outcome = await system.call(session.pidOf('model'), request, STEP_CALL_TIMEOUT_MS);
    } catch (error) {
      await recover(run, error, step);
      continue;
    }
    if (outcome === STEP_OUT_OF_MEMORY) {
      const deviceError = session.lastOutOfMemory;
      session.lastOutOfMemory = undefined;
      await recover(run, new OutOfMemory(step, snapshot.microBatchSize, deviceError), step);
      continue;
    }
    run.nextStep = step + 1;
    run.policy.observe(session.timing.stepMs, session.timing.captureMs);
    // A step run again after a recovery (since the last snapshot) was already reported.
    if (step + 1 > run.highestCommitted) {
      run.highestCommitted = step + 1;
      afterCommit(run, step, outcome as number);
    } else if (snapshot.step === step + 1) snapshot.epochProgress = epochProgressAt(run, step + 1);
  }
  if (run.pending !== undefined) finishRecovery(run);
  flushRecords(run);
}

/** The planned move: the model actor captures the state and rebuilds on `device`. */
async function moveDevice(run: Run, step: number, device: string): Promise<void> {
  const { session, system } = run;
  if (!session.devices.some((info) => info.id === device)) {
    throw new TrainingError(
      'invalid_config',
      `moveDevice.device = ${device}: not one of the devices (${session.devices.map((info) => info.id).join(', ')})`,
    );
  }
  await system.call(session.pidOf('model'), new MoveRequest(step, device), STEP_CALL_TIMEOUT_MS);
  session.snapshot.epochProgress = epochProgressAt(run, step);
  run.moved = true;
}

function afterCommit(run: Run, step: number, loss: number): void {
  const { session, system } = run;
  const committed = step + 1;
  const epoch = Math.floor(step / run.stepsPerEpoch);
  run.lastLoss = loss;
  run.epochLossSum += loss;
  run.epochSteps++;
  run.epochStepsHere++;
  run.epochLossSums.push(run.epochLossSum);
  if (session.snapshot.step === committed) session.snapshot.epochProgress = epochProgressAt(run, committed);
  run.records.push({ step: committed, epoch, loss, timeMs: performance.now() });
  if (run.records.length >= METRICS_BATCH_STEPS) flushRecords(run);
  regrowMicroBatch(run);
  const { checkpointDir, checkpointIntervalSteps, onStep } = session.config;
  if (checkpointDir !== undefined && committed % checkpointIntervalSteps === 0) {
    castTo(system, session.pidOf('checkpoint'), new PersistRequest(session.snapshot.copy(), 'periodic'));
  }
  onStep?.({ step: committed, epoch, loss });
  if (committed % run.stepsPerEpoch === 0 || committed === run.plannedSteps) endEpoch(run, epoch);
}

/** The steps of the epoch before `committed` and their loss sum (the epoch `committed` falls in). */
function epochProgressAt(run: Run, committed: number): { steps: number; lossSum: number } {
  const steps = committed % run.stepsPerEpoch;
  if (steps === 0) return { steps: 0, lossSum: 0 };
  return { steps, lossSum: run.epochLossSums[steps - run.epochBaseSteps] };
}

function flushRecords(run: Run): void {
  if (run.records.length === 0) return;
  castTo(run.system, run.session.pidOf('metrics'), new StepRecords(run.records.splice(0)));
}

/** After `microBatchRegrowSteps` steps without running out of memory, try a micro-batch twice as big. */
function regrowMicroBatch(run: Run): void {
  const snapshot = run.session.snapshot;
  if (snapshot.microBatchSize >= run.session.config.batchSize) return;
  snapshot.stepsSinceOutOfMemory++;
  if (snapshot.stepsSinceOutOfMemory < run.session.config.microBatchRegrowSteps) return;
  snapshot.microBatchSize = Math.min(run.session.config.batchSize, snapshot.microBatchSize * 2);
  snapshot.stepsSinceOutOfMemory = 0;
}

function endEpoch(run: Run, epoch: number): void {
  const { session } = run;
  flushRecords(run);
  let testAccuracy: number | undefined;
  const evaluationStartedMs = performance.now();
  if (session.config.evaluateEachEpoch)
    testAccuracy = evaluateAccuracy(session.model!.module, session.data.test);
  const nowMs = performance.now();
  run.evaluationMs += nowMs - evaluationStartedMs;
  const seconds = (evaluationStartedMs - run.epochStartedMs) / 1000;
  const summary: EpochSummary = {
    epoch,
    meanLoss: run.epochSteps > 0 ? run.epochLossSum / run.epochSteps : Number.NaN,
    testAccuracy,
    stepsPerSec: seconds > 0 ? run.epochStepsHere / seconds : 0,
    steps: run.epochSteps,
    step: run.highestCommitted,
  };
  run.epochs.push(summary);
  session.config.onEpoch?.(summary);
  castTo(
    run.system,
    session.pidOf('metrics'),
    new EpochRecord(epoch, summary.meanLoss, testAccuracy, summary.stepsPerSec, summary.steps),
  );
  run.epochLossSum = 0;
  run.epochSteps = 0;
  run.epochStepsHere = 0;
  run.epochLossSums = [0];
  run.epochBaseSteps = 0;
  run.epochStartedMs = nowMs;
}

interface Diagnosis {
  readonly cause: RecoveryCause;
  readonly detail: string;
}

/** What failed, from the error a step's call ended with; errors that are not failures of a step are thrown on. */
function diagnose(failure: unknown): Diagnosis {
  if (failure instanceof OutOfMemory) return { cause: 'out_of_memory', detail: failure.message };
  if (failure instanceof TrainingError) throw failure;
  if (!(failure instanceof CallExit)) {
    if (isCallTimeout(failure)) return { cause: 'unexpected_crash', detail: failure.message };
    throw failure;
  }
  const reason = failure.reason;
  if (reason instanceof InjectedActorCrash) return { cause: `${reason.role}_crash`, detail: reason.message };
  if (reason instanceof DeviceFailure) {
    const raised =
      reason.deviceError === undefined ? '' : ` (${reason.deviceError.name}: ${reason.deviceError.message})`;
    return {
      cause: 'device_error',
      detail: `${reason.deviceId} failed${raised}; moved to ${reason.nextDeviceId}`,
    };
  }
  if (isTensorError(reason) && reason.reason === 'unavailable_on_device') {
    // The same op refuses the same device at every attempt: no restart can help.
    throw new TrainingError(
      'unavailable_on_device',
      `the model uses an op its device does not run yet (${reason.message}); train this model on the CPU (device 'cpu')`,
      { cause: reason },
    );
  }
  return { cause: 'unexpected_crash', detail: formatReason(reason) };
}

/** Out of memory: the next attempts run the batch in micro-batches half as big (never below 1 row). */
function halveMicroBatch(run: Run, step: number): string {
  const snapshot = run.session.snapshot;
  if (snapshot.microBatchSize <= 1) {
    throw new TrainingError(
      'out_of_memory_at_minimum',
      `step ${step} ran out of memory with micro-batches of 1 sample`,
    );
  }
  snapshot.microBatchSize = Math.ceil(snapshot.microBatchSize / 2);
  snapshot.stepsSinceOutOfMemory = 0;
  const { batchSize } = run.session.config;
  return `micro-batch ${snapshot.microBatchSize} x ${Math.ceil(batchSize / snapshot.microBatchSize)} accumulated (batch ${batchSize})`;
}

function countAttempt(run: Run, step: number, diagnosis: Diagnosis): void {
  run.attempts = run.failedStep === step ? run.attempts + 1 : 1;
  run.failedStep = step;
  if (run.attempts > TRAINING_LIMITS.maxAttemptsPerStep) {
    throw new TrainingError(
      'step_failed_repeatedly',
      `step ${step} failed ${run.attempts} times in a row; last: ${diagnosis.cause} (${diagnosis.detail})`,
    );
  }
}

async function recover(run: Run, failure: unknown, step: number): Promise<void> {
  const startedMs = performance.now();
  const { session, system } = run;
  if (session.failed !== undefined) throw session.failed;
  if (run.pending !== undefined) finishRecovery(run);
  const diagnosis = diagnose(failure);
  countAttempt(run, step, diagnosis);
  const raised = failure instanceof OutOfMemory ? failure.deviceError : undefined;
  const detail =
    diagnosis.cause === 'out_of_memory'
      ? `${halveMicroBatch(run, step)}${raised === undefined ? '' : ` after ${raised.name}: ${raised.message}`}`
      : diagnosis.detail;
  // The emergency checkpoint holds the last good state, copied before anything else can change it.
  const emergency = session.config.checkpointDir !== undefined ? session.snapshot.copy() : undefined;
  await session.whenReady();
  await system.call(session.pidOf('model'), new RestoreRequest(), STEP_CALL_TIMEOUT_MS);
  if (emergency !== undefined)
    castTo(system, session.pidOf('checkpoint'), new PersistRequest(emergency, 'emergency'));
  run.nextStep = session.snapshot.step;
  run.pending = {
    startedMs,
    cause: diagnosis.cause,
    step,
    detail,
    replayedSteps: step - session.snapshot.step,
  };
}

/** Training is back where it failed: log the recovery with its duration. */
function finishRecovery(run: Run): void {
  const pending = run.pending!;
  run.pending = undefined;
  const { startedMs, ...rest } = pending;
  const recovery: Recovery = { ...rest, recoveryMs: performance.now() - startedMs };
  run.recoveries.push(recovery);
  castTo(run.system, run.session.pidOf('metrics'), new RecoveryRecord(recovery));
  run.session.config.onRecovery?.(recovery);
}

async function finish(run: Run, loopMs: number, startedMs: number): Promise<TrainingResult> {
  const { session, system } = run;
  const interrupted = run.nextStep < run.plannedSteps;
  if (session.config.checkpointDir !== undefined) {
    const reason = interrupted ? 'interrupted' : 'final';
    castTo(system, session.pidOf('checkpoint'), new PersistRequest(session.snapshot.copy(), reason));
    await system.call(session.pidOf('checkpoint'), new FlushRequest(), STEP_CALL_TIMEOUT_MS);
  }
  const model = session.model!.module;
  const finalTestAccuracy = interrupted ? Number.NaN : evaluateAccuracy(model, session.data.test);
  const audit = session.lineage.audit(session.data.train.length, run.firstPosition, run.nextStep);
  const stepsRun = run.nextStep - run.firstStep;
  return {
    model,
    finalTestAccuracy,
    loss: run.lastLoss,
    elapsedMs: performance.now() - startedMs,
    steps: run.nextStep,
    stepsPerSec: loopMs > 0 ? (stepsRun / loopMs) * 1000 : 0,
    recoveries: run.recoveries,
    lostSteps: audit.lostSteps,
    weightsSha256: weightsSha256(model),
    epochs: run.epochs,
    resumedFromStep: run.firstStep,
    devicesUsed: session.devicesUsed,
    tensorBackend: session.tensorBackend,
    finalMicroBatchSize: session.snapshot.microBatchSize,
    dataset: session.data.name ?? 'in-memory',
    faultsInjected: run.plan.injector.counts(),
    snapshotIntervalSteps: run.policy.intervalSteps,
    interrupted,
  };
}
