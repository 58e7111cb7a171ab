/**
 * Adam (Kingma and Ba) and AdamW (decoupled weight decay), PyTorch's formulation:
 *   Adam:  g = grad + weightDecay * p        AdamW: p *= 1 - lr * weightDecay
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * with amsgrad: vMax = max(vMax, v) in place of v in the denominator.
 * t is the parameter's own step count (PyTorch's `state['step']`): a parameter whose first
 * gradient comes late starts its own bias correction. Learning rate and weight decay are per
 * parameter group.
 */
import { check } from '../errors.js';
import { type AdamKernel, createAdamKernel } from '../internal/simd.js';
import type { Tensor } from '../Tensor.js';
import { adamOnDevice } from './deviceState.js';
import { Optimizer, type OptimizerParameters } from './Optimizer.js';

export interface AdamOptions {
  readonly learningRate?: number;
  /**
   * Use the WebAssembly SIMD kernel when available (default true): the parameters' values and
   * gradients then move into the kernel's memory (`parameter.data` is re-pointed there), so
   * hold on to the parameter, not to an earlier `data` array. false keeps the JS loop.
   */
  readonly simd?: boolean;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  readonly weightDecay?: number;
  /** Keep the largest second moment seen (AMSGrad, Reddi et al.); default false. */
  readonly amsgrad?: boolean;
}

/**
 * With the SIMD kernel, every parameter gets a zero-filled gradient buffer in kernel memory at
 * construction, so a parameter no loss reaches is still stepped with a zero gradient (PyTorch
 * after `zero_grad(set_to_none=False)`); the JS loop skips parameters whose `grad` is null.
 */
export class Adam extends Optimizer {
  private kernel: KernelBlock | null;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** The default weight decay (groups may have their own). */
  readonly weightDecay: number;
  readonly amsgrad: boolean;

  constructor(
    parameters: OptimizerParameters,
    options: AdamOptions = {},
    private readonly decoupled = false,
  ) {
    const weightDecay = options.weightDecay ?? (decoupled ? 1e-2 : 0);
    super(parameters, options.learningRate ?? 1e-3, decoupled ? 'adamw' : 'adam', weightDecay);
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = weightDecay;
    this.amsgrad = options.amsgrad ?? false;
    check(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1, 'invalid_argument', () => {
      return `${this.kind}: betas must be in [0, 1), got ${this.beta1}, ${this.beta2}`;
    });
    check(
      this.epsilon > 0 && this.weightDecay >= 0,
      'invalid_argument',
      () => `${this.kind}: epsilon must be > 0, weight decay >= 0`,
    );
    const onDevice = this.parameters.some((parameter) => parameter.device !== 'cpu');
    this.kernel =
      options.simd === false || onDevice || this.amsgrad ? null : KernelBlock.create(this.parameters);
  }

  protected override allocateSlot(name: string): Float32Array[] {
    if (this.kernel === null || (name !== 'm' && name !== 'v')) return super.allocateSlot(name);
    return this.kernel.views(name);
  }

  step(): void {
    this.startStep();
    if (this.kernel !== null) this.stepWithKernel(this.kernel, false);
    else this.stepWithLoop();
  }

  /** With the SIMD kernel, the gradients are zeroed in the update's own pass over them. */
  override stepAndZeroGrad(): void {
    this.startStep();
    if (this.kernel === null) {
      this.stepWithLoop();
      this.zeroGrad();
      return;
    }
    // Every gradient is in the kernel's block (adopt moves it there, or gives a zeroed one).
    this.stepWithKernel(this.kernel, true);
  }

  /**
   * The SIMD kernel updates host parameters only: once one moved to a device, the loop (with
   * device launches) takes over. The moments stay where the kernel had them.
   */
  protected override parametersMoved(): void {
    if (this.parameters.some((parameter) => parameter.device !== 'cpu')) this.kernel = null;
  }

  /** The coefficients of parameter `index`'s update at its next own step (which this counts). */
  private coefficients(index: number): {
    stepSize: number;
    inverseCorrection2: number;
    coupledDecay: number;
    shrink: number;
  } {
    const t = ++this.parameterSteps[index];
    const { learningRate, weightDecay } = this.groupOf[index];
    return {
      stepSize: learningRate / (1 - this.beta1 ** t),
      inverseCorrection2: 1 / Math.sqrt(1 - this.beta2 ** t),
      coupledDecay: this.decoupled ? 0 : weightDecay,
      shrink: this.decoupled ? 1 - learningRate * weightDecay : 1,
    };
  }

  private stepWithKernel(block: KernelBlock, zeroGradients: boolean): void {
    const { beta1, beta2, epsilon } = this;
    this.slot('m');
    this.slot('v');
    for (let index = 0; index < this.parameters.length; index++) {
      if (!block.adopt(index)) continue;
      const { stepSize, inverseCorrection2, coupledDecay, shrink } = this.coefficients(index);
      const [p, g, m, v, byteLength] = block.offsetsBytes(index);
      const update = zeroGradients ? block.kernel.adamZeroing : block.kernel.adam;
      update(
        p,
        g,
        m,
        v,
        byteLength,
        beta1,
        1 - beta1,
        beta2,
        1 - beta2,
        stepSize,
        inverseCorrection2,
        epsilon,
        coupledDecay,
        shrink,
      );
    }
    this.finishStep();
  }

