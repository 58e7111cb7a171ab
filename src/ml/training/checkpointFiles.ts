/**
 * Persisted checkpoints of a run, in `checkpointDir`:
 * - `checkpoint-<step>.safetensors`: a standard safetensors file (zbmd's writer is byte-compatible
 *   with the reference) holding `weights.<parameter name>` and `optimizer.<index>.<slot>`, F32;
 * - `latest.json`: the manifest, naming that file with its SHA-256, and holding everything else
 *   (step, loader position, optimizer scalars, random generator states, micro-batch, device,
 *   and the run's identity, checked on resume).
 *
 * Both are written atomically (a temporary file, fsync, rename, fsync of the directory), the
 * tensors first, so `latest.json` always names a complete file. The two newest tensor files are
 * kept; older ones are removed after the manifest moved on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { RandomState } from '../../actor/Random.js';
import { writeFileDurably } from '../../internal/durable.js';
import type { LoaderState } from '../data/DataLoader.js';
import {
  isSafetensorsError,
  parseSafetensors,
  type SafetensorsEntry,
  serializeSafetensors,
} from '../safetensors.js';
import {
  checkManifest,
  checkManifestAgreement,
  invalidField,
  MANIFEST_FORMAT,
  tensorsFileName,
} from './checkpointManifest.js';
import { TrainingError } from './errors.js';
import type { EpochProgress, SnapshotCopy } from './TrainingSnapshot.js';

export const MANIFEST_FILE = 'latest.json';
/** Tensor files kept besides the newest one. */
export const CHECKPOINT_FILES_KEPT = 2;
/** The largest `latest.json` read (a manifest is a few KiB). */
export const MANIFEST_MAX_BYTES = 16 * 1024 * 1024;

/** What identifies a run: a checkpoint resumes only a run with the same identity. */
export interface RunIdentity {
  readonly model: string;
  readonly optimizer: string;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly datasetLength: number;
  readonly parameterNames: readonly string[];
  /** The gpt model's shape (model 'gpt' only; `zbmd sample` rebuilds the model from it). */
  readonly gpt?: Readonly<Record<string, number>>;
  /** A character-level corpus's vocabulary (model 'gpt' only). */
  readonly vocabulary?: string;
}

/** What a served model is rebuilt from: the sample shape and the number of classes. */
export interface CheckpointModelShape {
  readonly featureShape: readonly number[];
  readonly numClasses: number;
}

export interface CheckpointManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: 1;
  readonly step: number;
  readonly tensorsFile: string;
  readonly tensorsSha256: string;
  readonly run: RunIdentity;
  readonly optimizer: {
    readonly kind: string;
    readonly stepCount: number;
    /** Each parameter's own step count, in `run.parameterNames` order; absent in older manifests. */
    readonly parameterSteps?: number[];
    readonly learningRate: number;
    readonly slots: string[];
  };
  readonly loader: LoaderState;
  readonly randoms: Readonly<Record<string, RandomState>>;
  readonly microBatchSize: number;
  readonly deviceId: string;
  readonly reason: string;
  readonly epochProgress: EpochProgress;
  /** The model's shape, so `zbmd serve` can rebuild `run.model`; absent in older manifests. */
  readonly modelShape?: CheckpointModelShape;
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function tensorsOf(copy: SnapshotCopy): Record<string, SafetensorsEntry> {
  const tensors: Record<string, SafetensorsEntry> = {};
  copy.parameterNames.forEach((name, index) => {
    const data = copy.weights[index];
    tensors[`weights.${name}`] = {
      dtype: 'F32',
      shape: [...copy.parameterShapes[index]],
      data: bytesOf(data),
    };
  });
  for (const [slot, buffers] of copy.slots) {
    buffers.forEach((data, index) => {
      const shape = [...copy.parameterShapes[index]];
      tensors[`optimizer.${index}.${slot}`] = { dtype: 'F32', shape, data: bytesOf(data) };
    });
  }
  return tensors;
}

