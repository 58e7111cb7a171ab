/**
 * The model actor: builds the model (fresh weights from the run's seed, then the last snapshot
 * if there is one), owns its parameters, and runs each step. A step is one call: the batch comes
 * from the dataloader actor's loader and the update from the optimizer actor's optimizer, by
 * plain function calls on the buffers they own, then the new state is snapshotted. The step is
 * committed only once the snapshot is taken: a crash in between leaves the snapshot of the step
 * before, and the steps since it are run again after the restart (see `SnapshotPolicy`).
 */
import type { CallFrom, Context } from '../../actor/ActorSystem.js';
import { type CallResult, type GenServer, reply } from '../../actor/GenServer.js';
import { Random } from '../../actor/Random.js';
import type { Device as GpuDevice } from '../../gpu/Device.js';
import {
  DeviceError,
  isDeviceError,
  isOutOfDeviceMemory,
  KernelTimeout,
  OutOfDeviceMemory,
} from '../../gpu/errors.js';
import type { FaultDecision } from '../../gpu/types.js';
import type { Batch } from '../data/DataLoader.js';
import { labelSizeOf } from '../data/Dataset.js';
import { DeviceReplica, type DeviceSlotAccess, runDeviceStep } from './deviceReplica.js';
import { DeviceFailure, InjectedActorCrash, TrainingError } from './errors.js';
import type { StepFaults } from './FaultPlan.js';
import {
  CaptureRequest,
  CrashRequest,
  MoveRequest,
  RestoreRequest,
  STEP_OUT_OF_MEMORY,
  StepRequest,
} from './messages.js';
import { attachOptimizer } from './OptimizerActor.js';
import type { LiveModel, TensorBackend, TrainingSession } from './TrainingSession.js';
import { findRandoms } from './TrainingSnapshot.js';
import { runTrainingStep } from './trainingStep.js';

interface ModelState {
  readonly session: TrainingSession;
  readonly live: LiveModel;
}

/** Builds the model from the run's seed and the model factory. */
export function buildLiveModel(session: TrainingSession): LiveModel {
  const module = session.factory(session.shape, new Random(session.config.seed));
  const named = module.namedParameters();
  return { module, parameters: named.map(([, parameter]) => parameter), randoms: findRandoms(module) };
}

function nextBatch(session: TrainingSession): Batch {
  const loader = session.loader!;
  const batch = loader.next() ?? loader.next();
  if (batch === undefined) throw new TrainingError('invalid_data', 'the data loader produced no batch');
  return batch;
}

/** One step; returns its loss, or `STEP_OUT_OF_MEMORY`. Throws the injected crash or device error. */
function runStep(state: ModelState, request: StepRequest): number | typeof STEP_OUT_OF_MEMORY {
  const { session, live } = state;
  const parts = session.parts();
  if (request.faults.outOfMemory) return STEP_OUT_OF_MEMORY;
  const batch = nextBatch(session);
  const loader = parts.loader as NonNullable<TrainingSession['loader']>;
  const epoch = loader.epoch;
  const start = loader.position - batch.size;
  const startedMs = performance.now();
  const loss = runTrainingStep(
    live.module,
    parts.optimizer.optimizer,
    batch,
    session.snapshot.microBatchSize,
    labelSizeOf(session.data.train),
  );
  const computedMs = performance.now();
  afterStep(session, request, computedMs - startedMs);
  if (request.capture) {
    session.snapshot.capture(parts, request.step + 1);
    session.timing.captureMs = performance.now() - computedMs;
  }
  session.lineage.commit(request.step, epoch, start, batch.size);
  return loss;
}

/**
 * Injected faults strike after the update, so the live weights are already changed: recovery
 * must restore them from the snapshot, not just run on.
 */
function afterStep(session: TrainingSession, request: StepRequest, stepMs: number): void {
  if (request.faults.crash === 'model') throw new InjectedActorCrash('model', request.step);
  if (session.replica === undefined && (request.faults.deviceError || request.faults.kernelTimeout)) {
    const failed = session.deviceId;
    const next = session.deviceFailed(request.step, session.system.clock.now());
    throw new DeviceFailure(failed, request.step, next);
  }
  session.timing.stepMs = stepMs;
  session.timing.captureMs = undefined;
}

/**
 * One step on the replica's device. The device's own errors decide what happens: an
 * `OutOfDeviceMemory` is `STEP_OUT_OF_MEMORY` (the driver halves the micro-batch); any other
 * `DeviceError` (a failed launch, a kernel past the watchdog) marks the device failed and
 * crashes the actor with a `DeviceFailure` naming that error, so the restart moves training on.
 */
async function stepOnDevice(
  state: ModelState,
  replica: DeviceReplica,
  request: StepRequest,
): Promise<number | typeof STEP_OUT_OF_MEMORY> {
  const { session } = state;
  const parts = session.parts();
  const optimizer = parts.optimizer as DeviceSlotAccess;
  // The plan's device faults are struck by the device itself, at one of the step's launches.
  session.stepFaults.beginStep(request.step, deviceFaultOf(request.faults));
  const batch = nextBatch(session);
  const loader = parts.loader as NonNullable<TrainingSession['loader']>;
  const epoch = loader.epoch;
  const start = loader.position - batch.size;
  const startedMs = performance.now();
  let loss: number;
  try {
    loss = await runDeviceStep(
      replica,
      optimizer.optimizer,
      batch,
      session.snapshot.microBatchSize,
      session.data.train.labelShape,
    );
    if (session.stepFaults.pending) throw lateFault(replica.device.id, session.stepFaults.strikeLate());
  } catch (error) {
    throw deviceStepFailure(session, request.step, error);
  }
  const computedMs = performance.now();
  afterStep(session, request, computedMs - startedMs);
  if (request.capture) {
    try {
      await captureFromDevice(session, replica, optimizer, request.step + 1);
    } catch (error) {
      throw deviceStepFailure(session, request.step, error);
    }
    session.timing.captureMs = performance.now() - computedMs;
  }
  session.lineage.commit(request.step, epoch, start, batch.size);
  return loss;
}

