/**
 * Multi-head self-attention and a pre-norm transformer block (GPT-2 layout):
 *   x = x + attention(layerNorm1(x));  x = x + mlp(layerNorm2(x)),  mlp = Linear, GELU, Linear.
 */
import { check } from '../errors.js';
import { add } from '../ops/elementwise.js';
import { scaledDotProductAttention } from '../ops/neural.js';
import { permute, reshape } from '../ops/shape.js';
import type { Tensor } from '../Tensor.js';
import { initRandom } from './init.js';
import { Dropout, GELU, type InitOptions, LayerNorm, Linear, Sequential } from './layers.js';
import { Module } from './Module.js';

export interface AttentionLayerOptions extends InitOptions {
  /** Each position attends only to itself and earlier ones. */
  readonly causal?: boolean;
}

/** x (B, T, D) -> (B, T, D), `heads` heads of D / heads dimensions each. */
export class MultiHeadAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;
  readonly causal: boolean;

  constructor(
    readonly dimension: number,
    readonly heads: number,
    options: AttentionLayerOptions = {},
  ) {
    super();
    check(Number.isInteger(heads) && heads > 0 && dimension % heads === 0, 'invalid_argument', () => {
      return `MultiHeadAttention: dimension ${dimension} is not divisible by ${heads} heads`;
    });
    const random = initRandom(options.random);
    this.query = new Linear(dimension, dimension, { random });
    this.key = new Linear(dimension, dimension, { random });
    this.value = new Linear(dimension, dimension, { random });
    this.output = new Linear(dimension, dimension, { random });
    this.causal = options.causal ?? false;
  }

  /** (B, T, D) -> (B, H, T, D/H) */
  private splitHeads(x: Tensor): Tensor {
    const [batch, length] = x.shape;
    return permute(reshape(x, [batch, length, this.heads, this.dimension / this.heads]), [0, 2, 1, 3]);
  }

  forward(x: Tensor): Tensor {
    check(x.rank === 3 && x.shape[2] === this.dimension, 'shape_mismatch', () => {
      return `MultiHeadAttention: expected (B, T, ${this.dimension}), got [${x.shape.join(', ')}]`;
    });
    const [batch, length] = x.shape;
    const q = this.splitHeads(this.query.forward(x));
    const k = this.splitHeads(this.key.forward(x));
    const v = this.splitHeads(this.value.forward(x));
    const attended = scaledDotProductAttention(q, k, v, { causal: this.causal });
    const merged = reshape(permute(attended, [0, 2, 1, 3]), [batch, length, this.dimension]);
    return this.output.forward(merged);
  }
}

export interface TransformerBlockOptions extends AttentionLayerOptions {
  /** Width of the MLP's hidden layer (default 4 * dimension). */
  readonly hidden?: number;
  /** Dropout after attention and the MLP (default 0). */
  readonly dropout?: number;
}

export class TransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attention: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Sequential;
  readonly dropout: Dropout;

  constructor(
    readonly dimension: number,
    heads: number,
    options: TransformerBlockOptions = {},
  ) {
    super();
    const random = initRandom(options.random);
    const hidden = options.hidden ?? 4 * dimension;
    this.norm1 = new LayerNorm(dimension);
    this.attention = new MultiHeadAttention(dimension, heads, { random, causal: options.causal });
    this.norm2 = new LayerNorm(dimension);
    this.mlp = new Sequential(
      new Linear(dimension, hidden, { random }),
      new GELU(),
      new Linear(hidden, dimension, { random }),
    );
    this.dropout = new Dropout(options.dropout ?? 0, { random });
  }

  forward(x: Tensor): Tensor {
    const attended = add(x, this.dropout.forward(this.attention.forward(this.norm1.forward(x))));
    return add(attended, this.dropout.forward(this.mlp.forward(this.norm2.forward(attended))));
  }
}
