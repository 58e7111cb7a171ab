/**
 * PyTorch's `nn.TransformerEncoderLayer` (batch first), with its field names, so its state dict
 * maps one to one (`self_attn.in_proj_weight`, `linear1.weight`, `norm1.bias`, ...; see
 * pytorch.ts):
 *   post-norm (default): x = norm1(x + dropout1(selfAttn(x)));  x = norm2(x + dropout2(ff(x)))
 *   normFirst:           x = x + dropout1(selfAttn(norm1(x)));  x = x + dropout2(ff(norm2(x)))
 *   ff(x) = linear2(dropout(activation(linear1(x))))
 */
import { check, TensorError } from '../errors.js';
import { add, gelu, relu } from '../ops/elementwise.js';
import type { Tensor } from '../Tensor.js';
import { type AttendOptions, MultiHeadAttention } from './attention.js';
import { initRandom } from './init.js';
import { Dropout, type InitOptions, LayerNorm, Linear } from './layers.js';
import { Module } from './Module.js';

export interface TransformerEncoderLayerOptions extends InitOptions {
  /** Width of the feed-forward layer (PyTorch's `dim_feedforward`, default 2048). */
  readonly dimFeedforward?: number;
  /** Dropout after attention, in the feed-forward layer and on the attention weights (default 0.1). */
  readonly dropout?: number;
  readonly activation?: 'relu' | 'gelu';
  readonly layerNormEps?: number;
  /** Pre-norm (PyTorch's `norm_first`, default false). */
  readonly normFirst?: boolean;
}

/** The mask arguments of PyTorch's forward(src, src_mask, src_key_padding_mask), batch first. */
export type EncoderMasks = Omit<AttendOptions, 'key' | 'value'>;

/** The resolved options both layers share; `layer` names the class in errors. */
function layerSettings(layer: string, options: TransformerEncoderLayerOptions) {
  const activation = options.activation ?? 'relu';
  check(activation === 'relu' || activation === 'gelu', 'invalid_argument', () => {
    return `${layer}: activation must be 'relu' or 'gelu', got ${String(activation)}`;
  });
  return {
    random: initRandom(options.random),
    hidden: options.dimFeedforward ?? 2048,
    p: options.dropout ?? 0.1,
    eps: options.layerNormEps ?? 1e-5,
    activation,
    normFirst: options.normFirst ?? false,
  };
}

/** ff(x) = linear2(dropout(activation(linear1(x)))), then the layer's last dropout. */
function feedForward(
  layer: { linear1: Linear; linear2: Linear; dropout: Dropout; activation: 'relu' | 'gelu' },
  last: Dropout,
  x: Tensor,
): Tensor {
  const hidden = layer.linear1.forward(x);
  const activated = layer.activation === 'relu' ? relu(hidden) : gelu(hidden);
  return last.forward(layer.linear2.forward(layer.dropout.forward(activated)));
}

export class TransformerEncoderLayer extends Module {
  readonly selfAttn: MultiHeadAttention;
  readonly linear1: Linear;
  readonly dropout: Dropout;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly normFirst: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(
    readonly dModel: number,
    nhead: number,
    options: TransformerEncoderLayerOptions = {},
  ) {
    super();
    const { random, hidden, p, eps, activation, normFirst } = layerSettings(
      'TransformerEncoderLayer',
      options,
    );
    this.activation = activation;
    this.selfAttn = new MultiHeadAttention(dModel, nhead, { random, dropout: p });
    this.linear1 = new Linear(dModel, hidden, { random });
    this.dropout = new Dropout(p, { random });
    this.linear2 = new Linear(hidden, dModel, { random });
    this.normFirst = normFirst;
    this.norm1 = new LayerNorm(dModel, eps);
    this.norm2 = new LayerNorm(dModel, eps);
    this.dropout1 = new Dropout(p, { random });
    this.dropout2 = new Dropout(p, { random });
  }

  forward(x: Tensor): Tensor {
    return this.encode(x);
  }

  /** x (B, T, dModel) with optional masks (as `MultiHeadAttention.attend`). */
  encode(x: Tensor, masks: EncoderMasks = {}): Tensor {
    const attention = (input: Tensor): Tensor => this.dropout1.forward(this.selfAttn.attend(input, masks));
    const ff = (input: Tensor): Tensor => feedForward(this, this.dropout2, input);
    if (this.normFirst) {
      const attended = add(x, attention(this.norm1.forward(x)));
      return add(attended, ff(this.norm2.forward(attended)));
    }
    const attended = this.norm1.forward(add(x, attention(x)));
    return this.norm2.forward(add(attended, ff(attended)));
  }
}

