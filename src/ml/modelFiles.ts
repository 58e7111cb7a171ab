/**
 * A trained model on disk, to serve or load back: `saveModel(model, directory, spec)` writes
 * - `model.safetensors`: the parameters by name, F32 (any safetensors reader opens it);
 * - `model.json`: a small manifest naming the built-in model ('mlp' | 'cnn'), its sample shape
 *   and class count, the parameter names and shapes, and the SHA-256 of the tensor file.
 *
 * `loadModel(directory)` rebuilds the module from such a directory, or from a training
 * checkpoint directory written by `zbmd train --checkpoint-dir` (its `latest.json` names the
 * model and, since the manifest gained `modelShape`, its shape). Both files are checked field by
 * field; a mismatch is a `ModelFileError` whose `reason` names what was wrong.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { mkdtemp, rm } from 'node:fs/promises';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 * import { loadModel, saveModel, TINY_DATASET_DIR, train } from 'zbmd/ml';
 *
 * const dir = await mkdtemp(join(tmpdir(), 'zbmd-model-'));
 * const result = await train({ model: 'mlp', data: TINY_DATASET_DIR, maxSteps: 5 });
 * await saveModel(result.model, join(dir, 'model'), { model: 'mlp', featureShape: [1, 28, 28], numClasses: 10 });
 * const { module } = await loadModel(join(dir, 'model'));
 * assert.equal(module.parameters().length, result.model.parameters().length);
 * await rm(dir, { recursive: true, force: true });
 * ```
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Random } from '../actor/Random.js';
import { TaggedError } from '../internal/errors.js';
import type { Module } from './nn/Module.js';
import { parseSafetensors, type SafetensorsEntry, serializeSafetensors } from './safetensors.js';
import { MANIFEST_FILE, sha256Hex, writeFileAtomically } from './training/checkpointFiles.js';
import { buildCnn, buildMlp } from './training/models.js';

export const MODEL_MANIFEST_FILE = 'model.json';
export const MODEL_TENSORS_FILE = 'model.safetensors';
const MODEL_FORMAT = 'zbmd-model';
/** The built-in models that a manifest may name. */
export const SAVED_MODEL_KINDS = ['mlp', 'cnn'] as const;
export type SavedModelKind = (typeof SAVED_MODEL_KINDS)[number];
/** Largest sample rank and dimension a manifest may give (a bound on what a file can ask us to build). */
const MAX_FEATURE_RANK = 8;
const MAX_DIMENSION = 1 << 24;

export interface SavedModelSpec {
  readonly model: SavedModelKind;
  /** One sample's shape, without the batch dimension: [784] or [1, 28, 28]. */
  readonly featureShape: readonly number[];
  readonly numClasses: number;
}

export interface SavedModelManifest extends SavedModelSpec {
  readonly format: typeof MODEL_FORMAT;
  readonly version: 1;
  readonly tensorsFile: string;
  readonly tensorsSha256: string;
  readonly parameters: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[] }>;
}

export interface LoadedModel {
  /** The module, in eval mode, its parameters on the CPU. */
  readonly module: Module;
  readonly spec: SavedModelSpec;
  /** Where it came from: a saved model or a training checkpoint (with its step). */
  readonly source: { readonly kind: 'saved_model' } | { readonly kind: 'checkpoint'; readonly step: number };
  /** The SHA-256 of the tensor file: a model version's identity. */
  readonly tensorsSha256: string;
}

export type ModelFileErrorReason =
  | 'not_a_model_directory'
  | 'invalid_manifest'
  | 'model_shape_missing'
  | 'unknown_model'
  | 'tensors_corrupt';

