/**
 * PyTorch's `nn.LSTM` and `nn.GRU` (unidirectional), with PyTorch's parameter names, layouts
 * and gate order, so a PyTorch state dict loads as is:
 *   weight_ih_l{k} (G*H, I or H), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H),
 *   G = 4 for the LSTM (gates i, f, g, o), 3 for the GRU (r, z, n).
 * LSTM:  i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh);  c' = sig(f) c + sig(i) tanh(g);
 *        h' = sig(o) tanh(c')
 * GRU:   r = sig(x_r + h_r), z = sig(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
 *        (x_* from W_ih x + b_ih, h_* from W_hh h + b_hh, as PyTorch: r multiplies h_n with its bias)
 * Inputs are (T, B, I), or (B, T, I) with `batchFirst`; states are (layers * directions, B, H)
 * either way. `bidirectional` adds `..._reverse` parameters run over the reversed sequence.
 * Every weight and bias starts uniform in +-1/sqrt(H), as PyTorch. Composed from ops (one
 * input projection per layer for the whole sequence, then a step per time position), so
 * gradients flow through time by the ops' own rules. CPU only.
 */
import type { Random } from '../../actor/Random.js';
import { check } from '../errors.js';
import { add, mul, sigmoid, sub, tanh } from '../ops/elementwise.js';
import { split, stack } from '../ops/indexing.js';
import { linear } from '../ops/matmul.js';
import { dropout } from '../ops/neural.js';
import { concat, reshape } from '../ops/shape.js';
import { full, type Tensor } from '../Tensor.js';
import { initRandom, uniformParameter } from './init.js';
import type { InitOptions } from './layers.js';
import { Module, type Parameter } from './Module.js';

export interface RecurrentOptions extends InitOptions {
  /** Stacked layers (PyTorch's `num_layers`, default 1). */
  readonly numLayers?: number;
  readonly bias?: boolean;
  /** Inputs and outputs (B, T, features) instead of (T, B, features). */
  readonly batchFirst?: boolean;
  /** Dropout on each layer's output but the last while training (default 0). */
  readonly dropout?: number;
  /** A second direction per layer, over the reversed sequence (PyTorch's `bidirectional`). */
  readonly bidirectional?: boolean;
}

export interface LayerWeights {
  readonly weightIh: Parameter;
  readonly weightHh: Parameter;
  readonly biasIh: Parameter | null;
  readonly biasHh: Parameter | null;
}

/** What one call returns: every time step's top-layer state, and each layer's last states. */
export interface RecurrentResult {
  /** (T, B, H), or (B, T, H) with batchFirst. */
  readonly output: Tensor;
  /** (layers, B, H) */
  readonly h: Tensor;
  /** The LSTM's cell state (layers, B, H); null for the GRU. */
  readonly c: Tensor | null;
}

abstract class Recurrent extends Module {
  readonly numLayers: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  private readonly random: Random;

  constructor(
    readonly kind: 'LSTM' | 'GRU',
    readonly inputSize: number,
    readonly hiddenSize: number,
    options: RecurrentOptions,
  ) {
    super();
    this.numLayers = options.numLayers ?? 1;
    this.batchFirst = options.batchFirst ?? false;
    this.dropout = options.dropout ?? 0;
    this.bidirectional = options.bidirectional ?? false;
    check(
      [inputSize, hiddenSize, this.numLayers].every((n) => Number.isInteger(n) && n > 0),
      'invalid_argument',
      () => `${kind}: inputSize, hiddenSize and numLayers must be positive integers`,
    );
    check(this.dropout >= 0 && this.dropout < 1, 'invalid_argument', () => {
      return `${kind}: dropout must be in [0, 1), got ${this.dropout}`;
    });
    this.random = initRandom(options.random);
    const gates = kind === 'LSTM' ? 4 : 3;
    const bound = 1 / Math.sqrt(hiddenSize);
    const fields = this as unknown as Record<string, Parameter>;
    const directions = this.bidirectional ? 2 : 1;
    for (let layer = 0; layer < this.numLayers; layer++) {
      const inputs = layer === 0 ? inputSize : directions * hiddenSize;
      for (const suffix of directions === 2 ? ['', '_reverse'] : ['']) {
        const name = (kind: string) => `${kind}_l${layer}${suffix}`;
        fields[name('weight_ih')] = uniformParameter([gates * hiddenSize, inputs], bound, this.random);
        fields[name('weight_hh')] = uniformParameter([gates * hiddenSize, hiddenSize], bound, this.random);
        if (options.bias !== false) {
          fields[name('bias_ih')] = uniformParameter([gates * hiddenSize], bound, this.random);
          fields[name('bias_hh')] = uniformParameter([gates * hiddenSize], bound, this.random);
        }
      }
    }
  }

