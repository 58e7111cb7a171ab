/**
 * RMSprop and Adagrad with PyTorch's formulations (parameters on the CPU, or on a device, where
 * the same formulas run as elementwise launches: deviceState.ts):
 *   RMSprop: g = grad + weightDecay * p;   s = alpha s + (1 - alpha) g^2
 *            centered: a = alpha a + (1 - alpha) g;  d = sqrt(s - a^2) + eps, else sqrt(s) + eps
 *            momentum > 0: buf = momentum buf + g / d;  p -= lr buf,  else p -= lr g / d
 *   Adagrad: g = grad + weightDecay * p;   clr = lr / (1 + (t - 1) lrDecay)
 *            sum += g^2;   p -= clr g / (sqrt(sum) + eps)
 * t is the parameter's own step count. Learning rate and weight decay are per parameter group.
 */
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';
import { adagradOnDevice, rmspropOnDevice } from './deviceState.js';
import { Optimizer, type OptimizerParameters } from './Optimizer.js';

function finite(kind: string, name: string, value: number, minimum: number, inclusive = true): void {
  check(
    Number.isFinite(value) && (inclusive ? value >= minimum : value > minimum),
    'invalid_argument',
    () => `${kind}: ${name} must be ${inclusive ? '>=' : '>'} ${minimum}, got ${value}`,
  );
}

export interface RmspropOptions {
  /** Default 0.01. */
  readonly learningRate?: number;
  /** Smoothing of the squared-gradient average; default 0.99. */
  readonly alpha?: number;
  /** Default 1e-8. */
  readonly epsilon?: number;
  readonly weightDecay?: number;
  readonly momentum?: number;
  /** Normalise by the variance estimate (subtract the squared mean gradient); default false. */
  readonly centered?: boolean;
}

export class RMSprop extends Optimizer {
  readonly alpha: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly momentum: number;
  readonly centered: boolean;

  constructor(parameters: OptimizerParameters, options: RmspropOptions = {}) {
    super(parameters, options.learningRate ?? 1e-2, 'rmsprop', options.weightDecay ?? 0);
    this.alpha = options.alpha ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.momentum = options.momentum ?? 0;
    this.centered = options.centered ?? false;
    finite(this.kind, 'alpha', this.alpha, 0);
    finite(this.kind, 'epsilon', this.epsilon, 0);
    finite(this.kind, 'momentum', this.momentum, 0);
  }

  step(): void {
    this.startStep();
    const { alpha, epsilon, momentum, centered } = this;
    const host = this.hasHostParameters();
    const squares = host ? this.slot('squareAverage') : [];
    const means = host && centered ? this.slot('gradAverage') : null;
    const buffers = host && momentum > 0 ? this.slot('momentum') : null;
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      const { learningRate, weightDecay } = this.groupOf[index];
      if (parameter.device !== 'cpu') {
        if (parameter.deviceGrad === null) continue;
        this.parameterSteps[index]++;
        const slot = (name: string) => this.deviceSlots.get(name, index, parameter);
        const mean = centered ? slot('gradAverage') : undefined;
        const buffer = momentum > 0 ? slot('momentum') : undefined;
        const step = { learningRate, alpha, epsilon, weightDecay, momentum };
        rmspropOnDevice(parameter, parameter.deviceGrad, slot('squareAverage'), mean, buffer, step);
        continue;
      }
      const grad = parameter.grad;
      if (grad === null) continue;
      this.parameterSteps[index]++;
      const p = parameter.data;
      const s = squares[index];
      const a = means?.[index];
      const buffer = buffers?.[index];
      for (let i = 0; i < p.length; i++) {
        const g = grad[i] + weightDecay * p[i];
        s[i] = alpha * s[i] + (1 - alpha) * g * g;
        let denominator: number;
        if (a !== undefined) {
          a[i] = alpha * a[i] + (1 - alpha) * g;
          denominator = Math.sqrt(s[i] - a[i] * a[i]) + epsilon;
        } else denominator = Math.sqrt(s[i]) + epsilon;
        if (buffer !== undefined) {
          buffer[i] = momentum * buffer[i] + g / denominator;
          p[i] -= learningRate * buffer[i];
        } else p[i] -= (learningRate * g) / denominator;
      }
    }
    this.finishStep();
  }
}

export interface AdagradOptions {
  /** Default 0.01. */
  readonly learningRate?: number;
  /** The rate at step t is lr / (1 + (t - 1) lrDecay); default 0. */
  readonly learningRateDecay?: number;
  readonly weightDecay?: number;
  /** The value the sum of squared gradients starts at; default 0. */
  readonly initialAccumulator?: number;
  /** Default 1e-10. */
  readonly epsilon?: number;
}

export class Adagrad extends Optimizer {
  readonly learningRateDecay: number;
  readonly weightDecay: number;
  readonly initialAccumulator: number;
  readonly epsilon: number;

  constructor(parameters: OptimizerParameters, options: AdagradOptions = {}) {
    super(parameters, options.learningRate ?? 1e-2, 'adagrad', options.weightDecay ?? 0);
    this.learningRateDecay = options.learningRateDecay ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.initialAccumulator = options.initialAccumulator ?? 0;
    this.epsilon = options.epsilon ?? 1e-10;
    finite(this.kind, 'learningRateDecay', this.learningRateDecay, 0);
    finite(this.kind, 'initialAccumulator', this.initialAccumulator, 0);
    finite(this.kind, 'epsilon', this.epsilon, 0);
    // PyTorch creates the sums with the parameters, so they are in every state dict (a device
    // parameter's on its device).
    if (this.hasHostParameters()) this.slot('sum');
    this.parameters.forEach((parameter, index) => {
      if (parameter.device !== 'cpu') this.deviceSum(index);
    });
  }

  private deviceSum(index: number): Tensor {
    return this.deviceSlots.get('sum', index, this.parameters[index], this.initialAccumulator);
  }

  /** Counts parameter `index`'s step and gives its decayed learning rate. */
  private nextRate(index: number): number {
    const t = ++this.parameterSteps[index];
    return this.groupOf[index].learningRate / (1 + (t - 1) * this.learningRateDecay);
  }

  protected override allocateSlot(name: string): Float32Array[] {
    const buffers = super.allocateSlot(name);
    if (name === 'sum') for (const buffer of buffers) buffer.fill(this.initialAccumulator);
    return buffers;
  }

  protected override resetSlots(): void {
    super.resetSlots();
    if (this.hasHostParameters()) for (const buffer of this.slot('sum')) buffer.fill(this.initialAccumulator);
  }

  step(): void {
    this.startStep();
    const sums = this.hasHostParameters() ? this.slot('sum') : [];
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      const { weightDecay } = this.groupOf[index];
      if (parameter.device !== 'cpu') {
        if (parameter.deviceGrad === null) continue;
        const step = { rate: this.nextRate(index), weightDecay, epsilon: this.epsilon };
        adagradOnDevice(parameter, parameter.deviceGrad, this.deviceSum(index), step);
        continue;
      }
      const grad = parameter.grad;
      if (grad === null) continue;
      const rate = this.nextRate(index);
      const p = parameter.data;
      const sum = sums[index];
      const epsilon = this.epsilon;
      for (let i = 0; i < p.length; i++) {
        const g = grad[i] + weightDecay * p[i];
        sum[i] += g * g;
        p[i] -= (rate * g) / (Math.sqrt(sum[i]) + epsilon);
      }
    }
    this.finishStep();
  }
}