export class ModelFileError extends TaggedError('ModelFileError') {
  constructor(
    readonly reason: ModelFileErrorReason,
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message} (${reason})`);
  }
}

export function isModelFileError(value: unknown, reason?: ModelFileErrorReason): value is ModelFileError {
  return value instanceof ModelFileError && (reason === undefined || value.reason === reason);
}

/** Builds the built-in model `spec` names, with placeholder weights (load them next). */
export function buildSavedModel(spec: SavedModelSpec): Module {
  const shape = { featureShape: spec.featureShape, numClasses: spec.numClasses };
  return spec.model === 'mlp' ? buildMlp(shape, new Random(0)) : buildCnn(shape, new Random(0));
}

/** Writes `model` (CPU parameters) and its manifest to `directory` atomically; returns the manifest. */
export async function saveModel(
  model: Module,
  directory: string,
  spec: SavedModelSpec,
): Promise<SavedModelManifest> {
  const checked = checkSpec(spec, 'saveModel spec');
  await mkdir(directory, { recursive: true });
  const state = await model.readStateDict();
  const tensors: Record<string, SafetensorsEntry> = {};
  const parameters: Array<{ name: string; shape: number[] }> = [];
  for (const [name, { shape, data }] of Object.entries(state)) {
    tensors[name] = {
      dtype: 'F32',
      shape: [...shape],
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
    parameters.push({ name, shape: [...shape] });
  }
  const bytes = serializeSafetensors(tensors, { format: MODEL_FORMAT, model: checked.model });
  await writeFileAtomically(join(directory, MODEL_TENSORS_FILE), bytes, directory);
  const manifest: SavedModelManifest = {
    format: MODEL_FORMAT,
    version: 1,
    ...checked,
    tensorsFile: MODEL_TENSORS_FILE,
    tensorsSha256: sha256Hex(bytes),
    parameters,
  };
  const text = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeFileAtomically(join(directory, MODEL_MANIFEST_FILE), text, directory);
  return manifest;
}

/** Loads a model saved by `saveModel`, or the model of a training checkpoint directory. */
export async function loadModel(directory: string): Promise<LoadedModel> {
  const saved = await readJson(join(directory, MODEL_MANIFEST_FILE));
  if (saved !== undefined) return loadSaved(directory, saved);
  const checkpoint = await readJson(join(directory, MANIFEST_FILE));
  if (checkpoint !== undefined) return loadCheckpoint(directory, checkpoint);
  throw new ModelFileError(
    'not_a_model_directory',
    directory,
    `holds neither ${MODEL_MANIFEST_FILE} (saveModel) nor ${MANIFEST_FILE} (zbmd train --checkpoint-dir)`,
  );
}

async function readJson(path: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ModelFileError('invalid_manifest', path, 'is not JSON');
  }
}

function invalid(path: string, field: string, expected: string, value: unknown): ModelFileError {
  return new ModelFileError(
    'invalid_manifest',
    path,
    `field '${field}' must be ${expected}, got ${JSON.stringify(value)}`,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkDimensions(value: unknown, path: string, field: string): number[] {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.length > MAX_FEATURE_RANK ||
    !value.every((dimension) => Number.isInteger(dimension) && dimension >= 1 && dimension <= MAX_DIMENSION)
  ) {
    throw invalid(path, field, `1 to ${MAX_FEATURE_RANK} integers in [1, ${MAX_DIMENSION}]`, value);
  }
  return value as number[];
}

/** Checks a model spec field by field (from a manifest, or from a caller). */
function checkSpec(value: unknown, path: string, kind?: unknown): SavedModelSpec {
  if (!isRecord(value)) throw invalid(path, 'modelShape', 'an object', value);
  const model = kind ?? value.model;
  if (!(SAVED_MODEL_KINDS as readonly unknown[]).includes(model)) {
    throw new ModelFileError(
      'unknown_model',
      path,
      `names the model ${JSON.stringify(model)}; zbmd rebuilds only ${SAVED_MODEL_KINDS.join(', ')} (a custom model factory is not stored in the file)`,
    );
  }
  const featureShape = checkDimensions(value.featureShape, path, 'featureShape');
  const numClasses = value.numClasses;
  if (!Number.isInteger(numClasses) || (numClasses as number) < 1 || (numClasses as number) > MAX_DIMENSION)
    throw invalid(path, 'numClasses', `an integer in [1, ${MAX_DIMENSION}]`, numClasses);
  return { model: model as SavedModelKind, featureShape, numClasses: numClasses as number };
}

async function loadSaved(directory: string, manifest: unknown): Promise<LoadedModel> {
  const path = join(directory, MODEL_MANIFEST_FILE);
  if (!isRecord(manifest)) throw invalid(path, '(root)', 'an object', manifest);
  if (manifest.format !== MODEL_FORMAT) throw invalid(path, 'format', `'${MODEL_FORMAT}'`, manifest.format);
  if (manifest.version !== 1) throw invalid(path, 'version', '1', manifest.version);
  const spec = checkSpec(manifest, path);
  const tensorsFile = checkFileName(manifest.tensorsFile, path);
  const sha = checkSha(manifest.tensorsSha256, path);
  const module = await loadWeights(directory, spec, tensorsFile, sha, '');
  return { module, spec, source: { kind: 'saved_model' }, tensorsSha256: sha };
}

async function loadCheckpoint(directory: string, manifest: unknown): Promise<LoadedModel> {
  const path = join(directory, MANIFEST_FILE);
  if (!isRecord(manifest) || manifest.format !== 'zbmd-training-checkpoint')
    throw invalid(
      path,
      'format',
      "'zbmd-training-checkpoint'",
      isRecord(manifest) ? manifest.format : manifest,
    );
  if (!Number.isSafeInteger(manifest.step)) throw invalid(path, 'step', 'an integer', manifest.step);
  const run = manifest.run;
  if (!isRecord(run)) throw invalid(path, 'run', 'an object', run);
  if (manifest.modelShape === undefined) {
    throw new ModelFileError(
      'model_shape_missing',
      path,
      'has no modelShape (it was written before checkpoints recorded the model shape); train again with this version of zbmd to serve it',
    );
  }
  const spec = checkSpec(manifest.modelShape, path, run.model);
  const tensorsFile = checkFileName(manifest.tensorsFile, path);
  const sha = checkSha(manifest.tensorsSha256, path);
  const module = await loadWeights(directory, spec, tensorsFile, sha, 'weights.');
  return { module, spec, source: { kind: 'checkpoint', step: manifest.step as number }, tensorsSha256: sha };
}

function checkFileName(value: unknown, path: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(value) || value.startsWith('.'))
    throw invalid(path, 'tensorsFile', 'a file name in the same directory', value);
  return value;
}

function checkSha(value: unknown, path: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value))
    throw invalid(path, 'tensorsSha256', 'a SHA-256 in hex', value);
  return value;
}

/** Builds the model and copies the tensors `prefix + parameter name` in, after checking the file's SHA-256. */
async function loadWeights(
  directory: string,
  spec: SavedModelSpec,
  tensorsFile: string,
  sha: string,
  prefix: string,
): Promise<Module> {
  const path = join(directory, tensorsFile);
  const bytes = new Uint8Array(await readFile(path));
  if (sha256Hex(bytes) !== sha)
    throw new ModelFileError('tensors_corrupt', path, 'does not match the SHA-256 in its manifest');
  const { tensors } = parseSafetensors(bytes);
  const module = buildSavedModel(spec);
  for (const [name, parameter] of module.namedParameters()) {
    const entry = tensors[prefix + name];
    const size = parameter.size;
    if (entry === undefined || entry.dtype !== 'F32' || entry.data.byteLength !== size * 4) {
      throw new ModelFileError(
        'tensors_corrupt',
        path,
        `lacks the F32 tensor '${prefix + name}' of ${size} values that a ${spec.model} for samples [${spec.featureShape.join(', ')}] and ${spec.numClasses} classes needs`,
      );
    }
    parameter.data.set(new Float32Array(entry.data.slice().buffer));
  }
  return module.eval();
}
