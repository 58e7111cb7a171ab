/**
 * PyTorch's `nn.TransformerEncoderLayer` (batch first), with its field names, so its state dict
 * maps one to one (`self_attn.in_proj_weight`, `linear1.weight`, `norm1.bias`, ...; see
 * pytorch.ts):
 *   post-norm (default): x = norm1(x + dropout1(selfAttn(x)));  x = norm2(x + dropout2(ff(x)))
 *   normFirst:           x = x + dropout1(selfAttn(norm1(x)));  x = x + dropout2(ff(norm2(x)))
 *   ff(x) = linear2(dropout(activation(linear1(x))))
 */
import { check } from '../errors.js';
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
    const random = initRandom(options.random);
    const hidden = options.dimFeedforward ?? 2048;
    const p = options.dropout ?? 0.1;
    const eps = options.layerNormEps ?? 1e-5;
    this.activation = options.activation ?? 'relu';
    check(this.activation === 'relu' || this.activation === 'gelu', 'invalid_argument', () => {
      return `TransformerEncoderLayer: activation must be 'relu' or 'gelu', got ${String(this.activation)}`;
    });
    this.selfAttn = new MultiHeadAttention(dModel, nhead, { random, dropout: p });
    this.linear1 = new Linear(dModel, hidden, { random });
    this.dropout = new Dropout(p, { random });
    this.linear2 = new Linear(hidden, dModel, { random });
    this.normFirst = options.normFirst ?? false;
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
    const feedForward = (input: Tensor): Tensor => {
      const hidden = this.linear1.forward(input);
      const activated = this.activation === 'relu' ? relu(hidden) : gelu(hidden);
      return this.dropout2.forward(this.linear2.forward(this.dropout.forward(activated)));
    };
    if (this.normFirst) {
      const attended = add(x, attention(this.norm1.forward(x)));
      return add(attended, feedForward(this.norm2.forward(attended)));
    }
    const attended = this.norm1.forward(add(x, attention(x)));
    return this.norm2.forward(add(attended, feedForward(attended)));
  }
}
