/** Activation modules over `ops/activations.ts` (PyTorch's names and defaults). */
import { elu, leakyRelu, silu, softplus } from '../ops/activations.js';
import type { Tensor } from '../Tensor.js';
import { Module } from './Module.js';

export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }

  forward(input: Tensor): Tensor {
    return leakyRelu(input, this.negativeSlope);
  }
}

export class SiLU extends Module {
  forward(input: Tensor): Tensor {
    return silu(input);
  }
}

export class ELU extends Module {
  constructor(readonly alpha = 1) {
    super();
  }

  forward(input: Tensor): Tensor {
    return elu(input, this.alpha);
  }
}

export class Softplus extends Module {
  constructor(
    readonly beta = 1,
    readonly threshold = 20,
  ) {
    super();
  }

  forward(input: Tensor): Tensor {
    return softplus(input, this.beta, this.threshold);
  }
}
