/**
 * zbmd modules (the built-in mlp and cnn): each replica rebuilds the module and loads a copy of
 * the weights. On the CPU (the default) the forward runs on host tensors; with a GPU-layer
 * device (`webgpu`, `webgpu:N`, `cuda:N`) each replica opens its own device, moves its copy of
 * the parameters there, uploads each batch, and reads the logits back.
 */
import {
  type Device as GpuDevice,
  isBackendUnavailable,
  openDevice,
  parseDeviceSpec,
} from '../../gpu/index.js';
import { buildSavedModel, type SavedModelSpec } from '../../ml/modelFiles.js';
import type { Module, StateDict } from '../../ml/nn/Module.js';
import { dispose, fromData, noGrad, type Tensor, to } from '../../ml/Tensor.js';
import { ServeError } from '../errors.js';
import type { HostTensor, ModelRunner, ModelSource, TensorMap } from '../ModelSource.js';

export const ZBMD_INPUT = 'input';
export const ZBMD_OUTPUT = 'logits';

class ModuleRunner implements ModelRunner {
  constructor(
    private readonly module: Module,
    private readonly numClasses: number,
  ) {}

  async run(inputs: TensorMap): Promise<Map<string, HostTensor>> {
    const input = inputs.get(ZBMD_INPUT)!;
    const rows = input.shape[0];
    const logits = noGrad(() => {
      const tensor = fromData(input.data as Float32Array, [...input.shape]);
      const output = this.module.forward(tensor);
      const values = Float32Array.from(output.data.subarray(0, rows * this.numClasses));
      if (output !== tensor) dispose(output);
      return values;
    });
    return new Map([[ZBMD_OUTPUT, { datatype: 'FP32', shape: [rows, this.numClasses], data: logits }]]);
  }

  async close(): Promise<void> {}
}

/** The module's forward on a GPU-layer device: upload the batch, run, read the logits back. */
class DeviceModuleRunner implements ModelRunner {
  private running: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly module: Module,
    private readonly numClasses: number,
    private readonly device: GpuDevice,
  ) {}

  async run(inputs: TensorMap): Promise<Map<string, HostTensor>> {
    const run = this.forward(inputs);
    this.running = run.catch(() => undefined);
    return run;
  }

  private async forward(inputs: TensorMap): Promise<Map<string, HostTensor>> {
    const input = inputs.get(ZBMD_INPUT)!;
    const rows = input.shape[0];
    const onDevice = await to(fromData(input.data as Float32Array, [...input.shape]), this.device);
    let output: Tensor | undefined;
    try {
      output = noGrad(() => this.module.forward(onDevice));
      const host = await to(output, 'cpu');
      const data = Float32Array.from(host.data.subarray(0, rows * this.numClasses));
      return new Map([[ZBMD_OUTPUT, { datatype: 'FP32', shape: [rows, this.numClasses], data }]]);
    } finally {
      if (output !== undefined && output !== onDevice) dispose(output);
      dispose(onDevice);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.running;
    this.device.destroy();
  }
}

function isHostDevice(device: string | undefined): boolean {
  return device === undefined || device === 'cpu' || device === 'cpu:0';
}

async function openServingDevice(device: string): Promise<GpuDevice> {
  try {
    return await openDevice(parseDeviceSpec(device));
  } catch (error) {
    const why = isBackendUnavailable(error) || error instanceof Error ? error.message : String(error);
    throw new ServeError('unsupported_device', `cannot open device '${device}' for serving: ${why}`, {
      cause: error,
    });
  }
}

async function openRunner(
  state: StateDict,
  spec: SavedModelSpec,
  device: string | undefined,
): Promise<ModelRunner> {
  const copy = buildSavedModel(spec);
  copy.loadStateDict(state);
  copy.eval();
  if (isHostDevice(device)) return new ModuleRunner(copy, spec.numClasses);
  const opened = await openServingDevice(device!);
  try {
    await copy.to(opened);
  } catch (error) {
    opened.destroy();
    throw error;
  }
  return new DeviceModuleRunner(copy, spec.numClasses, opened);
}

export function zbmdSource(
  module: Module,
  spec: SavedModelSpec,
  origin: string,
  device?: string,
): ModelSource {
  const state: StateDict = module.stateDict();
  return {
    platform: 'zbmd',
    inputs: [{ name: ZBMD_INPUT, datatype: 'FP32', shape: [-1, ...spec.featureShape] }],
    outputs: [{ name: ZBMD_OUTPUT, datatype: 'FP32', shape: [-1, spec.numClasses] }],
    batchable: true,
    origin,
    device: isHostDevice(device) ? 'cpu' : device!,
    open: () => openRunner(state, spec, device),
  };
}

/**
 * Checks that the model runs on `device` before serving it there: one replica's runner is
 * opened and runs one row of zeros (an op without a kernel on that device, or a device that
 * cannot be opened, is refused here with `unsupported_device`, not at the first request).
 */
export async function probeDevice(source: ModelSource, device: string): Promise<void> {
  const runner = await source.open();
  try {
    const featureShape = source.inputs[0].shape.slice(1);
    const count = featureShape.reduce((product, dimension) => product * dimension, 1);
    await runner.run(
      new Map([
        [ZBMD_INPUT, { datatype: 'FP32', shape: [1, ...featureShape], data: new Float32Array(count) }],
      ]),
    );
  } catch (error) {
    if (error instanceof ServeError) throw error;
    throw new ServeError(
      'unsupported_device',
      `the model cannot run on device '${device}': ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    await runner.close();
  }
}