/** Writes `bytes` to `path` so that a reader sees the old file or the whole new one. */
export async function writeFileAtomically(path: string, bytes: Uint8Array, directory: string): Promise<void> {
  await writeFileDurably(path, bytes, {
    temporary: join(directory, `.${randomBytes(6).toString('hex')}.tmp`),
  });
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Persists `copy` (tensors, then the manifest); returns the manifest written. */
export async function writeCheckpoint(
  directory: string,
  copy: SnapshotCopy,
  run: RunIdentity,
  reason: string,
  modelShape?: CheckpointModelShape,
): Promise<CheckpointManifest> {
  if (endianness() !== 'LE')
    throw new TrainingError('invalid_config', 'checkpoints are written on little-endian machines only');
  await mkdir(directory, { recursive: true });
  const tensorsFile = tensorsFileName(copy.step);
  const bytes = serializeSafetensors(tensorsOf(copy), {
    format: MANIFEST_FORMAT,
    step: String(copy.step),
    run: JSON.stringify(run),
  });
  await writeFileAtomically(join(directory, tensorsFile), bytes, directory);
  const manifest: CheckpointManifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    step: copy.step,
    tensorsFile,
    tensorsSha256: sha256Hex(bytes),
    run,
    optimizer: {
      kind: copy.optimizerKind,
      stepCount: copy.optimizerStepCount,
      ...(copy.parameterSteps === undefined ? {} : { parameterSteps: [...copy.parameterSteps] }),
      learningRate: copy.learningRate,
      slots: [...copy.slots.keys()],
    },
    loader: copy.loader,
    randoms: copy.randoms,
    microBatchSize: copy.microBatchSize,
    deviceId: copy.deviceId,
    reason,
    epochProgress: copy.epochProgress,
    ...(modelShape === undefined
      ? {}
      : { modelShape: { featureShape: [...modelShape.featureShape], numClasses: modelShape.numClasses } }),
  };
  const text = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeFileAtomically(join(directory, MANIFEST_FILE), text, directory);
  await pruneTensorFiles(directory, tensorsFile);
  return manifest;
}

async function pruneTensorFiles(directory: string, newest: string): Promise<void> {
  const names = (await readdir(directory))
    .filter((name) => /^checkpoint-\d{10}\.safetensors$/.test(name))
    .sort();
  const removable = names.filter((name) => name < newest).slice(0, -(CHECKPOINT_FILES_KEPT - 1) || undefined);
  for (const name of removable) await unlink(join(directory, name)).catch(() => undefined);
}

/**
 * The manifest in `directory`, or undefined when there is none. Throws `checkpoint_corrupt` (not
 * JSON) or `checkpoint_invalid` naming the first field that is wrong (see `checkManifest`).
 */
