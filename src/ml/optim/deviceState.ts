/**
 * Optimizer state and updates for parameters on a GPU-layer device. The update formulas are
 * the CPU ones (SGD.ts, Adam.ts, RMSprop.ts): Adam and AdamW run as one fused `adamStep` launch
 * per parameter (`amsgradStep` with amsgrad), SGD with momentum as one `sgdStep` and Adagrad as
 * one `adagradStep` and plain RMSprop as one `rmspropStep`, updating the parameter and its slots
 * in place; plain SGD and RMSprop centered or with momentum are written with device ops under
 * `noGrad`, each new value copied into the parameter's own buffer. Either way the
 * parameter (and whoever holds it) stays the same tensor. Slots (momentum, moments) are device
 * tensors, zero until first written (Adagrad's sums start at its initial accumulator).
 */
import type { Device as GpuDevice } from '../../gpu/Device.js';
import type { AdamStepParameters, SgdStepParameters } from '../../gpu/kernels/catalog.js';
import { add, div, mul, sqrt, sub } from '../ops/elementwise.js';
import { bufferOf, deviceTensor, dispose, noGrad, type Tensor } from '../Tensor.js';

/** Per-slot device tensors, one entry per parameter index (CPU parameters have none). */
export class DeviceSlots {
  private readonly slots = new Map<string, Map<number, Tensor>>();

  /** How many slot tensors there are, over all names and parameters. */
  get size(): number {
    let count = 0;
    for (const slot of this.slots.values()) count += slot.size;
    return count;
  }

  names(): string[] {
    return [...this.slots].filter(([, slot]) => slot.size > 0).map(([name]) => name);
  }

  entries(name: string): Array<[number, Tensor]> {
    return [...(this.slots.get(name) ?? new Map<number, Tensor>())];
  }

  /** Slot `name` of `parameter` (number `index`), `initial` (0 by default) in every element on first use. */
  get(name: string, index: number, parameter: Tensor, initial = 0): Tensor {
    let slot = this.slots.get(name);
    if (slot === undefined) {
      slot = new Map();
      this.slots.set(name, slot);
    }
    let tensor = slot.get(index);
    if (tensor === undefined) {
      const device = parameter.device as GpuDevice;
      const values = new Float32Array(parameter.size).fill(initial);
      tensor = deviceTensor(device, device.upload(values), parameter.shape);
      slot.set(index, tensor);
    }
    return tensor;
  }

  /** Writes `values` (same shape) into slot `name` of parameter `index`. */
  set(name: string, index: number, parameter: Tensor, values: Float32Array): void {
    const tensor = this.get(name, index, parameter);
    (tensor.device as GpuDevice).copyIn(bufferOf(tensor), values);
  }

  /** The names of the slots parameter `index` has. */
  namesOf(index: number): string[] {
    return [...this.slots].filter(([, slot]) => slot.has(index)).map(([name]) => name);
  }

  /** Gives back parameter `index`'s slots (it left their device); they start anew on next use. */
  drop(index: number): void {
    for (const slot of this.slots.values()) {
      const tensor = slot.get(index);
      if (tensor !== undefined) dispose(tensor);
      slot.delete(index);
    }
  }

  /** Zeroes every slot (a state load starts from zero, as on the CPU). */
  clear(): void {
    for (const slot of this.slots.values())
      for (const tensor of slot.values())
        (tensor.device as GpuDevice).copyIn(bufferOf(tensor), new Float32Array(tensor.size));
  }
}

/** Copies `value` into `target`'s buffer (`value` stays the caller's). */
function copyInto(target: Tensor, value: Tensor): void {
  (target.device as GpuDevice).copy(bufferOf(value), bufferOf(target));
}

/** Copies `value` into `target`'s buffer and disposes `value`. */
function assign(target: Tensor, value: Tensor): void {
  copyInto(target, value);
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

/** grad + weightDecay * parameter (grad itself without weight decay), its temporaries kept. */
function decayed(
  keep: (tensor: Tensor) => Tensor,
  grad: Tensor,
  parameter: Tensor,
  weightDecay: number,
): Tensor {
  return weightDecay !== 0 ? keep(add(grad, keep(mul(parameter, weightDecay)))) : grad;
}

/** The options of one SGD step (the GPU layer's `SgdStepParameters`). */
export type SgdStep = SgdStepParameters;

/**
 * One SGD update of a device parameter; `buffer` is its momentum slot (absent without momentum).
 * With momentum it is one fused `sgdStep` launch, in place; without, two or four elementwise
 * launches (p - lr * g, with the weight decay added first).
 */
export function sgdOnDevice(
  parameter: Tensor,
  grad: Tensor,
  buffer: Tensor | undefined,
  step: SgdStep,
): void {
  if (buffer !== undefined) {
    const device = parameter.device as GpuDevice;
    device.sgdStep(bufferOf(parameter), bufferOf(grad), bufferOf(buffer), step, { count: parameter.size });
    return;
  }
  scoped((keep) => {
    const g = decayed(keep, grad, parameter, step.weightDecay);
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

export interface RmspropStep {
  readonly learningRate: number;
  readonly alpha: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly momentum: number;
}

/**
 * One RMSprop update of a device parameter (RMSprop.ts's formula): `square` is its
 * squared-gradient average, `mean` its gradient average (centered only), `buffer` its momentum
 * (momentum > 0 only). Plain RMSprop is one fused `rmspropStep` launch; centered or with
 * momentum, elementwise launches.
 */
export function rmspropOnDevice(
  parameter: Tensor,
  grad: Tensor,
  square: Tensor,
  mean: Tensor | undefined,
  buffer: Tensor | undefined,
  step: RmspropStep,
): void {
  const { alpha, epsilon, learningRate, weightDecay } = step;
  if (mean === undefined && buffer === undefined) {
    // plain RMSprop: one fused launch
    const device = parameter.device as GpuDevice;
    device.rmspropStep(bufferOf(parameter), bufferOf(grad), bufferOf(square), step, {
      count: parameter.size,
    });
    return;
  }
  scoped((keep) => {
    const g = decayed(keep, grad, parameter, weightDecay);
    copyInto(square, keep(add(keep(mul(square, alpha)), keep(mul(keep(mul(g, g)), 1 - alpha)))));
    let variance = square;
    if (mean !== undefined) {
      copyInto(mean, keep(add(keep(mul(mean, alpha)), keep(mul(g, 1 - alpha)))));
      variance = keep(sub(square, keep(mul(mean, mean))));
    }
    let update = keep(div(g, keep(add(keep(sqrt(variance)), epsilon))));
    if (buffer !== undefined) {
      copyInto(buffer, keep(add(keep(mul(buffer, step.momentum)), update)));
      update = buffer;
    }
    assign(parameter, sub(parameter, keep(mul(update, learningRate))));
  });
}

/**
 * One Adagrad update of a device parameter with its sum of squared gradients `sum`, in place:
 * one fused `adagradStep` launch (RMSprop.ts's formula in f32); `rate` is the step's decayed
 * learning rate.
 */
export function adagradOnDevice(
  parameter: Tensor,
  grad: Tensor,
  sum: Tensor,
  step: { readonly rate: number; readonly weightDecay: number; readonly epsilon: number },
): void {
  const device = parameter.device as GpuDevice;
  device.adagradStep(bufferOf(parameter), bufferOf(grad), bufferOf(sum), step, { count: parameter.size });
}
