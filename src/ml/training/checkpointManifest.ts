/**
 * The checks of a training manifest (`latest.json`) read back from disk, in the manner of OTP's
 * `check_childspec`: one check per field, in order, each failure a `TrainingError`
 * `checkpoint_invalid` naming the field (`field` holds its path, such as `optimizer.stepCount`).
 * A manifest that parsed is not trusted: `checkManifest` checks what each field may hold;
 * `checkManifestAgainstRun` checks that the fields agree with one another and with the run
 * (the loader position and the optimizer's step count follow from the step).
 */
import type { LoaderState } from '../data/DataLoader.js';
import { TrainingError } from './errors.js';

export const MANIFEST_FORMAT = 'zbmd-training-checkpoint';
/** Why a manifest was written. */
export const CHECKPOINT_REASONS = ['periodic', 'emergency', 'final', 'interrupted'] as const;
/** The most classes a model may have (as for CSV labels). */
export const MAX_CLASSES = 65_536;
const MAX_BATCH_SIZE = 65_536;
const MAX_FEATURE_DIMENSIONS = 8;
/** The slots each optimizer kind holds once it has stepped (SGD's momentum appears at its first step). */
const OPTIMIZER_SLOTS: Readonly<Record<string, readonly string[]>> = {
  sgd: ['momentum'],
  adam: ['m', 'v'],
  adamw: ['m', 'v'],
};

/** The name of the tensors file of `step`. */
export function tensorsFileName(step: number): string {
  return `checkpoint-${String(step).padStart(10, '0')}.safetensors`;
}

type Fields = Record<string, unknown>;

/** A `checkpoint_invalid` error naming `field` of the manifest at `path`. */
export function invalidField(path: string, field: string, value: unknown, expected: string): TrainingError {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  return new TrainingError('checkpoint_invalid', `${path}: ${field} = ${shown}; expected ${expected}`, {
    field,
  });
}

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
}

function objectAt(path: string, fields: Fields, field: string): Fields {
  const value = fields[field];
  if (!isObject(value)) throw invalidField(path, field, value, 'an object');
  return value;
}

function countAt(path: string, fields: Fields, field: string, name: string, min = 0, max?: number): number {
  const value = fields[field];
  if (!isCount(value, min, max))
    throw invalidField(path, name, value, `an integer from ${min} to ${max ?? '2^53-1'}`);
  return value;
}

function stringAt(path: string, fields: Fields, field: string, name: string, pattern?: RegExp): string {
  const value = fields[field];
  if (typeof value !== 'string' || value.length === 0 || (pattern !== undefined && !pattern.test(value)))
    throw invalidField(
      path,
      name,
      value,
      pattern === undefined ? 'a non-empty string' : `a string matching ${pattern}`,
    );
  return value;
}

function checkRun(path: string, manifest: Fields): void {
  const run = objectAt(path, manifest, 'run');
  stringAt(path, run, 'model', 'run.model');
  const optimizer = run.optimizer;
  if (typeof optimizer !== 'string' || !Object.hasOwn(OPTIMIZER_SLOTS, optimizer))
    throw invalidField(path, 'run.optimizer', optimizer, "'sgd', 'adam' or 'adamw'");
  countAt(path, run, 'batchSize', 'run.batchSize', 1, MAX_BATCH_SIZE);
  countAt(path, run, 'seed', 'run.seed');
  if (typeof run.shuffle !== 'boolean') throw invalidField(path, 'run.shuffle', run.shuffle, 'a boolean');
  countAt(path, run, 'datasetLength', 'run.datasetLength', 1);
  const names = run.parameterNames;
  if (
    !Array.isArray(names) ||
    names.length === 0 ||
    !names.every((name) => typeof name === 'string' && name.length > 0) ||
    new Set(names).size !== names.length
  )
    throw invalidField(path, 'run.parameterNames', names, 'a non-empty list of distinct names');
}