  /** Layer `layer`'s parameters (PyTorch's weight_ih_l{layer} and the rest; `_reverse` ones with `reverse`). */
  layerWeights(layer: number, reverse = false): LayerWeights {
    const fields = this as unknown as Record<string, Parameter | undefined>;
    const suffix = reverse ? '_reverse' : '';
    return {
      weightIh: fields[`weight_ih_l${layer}${suffix}`]!,
      weightHh: fields[`weight_hh_l${layer}${suffix}`]!,
      biasIh: fields[`bias_ih_l${layer}${suffix}`] ?? null,
      biasHh: fields[`bias_hh_l${layer}${suffix}`] ?? null,
    };
  }

  forward(input: Tensor): Tensor {
    return this.run(input).output;
  }

  /**
   * The whole sequence; `h0` (and the LSTM's `c0`), (layers * directions, B, H), default zeros.
   * The output holds both directions side by side (..., 2H) when bidirectional; h and c are
   * ordered layer 0 forward, layer 0 reverse, layer 1 forward, ..., as PyTorch's h_n and c_n.
   */
  run(input: Tensor, h0?: Tensor, c0?: Tensor): RecurrentResult {
    const { kind, hiddenSize: hidden, numLayers } = this;
    const directions = this.bidirectional ? 2 : 1;
    const stateCount = numLayers * directions;
    check(input.rank === 3 && input.shape[2] === this.inputSize, 'shape_mismatch', () => {
      const layout = this.batchFirst ? '(B, T' : '(T, B';
      return `${kind}: expected input ${layout}, ${this.inputSize}), got [${input.shape.join(', ')}]`;
    });
    const timeAxis = this.batchFirst ? 1 : 0;
    const batch = input.shape[1 - timeAxis];
    const states = (given: Tensor | undefined, name: string): Tensor[] => {
      if (given === undefined) return Array.from({ length: stateCount }, () => full([batch, hidden], 0));
      const fits =
        given.rank === 3 &&
        given.shape[0] === stateCount &&
        given.shape[1] === batch &&
        given.shape[2] === hidden;
      check(fits, 'shape_mismatch', () => {
        return `${kind}: ${name} must be (${stateCount}, ${batch}, ${hidden}), got [${given.shape.join(', ')}]`;
      });
      return split(given, 1, 0).map((piece) => reshape(piece, [batch, hidden]));
    };
    const hs = states(h0, 'h0');
    const cs = kind === 'LSTM' ? states(c0, 'c0') : [];
    let sequence = input;
    for (let layer = 0; layer < numLayers; layer++) {
      const directionOutputs: Tensor[] = [];
      for (let direction = 0; direction < directions; direction++) {
        const w = this.layerWeights(layer, direction === 1);
        const at = layer * directions + direction;
        const projected = linear(sequence, w.weightIh, w.biasIh);
        const steps = split(projected, 1, timeAxis).map((piece) =>
          reshape(piece, [batch, projected.shape[2]]),
        );
        if (direction === 1) steps.reverse();
        const outputs: Tensor[] = [];
        for (const step of steps) {
          const recurrent = linear(hs[at], w.weightHh, w.biasHh);
          if (kind === 'LSTM') {
            const [i, f, g, o] = split(add(step, recurrent), hidden, 1);
            cs[at] = add(mul(sigmoid(f), cs[at]), mul(sigmoid(i), tanh(g)));
            hs[at] = mul(sigmoid(o), tanh(cs[at]));
          } else {
            const [xr, xz, xn] = split(step, hidden, 1);
            const [hr, hz, hn] = split(recurrent, hidden, 1);
            const r = sigmoid(add(xr, hr));
            const z = sigmoid(add(xz, hz));
            const n = tanh(add(xn, mul(r, hn)));
            hs[at] = add(mul(sub(1, z), n), mul(z, hs[at]));
          }
          outputs.push(hs[at]);
        }
        if (direction === 1) outputs.reverse();
        directionOutputs.push(stack(outputs, timeAxis));
      }
      sequence = directions === 1 ? directionOutputs[0] : concat(directionOutputs, 2);
      if (layer < numLayers - 1) sequence = dropout(sequence, this.dropout, this.random, this.training);
    }
    return { output: sequence, h: stack(hs, 0), c: kind === 'LSTM' ? stack(cs, 0) : null };
  }
}

export class LSTM extends Recurrent {
  constructor(inputSize: number, hiddenSize: number, options: RecurrentOptions = {}) {
    super('LSTM', inputSize, hiddenSize, options);
  }
}

export class GRU extends Recurrent {
  constructor(inputSize: number, hiddenSize: number, options: RecurrentOptions = {}) {
    super('GRU', inputSize, hiddenSize, options);
  }
}
