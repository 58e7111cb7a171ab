/**
 * Training on a GPU-layer device (WebGPU, CUDA, or the cpu reference backend): the model's
 * parameters and the optimizer's state live in device buffers, each batch is uploaded, and
 * every op of the step (forward, backward, update) launches device kernels. The run's snapshot
 * code stays as it is on the host: it reads and writes a host mirror (the live model's host
 * parameters and one host buffer per optimizer slot), which `pull` fills from the device before
 * a capture and `push` copies back to the device after a restore. So a snapshot is a copy of the
 * device buffers, and a restored (or moved) run continues from exactly the captured state.
 *
 * Errors the device raises reach the step as they are: `OutOfDeviceMemory` (an allocation over
 * the pool's limit, or an injected one), `DeviceError` (a failed launch), `KernelTimeout` (a
 * kernel past the watchdog, reported at the step's read-back).
 */
import { Random } from '../../actor/Random.js';
import type { Device as GpuDevice } from '../../gpu/Device.js';
import { backward, disposeGraph } from '../autograd.js';
import type { Batch } from '../data/DataLoader.js';
import { labelSizeOf } from '../data/Dataset.js';
import { crossEntropy } from '../losses.js';
import type { Module, Parameter } from '../nn/Module.js';
import { mul } from '../ops/elementwise.js';
import type { Optimizer } from '../optim/Optimizer.js';
import { collectDeviceTensors, dispose, fromData, type Tensor } from '../Tensor.js';
import { classRows } from '../train.js';
import type { TrainingSession } from './TrainingSession.js';
import { findRandoms } from './TrainingSnapshot.js';
import { createOptimizer, type SlotAccess } from './trainingOptimizers.js';

/** The model's copy on a device, beside the host mirror the snapshot reads. */
export class DeviceReplica {
  private constructor(
    readonly device: GpuDevice,
    readonly module: Module,
    /** Device parameters, in the order of the host ones. */
    readonly parameters: readonly Parameter[],
    /** Host parameters: the mirror the snapshot copies from and restores into. */
    readonly hostParameters: readonly Parameter[],
    readonly randoms: ReadonlyMap<string, Random>,
  ) {}

  /** Builds the model from the run's seed, moves it to `device`, and copies `host`'s values in. */
  static async create(
    session: TrainingSession,
    device: GpuDevice,
    host: readonly Parameter[],
  ): Promise<DeviceReplica> {
    const module = session.factory(session.shape, new Random(session.config.seed));
    await module.to(device);
    const parameters = module.parameters();
    const replica = new DeviceReplica(device, module, parameters, host, findRandoms(module));
    replica.pushWeights();
    return replica;
  }

  /** Copies the host mirror's weights into the device parameters (enqueued). */
  pushWeights(): void {
    for (let index = 0; index < this.parameters.length; index++)
      this.device.copyIn(this.parameters[index].deviceBuffer!, this.hostParameters[index].data);
  }

  /** Copies the device parameters into the host mirror (waits for the step's kernels). */
  async pullWeights(): Promise<void> {
    for (let index = 0; index < this.parameters.length; index++) {
      const values = await this.device.readFloat32(this.parameters[index].deviceBuffer!);
      this.hostParameters[index].data.set(values);
    }
  }

  /** Frees the device buffers of the parameters (the device itself stays open). */
  release(): void {
    for (const parameter of this.parameters) dispose(parameter);
  }
}

/** Slots every step of these optimizers keeps from the first one (the host optimizers allocate them at once). */
const SLOTS_FROM_THE_START: Readonly<Record<string, readonly string[]>> = {
  adam: ['m', 'v'],
  adamw: ['m', 'v'],
};

/**
 * The optimizer of a device replica, seen by the snapshot through host buffers: `slotBuffers`
 * gives the mirror, `pull` reads the device slots into it, `push` writes it to the device.
 */
export interface DeviceSlotAccess extends SlotAccess {
  pull(): Promise<void>;
  push(): void;
}

export function createDeviceOptimizer(session: TrainingSession, replica: DeviceReplica): DeviceSlotAccess {
  const access = createOptimizer(session.config.optimizer, replica.parameters, session.config.learningRate);
  const optimizer: Optimizer = access.optimizer;
  const mirror = new Map<string, Float32Array[]>();
  const buffers = (name: string): Float32Array[] => {
    let list = mirror.get(name);
    if (list === undefined) {
      list = replica.parameters.map((parameter) => new Float32Array(parameter.size));
      mirror.set(name, list);
    }
    return list;
  };
  for (const name of SLOTS_FROM_THE_START[optimizer.kind] ?? []) buffers(name);
  return {
    optimizer,
    slotNames: () => [...new Set([...mirror.keys(), ...optimizer.deviceSlotNames()])],
    slotBuffers: buffers,
    async pull() {
      for (const name of optimizer.deviceSlotNames()) {
        const list = buffers(name);
        for (let index = 0; index < list.length; index++)
          await optimizer.readDeviceSlot(name, index, list[index]);
      }
    },
    push() {
      for (const [name, list] of mirror)
        for (let index = 0; index < list.length; index++) optimizer.writeDeviceSlot(name, index, list[index]);
    },
  };
}

/**
 * One optimizer step on the replica's device, in micro-batches of `microBatchSize` rows (the
 * whole batch at once when it is at least the batch): each micro-batch's summed cross-entropy
 * is scaled by 1 / batch size and back-propagated, then the optimizer steps once. Returns the
 * batch's mean loss, read back from the device (where a kernel's failure is reported). For
 * sequence data (a `labelShape`: a language model's next tokens) the loss is the mean over every
 * label, as on the host, and the inputs, token ids, stay on the host: the model's embedding
 * looks them up there and uploads what it selects.
 */
export async function runDeviceStep(
  replica: DeviceReplica,
  optimizer: Optimizer,
  batch: Batch,
  microBatchSize: number,
  labelShape: readonly number[] = [],
): Promise<number> {
  const rowSize = batch.inputs.length / batch.size;
  const size = Math.min(microBatchSize, batch.size);
  const tokens = labelShape.length > 0;
  const labelSize = labelSizeOf({ labelShape });
  const losses: Tensor[] = [];
  const created: Tensor[] = [];
  try {
    for (let start = 0; start < batch.size; start += size) {
      const rows = Math.min(size, batch.size - start);
      // x: (rows, ...featureShape), uploaded
      const host = fromData(batch.inputs.subarray(start * rowSize, (start + rows) * rowSize), [
        rows,
        ...batch.featureShape,
      ]);
      const input = tokens ? host : await host.to(replica.device);
      if (!tokens) created.push(input);
      collectDeviceTensors(created, () => {
        const output = classRows(replica.module.forward(input));
        const labels = batch.labels.subarray(start * labelSize, (start + rows) * labelSize);
        const loss =
          rows === batch.size
            ? crossEntropy(output, labels)
            : mul(crossEntropy(output, labels, { reduction: 'sum' }), 1 / (batch.size * labelSize));
        backward(loss);
        losses.push(loss);
      });
    }
    optimizer.step();
    optimizer.zeroGrad();
    let total = 0;
    for (const loss of losses) total += (await loss.to('cpu')).data[0];
    return total;
  } finally {
    for (const loss of losses) disposeGraph(loss);
    // What the graphs did not reach (views of the input, a step's half-built graph), except the
    // gradients the parameters keep (zeroGrad or the restore after a failure gives those back).
    const kept = new Set(replica.parameters.map((parameter) => parameter.deviceGrad));
    for (const tensor of created) if (!tensor.disposed && !kept.has(tensor)) dispose(tensor);
  }
}