  private stepWithLoop(): void {
    const { beta1, beta2, epsilon } = this;
    const host = this.hasHostParameters();
    const firstMoments = host ? this.slot('m') : [];
    const secondMoments = host ? this.slot('v') : [];
    const largest = host && this.amsgrad ? this.slot('vMax') : null;
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      if (parameter.device !== 'cpu') {
        if (parameter.deviceGrad === null) continue;
        const m = this.deviceSlots.get('m', index, parameter);
        const v = this.deviceSlots.get('v', index, parameter);
        const vMax = this.amsgrad ? this.deviceSlots.get('vMax', index, parameter) : null;
        const step = { beta1, beta2, epsilon, ...this.coefficients(index) };
        adamOnDevice(parameter, parameter.deviceGrad, m, v, step, vMax);
        continue;
      }
      const grad = parameter.grad;
      if (grad === null) continue;
      const { stepSize, inverseCorrection2, coupledDecay, shrink } = this.coefficients(index);
      const p = parameter.data;
      const m = firstMoments[index];
      const v = secondMoments[index];
      const vMax = largest?.[index];
      for (let i = 0; i < p.length; i++) {
        const g = grad[i] + coupledDecay * p[i];
        const mi = beta1 * m[i] + (1 - beta1) * g;
        const vi = beta2 * v[i] + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        let denominatorMoment = vi;
        if (vMax !== undefined) {
          if (vi > vMax[i]) vMax[i] = vi;
          denominatorMoment = vMax[i];
        }
        p[i] =
          p[i] * shrink - (stepSize * mi) / (Math.sqrt(denominatorMoment) * inverseCorrection2 + epsilon);
      }
    }
    this.finishStep();
  }
}

function roundUpToLanes(size: number): number {
  return Math.ceil(size / 4) * 4;
}

const SECTIONS = ['p', 'g', 'm', 'v'] as const;

/**
 * One block of kernel memory holding, for every parameter, its values, its gradient and both
 * moments: [p of all][g of all][m of all][v of all], each parameter's run rounded up to 4
 * floats so SIMD lanes never reach into the next one. The parameters' storage and `grad` are
 * re-pointed into the block, so an update copies nothing. A parameter whose storage or gradient
 * was replaced since (a second optimizer, a user assignment) is copied back in first.
 */
class KernelBlock {
  private readonly offsetsFloats: number[] = [];
  private readonly totalFloats: number;

  private constructor(
    private readonly parameters: readonly Tensor[],
    readonly kernel: AdamKernel,
  ) {
    let total = 0;
    for (const parameter of parameters) {
      this.offsetsFloats.push(total);
      total += roundUpToLanes(parameter.size);
    }
    this.totalFloats = total;
  }

  static create(parameters: readonly Tensor[]): KernelBlock | null {
    const total = parameters.reduce((sum, parameter) => sum + roundUpToLanes(parameter.size), 0);
    const kernel = createAdamKernel(SECTIONS.length * total * 4);
    if (kernel === null) return null;
    const block = new KernelBlock(parameters, kernel);
    for (let index = 0; index < parameters.length; index++) block.adopt(index);
    return block;
  }

  view(section: (typeof SECTIONS)[number], index: number): Float32Array {
    const start = SECTIONS.indexOf(section) * this.totalFloats + this.offsetsFloats[index];
    return new Float32Array(this.kernel.memory.buffer, start * 4, this.parameters[index].size);
  }

  views(section: 'm' | 'v'): Float32Array[] {
    return this.parameters.map((_, index) => this.view(section, index));
  }

  /** Makes sure parameter `index` lives in the block; false when it has no gradient. */
  adopt(index: number): boolean {
    const parameter = this.parameters[index];
    const values = this.view('p', index);
    if (parameter.storage.buffer !== values.buffer || parameter.storage.byteOffset !== values.byteOffset) {
      values.set(parameter.data);
      parameter.storage = values;
    }
    const grad = parameter.grad;
    const gradient = this.view('g', index);
    if (grad !== null && (grad.buffer !== gradient.buffer || grad.byteOffset !== gradient.byteOffset)) {
      gradient.set(grad);
      parameter.grad = gradient;
    }
    if (grad === null) {
      // Give backward the block's buffer to accumulate into, zeroed.
      parameter.grad = gradient.fill(0);
      return false;
    }
    return true;
  }

  /** Byte offsets of p, g, m, v for parameter `index`, and the byte length its lanes cover. */
  offsetsBytes(index: number): [number, number, number, number, number] {
    const base = this.offsetsFloats[index] * 4;
    const section = this.totalFloats * 4;
    return [
      base,
      section + base,
      2 * section + base,
      3 * section + base,
      roundUpToLanes(this.parameters[index].size) * 4,
    ];
  }
}

/** Adam with decoupled weight decay (Loshchilov and Hutter); default weight decay 0.01. */
export class AdamW extends Adam {
  constructor(parameters: OptimizerParameters, options: AdamOptions = {}) {
    super(parameters, options, true);
  }
}
