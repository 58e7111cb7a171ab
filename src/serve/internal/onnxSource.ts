/** ONNX models through onnxruntime-node (CPU execution provider). */
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { DATATYPES, type Datatype, datatypeOfOrt, type TensorData } from '../datatypes.js';
import { ServeError } from '../errors.js';
import type { HostTensor, ModelRunner, ModelSource, TensorMap, TensorSpec } from '../ModelSource.js';

function specsOf(
  metadata: readonly InferenceSession.ValueMetadata[],
  kind: string,
  path: string,
): TensorSpec[] {
  return metadata.map((value) => {
    if (!value.isTensor)
      throw new ServeError(
        'unsupported_model',
        `${path}: ${kind} '${value.name}' is not a tensor; zbmd serves tensors only`,
      );
    const datatype = datatypeOfOrt(value.type);
    if (datatype === undefined) {
      throw new ServeError(
        'unsupported_datatype',
        `${path}: ${kind} '${value.name}' has type ${value.type}; zbmd serves ${Object.keys(DATATYPES).join(', ')}`,
      );
    }
    const shape = value.shape.map((dimension) =>
      typeof dimension === 'number' && dimension >= 0 ? dimension : -1,
    );
    return { name: value.name, datatype, shape };
  });
}

function sessionOptions(intraOpThreads: number): InferenceSession.SessionOptions {
  return { executionProviders: ['cpu'], intraOpNumThreads: intraOpThreads, interOpNumThreads: 1 };
}

function toOrt(tensor: HostTensor): OrtTensor {
  return new OrtTensor(DATATYPES[tensor.datatype].ort as 'float32', tensor.data as Float32Array, [
    ...tensor.shape,
  ]);
}

function fromOrt(value: OrtTensor, datatype: Datatype): HostTensor {
  let data = value.data as TensorData;
  // A BOOL output may come back as a Uint8Array or an array of booleans, depending on the binding.
  if (datatype === 'BOOL' && !(data instanceof Uint8Array))
    data = Uint8Array.from(data as unknown as ArrayLike<number>);
  return { datatype, shape: [...value.dims], data };
}

class OnnxRunner implements ModelRunner {
  private closed = false;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly session: InferenceSession,
    private readonly outputs: readonly TensorSpec[],
  ) {}

  async run(inputs: TensorMap): Promise<Map<string, HostTensor>> {
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, tensor] of inputs) feeds[name] = toOrt(tensor);
    const running = this.session.run(feeds);
    this.running = running.catch(() => undefined);
    const results = await running;
    const out = new Map<string, HostTensor>();
    for (const spec of this.outputs)
      out.set(spec.name, fromOrt(results[spec.name] as OrtTensor, spec.datatype));
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running;
    await this.session.release();
  }
}

export async function openOnnxSource(
  path: string,
  bytes: Uint8Array,
  intraOpThreads: number,
): Promise<ModelSource> {
  let probe: InferenceSession;
  try {
    probe = await InferenceSession.create(bytes, sessionOptions(intraOpThreads));
  } catch (error) {
    throw new ServeError(
      'model_load_failed',
      `onnxruntime cannot load ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const inputs = specsOf(probe.inputMetadata, 'input', path);
  const outputs = specsOf(probe.outputMetadata, 'output', path);
  await probe.release();
  const batchable = [...inputs, ...outputs].every((spec) => spec.shape.length > 0 && spec.shape[0] === -1);
  return {
    platform: 'onnxruntime_onnx',
    inputs,
    outputs,
    batchable,
    origin: path,
    open: async () =>
      new OnnxRunner(await InferenceSession.create(bytes, sessionOptions(intraOpThreads)), outputs),
  };
}
