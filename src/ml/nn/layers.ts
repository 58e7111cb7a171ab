/**
 * Layers. Weights are initialised as PyTorch does (uniform in +-1/sqrt(fan_in) for dense and
 * convolution layers), from a seeded generator (see `init.ts`).
 */
import type { Random } from '../../actor/Random.js';
import { check } from '../errors.js';
import { geluTanh } from '../ops/activations.js';
import { avgPool2d, conv2d, conv2dMaxPoolRelu, maxPool2d } from '../ops/conv.js';
import { type Pair, pairOf } from '../ops/convGeometry.js';
import { gelu, relu, sigmoid, tanh } from '../ops/elementwise.js';
import { linear } from '../ops/matmul.js';
import { dropout, embedding, layerNorm } from '../ops/neural.js';
import { flatten, reshape } from '../ops/shape.js';
import { logSoftmax, softmax } from '../ops/softmax.js';
import type { Tensor } from '../Tensor.js';
import { constantParameter, initRandom, normalParameter, uniformParameter } from './init.js';
import { Module, type Parameter } from './Module.js';

export interface InitOptions {
  /** The generator to draw initial weights from (default: the `manualSeed` one). */
  readonly random?: Random;
}

/** y = x W^T + b, W (out, in). */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: InitOptions & { bias?: boolean } = {},
  ) {
    super();
    check(
      Number.isInteger(inFeatures) && inFeatures > 0 && Number.isInteger(outFeatures) && outFeatures > 0,
      'invalid_argument',
      () => {
        return `Linear: feature counts must be positive integers, got ${inFeatures} -> ${outFeatures}`;
      },
    );
    const random = initRandom(options.random);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = uniformParameter([outFeatures, inFeatures], bound, random);
    this.bias = options.bias === false ? null : uniformParameter([outFeatures], bound, random);
  }

  forward(input: Tensor): Tensor {
    return linear(input, this.weight, this.bias);
  }
}

export class ReLU extends Module {
  forward(input: Tensor): Tensor {
    return relu(input);
  }
}

/** GELU: the exact (erf) form by default, or `'tanh'`, the approximation GPT-2 uses (as PyTorch's `approximate`). */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
    check(approximate === 'none' || approximate === 'tanh', 'invalid_argument', () => {
      return `GELU: approximate must be 'none' or 'tanh', got ${String(approximate)}`;
    });
  }

  forward(input: Tensor): Tensor {
    return this.approximate === 'tanh' ? geluTanh(input) : gelu(input);
  }
}

export class Sigmoid extends Module {
  forward(input: Tensor): Tensor {
    return sigmoid(input);
  }
}

export class Tanh extends Module {
  forward(input: Tensor): Tensor {
    return tanh(input);
  }
}

export class Softmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }

  forward(input: Tensor): Tensor {
    return softmax(input, this.axis);
  }
}

export class LogSoftmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }

  forward(input: Tensor): Tensor {
    return logSoftmax(input, this.axis);
  }
}

/** Zeroes elements with probability p while training; the identity in eval mode. */
export class Dropout extends Module {
  private readonly random: Random;

  constructor(
    readonly p = 0.5,
    options: InitOptions = {},
  ) {
    super();
    check(p >= 0 && p < 1, 'invalid_argument', () => `Dropout: p must be in [0, 1), got ${p}`);
    this.random = initRandom(options.random);
  }

  forward(input: Tensor): Tensor {
    return dropout(input, this.p, this.random, this.training);
  }
}

export class Flatten extends Module {
  constructor(
    readonly startAxis = 1,
    readonly endAxis = -1,
  ) {
    super();
  }

  forward(input: Tensor): Tensor {
    return flatten(input, this.startAxis, this.endAxis);
  }
}

/** Reshapes each sample: (N, ...) -> (N, ...shape); one dimension may be -1. */
export class Reshape extends Module {
  constructor(readonly shape: readonly number[]) {
    super();
  }

  forward(input: Tensor): Tensor {
    return reshape(input, [input.shape[0], ...this.shape]);
  }
}

/** Runs its layers in order. */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
  }

  /**
   * Runs the layers in order. A Conv2d followed by MaxPool2d(2) and ReLU (in either order) runs
   * as one fused op where it applies (`conv2dMaxPoolRelu`: the same values and gradients, without
   * the full-size convolution output); layers of subclasses are never fused.
   */
  forward(input: Tensor): Tensor {
    let x = input;
    const layers = this.layers;
    for (let i = 0; i < layers.length; i++) {
      const fused = i + 2 < layers.length ? convPoolRelu(layers[i], layers[i + 1], layers[i + 2], x) : null;
      if (fused !== null) {
        x = fused;
        i += 2;
      } else x = layers[i].forward(x);
    }
    return x;
  }
}