/** PyTorch's `nn.TransformerEncoder`: `layers` in turn, then an optional final norm (state dict `layers.0.…`, `norm.…`). */
export class TransformerEncoder extends Module {
  readonly layers: TransformerEncoderLayer[];
  readonly norm: LayerNorm | null;

  constructor(layers: readonly TransformerEncoderLayer[], options: { readonly norm?: LayerNorm } = {}) {
    super();
    check(layers.length > 0, 'invalid_argument', () => 'TransformerEncoder: give at least one layer');
    check(new Set(layers).size === layers.length, 'invalid_argument', () => {
      return 'TransformerEncoder: a layer appears twice; build one per position (PyTorch deep-copies its layer)';
    });
    this.layers = [...layers];
    this.norm = options.norm ?? null;
  }

  forward(x: Tensor): Tensor {
    return this.encode(x);
  }

  /** x (B, T, dModel) through every layer with the same masks (PyTorch's mask, src_key_padding_mask). */
  encode(x: Tensor, masks: EncoderMasks = {}): Tensor {
    let out = x;
    for (const layer of this.layers) out = layer.encode(out, masks);
    return this.norm === null ? out : this.norm.forward(out);
  }
}

/** The masks of PyTorch's TransformerDecoderLayer.forward, batch first. */
export interface DecoderMasks {
  /** On the self-attention over the target (tgt_mask, tgt_key_padding_mask; causal). */
  readonly target?: EncoderMasks;
  /** On the cross-attention over the memory (memory_mask, memory_key_padding_mask). */
  readonly memory?: EncoderMasks;
}

/**
 * PyTorch's `nn.TransformerDecoderLayer` (batch first), its field names kept:
 *   post-norm: x = norm1(x + sa(x));  x = norm2(x + mha(x, memory));  x = norm3(x + ff(x))
 *   normFirst: x = x + sa(norm1(x));  x = x + mha(norm2(x), memory);  x = x + ff(norm3(x))
 * Its input is a target and a memory: call `decode(target, memory, masks)`.
 */
export class TransformerDecoderLayer extends Module {
  readonly selfAttn: MultiHeadAttention;
  readonly multiheadAttn: MultiHeadAttention;
  readonly linear1: Linear;
  readonly dropout: Dropout;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly dropout3: Dropout;
  readonly normFirst: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(
    readonly dModel: number,
    nhead: number,
    options: TransformerEncoderLayerOptions = {},
  ) {
    super();
    const { random, hidden, p, eps, activation, normFirst } = layerSettings(
      'TransformerDecoderLayer',
      options,
    );
    this.activation = activation;
    this.selfAttn = new MultiHeadAttention(dModel, nhead, { random, dropout: p });
    this.multiheadAttn = new MultiHeadAttention(dModel, nhead, { random, dropout: p });
    this.linear1 = new Linear(dModel, hidden, { random });
    this.dropout = new Dropout(p, { random });
    this.linear2 = new Linear(hidden, dModel, { random });
    this.normFirst = normFirst;
    this.norm1 = new LayerNorm(dModel, eps);
    this.norm2 = new LayerNorm(dModel, eps);
    this.norm3 = new LayerNorm(dModel, eps);
    this.dropout1 = new Dropout(p, { random });
    this.dropout2 = new Dropout(p, { random });
    this.dropout3 = new Dropout(p, { random });
  }

  /** A decoder layer needs a memory: this refuses, pointing to `decode`. */
  forward(_x: Tensor): Tensor {
    throw new TensorError(
      'invalid_argument',
      'TransformerDecoderLayer: forward takes one input; call decode(target, memory, masks)',
    );
  }

  /** target (B, T, dModel) attending to itself and to memory (B, S, dModel). */
  decode(target: Tensor, memory: Tensor, masks: DecoderMasks = {}): Tensor {
    const selfBlock = (x: Tensor) => this.dropout1.forward(this.selfAttn.attend(x, masks.target ?? {}));
    const crossBlock = (x: Tensor) =>
      this.dropout2.forward(
        this.multiheadAttn.attend(x, { ...(masks.memory ?? {}), key: memory, value: memory }),
      );
    const ff = (x: Tensor) => feedForward(this, this.dropout3, x);
    let x = target;
    if (this.normFirst) {
      x = add(x, selfBlock(this.norm1.forward(x)));
      x = add(x, crossBlock(this.norm2.forward(x)));
      return add(x, ff(this.norm3.forward(x)));
    }
    x = this.norm1.forward(add(x, selfBlock(x)));
    x = this.norm2.forward(add(x, crossBlock(x)));
    return this.norm3.forward(add(x, ff(x)));
  }
}
