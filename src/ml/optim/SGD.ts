/**
 * Stochastic gradient descent with PyTorch's semantics:
 *   g = grad + weightDecay * p
 *   buf = g on the first step, else momentum * buf + (1 - dampening) * g
 *   g = nesterov ? g + momentum * buf : buf
 *   p -= lr * g
 * The momentum buffer starts at a parameter's first step with a gradient (PyTorch's
 * `momentum_buffer is None`); learning rate and weight decay are per parameter group.
 */
import { check } from '../errors.js';
import { sgdOnDevice } from './deviceState.js';
import { Optimizer, type OptimizerParameters } from './Optimizer.js';

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
  /** The default weight decay (groups may have their own). */
  readonly weightDecay: number;

  constructor(parameters: OptimizerParameters, options: SgdOptions) {
    super(parameters, options.learningRate, 'sgd', options.weightDecay ?? 0);
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    check(
      Number.isFinite(this.momentum) && this.momentum >= 0 && this.weightDecay >= 0,
      'invalid_argument',
      () => 'SGD: momentum and weight decay must be >= 0',
    );
    check(!this.nesterov || (this.momentum > 0 && this.dampening === 0), 'invalid_argument', () => {
      return 'SGD: Nesterov momentum needs momentum > 0 and no dampening';
    });
  }

  step(): void {
    this.startStep();
    const { momentum, dampening, nesterov } = this;
    const buffers = momentum !== 0 && this.hasHostParameters() ? this.slot('momentum') : null;
    this.parameters.forEach((parameter, index) => {
      const { learningRate, weightDecay } = this.groupOf[index];
      const first = this.parameterSteps[index] === 0;
      if (parameter.device !== 'cpu') {
        if (parameter.deviceGrad === null) return;
        this.parameterSteps[index]++;
        const buffer = momentum !== 0 ? this.deviceSlots.get('momentum', index, parameter) : undefined;
        const step = { learningRate, momentum, dampening, nesterov, weightDecay, first };
        sgdOnDevice(parameter, parameter.deviceGrad, buffer, step);
        return;
      }
      const grad = parameter.grad;
      if (grad === null) return;
      this.parameterSteps[index]++;
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
    this.finishStep();
  }
}
