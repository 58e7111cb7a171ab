/**
 * Everything a run needs before its actors start: the validated configuration, the data, the
 * devices and the one to start on, the snapshot (empty, or loaded from the last checkpoint when
 * resuming), the step lineage and the fault plan.
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import { Random } from '../../actor/Random.js';
import { detectDevices, InvalidDeviceSpec, parseDeviceSpec } from '../../gpu/detect.js';
import type { DeviceInfo } from '../../gpu/types.js';
import { type RunIdentity, readCheckpoint } from './checkpointFiles.js';
import { TrainingError } from './errors.js';
import { FaultPlan } from './FaultPlan.js';
import { modelFactoryOf } from './models.js';
import { claimDirectory } from './runDirectory.js';
import { StepLineage } from './StepLineage.js';
import type { ResolvedTrainingConfig, TrainingData } from './TrainingConfig.js';
import { TrainingSession } from './TrainingSession.js';
import { TrainingSnapshot } from './TrainingSnapshot.js';

export interface PreparedRun {
  readonly session: TrainingSession;
  readonly plan: FaultPlan;
  readonly plannedSteps: number;
  readonly stepsPerEpoch: number;
  /** Steps already committed when this process started (0, or the resumed step). */
  readonly firstStep: number;
  readonly firstPosition: { epoch: number; position: number };
}

function startingDevice(config: ResolvedTrainingConfig, devices: readonly DeviceInfo[]): string {
  if (devices.length === 0) throw new TrainingError('invalid_config', 'no device to train on');
  if (config.device === undefined) return devices[0].id;
  let id: string;
  try {
    const spec = parseDeviceSpec(config.device);
    id = `${spec.backend}:${spec.index}`;
  } catch (error) {
    if (error instanceof InvalidDeviceSpec)
      throw new TrainingError('invalid_config', error.message, { cause: error });
    throw error;
  }
  if (!devices.some((device) => device.id === id)) {
    throw new TrainingError(
      'invalid_config',
      `device ${id} is not present; devices here: ${devices.map((device) => device.id).join(', ')}`,
    );
  }
  return id;
}

function identityOf(
  config: ResolvedTrainingConfig,
  data: TrainingData,
  parameterNames: string[],
): RunIdentity {
  return {
    model: typeof config.model === 'string' ? config.model : `factory:${config.model.name || 'anonymous'}`,
    optimizer: config.optimizer,
    batchSize: config.batchSize,
    seed: config.seed,
    shuffle: config.shuffle,
    datasetLength: data.train.length,
    parameterNames,
    ...(config.gpt === undefined ? {} : { gpt: { ...config.gpt } }),
    ...(data.vocabulary === undefined ? {} : { vocabulary: data.vocabulary }),
  };
}

export async function prepareRun(
  system: ActorSystem,
  config: ResolvedTrainingConfig,
  data: TrainingData,
): Promise<PreparedRun> {
  const devices = config.devices ?? (await detectDevices()).devices;
  const factory = modelFactoryOf(config.model, config.gpt);
  const shape = { featureShape: data.train.featureShape, numClasses: data.train.numClasses };
  const probe = factory(shape, new Random(config.seed));
  const named = probe.namedParameters();
  const parameterNames = named.map(([name]) => name);
  const parameterShapes = named.map(([, parameter]) => [...parameter.shape]);
  const identity = identityOf(config, data, parameterNames);
  const snapshot = new TrainingSnapshot(
    parameterNames,
    parameterShapes,
    config.batchSize,
    startingDevice(config, devices),
  );
  if (config.resume) {
    const copy = await readCheckpoint(config.checkpointDir!, identity, parameterShapes);
    snapshot.load(copy);
    if (!devices.some((device) => device.id === copy.deviceId))
      snapshot.deviceId = startingDevice(config, devices);
  } else if (config.checkpointDir !== undefined) {
    await claimDirectory(config.checkpointDir, config.fresh);
  }
  const stepsPerEpoch = Math.ceil(data.train.length / config.batchSize);
  const plannedSteps = Math.min(config.maxSteps, config.epochs * stepsPerEpoch);
  const firstStep = snapshot.step;
  if (firstStep > plannedSteps) {
    throw new TrainingError(
      'checkpoint_mismatch',
      `the checkpoint is at step ${firstStep}, past the ${plannedSteps} steps planned`,
    );
  }
  const lineage = new StepLineage(plannedSteps, firstStep);
  const session = new TrainingSession(
    system,
    config,
    data,
    shape,
    factory,
    snapshot,
    lineage,
    devices,
    identity,
  );
  const plan = new FaultPlan(config.faults);
  plan.fastForward(firstStep, snapshot.deviceId);
  const firstPosition = snapshot.loader === undefined ? { epoch: 0, position: 0 } : { ...snapshot.loader };
  return { session, plan, plannedSteps, stepsPerEpoch, firstStep, firstPosition };
}