/** A planned fault the step's launches did not reach, raised at its read-back as the device would. */
function lateFault(deviceId: string, decision: FaultDecision): DeviceError {
  const operation = 'step read-back';
  if (decision === 'oom') return new OutOfDeviceMemory(deviceId, operation, 0, 0, 'injected');
  if (decision === 'timeout') return new KernelTimeout(deviceId, operation, 0);
  return new DeviceError(deviceId, operation, 'injected device error');
}

function deviceFaultOf(faults: StepFaults): FaultDecision {
  if (faults.deviceError) return 'error';
  if (faults.outOfMemory) return 'oom';
  if (faults.kernelTimeout) return 'timeout';
  return 'ok';
}

/** What a device error in a step becomes: out-of-memory as a value, other device errors as a device failure. */
function deviceStepFailure(session: TrainingSession, step: number, error: unknown): unknown {
  if (isOutOfDeviceMemory(error)) return new StepOutOfDeviceMemory(error);
  if (!isDeviceError(error)) return error;
  const failed = session.deviceId;
  const next = session.deviceFailed(step, session.system.clock.now());
  session.discardDevice(failed);
  return new DeviceFailure(failed, step, next, error);
}

/** Thrown inside the actor only: caught by `handleCall` and answered as `STEP_OUT_OF_MEMORY`. */
class StepOutOfDeviceMemory {
  constructor(readonly error: OutOfDeviceMemory) {}
}

async function captureFromDevice(
  session: TrainingSession,
  replica: DeviceReplica,
  optimizer: DeviceSlotAccess,
  step: number,
): Promise<void> {
  await replica.pullWeights();
  await optimizer.pull();
  session.snapshot.capture(session.parts(), step);
}

/** Writes the snapshot into the host mirror, then into the device's buffers. */
function restoreToDevice(session: TrainingSession): void {
  const optimizer = session.optimizer?.optimizer;
  if (session.replica !== undefined && optimizer !== undefined) {
    // A step a device error ended inside the update advanced some parameters' own step counts
    // and not the optimizer's; every parameter steps every step here, so they are realigned
    // before the restore moves them all by the same amount.
    optimizer.parameterSteps.fill(optimizer.stepCount);
  }
  session.snapshot.restore(session.parts());
  if (session.replica === undefined) return;
  session.replica.pushWeights();
  (session.optimizer as DeviceSlotAccess | undefined)?.push();
}

export const ModelActor: GenServer<ModelState, TrainingSession> = {
  async init(session: TrainingSession, context: Context): Promise<ModelState> {
    const live = buildLiveModel(session);
    session.model = undefined;
    // Only the weights and generators here; the optimizer and loader restore in their own init.
    await attachModel(session, live);
    session.model = live;
    session.register('model', context.self);
    return { session, live };
  },

  async handleCall(request: unknown, _from: CallFrom, state: ModelState): Promise<CallResult<ModelState>> {
    const { session } = state;
    if (request instanceof StepRequest) {
      const replica = session.replica;
      if (replica === undefined) return reply(runStep(state, request), state);
      try {
        return reply(await stepOnDevice(state, replica, request), state);
      } catch (error) {
        if (error instanceof StepOutOfDeviceMemory) {
          session.lastOutOfMemory = error.error;
          return reply(STEP_OUT_OF_MEMORY, state);
        }
        throw error;
      }
    }
    if (request instanceof RestoreRequest) {
      restoreToDevice(session);
      return reply(session.snapshot.step, state);
    }
    if (request instanceof CaptureRequest) {
      const replica = session.replica;
      if (replica === undefined) session.snapshot.capture(session.parts(), 0);
      else await captureFromDevice(session, replica, session.optimizer as DeviceSlotAccess, 0);
      return reply(0, state);
    }
    if (request instanceof MoveRequest) {
      await moveDevice(state, request);
      return reply(request.step, state);
    }
    if (request instanceof CrashRequest) throw new InjectedActorCrash('model', request.step);
    throw new TrainingError('invalid_config', `the model actor got an unknown request ${String(request)}`);
  },
};

/**
 * Puts the model where the session's device computes: on the host, or a replica on the device
 * (built from the seed, then given the snapshot's weights). Releases the previous replica.
 */
async function attachModel(session: TrainingSession, live: LiveModel): Promise<void> {
  session.replica?.release();
  session.replica = undefined;
  const device = await session.computeDevice();
  const replica =
    device === undefined ? undefined : await DeviceReplica.create(session, device, live.parameters);
  session.snapshot.restoreWeights(live.parameters, replica?.randoms ?? live.randoms);
  replica?.pushWeights();
  session.replica = replica;
  session.tensorBackend = tensorBackendOf(device);
}

/** A device move: capture on the old device, rebuild model and optimizer on the new one. */
async function moveDevice(state: ModelState, request: MoveRequest): Promise<void> {
  const { session, live } = state;
  if (session.replica === undefined) session.snapshot.capture(session.parts(), request.step);
  else await captureFromDevice(session, session.replica, session.optimizer as DeviceSlotAccess, request.step);
  session.moveTo(request.deviceId);
  await attachModel(session, live);
  attachOptimizer(session, live);
  // The loader stays where it is: the snapshot just captured its position.
}

function tensorBackendOf(device: GpuDevice | undefined): TensorBackend {
  if (device === undefined) return 'cpu';
  return device.backendKind === 'cpu' ? 'cpu-reference' : device.backendKind;
}
