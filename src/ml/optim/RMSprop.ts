/**
 * RMSprop and Adagrad with PyTorch's formulations (CPU parameters):
 *   RMSprop: g = grad + weightDecay * p;   s = alpha s + (1 - alpha) g^2
 *            centered: a = alpha a + (1 - alpha) g;  d = sqrt(s - a^2) + eps, else sqrt(s) + eps
 *            momentum > 0: buf = momentum buf + g / d;  p -= lr buf,  else p -= lr g / d
 *   Adagrad: g = grad + weightDecay * p;   clr = lr / (1 + (t - 1) lrDecay)
 *            sum += g^2;   p -= clr g / (sqrt(sum) + eps)
 * t is the parameter's own step count. Learning rate and weight decay are per parameter group.
 */
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';
import { Optimizer, type OptimizerParameters } from './Optimizer.js';

function requireHost(kind: string, parameters: readonly Tensor[]): void {
  check(
    parameters.every((parameter) => parameter.device === 'cpu'),
    'invalid_argument',
    () => `${kind}: runs on the CPU only; move the parameters to the CPU (or use SGD, Adam, AdamW)`,
  );
}

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
    requireHost(this.kind, this.parameters);
  }

  step(): void {
    const { alpha, epsilon, momentum, centered } = this;
    const squares = this.slot('squareAverage');
    const means = centered ? this.slot('gradAverage') : null;
    const buffers = momentum > 0 ? this.slot('momentum') : null;
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      const grad = parameter.grad;
      if (grad === null) continue;
      this.parameterSteps[index]++;
      const { learningRate, weightDecay } = this.groupOf[index];
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
    requireHost(this.kind, this.parameters);
    // PyTorch creates the sums with the parameters, so they are in every state dict.
    this.slot('sum');
  }

  protected override allocateSlot(name: string): Float32Array[] {
    const buffers = super.allocateSlot(name);
    if (name === 'sum') for (const buffer of buffers) buffer.fill(this.initialAccumulator);
    return buffers;
  }

  protected override resetSlots(): void {
    super.resetSlots();
    for (const buffer of this.slot('sum')) buffer.fill(this.initialAccumulator);
  }

  step(): void {
    const sums = this.slot('sum');
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      const grad = parameter.grad;
      if (grad === null) continue;
      const t = ++this.parameterSteps[index];
      const { learningRate, weightDecay } = this.groupOf[index];
      const rate = learningRate / (1 + (t - 1) * this.learningRateDecay);
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
