/**
 * Multi-head self-attention and a pre-norm transformer block (GPT-2 layout):
 *   x = x + attention(layerNorm1(x));  x = x + mlp(layerNorm2(x)),  mlp = Linear, GELU, Linear.
 */

import type { Random } from '../../actor/Random.js';
import { check } from '../errors.js';
import { add, mul } from '../ops/elementwise.js';
import { matmul } from '../ops/matmul.js';
import { causalMask, dropout as dropoutOp, scaledDotProductAttention } from '../ops/neural.js';
import { mean } from '../ops/reduce.js';
import { permute, reshape, transpose } from '../ops/shape.js';
import { softmax } from '../ops/softmax.js';
import { fromData, type Tensor, toArray } from '../Tensor.js';
import { initRandom } from './init.js';
import { Dropout, GELU, type InitOptions, LayerNorm, Linear, Sequential } from './layers.js';
import { Module } from './Module.js';

/**
 * Which keys a causal query sees when the query and key lengths differ (T queries, S keys):
 * `'bottom-right'` (zbmd's `causal: true`): query i sees keys 0..i + S - T, so the last query sees
 * every key (an incremental decoder with cached keys); `'top-left'`: query i sees keys 0..i, as
 * PyTorch 2's `scaled_dot_product_attention(is_causal=True)` (`torch.ones(T, S).tril()`).
 * The two agree when T = S.
 */
export type CausalAlignment = 'bottom-right' | 'top-left';

export interface AttentionLayerOptions extends InitOptions {
  /** Each position attends only to itself and earlier ones (`true` = `'bottom-right'`). */
  readonly causal?: boolean | CausalAlignment;
  /** Dropout on the attention weights while training (PyTorch's `dropout`, default 0). */
  readonly dropout?: number;
  /** Features of the keys and of the values (PyTorch's `kdim`, `vdim`; default the dimension). */
  readonly kdim?: number;
  readonly vdim?: number;
}

/**
 * The inputs of one attention call (PyTorch's `MultiheadAttention.forward` arguments, batch first).
 * Boolean masks hold 0 or 1 (zbmd has no bool tensors), 1 meaning "not allowed", as PyTorch's True.
 */
export interface AttendOptions {
  /** Keys (B, S, D); default: the query (self-attention). */
  readonly key?: Tensor;
  /** Values (B, S, D); default: the key. */
  readonly value?: Tensor;
  /** (B, S): 1 where a key is padding (PyTorch's `key_padding_mask`, boolean). */
  readonly keyPaddingMask?: Tensor;
  /** (T, S) or (B * heads, T, S): 1 where query t may not see key s (`attn_mask`, boolean). */
  readonly attentionMask?: Tensor;
  /** (T, S) or (B * heads, T, S): added to the scores (`attn_mask`, float). */
  readonly additiveMask?: Tensor;
  /** Overrides the module's `causal` for this call. */
  readonly causal?: boolean | CausalAlignment;
}

function causalAlignment(causal: boolean | CausalAlignment | undefined): CausalAlignment | null {
  if (causal === undefined || causal === false) return null;
  if (causal === true || causal === 'bottom-right') return 'bottom-right';
  check(causal === 'top-left', 'invalid_argument', () => {
    return `MultiHeadAttention: causal must be a boolean, 'bottom-right' or 'top-left', got ${String(causal)}`;
  });
  return 'top-left';
}

/**
 * Multi-head attention. `forward(x)` is self-attention on x (B, T, D); `attend(query, options)`
 * takes separate keys and values (cross-attention, S keys for T queries) and masks.
 * Initialised as PyTorch's `nn.MultiheadAttention`: the stacked query/key/value weights (3D, D)
 * xavier-uniform (bound sqrt(6 / (D + 3D))), their biases and the output bias zero, the output
 * weight uniform in +-1/sqrt(D). A query whose keys are all masked gets NaN, as in PyTorch.
 */