function checkOptimizer(path: string, manifest: Fields): void {
  const optimizer = objectAt(path, manifest, 'optimizer');
  const kind = optimizer.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(OPTIMIZER_SLOTS, kind))
    throw invalidField(path, 'optimizer.kind', kind, "'sgd', 'adam' or 'adamw'");
  countAt(path, optimizer, 'stepCount', 'optimizer.stepCount');
  const parameterSteps = optimizer.parameterSteps;
  const names = (manifest.run as Fields).parameterNames as unknown[];
  if (
    parameterSteps !== undefined &&
    (!Array.isArray(parameterSteps) ||
      parameterSteps.length !== names.length ||
      !parameterSteps.every((count) => isCount(count, 0)))
  )
    throw invalidField(
      path,
      'optimizer.parameterSteps',
      parameterSteps,
      `one integer >= 0 per parameter (${names.length}), none above optimizer.stepCount`,
    );
  const rate = optimizer.learningRate;
  if (typeof rate !== 'number' || !(rate > 0 && rate <= 10))
    throw invalidField(path, 'optimizer.learningRate', rate, 'a number in (0, 10]');
  const slots = optimizer.slots;
  if (
    !Array.isArray(slots) ||
    !slots.every((slot) => typeof slot === 'string') ||
    new Set(slots).size !== slots.length
  )
    throw invalidField(path, 'optimizer.slots', slots, 'a list of distinct slot names');
}

function checkLoader(path: string, manifest: Fields): void {
  const loader = objectAt(path, manifest, 'loader');
  if (loader.version !== 1) throw invalidField(path, 'loader.version', loader.version, '1');
  countAt(path, loader, 'epoch', 'loader.epoch');
  countAt(path, loader, 'position', 'loader.position');
  countAt(path, loader, 'seed', 'loader.seed');
  if (typeof loader.shuffle !== 'boolean')
    throw invalidField(path, 'loader.shuffle', loader.shuffle, 'a boolean');
  countAt(path, loader, 'batchSize', 'loader.batchSize', 1, MAX_BATCH_SIZE);
  if (loader.dropLast !== false) throw invalidField(path, 'loader.dropLast', loader.dropLast, 'false');
  countAt(path, loader, 'datasetLength', 'loader.datasetLength', 1);
}

function checkRandoms(path: string, manifest: Fields): void {
  const randoms = objectAt(path, manifest, 'randoms');
  for (const [name, state] of Object.entries(randoms)) {
    const field = `randoms.${name}`;
    if (!isObject(state)) throw invalidField(path, field, state, 'a random generator state');
    const words = state.words;
    if (!Array.isArray(words) || words.length !== 4 || !words.every((word) => isCount(word, 0, 0xffffffff)))
      throw invalidField(path, `${field}.words`, words, 'four 32-bit unsigned integers');
    if (words.every((word) => word === 0)) throw invalidField(path, `${field}.words`, words, 'not all zero');
    const spare = state.spareNormal;
    if (spare !== null && !(typeof spare === 'number' && Number.isFinite(spare)))
      throw invalidField(path, `${field}.spareNormal`, spare, 'null or a finite number');
  }
}

function checkEpochProgress(path: string, manifest: Fields): void {
  const progress = objectAt(path, manifest, 'epochProgress');
  countAt(path, progress, 'steps', 'epochProgress.steps');
  const sum = progress.lossSum;
  if (typeof sum !== 'number' || !Number.isFinite(sum) || sum < 0)
    throw invalidField(path, 'epochProgress.lossSum', sum, 'a finite number >= 0');
}

function checkModelShape(path: string, manifest: Fields): void {
  if (manifest.modelShape === undefined) return;
  const shape = objectAt(path, manifest, 'modelShape');
  const features = shape.featureShape;
  if (
    !Array.isArray(features) ||
    features.length < 1 ||
    features.length > MAX_FEATURE_DIMENSIONS ||
    !features.every((dimension) => isCount(dimension, 1, 1 << 24))
  )
    throw invalidField(
      path,
      'modelShape.featureShape',
      features,
      `1 to ${MAX_FEATURE_DIMENSIONS} positive dimensions`,
    );
  countAt(path, shape, 'numClasses', 'modelShape.numClasses', 1, MAX_CLASSES);
}

/**
 * Checks what each field of a parsed `latest.json` may hold, in order; throws `checkpoint_invalid`
 * naming the first bad field. `path` names the file in the error.
 */
