/**
 * PyTorch's `nn.LSTM` and `nn.GRU` (unidirectional), with PyTorch's parameter names, layouts
 * and gate order, so a PyTorch state dict loads as is:
 *   weight_ih_l{k} (G*H, I or H), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H),
 *   G = 4 for the LSTM (gates i, f, g, o), 3 for the GRU (r, z, n).
 * LSTM:  i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh);  c' = sig(f) c + sig(i) tanh(g);
 *        h' = sig(o) tanh(c')
 * GRU:   r = sig(x_r + h_r), z = sig(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
 *        (x_* from W_ih x + b_ih, h_* from W_hh h + b_hh, as PyTorch: r multiplies h_n with its bias)
 * Inputs are (T, B, I), or (B, T, I) with `batchFirst`; states are (layers, B, H) either way.
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
import { reshape } from '../ops/shape.js';
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
    for (let layer = 0; layer < this.numLayers; layer++) {
      const inputs = layer === 0 ? inputSize : hiddenSize;
      fields[`weight_ih_l${layer}`] = uniformParameter([gates * hiddenSize, inputs], bound, this.random);
      fields[`weight_hh_l${layer}`] = uniformParameter([gates * hiddenSize, hiddenSize], bound, this.random);
      if (options.bias !== false) {
        fields[`bias_ih_l${layer}`] = uniformParameter([gates * hiddenSize], bound, this.random);
        fields[`bias_hh_l${layer}`] = uniformParameter([gates * hiddenSize], bound, this.random);
      }
    }
  }

  /** Layer `layer`'s parameters (PyTorch's weight_ih_l{layer} and the rest). */
  layerWeights(layer: number): LayerWeights {
    const fields = this as unknown as Record<string, Parameter | undefined>;
    return {
      weightIh: fields[`weight_ih_l${layer}`]!,
      weightHh: fields[`weight_hh_l${layer}`]!,
      biasIh: fields[`bias_ih_l${layer}`] ?? null,
      biasHh: fields[`bias_hh_l${layer}`] ?? null,
    };
  }

  forward(input: Tensor): Tensor {
    return this.run(input).output;
  }

  /** The whole sequence; `h0` (and the LSTM's `c0`), (layers, B, H), default zeros. */
  run(input: Tensor, h0?: Tensor, c0?: Tensor): RecurrentResult {
    const { kind, hiddenSize: hidden, numLayers } = this;
    check(input.rank === 3 && input.shape[2] === this.inputSize, 'shape_mismatch', () => {
      const layout = this.batchFirst ? '(B, T' : '(T, B';
      return `${kind}: expected input ${layout}, ${this.inputSize}), got [${input.shape.join(', ')}]`;
    });
    const timeAxis = this.batchFirst ? 1 : 0;
    const batch = input.shape[1 - timeAxis];
    const states = (given: Tensor | undefined, name: string): Tensor[] => {
      if (given === undefined) return Array.from({ length: numLayers }, () => full([batch, hidden], 0));
      const fits =
        given.rank === 3 &&
        given.shape[0] === numLayers &&
        given.shape[1] === batch &&
        given.shape[2] === hidden;
      check(fits, 'shape_mismatch', () => {
        return `${kind}: ${name} must be (${numLayers}, ${batch}, ${hidden}), got [${given.shape.join(', ')}]`;
      });
      return split(given, 1, 0).map((piece) => reshape(piece, [batch, hidden]));
    };
    const hs = states(h0, 'h0');
    const cs = kind === 'LSTM' ? states(c0, 'c0') : [];
    let sequence = input;
    for (let layer = 0; layer < numLayers; layer++) {
      const w = this.layerWeights(layer);
      const projected = linear(sequence, w.weightIh, w.biasIh);
      const steps = split(projected, 1, timeAxis).map((piece) => reshape(piece, [batch, projected.shape[2]]));
      const outputs: Tensor[] = [];
      for (const step of steps) {
        const recurrent = linear(hs[layer], w.weightHh, w.biasHh);
        if (kind === 'LSTM') {
          const [i, f, g, o] = split(add(step, recurrent), hidden, 1);
          cs[layer] = add(mul(sigmoid(f), cs[layer]), mul(sigmoid(i), tanh(g)));
          hs[layer] = mul(sigmoid(o), tanh(cs[layer]));
        } else {
          const [xr, xz, xn] = split(step, hidden, 1);
          const [hr, hz, hn] = split(recurrent, hidden, 1);
          const r = sigmoid(add(xr, hr));
          const z = sigmoid(add(xz, hz));
          const n = tanh(add(xn, mul(r, hn)));
          hs[layer] = add(mul(sub(1, z), n), mul(z, hs[layer]));
        }
        outputs.push(hs[layer]);
      }
      sequence = stack(outputs, timeAxis);
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
