/**
 * zbmd's ML core: tensors, autograd, layers, losses, optimizers and a plain training loop, on a
 * CPU backend whose matrix products go through OpenBLAS when it is installed (Debian's
 * libopenblas0-pthread; otherwise a TypeScript fallback, announced once on stderr).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { Adam, DataLoader, InMemoryDataset, Linear, ReLU, Sequential, manualSeed, trainPlain } from 'zbmd/ml';
 *
 * manualSeed(42);
 * // XOR; `await loadFashionMnist()` gives { train, test } datasets the same way
 * const train = new InMemoryDataset({
 *   features: new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]),
 *   labels: new Int32Array([0, 1, 1, 0]),
 *   featureShape: [2],
 * });
 * const model = new Sequential(new Linear(2, 16), new ReLU(), new Linear(16, 2));
 * const optimizer = new Adam(model.parameters(), { learningRate: 1e-2 });
 * const loader = new DataLoader(train, { batchSize: 4, shuffle: true, seed: 42 });
 * const { epochLosses } = trainPlain({ model, optimizer, loader, epochs: 200 });
 * assert.ok(epochLosses.at(-1)! < epochLosses[0]!);
 * ```
 */

// The public names, module by module: a new export of a module is public once it is listed here.
export { backward, disposeGraph } from './autograd.js';
export {
  type Batch,
  CharTokenizer,
  CSV_MAX_BYTES,
  CSV_MAX_CLASSES,
  type CsvDatasetOptions,
  DATA_LOADER_MAX_BATCH_SIZE,
  DataLoader,
  DataLoaderError,
  type DataLoaderErrorCode,
  type DataLoaderOptions,
  type Dataset,
  DatasetError,
  type DatasetErrorCode,
  DEFAULT_TEXT_CORPUS,
  type DefaultDatasets,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  FLOAT32_MAX,
  featureSizeOf,
  generateTinyDataset,
  hasMnistFiles,
  IDX_MAX_BYTES,
  IDX_MAX_DIMENSIONS,
  type IdxArray,
  type IdxDatasetOptions,
  type IdxDataType,
  InMemoryDataset,
  type InMemoryDatasetInit,
  idxDataset,
  isDataLoaderError,
  isDatasetError,
  type LoaderState,
  labelSizeOf,
  loadDefaultDataset,
  loadFashionMnist,
  loadMnistFormat,
  parseCsvDataset,
  parseIdx,
  readCsvDataset,
  readIdxDataset,
  readIdxFile,
  readTextCorpus,
  sequenceDataset,
  serializeIdx,
  sliceDataset,
  TEXT_CORPUS_MAX_BYTES,
  TEXT_TEST_FRACTION,
  TEXT_VOCABULARY_MAX,
  type TextCorpus,
  TINY_DATASET_CLASSES,
  TINY_DATASET_DIR,
  TINY_DATASET_IMAGE_SIDE,
  type TinyDatasetOptions,
  type TinySplit,
  type TrainTestDatasets,
  textCorpus,
  writeIdxFile,
  writeTinyDataset,
} from './data/index.js';
export { DEVICE_OP_NAMES, type DeviceOpName } from './deviceOps.js';
export {
  bytesPerElement,
  DTYPES,
  type Dtype,
  decodeStorage,
  dequantizeInt8,
  encodeStorage,
  quantizeInt8,
  type Storage,
} from './dtype.js';
export * from './elastic/index.js';
export { isTensorError, TensorError, type TensorErrorReason } from './errors.js';
export {
  type BlasBackendName,
  blasBackend,
  blasInfo,
  setBlasBackend,
  setBlasThreads,
} from './internal/blas.js';
export { clearBufferPools } from './internal/pool.js';
export {
  accuracy,
  type CrossEntropyOptions,
  crossEntropy,
  type LossOptions,
  labelsOf,
  mseLoss,
  nllLoss,
  type Reduction,
} from './losses.js';
export {
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  type ElementwiseLossOptions,
  type ElementwiseReduction,
  huberLoss,
  type KlDivOptions,
  klDiv,
  type LogitsLossOptions,
  l1Loss,
  smoothL1Loss,
  type WeightedLossOptions,
} from './lossesExtra.js';
export {
  buildSavedModel,
  isModelFileError,
  type LoadedModel,
  loadModel,
  MODEL_MANIFEST_FILE,
  MODEL_TENSORS_FILE,
  ModelFileError,
  type ModelFileErrorReason,
  SAVED_MODEL_KINDS,
  type SavedModelKind,
  type SavedModelManifest,
  type SavedModelSpec,
  saveModel,
} from './modelFiles.js';
export {
  ELU,
  LeakyReLU,
  SiLU,
  Softplus,
} from './nn/activations.js';
export {
  type AttendOptions,
  type AttentionLayerOptions,
  type CausalAlignment,
  MultiHeadAttention,
  TransformerBlock,
  type TransformerBlockOptions,
} from './nn/attention.js';
export {
  AdaptiveAvgPool1d,
  AdaptiveAvgPool2d,
  Conv1d,
  type Conv1dLayerOptions,
  ConvTranspose2d,
  type ConvTranspose2dLayerOptions,
} from './nn/convolution.js';
export {
  CausalSelfAttention,
  causalSoftmax,
  checkGptConfig,
  GPT_LIMITS,
  Gpt,
  GptBlock,
  type GptConfig,
  GptConfigError,
  type GptConfigField,
  type GptOptions,
  generateTokens,
  isGptConfigError,
  MAX_GENERATED_TOKENS,
  type SamplingOptions,
  sampleToken,
} from './nn/gpt.js';
export {
  calculateGain,
  constantInit,
  constantParameter,
  fans,
  init,
  initRandom,
  type KaimingOptions,
  kaimingNormal,
  kaimingUniform,
  manualSeed,
  type Nonlinearity,
  normalParameter,
  orthogonal,
  type SeededInit,
  uniformParameter,
  xavierNormal,
  xavierUniform,
} from './nn/init.js';
export {
  AvgPool2d,
  Conv2d,
  type Conv2dLayerOptions,
  Dropout,
  Embedding,
  Flatten,
  GELU,
  type InitOptions,
  LayerNorm,
  Linear,
  LogSoftmax,
  MaxPool2d,
  ReLU,
  Reshape,
  Sequential,
  Sigmoid,
  Softmax,
  Tanh,
} from './nn/layers.js';
export {
  Module,
  ModuleBuffer,
  Parameter,
  type StateDict,
  type TensorState,
  zeroGradient,
} from './nn/Module.js';
export {
  BatchNorm1d,
  BatchNorm2d,
  type BatchNormOptions,
  GroupNorm,
  type GroupNormOptions,
  RMSNorm,
  type RMSNormOptions,
} from './nn/norms.js';
export {
  fromPyTorchStateDict,
  loadPyTorchSafetensors,
  loadPyTorchStateDict,
  type PyTorchName,
  pytorchNames,
  pytorchStateDict,
  readStateDictFile,
  savePyTorchSafetensors,
} from './nn/pytorch.js';
export {
  GRU,
  type LayerWeights,
  LSTM,
  type RecurrentOptions,
  type RecurrentResult,
} from './nn/recurrent.js';
export {
  type DecoderMasks,
  type EncoderMasks,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
  type TransformerEncoderLayerOptions,
} from './nn/transformer.js';
export {
  type ActivationName,
  type ActivationParameters,
  composedActivation,
  elu,
  geluTanh,
  leakyRelu,
  silu,
  softplus,
} from './ops/activations.js';
export {
  adaptiveAvgPool1d,
  adaptiveAvgPool2d,
} from './ops/adaptivePool.js';
export {
  expand,
  sumTo,
} from './ops/broadcast.js';
export {
  type ClampBounds,
  clamp,
  eq,
  ge,
  gt,
  le,
  lt,
  maskedFill,
  maximum,
  minimum,
  ne,
  where,
} from './ops/compare.js';
export {
  avgPool2d,
  CONV_GEOMETRY_FIELDS,
  type Conv2dOptions,
  type ConvGeometry,
  type ConvGeometryField,
  conv2d,
  maxPool2d,
  type Pool2dOptions,
} from './ops/conv.js';
export {
  type Conv1dOptions,
  type ConvTranspose2dOptions,
  conv1d,
  convTranspose2d,
  type Pair,
} from './ops/convTranspose.js';
export { einsum } from './ops/einsum.js';
export {
  add,
  div,
  erf,
  exp,
  gelu,
  log,
  mul,
  neg,
  type Operand,
  pow,
  relu,
  sigmoid,
  sqrt,
  sub,
  tanh,
} from './ops/elementwise.js';
export {
  chunk,
  flip,
  gather,
  indexSelect,
  pad,
  repeat,
  type SortOptions,
  scatter,
  sort,
  split,
  squeeze,
  stack,
  type TopkOptions,
  topk,
  type ValuesAndIndices,
} from './ops/indexing.js';
export {
  abs,
  cos,
  rsqrt,
  sign,
  sin,
} from './ops/math.js';
export {
  dot,
  linear,
  matmul,
} from './ops/matmul.js';
export {
  type AttentionOptions,
  causalMask,
  dropout,
  embedding,
  layerNorm,
  scaledDotProductAttention,
} from './ops/neural.js';
export {
  argmax,
  max,
  mean,
  planReduction,
  type ReduceOptions,
  type ReductionPlan,
  sum,
  tieShares,
} from './ops/reduce.js';
export {
  concat,
  contiguous,
  flatten,
  permute,
  reshape,
  slice,
  transpose,
  unsqueeze,
} from './ops/shape.js';
export {
  logSoftmax,
  softmax,
} from './ops/softmax.js';
export {
  argmin,
  cumsum,
  logSumExp,
  min,
  type NormOptions,
  norm,
  prod,
  std,
  type VarianceOptions,
  variance,
} from './ops/statistics.js';
export {
  Adam,
  type AdamOptions,
  AdamW,
} from './optim/Adam.js';
export {
  clipGradNorm,
  clipGradValue,
} from './optim/clip.js';
export {
  type GroupState,
  Optimizer,
  type OptimizerParameters,
  type OptimizerState,
  type ParameterGroup,
  type ParameterGroupSpec,
} from './optim/Optimizer.js';
export {
  Adagrad,
  type AdagradOptions,
  RMSprop,
  type RmspropOptions,
} from './optim/RMSprop.js';
export {
  SGD,
  type SgdOptions,
} from './optim/SGD.js';
export {
  applySchedule,
  constantSchedule,
  cosineSchedule,
  exponentialSchedule,
  type LearningRateSchedule,
  multiStepSchedule,
  type OneCycleOptions,
  oneCycleSchedule,
  type PlateauOptions,
  type PlateauState,
  ReduceLearningRateOnPlateau,
  stepSchedule,
  warmRestartsSchedule,
  warmupSchedule,
} from './optim/schedules.js';
export {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  float32ToSafetensorsEntry,
  isSafetensorsDtype,
  isSafetensorsError,
  parseSafetensors,
  readSafetensorsFile,
  SAFETENSORS_DTYPES,
  SAFETENSORS_MAX_HEADER_BYTES,
  SAFETENSORS_METADATA_KEY,
  type SafetensorsDtype,
  type SafetensorsEntry,
  SafetensorsError,
  type SafetensorsErrorCode,
  type SafetensorsFile,
  type SafetensorsFloat32Convertible,
  safetensorsByteSize,
  safetensorsDtypeBits,
  safetensorsEntryToFloat32,
  serializeSafetensors,
  writeSafetensorsFile,
} from './safetensors.js';
export type { DevicePlacement } from './Tensor.js';
export {
  type Device,
  detach,
  dispose,
  fromData,
  full,
  type GradNode,
  indexTensor,
  indexValues,
  isContiguous,
  isGradEnabled,
  item,
  noGrad,
  ones,
  rand,
  randn,
  scalar,
  sizeOf,
  Tensor,
  type TensorOptions,
  tensor,
  to,
  toArray,
  toDtype,
  zeros,
} from './Tensor.js';
export {
  type BatchSource,
  classRows,
  evaluateAccuracy,
  type LossFunction,
  type StepInfo,
  type TrainBatch,
  type TrainPlainOptions,
  type TrainResult,
  trainPlain,
  trainStep,
} from './train.js';
export {
  buildCnn,
  buildGpt,
  buildMlp,
  CHECKPOINT_FILES_KEPT,
  CHECKPOINT_SHUTDOWN_MS,
  type CheckpointManifest,
  DeviceFailure,
  type EpochReport,
  type EpochSummary,
  FaultPlan,
  GPT_TRAINING_DEFAULTS,
  type GptCheckpoint,
  type GptTrainingOptions,
  InjectedActorCrash,
  isDeviceFailure,
  isInjectedActorCrash,
  isOutOfMemory,
  isTrainingError,
  type LineageAudit,
  loadGptCheckpoint,
  loadTrainingData,
  MANIFEST_FILE,
  METRICS_BATCH_STEPS,
  MLP_HIDDEN_UNITS,
  type ModelFactory,
  type ModelShape,
  NO_STEP_FAULTS,
  type OptimizerName,
  OutOfMemory,
  PROGRESS_INTERVAL_MS,
  type ProgressWriter,
  type Recovery,
  type RecoveryCause,
  type ResolvedGptOptions,
  type ResolvedTrainingConfig,
  type RunIdentity,
  readManifest,
  resolveTrainingConfig,
  runTrainingStep,
  SNAPSHOT_MAX_INTERVAL_STEPS,
  SNAPSHOT_OVERHEAD_TARGET,
  SnapshotPolicy,
  STEP_CALL_TIMEOUT_MS,
  type StartReport,
  type StepFaults,
  StepLineage,
  type StepReport,
  startTrainingSupervisor,
  TRAINING_LIMITS,
  TRAINING_ROLES,
  type TrainingConfig,
  type TrainingData,
  TrainingError,
  type TrainingErrorCode,
  type TrainingResult,
  type TrainingRole,
  type TrainingStarted,
  train,
  weightsSha256,
} from './training/index.js';