export class MultiHeadAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;
  readonly causal: CausalAlignment | null;
  readonly dropout: number;
  readonly kdim: number;
  readonly vdim: number;
  private readonly random: Random;

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
    this.kdim = options.kdim ?? dimension;
    this.vdim = options.vdim ?? dimension;
    check(
      [this.kdim, this.vdim].every((n) => Number.isInteger(n) && n > 0),
      'invalid_argument',
      () => {
        return `MultiHeadAttention: kdim and vdim must be positive integers, got ${this.kdim} and ${this.vdim}`;
      },
    );
    this.query = new Linear(dimension, dimension, { random });
    this.key = new Linear(this.kdim, dimension, { random });
    this.value = new Linear(this.vdim, dimension, { random });
    this.output = new Linear(dimension, dimension, { random });
    // PyTorch: one xavier-uniform (3D, D) in_proj_weight, or with kdim/vdim three (D, in) ones.
    const stacked = this.sameDimensions;
    for (const projection of [this.query, this.key, this.value]) {
      const inputs = projection.inFeatures;
      const bound = stacked
        ? Math.sqrt(6 / (dimension + 3 * dimension))
        : Math.sqrt(6 / (dimension + inputs));
      for (let i = 0; i < projection.weight.size; i++)
        projection.weight.data[i] = (2 * random.next() - 1) * bound;
    }
    for (const projection of [this.query, this.key, this.value, this.output]) projection.bias!.data.fill(0);
    this.causal = causalAlignment(options.causal);
    this.dropout = options.dropout ?? 0;
    check(this.dropout >= 0 && this.dropout < 1, 'invalid_argument', () => {
      return `MultiHeadAttention: dropout must be in [0, 1), got ${this.dropout}`;
    });
    this.random = random;
  }

  /** Keys and values have the model's dimension (PyTorch then stacks the projections in in_proj_weight). */
  get sameDimensions(): boolean {
    return this.kdim === this.dimension && this.vdim === this.dimension;
  }

  /** (B, T, D) -> (B, H, T, D/H) */
  private splitHeads(x: Tensor): Tensor {
    const [batch, length] = x.shape;
    return permute(reshape(x, [batch, length, this.heads, this.dimension / this.heads]), [0, 2, 1, 3]);
  }

  private checkInput(x: Tensor, name: string, batch?: number, length?: number): void {
    const features = name === 'key' ? this.kdim : name === 'value' ? this.vdim : this.dimension;
    const fits =
      x.rank === 3 &&
      x.shape[2] === features &&
      (batch === undefined || x.shape[0] === batch) &&
      (length === undefined || x.shape[1] === length);
    check(fits, 'shape_mismatch', () => {
      return `MultiHeadAttention: expected ${name} (${batch ?? 'B'}, ${length ?? 'T'}, ${features}), got [${x.shape.join(', ')}]`;
    });
  }

  forward(x: Tensor): Tensor {
    return this.attend(x);
  }

  /** Attention of `query` (B, T, D) over `options.key` (B, S, D) and `options.value`; (B, T, D). */
  attend(query: Tensor, options: AttendOptions = {}): Tensor {
    return this.run(query, options, false).output;
  }

  /**
   * `attend` and the attention weights (PyTorch's need_weights=True): (B, T, S) averaged over the
   * heads, or (B, heads, T, S) with `averageWeights: false`; after dropout, as PyTorch returns them.
   */
  attendWithWeights(
    query: Tensor,
    options: AttendOptions & { readonly averageWeights?: boolean } = {},
  ): { output: Tensor; weights: Tensor } {
    const { output, weights } = this.run(query, options, true);
    return { output, weights: options.averageWeights === false ? weights! : mean(weights!, 1) };
  }

  private run(
    query: Tensor,
    options: AttendOptions,
    withWeights: boolean,
  ): { output: Tensor; weights: Tensor | null } {
    this.checkInput(query, 'query');
    const [batch, length] = query.shape;
    const keyInput = options.key ?? query;
    this.checkInput(keyInput, 'key', batch);
    const keys = keyInput.shape[1];
    const valueInput = options.value ?? keyInput;
    this.checkInput(valueInput, 'value', batch, keys);
    const q = this.splitHeads(this.query.forward(query));
    const k = this.splitHeads(this.key.forward(keyInput));
    const v = this.splitHeads(this.value.forward(valueInput));
    const causal = options.causal === undefined ? this.causal : causalAlignment(options.causal);
    let mask = this.booleanMask(batch, length, keys, options, causal);
    if (options.additiveMask !== undefined) {
      const additive = this.headShaped(options.additiveMask, batch, length, keys, 'additiveMask');
      mask = mask === null ? additive : add(mask, additive);
    }
    let attended: Tensor;
    let weights: Tensor | null = null;
    if (withWeights || (this.training && this.dropout > 0)) {
      let scores = mul(matmul(q, transpose(k, -2, -1)), 1 / Math.sqrt(this.dimension / this.heads));
      if (mask !== null) scores = add(scores, mask);
      weights = dropoutOp(softmax(scores, -1), this.dropout, this.random, this.training);
      attended = matmul(weights, v);
    } else attended = scaledDotProductAttention(q, k, v, mask === null ? {} : { mask });
    const merged = reshape(permute(attended, [0, 2, 1, 3]), [batch, length, this.dimension]);
    return { output: this.output.forward(merged), weights };
  }

  /** A (T, S) mask as is; a (B * heads, T, S) one as (B, heads, T, S). */
  private headShaped(mask: Tensor, batch: number, length: number, keys: number, name: string): Tensor {
    const [t, s] = mask.shape.slice(-2);
    const fits =
      (mask.rank === 2 || (mask.rank === 3 && mask.shape[0] === batch * this.heads)) &&
      t === length &&
      s === keys;
    check(fits, 'shape_mismatch', () => {
      return `MultiHeadAttention: ${name} must be (${length}, ${keys}) or (${batch * this.heads}, ${length}, ${keys}) for ${length} queries, ${keys} keys and ${batch}x${this.heads} heads, got [${mask.shape.join(', ')}]`;
    });
    return mask.rank === 2 ? mask : reshape(mask, [batch, this.heads, length, keys]);
  }

  /** The boolean masks and the causal one as one additive (B, H, T, S) mask of 0 and -inf. */
  private booleanMask(
    batch: number,
    length: number,
    keys: number,
    options: AttendOptions,
    causal: CausalAlignment | null,
  ): Tensor | null {
    const { keyPaddingMask: padding, attentionMask: allowed } = options;
    if (padding === undefined && allowed === undefined) {
      if (causal === null) return null;
      if (causal === 'bottom-right') return causalMask(length, keys);
    }
    const heads = this.heads;
    const blocked = new Uint8Array(batch * heads * length * keys);
    if (padding !== undefined) {
      check(
        padding.rank === 2 && padding.shape[0] === batch && padding.shape[1] === keys,
        'shape_mismatch',
        () => {
          return `MultiHeadAttention: keyPaddingMask must be (${batch}, ${keys}), got [${padding.shape.join(', ')}]`;
        },
      );
      const values = booleanValues(padding, 'keyPaddingMask');
      for (let b = 0; b < batch; b++)
        for (let s = 0; s < keys; s++) {
          if (values[b * keys + s] === 0) continue;
          for (let h = 0; h < heads; h++)
            for (let t = 0; t < length; t++) blocked[((b * heads + h) * length + t) * keys + s] = 1;
        }
    }
    if (allowed !== undefined) {
      this.headShaped(allowed, batch, length, keys, 'attentionMask');
      const values = booleanValues(allowed, 'attentionMask');
      const plane = length * keys;
      for (let bh = 0; bh < batch * heads; bh++)
        for (let i = 0; i < plane; i++)
          if (values[allowed.rank === 2 ? i : bh * plane + i] !== 0) blocked[bh * plane + i] = 1;
    }
    if (causal !== null) {
      const shift = causal === 'bottom-right' ? keys - length : 0;
      for (let bh = 0; bh < batch * heads; bh++)
        for (let t = 0; t < length; t++)
          for (let s = Math.max(0, t + shift + 1); s < keys; s++) blocked[(bh * length + t) * keys + s] = 1;
    }
    const additive = new Float32Array(blocked.length);
    for (let i = 0; i < blocked.length; i++) if (blocked[i] === 1) additive[i] = Number.NEGATIVE_INFINITY;
    return fromData(additive, [batch, heads, length, keys]);
  }
}

/** A boolean mask's values, checked to be 0 or 1. */
function booleanValues(mask: Tensor, name: string): ArrayLike<number> {
  const values = toArray(mask);
  const bad = values.findIndex((value) => value !== 0 && value !== 1);
  check(bad < 0, 'invalid_argument', () => {
    return `MultiHeadAttention: ${name} is boolean (1 = not allowed, 0 = allowed), got ${values[bad]} at ${bad}; pass a float mask as additiveMask`;
  });
  return values;
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