export async function readManifest(directory: string): Promise<CheckpointManifest | undefined> {
  const path = join(directory, MANIFEST_FILE);
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > MANIFEST_MAX_BYTES)
      throw new TrainingError('checkpoint_corrupt', `${path} is over ${MANIFEST_MAX_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new TrainingError('checkpoint_corrupt', `${path} is not JSON`, { cause: error });
  }
  checkManifest(manifest, path);
  return manifest as CheckpointManifest;
}

/**
 * Loads the newest checkpoint, verifying the manifest field by field, its checksum, that the
 * tensors file says the same step and run, and that it belongs to a run like `run`.
 */
export async function readCheckpoint(
  directory: string,
  run: RunIdentity,
  parameterShapes: readonly (readonly number[])[],
): Promise<SnapshotCopy> {
  const manifest = await readManifest(directory);
  if (manifest === undefined)
    throw new TrainingError('no_checkpoint', `${directory} holds no ${MANIFEST_FILE} to resume from`);
  const manifestPath = join(directory, MANIFEST_FILE);
  checkIdentity(manifest.run, run);
  checkManifestAgreement(manifest, manifestPath);
  const tensors = await readTensors(directory, manifest);
  const floats = (name: string, shape: readonly number[]): Float32Array => {
    const entry = tensors[name];
    const size = shape.reduce((product, dimension) => product * dimension, 1);
    if (
      entry === undefined ||
      entry.dtype !== 'F32' ||
      entry.shape.length !== shape.length ||
      entry.shape.some((dimension, index) => dimension !== shape[index]) ||
      entry.data.byteLength !== size * 4
    ) {
      throw new TrainingError(
        'checkpoint_corrupt',
        `${manifest.tensorsFile} lacks the F32 tensor '${name}' of shape [${shape.join(', ')}]`,
      );
    }
    return new Float32Array(entry.data.slice().buffer);
  };
  const weights = run.parameterNames.map((name, index) => floats(`weights.${name}`, parameterShapes[index]));
  const slots = new Map<string, Float32Array[]>();
  for (const slot of manifest.optimizer.slots)
    slots.set(
      slot,
      weights.map((_, index) => floats(`optimizer.${index}.${slot}`, parameterShapes[index])),
    );
  return {
    step: manifest.step,
    parameterNames: run.parameterNames,
    parameterShapes,
    weights,
    optimizerKind: manifest.optimizer.kind,
    optimizerStepCount: manifest.optimizer.stepCount,
    ...(manifest.optimizer.parameterSteps === undefined
      ? {}
      : { parameterSteps: [...manifest.optimizer.parameterSteps] }),
    learningRate: manifest.optimizer.learningRate,
    slots,
    loader: manifest.loader,
    randoms: manifest.randoms,
    microBatchSize: manifest.microBatchSize,
    deviceId: manifest.deviceId,
    epochProgress: { steps: manifest.epochProgress.steps, lossSum: manifest.epochProgress.lossSum },
  };
}

/** The tensors of a checkpoint, after checking its SHA-256 and that its metadata names the manifest's step and run. */
async function readTensors(
  directory: string,
  manifest: CheckpointManifest,
): Promise<Record<string, SafetensorsEntry>> {
  const path = join(directory, manifest.tensorsFile);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EISDIR') throw error;
    throw new TrainingError(
      'checkpoint_corrupt',
      `${MANIFEST_FILE} names ${path}, which cannot be read (${code})`,
    );
  }
  if (sha256Hex(bytes) !== manifest.tensorsSha256) {
    throw new TrainingError(
      'checkpoint_corrupt',
      `${manifest.tensorsFile} does not match the SHA-256 in ${MANIFEST_FILE}`,
    );
  }
  let parsed: ReturnType<typeof parseSafetensors>;
  try {
    parsed = parseSafetensors(bytes);
  } catch (error) {
    if (!isSafetensorsError(error)) throw error;
    throw new TrainingError('checkpoint_corrupt', `${path}: ${error.message}`, { cause: error });
  }
  const metadata = parsed.metadata ?? {};
  const manifestPath = join(directory, MANIFEST_FILE);
  if (metadata.format !== MANIFEST_FORMAT || metadata.step !== String(manifest.step))
    throw invalidField(
      manifestPath,
      'step',
      manifest.step,
      `the step of ${manifest.tensorsFile} (${metadata.step})`,
    );
  if (metadata.run !== undefined && metadata.run !== JSON.stringify(manifest.run))
    throw invalidField(manifestPath, 'run', manifest.run, `the run ${manifest.tensorsFile} was written by`);
  return parsed.tensors;
}

function checkIdentity(saved: RunIdentity, current: RunIdentity): void {
  for (const key of Object.keys(current) as Array<keyof RunIdentity>) {
    if (JSON.stringify(saved?.[key]) !== JSON.stringify(current[key])) {
      throw new TrainingError(
        'checkpoint_mismatch',
        `the checkpoint was made by a run with ${key} = ${JSON.stringify(saved?.[key])}; this run has ${JSON.stringify(current[key])}`,
      );
    }
  }
}
