/**
 * Stochastic gradient descent with PyTorch's semantics:
 *   g = grad + weightDecay * p
 *   buf = g on the first step, else momentum * buf + (1 - dampening) * g
 *   g = nesterov ? g + momentum * buf : buf
 *   p -= lr * g
 */
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';
import { sgdOnDevice } from './deviceState.js';
import { Optimizer } from './Optimizer.js';

export interface SgdOptions {
  readonly learningRate: number;
  readonly momentum?: number;
  readonly dampening?: number;
  readonly nesterov?: boolean;
  readonly weightDecay?: number;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(parameters: Iterable<Tensor>, options: SgdOptions) {
    super(parameters, options.learningRate, 'sgd');
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    check(
      this.momentum >= 0 && this.weightDecay >= 0,
      'invalid_argument',
      () => 'SGD: momentum and weight decay must be >= 0',
    );
    check(!this.nesterov || (this.momentum > 0 && this.dampening === 0), 'invalid_argument', () => {
      return 'SGD: Nesterov momentum needs momentum > 0 and no dampening';
    });
  }

  step(): void {
    const { learningRate, momentum, dampening, nesterov, weightDecay } = this;
    const buffers = momentum !== 0 && this.hasHostParameters() ? this.slot('momentum') : null;
    const first = this.stepCount === 0;
    this.parameters.forEach((parameter, index) => {
      if (parameter.device !== 'cpu') {
        if (parameter.deviceGrad === null) return;
        const buffer = momentum !== 0 ? this.deviceSlots.get('momentum', index, parameter) : undefined;
        const step = { learningRate, momentum, dampening, nesterov, weightDecay, first };
        sgdOnDevice(parameter, parameter.deviceGrad, buffer, step);
        return;
      }
      const grad = parameter.grad;
      if (grad === null) return;
      const p = parameter.data;
      const buffer = buffers?.[index];
      for (let i = 0; i < p.length; i++) {
        let g = grad[i] + weightDecay * p[i];
        if (buffer !== undefined) {
          buffer[i] = first ? g : momentum * buffer[i] + (1 - dampening) * g;
          g = nesterov ? g + momentum * buffer[i] : buffer[i];
        }
        p[i] -= learningRate * g;
      }
    });
    this.stepCount++;
  }
}
