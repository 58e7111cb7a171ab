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
import type { Batch } from '../data/DataLoader.js';
import { labelSizeOf } from '../data/Dataset.js';
import { DeviceFailure, InjectedActorCrash, TrainingError } from './errors.js';
import { CaptureRequest, CrashRequest, RestoreRequest, STEP_OUT_OF_MEMORY, StepRequest } from './messages.js';
import type { LiveModel, TrainingSession } from './TrainingSession.js';
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
  const { snapshot } = session;
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
    snapshot.microBatchSize,
    labelSizeOf(session.data.train),
  );
  const computedMs = performance.now();
  // Injected faults strike after the update, so the live weights are already changed: recovery
  // must restore them from the snapshot, not just run on.
  if (request.faults.crash === 'model') throw new InjectedActorCrash('model', request.step);
  if (request.faults.deviceError) {
    const failed = session.deviceId;
    const next = session.deviceFailed(request.step, session.system.clock.now());
    throw new DeviceFailure(failed, request.step, next);
  }
  session.timing.stepMs = computedMs - startedMs;
  session.timing.captureMs = undefined;
  if (request.capture) {
    snapshot.capture(parts, request.step + 1);
    session.timing.captureMs = performance.now() - computedMs;
  }
  session.lineage.commit(request.step, epoch, start, batch.size);
  return loss;
}

export const ModelActor: GenServer<ModelState, TrainingSession> = {
  init(session: TrainingSession, context: Context): ModelState {
    const live = buildLiveModel(session);
    // Only the weights and generators here; the optimizer and loader restore in their own init.
    session.snapshot.restoreWeights(live.parameters, live.randoms);
    session.model = live;
    session.register('model', context.self);
    return { session, live };
  },

  handleCall(request: unknown, _from: CallFrom, state: ModelState): CallResult<ModelState> {
    if (request instanceof StepRequest) return reply(runStep(state, request), state);
    if (request instanceof RestoreRequest) {
      state.session.snapshot.restore(state.session.parts());
      return reply(state.session.snapshot.step, state);
    }
    if (request instanceof CaptureRequest) {
      state.session.snapshot.capture(state.session.parts(), 0);
      return reply(0, state);
    }
    if (request instanceof CrashRequest) throw new InjectedActorCrash('model', request.step);
    throw new TrainingError('invalid_config', `the model actor got an unknown request ${String(request)}`);
  },
};
