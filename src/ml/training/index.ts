/**
 * Fault-tolerant training (seeds/001 ch. 5, 9, 10): `train(config)` runs a model under the
 * rest_for_one `TrainingSupervisor` (model, optimizer, dataloader, checkpoint and metrics
 * actors), snapshots its state in memory (every step while that costs under 1% of a step, else
 * every few steps, replaying the steps since on recovery), persists safetensors checkpoints in
 * the background, and
 * recovers from actor crashes, out-of-memory (micro-batching) and device errors without losing
 * or repeating a step; `resume: true` continues a killed run from its last checkpoint.
 */
export {
  CHECKPOINT_FILES_KEPT,
  type CheckpointManifest,
  MANIFEST_FILE,
  type RunIdentity,
  readManifest,
} from './checkpointFiles.js';
export {
  DeviceFailure,
  InjectedActorCrash,
  isDeviceFailure,
  isInjectedActorCrash,
  isOutOfMemory,
  isTrainingError,
  OutOfMemory,
  TRAINING_ROLES,
  TrainingError,
  type TrainingErrorCode,
  type TrainingRole,
} from './errors.js';
export { FaultPlan, NO_STEP_FAULTS, type StepFaults } from './FaultPlan.js';
export { type GptCheckpoint, loadGptCheckpoint } from './gptCheckpoint.js';
export { METRICS_BATCH_STEPS, PROGRESS_INTERVAL_MS } from './MetricsActor.js';
export { buildCnn, buildGpt, buildMlp, MLP_HIDDEN_UNITS } from './models.js';
export { SNAPSHOT_MAX_INTERVAL_STEPS, SNAPSHOT_OVERHEAD_TARGET, SnapshotPolicy } from './SnapshotPolicy.js';
export { type LineageAudit, StepLineage } from './StepLineage.js';
export {
  type EpochReport,
  GPT_TRAINING_DEFAULTS,
  type GptTrainingOptions,
  type ModelFactory,
  type ModelShape,
  type OptimizerName,
  type ProgressWriter,
  type Recovery,
  type RecoveryCause,
  type ResolvedGptOptions,
  type ResolvedTrainingConfig,
  resolveTrainingConfig,
  type StartReport,
  type StepReport,
  TRAINING_LIMITS,
  type TrainingConfig,
  type TrainingData,
  type TrainingStarted,
} from './TrainingConfig.js';
export { CHECKPOINT_SHUTDOWN_MS, startTrainingSupervisor } from './TrainingSupervisor.js';
export { type EpochSummary, STEP_CALL_TIMEOUT_MS, type TrainingResult, train } from './train.js';
export { loadTrainingData } from './trainingData.js';
export { runTrainingStep } from './trainingStep.js';
export { weightsSha256 } from './weightsHash.js';