/** The fused conv2d, max pool, ReLU of three layers, or null when they are not that pattern or it does not apply. */
function convPoolRelu(first: Module, second: Module, third: Module, x: Tensor): Tensor | null {
  if (Object.getPrototypeOf(first) !== Conv2d.prototype) return null;
  const isPool = (layer: Module): boolean =>
    Object.getPrototypeOf(layer) === MaxPool2d.prototype &&
    (layer as MaxPool2d).kernelSize === 2 &&
    (layer as MaxPool2d).stride === 2;
  const isRelu = (layer: Module): boolean => Object.getPrototypeOf(layer) === ReLU.prototype;
  if (!((isPool(second) && isRelu(third)) || (isRelu(second) && isPool(third)))) return null;
  const conv = first as Conv2d;
  const { stride, padding, dilation, groups } = conv;
  return conv2dMaxPoolRelu(x, conv.weight, conv.bias, { stride, padding, dilation, groups });
}

export interface Conv2dLayerOptions extends InitOptions {
  /** One number for both dimensions or [height, width], as PyTorch's; default 1. */
  readonly stride?: Pair;
  /** Zeros on each side; one number or [height, width]; default 0. */
  readonly padding?: Pair;
  /** Spacing between kernel taps, as PyTorch's `dilation`; one number or [height, width]; default 1. */
  readonly dilation?: Pair;
  /** Channel groups, as PyTorch's `groups` (the weight is (O, C / groups, KH, KW)); default 1. */
  readonly groups?: number;
  readonly bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** [height, width]. */
  readonly kernelSize: [number, number];
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly groups: number;

  /** `kernelSize`: one number for a square kernel or [height, width]. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    options: Conv2dLayerOptions = {},
  ) {
    super();
    this.kernelSize = pairOf(kernelSize);
    check(
      [inChannels, outChannels, ...this.kernelSize].every((n) => Number.isInteger(n) && n > 0),
      'invalid_argument',
      () => {
        return `Conv2d: channels and kernel size must be positive integers`;
      },
    );
    const groups = options.groups ?? 1;
    check(
      Number.isInteger(groups) && groups >= 1 && inChannels % groups === 0 && outChannels % groups === 0,
      'invalid_argument',
      () => `Conv2d: groups (${groups}) must be a positive integer dividing ${inChannels} and ${outChannels}`,
    );
    const random = initRandom(options.random);
    const groupChannels = inChannels / groups;
    const [kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt(groupChannels * kh * kw);
    this.weight = uniformParameter([outChannels, groupChannels, kh, kw], bound, random);
    this.bias = options.bias === false ? null : uniformParameter([outChannels], bound, random);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.dilation = options.dilation ?? 1;
    this.groups = groups;
  }

  forward(input: Tensor): Tensor {
    const { stride, padding, dilation, groups } = this;
    return conv2d(input, this.weight, this.bias, { stride, padding, dilation, groups });
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly stride = kernelSize,
  ) {
    super();
  }

  forward(input: Tensor): Tensor {
    return maxPool2d(input, this.kernelSize, { stride: this.stride });
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly stride = kernelSize,
  ) {
    super();
  }

  forward(input: Tensor): Tensor {
    return avgPool2d(input, this.kernelSize, { stride: this.stride });
  }
}

/**
 * A lookup table (V, D), initialised N(0, 1) as PyTorch. Its input holds integer ids.
 * `paddingIdx` (negative counts from the end, as PyTorch): that row starts at zero and gets no
 * gradient, so it stays what it is set to.
 */
export class Embedding extends Module {
  readonly weight: Parameter;
  readonly paddingIdx: number | null;

  constructor(
    readonly count: number,
    readonly dimension: number,
    options: InitOptions & { readonly paddingIdx?: number } = {},
  ) {
    super();
    this.weight = normalParameter([count, dimension], 1, initRandom(options.random));
    const padding = options.paddingIdx;
    check(
      padding === undefined || (Number.isInteger(padding) && padding >= -count && padding < count),
      'invalid_argument',
      () => `Embedding: paddingIdx must be an integer in [-${count}, ${count}), got ${padding}`,
    );
    this.paddingIdx = padding === undefined ? null : padding < 0 ? padding + count : padding;
    if (this.paddingIdx !== null)
      this.weight.data.fill(0, this.paddingIdx * dimension, (this.paddingIdx + 1) * dimension);
  }

  forward(indices: Tensor): Tensor {
    if (this.paddingIdx === null) return embedding(this.weight, indices);
    return embedding(this.weight, indices, undefined, { paddingIdx: this.paddingIdx });
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(
    readonly dimension: number,
    readonly epsilon = 1e-5,
  ) {
    super();
    this.weight = constantParameter([dimension], 1);
    this.bias = constantParameter([dimension], 0);
  }

  forward(input: Tensor): Tensor {
    return layerNorm(input, this.weight, this.bias, this.epsilon);
  }
}
