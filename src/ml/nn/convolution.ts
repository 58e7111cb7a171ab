/**
 * Conv1d, ConvTranspose2d and adaptive average pooling as modules, with PyTorch's parameter
 * layouts (Conv1d weight (O, C, K); ConvTranspose2d weight (Cin, Cout, KH, KW)) and PyTorch's
 * initialisation (uniform in +-1/sqrt(fan_in), where ConvTranspose2d's fan_in is
 * weight.shape[1] * KH * KW = Cout KH KW, as PyTorch computes it).
 */
import { check } from '../errors.js';
import { adaptiveAvgPool1d, adaptiveAvgPool2d } from '../ops/adaptivePool.js';
import { conv1d, convTranspose2d, type Pair } from '../ops/convTranspose.js';
import type { Tensor } from '../Tensor.js';
import { initRandom, uniformParameter } from './init.js';
import type { InitOptions } from './layers.js';
import { Module, type Parameter } from './Module.js';

export interface Conv1dLayerOptions extends InitOptions {
  readonly stride?: number;
  readonly padding?: number;
  readonly bias?: boolean;
}

export class Conv1d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly stride: number;
  readonly padding: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    options: Conv1dLayerOptions = {},
  ) {
    super();
    check(
      [inChannels, outChannels, kernelSize].every((n) => Number.isInteger(n) && n > 0),
      'invalid_argument',
      () => 'Conv1d: channels and kernel size must be positive integers',
    );
    const random = initRandom(options.random);
    const bound = 1 / Math.sqrt(inChannels * kernelSize);
    this.weight = uniformParameter([outChannels, inChannels, kernelSize], bound, random);
    this.bias = options.bias === false ? null : uniformParameter([outChannels], bound, random);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
  }

  forward(input: Tensor): Tensor {
    return conv1d(input, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

export interface ConvTranspose2dLayerOptions extends InitOptions {
  readonly stride?: Pair;
  readonly padding?: Pair;
  readonly dilation?: Pair;
  readonly outputPadding?: Pair;
  readonly bias?: boolean;
}

export class ConvTranspose2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly kernelSize: [number, number];

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    readonly options: ConvTranspose2dLayerOptions = {},
  ) {
    super();
    this.kernelSize =
      typeof kernelSize === 'number' ? [kernelSize, kernelSize] : [kernelSize[0], kernelSize[1]];
    check(
      [inChannels, outChannels, ...this.kernelSize].every((n) => Number.isInteger(n) && n > 0),
      'invalid_argument',
      () => 'ConvTranspose2d: channels and kernel size must be positive integers',
    );
    const random = initRandom(options.random);
    const [kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt(outChannels * kh * kw);
    this.weight = uniformParameter([inChannels, outChannels, kh, kw], bound, random);
    this.bias = options.bias === false ? null : uniformParameter([outChannels], bound, random);
  }

  forward(input: Tensor): Tensor {
    const { stride, padding, dilation, outputPadding } = this.options;
    return convTranspose2d(input, this.weight, this.bias, { stride, padding, dilation, outputPadding });
  }
}

export class AdaptiveAvgPool1d extends Module {
  constructor(readonly outputSize: number) {
    super();
  }

  forward(input: Tensor): Tensor {
    return adaptiveAvgPool1d(input, this.outputSize);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number, number]) {
    super();
  }

  forward(input: Tensor): Tensor {
    return adaptiveAvgPool2d(input, this.outputSize);
  }
}
