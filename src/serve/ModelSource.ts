/**
 * What a server serves: a `ModelSource` describes one version of a model (its inputs and
 * outputs) and opens runners, one per replica. `openModelSource(path)` reads
 * - an ONNX file (`*.onnx`), run by onnxruntime-node on the CPU;
 * - a zbmd model directory: a training checkpoint (`zbmd train --checkpoint-dir`, whose
 *   `latest.json` names the model and its shape) or a `saveModel` directory.
 * `moduleSource(module, spec)` serves a module already in memory.
 *
 * Batching needs the first dimension of every input and output to be the batch (dynamic in the
 * ONNX file); a model without one is served one request at a time (`batchable: false`).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { isModelFileError, loadModel, type SavedModelSpec } from '../ml/modelFiles.js';
import type { Module } from '../ml/nn/Module.js';
import type { Datatype, TensorData } from './datatypes.js';
import { ServeError } from './errors.js';
import { openOnnxSource } from './internal/onnxSource.js';
import { probeDevice, zbmdSource } from './internal/zbmdSource.js';

/** An input or output as the model declares it; -1 is a dimension of any size. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/** A tensor in host memory, row-major. */
export interface HostTensor {
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export type TensorMap = ReadonlyMap<string, HostTensor>;

/** One replica's copy of the model. */
export interface ModelRunner {
  /** Runs a batch: every input named, first dimension the batch. Throws when the model fails. */
  run(inputs: TensorMap): Promise<Map<string, HostTensor>>;
  /** Frees the runner once its last run settled; idempotent. */
  close(): Promise<void>;
}

export type ModelPlatform = 'onnxruntime_onnx' | 'zbmd';

export interface ModelSource {
  readonly platform: ModelPlatform;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** True when every input and output has the batch as its first, dynamic dimension. */
  readonly batchable: boolean;
  /** Where the model came from (a path, or 'memory'), for logs and metadata. */
  readonly origin: string;
  /** The device its replicas run on ('cpu', or a GPU-layer device such as 'webgpu:0'). */
  readonly device?: string;
  open(): Promise<ModelRunner>;
}

export interface SourceOptions {
  /**
   * 'cpu' (the default), or for a zbmd model a GPU-layer device ('webgpu', 'webgpu:N',
   * 'cuda:N'; each replica opens its own). ONNX models run on onnxruntime's CPU provider only.
   */
  readonly device?: string;
  /** onnxruntime threads inside one run of one replica. Default 1 (replicas give the parallelism). */
  readonly intraOpThreads?: number;
}

function onHost(device: string | undefined): boolean {
  return device === undefined || device === 'cpu' || device === 'cpu:0';
}

/** Reads the model at `path` (an .onnx file or a zbmd model directory). */
export async function openModelSource(path: string, options: SourceOptions = {}): Promise<ModelSource> {
  if (typeof options.device === 'string' && !/^(cpu|webgpu|cuda)(:\d{1,3})?$/.test(options.device))
    throw new ServeError(
      'unsupported_device',
      `device '${options.device}' is not a device name; use cpu, webgpu, webgpu:N or cuda:N`,
    );
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw new ServeError(
      'model_load_failed',
      `cannot read the model at ${path}: ${error.code ?? error.message}`,
      {
        cause: error,
      },
    );
  });
  if (info.isFile()) {
    if (!onHost(options.device) && extname(path).toLowerCase() === '.onnx')
      throw new ServeError(
        'unsupported_device',
        `${path}: ONNX models run on onnxruntime-node's CPU execution provider only (the package ships no GPU provider offline); device '${options.device}' applies to zbmd checkpoints; use --device cpu`,
      );
    if (extname(path).toLowerCase() !== '.onnx') {
      throw new ServeError(
        'unsupported_model',
        `${path} is a file but not an .onnx model; pass an ONNX file or a directory written by zbmd train --checkpoint-dir`,
      );
    }
    return openOnnxSource(path, new Uint8Array(await readFile(path)), options.intraOpThreads ?? 1);
  }
  try {
    const loaded = await loadModel(path);
    const source = zbmdSource(loaded.module, loaded.spec, path, options.device);
    if (!onHost(options.device)) await probeDevice(source, options.device!);
    return source;
  } catch (error) {
    if (isModelFileError(error)) throw new ServeError('model_load_failed', error.message, { cause: error });
    throw error;
  }
}

/** Serves `module` (CPU parameters; each replica gets a copy of its weights, on `device` when given). */
export function moduleSource(module: Module, spec: SavedModelSpec, device?: string): ModelSource {
  return zbmdSource(module, spec, 'memory', device);
}

/** A model's default name: the file name without `.onnx`, or the directory's name. */
export function defaultModelName(path: string): string {
  const name = basename(path.replace(/\/+$/, ''), '.onnx')
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, 128);
  return name.length > 0 ? name : 'model';
}
