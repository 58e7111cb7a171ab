/**
 * Optimizer state and updates for parameters on a GPU-layer device. The update formulas are
 * the CPU ones (SGD.ts, Adam.ts): Adam and AdamW run as one fused `adamStep` launch per
 * parameter (`amsgradStep` with amsgrad), updating it and its moments in place; SGD is written with device ops under
 * `noGrad`, each new value copied into the parameter's own buffer. Either way the parameter
 * (and whoever holds it) stays the same tensor. Slots (momentum, moments) are device tensors,
 * zero until first written.
 */
import type { Device as GpuDevice } from '../../gpu/Device.js';
import type { AdamStepParameters } from '../../gpu/kernels/catalog.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { bufferOf, deviceTensor, dispose, noGrad, type Tensor } from '../Tensor.js';

/** Per-slot device tensors, one entry per parameter index (CPU parameters have none). */
export class DeviceSlots {
  private readonly slots = new Map<string, Map<number, Tensor>>();

  get size(): number {
    return this.slots.size;
  }

  names(): string[] {
    return [...this.slots.keys()];
  }

  entries(name: string): Array<[number, Tensor]> {
    return [...(this.slots.get(name) ?? new Map<number, Tensor>())];
  }

  /** Slot `name` of `parameter` (number `index`), zeroed on first use. */
  get(name: string, index: number, parameter: Tensor): Tensor {
    let slot = this.slots.get(name);
    if (slot === undefined) {
      slot = new Map();
      this.slots.set(name, slot);
    }
    let tensor = slot.get(index);
    if (tensor === undefined) {
      const device = parameter.device as GpuDevice;
      tensor = deviceTensor(device, device.upload(new Float32Array(parameter.size)), parameter.shape);
      slot.set(index, tensor);
    }
    return tensor;
  }

  /** Writes `values` (same shape) into slot `name` of parameter `index`. */
  set(name: string, index: number, parameter: Tensor, values: Float32Array): void {
    const tensor = this.get(name, index, parameter);
    (tensor.device as GpuDevice).copyIn(bufferOf(tensor), values);
  }

  /** Zeroes every slot (a state load starts from zero, as on the CPU). */
  clear(): void {
    for (const slot of this.slots.values())
      for (const tensor of slot.values())
        (tensor.device as GpuDevice).copyIn(bufferOf(tensor), new Float32Array(tensor.size));
  }
}

/** Copies `value` into `target`'s buffer and gives `value` back. */
function assign(target: Tensor, value: Tensor): void {
  (target.device as GpuDevice).copy(bufferOf(value), bufferOf(target));
  dispose(value);
}

/** Runs `update` with the tensors it makes collected, disposing them afterwards. */
function scoped(update: (keep: (tensor: Tensor) => Tensor) => void): void {
  const made: Tensor[] = [];
  const keep = (tensor: Tensor): Tensor => {
    made.push(tensor);
    return tensor;
  };
  try {
    noGrad(() => update(keep));
  } finally {
    // Also when a launch failed half-way (a device error): the temporaries go back at once.
    for (const tensor of made) dispose(tensor);
  }
}

export interface SgdStep {
  readonly learningRate: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly first: boolean;
}

/** One SGD update of a device parameter; `buffer` is its momentum slot (absent without momentum). */
export function sgdOnDevice(
  parameter: Tensor,
  grad: Tensor,
  buffer: Tensor | undefined,
  step: SgdStep,
): void {
  scoped((keep) => {
    let g = step.weightDecay !== 0 ? keep(add(grad, keep(mul(parameter, step.weightDecay)))) : grad;
    if (buffer !== undefined) {
      const next = step.first
        ? keep(mul(g, 1))
        : keep(add(keep(mul(buffer, step.momentum)), keep(mul(g, 1 - step.dampening))));
      (buffer.device as GpuDevice).copy(bufferOf(next), bufferOf(buffer));
      g = step.nesterov ? keep(add(g, keep(mul(buffer, step.momentum)))) : buffer;
    }
    assign(parameter, sub(parameter, keep(mul(g, step.learningRate))));
  });
}

/** The scalars of one Adam step (the GPU layer's `AdamStepParameters`). */
export type AdamStep = AdamStepParameters;

/**
 * One Adam/AdamW update of a device parameter with its moment slots `m` and `v` (and, with
 * amsgrad, `vMax`, the largest v so far): one fused launch that updates them and p in place (no
 * temporaries), the formula of Adam.ts in f32.
 */
export function adamOnDevice(
  parameter: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  step: AdamStep,
  vMax: Tensor | null = null,
): void {
  const device = parameter.device as GpuDevice;
  device.adamStep(bufferOf(parameter), bufferOf(grad), bufferOf(m), bufferOf(v), step, {
    count: parameter.size,
    ...(vMax === null ? {} : { maxSecondMoment: bufferOf(vMax) }),
  });
}