export function checkManifest(value: unknown, path: string): void {
  if (!isObject(value)) throw invalidField(path, 'manifest', value, 'a JSON object');
  if (value.format !== MANIFEST_FORMAT)
    throw invalidField(path, 'format', value.format, `'${MANIFEST_FORMAT}'`);
  if (value.version !== 1) throw invalidField(path, 'version', value.version, '1');
  const step = countAt(path, value, 'step', 'step');
  if (value.tensorsFile !== tensorsFileName(step))
    throw invalidField(
      path,
      'tensorsFile',
      value.tensorsFile,
      `'${tensorsFileName(step)}' (the file of step ${step})`,
    );
  stringAt(path, value, 'tensorsSha256', 'tensorsSha256', /^[0-9a-f]{64}$/);
  checkRun(path, value);
  checkOptimizer(path, value);
  checkLoader(path, value);
  checkRandoms(path, value);
  countAt(path, value, 'microBatchSize', 'microBatchSize', 1, MAX_BATCH_SIZE);
  stringAt(path, value, 'deviceId', 'deviceId', /^[a-z]+:\d{1,4}$/);
  if (!(CHECKPOINT_REASONS as readonly unknown[]).includes(value.reason))
    throw invalidField(path, 'reason', value.reason, `one of ${CHECKPOINT_REASONS.join(', ')}`);
  checkEpochProgress(path, value);
  checkModelShape(path, value);
}

/** Where the loader stands after `step` steps of `batchSize` over `datasetLength` samples. */
export function loaderPositionAfter(
  step: number,
  batchSize: number,
  datasetLength: number,
): { epoch: number; position: number } {
  if (step === 0) return { epoch: 0, position: 0 };
  const stepsPerEpoch = Math.ceil(datasetLength / batchSize);
  const epoch = Math.floor((step - 1) / stepsPerEpoch);
  const inEpoch = ((step - 1) % stepsPerEpoch) + 1;
  return { epoch, position: Math.min(inEpoch * batchSize, datasetLength) };
}

interface CheckedManifest {
  readonly step: number;
  readonly run: {
    optimizer: string;
    batchSize: number;
    seed: number;
    shuffle: boolean;
    datasetLength: number;
  };
  readonly optimizer: {
    kind: string;
    stepCount: number;
    parameterSteps?: readonly number[];
    slots: readonly string[];
  };
  readonly loader: LoaderState;
  readonly microBatchSize: number;
  readonly epochProgress: { steps: number };
}

/** Checks that a manifest's fields agree with each other (after `checkManifest`). */
export function checkManifestAgreement(manifest: CheckedManifest, path: string): void {
  const { step, run, optimizer, loader } = manifest;
  if (optimizer.kind !== run.optimizer)
    throw invalidField(path, 'optimizer.kind', optimizer.kind, `'${run.optimizer}' (run.optimizer)`);
  if (optimizer.stepCount !== step)
    throw invalidField(
      path,
      'optimizer.stepCount',
      optimizer.stepCount,
      `${step} (one optimizer step per step)`,
    );
  const steps = optimizer.parameterSteps;
  if (steps?.some((count) => count > optimizer.stepCount))
    throw invalidField(
      path,
      'optimizer.parameterSteps',
      steps,
      `counts at most optimizer.stepCount (${optimizer.stepCount}): a parameter steps at most once per step`,
    );
  const slots = optimizer.stepCount === 0 && optimizer.kind === 'sgd' ? [] : OPTIMIZER_SLOTS[optimizer.kind];
  if ([...optimizer.slots].sort().join(',') !== [...slots].sort().join(','))
    throw invalidField(
      path,
      'optimizer.slots',
      optimizer.slots,
      `[${slots.map((slot) => `'${slot}'`).join(', ')}]`,
    );
  for (const key of ['batchSize', 'seed', 'shuffle', 'datasetLength'] as const) {
    if (loader[key] !== run[key])
      throw invalidField(path, `loader.${key}`, loader[key], `${run[key]} (run.${key})`);
  }
  const expected = loaderPositionAfter(step, run.batchSize, run.datasetLength);
  if (loader.epoch !== expected.epoch)
    throw invalidField(path, 'loader.epoch', loader.epoch, `${expected.epoch} (after step ${step})`);
  if (loader.position !== expected.position)
    throw invalidField(path, 'loader.position', loader.position, `${expected.position} (after step ${step})`);
  if (manifest.microBatchSize > run.batchSize)
    throw invalidField(
      path,
      'microBatchSize',
      manifest.microBatchSize,
      `at most run.batchSize ${run.batchSize}`,
    );
  const stepsPerEpoch = Math.ceil(run.datasetLength / run.batchSize);
  const inEpoch = step % stepsPerEpoch;
  if (manifest.epochProgress.steps !== inEpoch)
    throw invalidField(
      path,
      'epochProgress.steps',
      manifest.epochProgress.steps,
      `${inEpoch} (step ${step} of the epoch)`,
    );
}
