/**
 * A small GPT (GPT-2's layout, as nanoGPT writes it):
 *
 *   ids (B, T) -> tokenEmbedding(ids) + positionEmbedding(0..T-1)
 *             -> N blocks: x = x + attention(norm1(x)); x = x + mlp(norm2(x))
 *                          (causal self-attention; mlp = Linear(D, 4D), GELU-tanh, Linear(4D, D))
 *             -> finalNorm -> logits (B, T, V) = x @ tokenEmbedding.weight^T  (the head is tied)
 *
 * The head has no parameter of its own: it reads the token embedding's weight, whose gradient
 * collects both uses. Initialisation follows GPT-2: weights N(0, 0.02), biases 0, the
 * projections back into the residual stream N(0, 0.02 / sqrt(2 N)), LayerNorms 1 and 0.
 *
 * `generateTokens` samples from a model: one forward pass per new token over the last
 * `blockSize` tokens (no key/value cache), with temperature and top-k, from a seeded `Random`.
 */
import { Random } from '../../actor/Random.js';
import { TaggedError } from '../../internal/errors.js';
import { deviceUpload } from '../deviceOps.js';
import { check } from '../errors.js';
import { expKernel } from '../internal/expKernels.js';
import { pool } from '../internal/pool.js';
import { geluTanh } from '../ops/activations.js';
import { add, mul } from '../ops/elementwise.js';
import { linear, matmul } from '../ops/matmul.js';
import { dropout, embedding } from '../ops/neural.js';
import { permute, reshape, transpose } from '../ops/shape.js';
import { softmax } from '../ops/softmax.js';
import {
  contiguousData,
  dispose,
  fromData,
  gradBuffer,
  makeResult,
  noGrad,
  releaseTemporary,
  type Tensor,
} from '../Tensor.js';
import { constantParameter, initRandom, normalParameter } from './init.js';
import { LayerNorm } from './layers.js';
import { Module, type Parameter } from './Module.js';

/** The shape of a GPT. */
export interface GptConfig {
  /** Token ids are 0 to vocabSize - 1. */
  readonly vocabSize: number;
  /** The longest context (positions learned). */
  readonly blockSize: number;
  readonly layers: number;
  readonly heads: number;
  /** Embedding width D; a multiple of `heads`. */
  readonly dimension: number;
  /** Dropout after the embeddings, the attention and the MLP while training (default 0). */
  readonly dropout?: number;
}

/** The bounds `checkGptConfig` enforces (a file or a flag cannot ask for a model past them). */
export const GPT_LIMITS = {
  maxVocabSize: 65_536,
  maxBlockSize: 4096,
  maxLayers: 64,
  maxHeads: 64,
  maxDimension: 8192,
} as const;

export type GptConfigField = keyof GptConfig | 'config';

/** A GPT configuration that does not hold; `field` names the first field that is wrong. */
export class GptConfigError extends TaggedError('GptConfigError') {
  constructor(
    readonly field: GptConfigField,
    message: string,
  ) {
    super(message);
  }
}

export function isGptConfigError(value: unknown): value is GptConfigError {
  return value instanceof GptConfigError;
}

function integerField(fields: Record<string, unknown>, field: keyof GptConfig, max: number): number {
  const value = fields[field];
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > max)
    throw new GptConfigError(
      field,
      `gpt ${field} = ${JSON.stringify(value)}: expected an integer from 1 to ${max}`,
    );
  return value as number;
}

/** Checks a configuration field by field (from a caller or a checkpoint); returns a clean copy. */
export function checkGptConfig(value: unknown): Required<GptConfig> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new GptConfigError('config', `gpt config: expected an object, got ${JSON.stringify(value)}`);
  const fields = value as Record<string, unknown>;
  const vocabSize = integerField(fields, 'vocabSize', GPT_LIMITS.maxVocabSize);
  const blockSize = integerField(fields, 'blockSize', GPT_LIMITS.maxBlockSize);
  const layers = integerField(fields, 'layers', GPT_LIMITS.maxLayers);
  const heads = integerField(fields, 'heads', GPT_LIMITS.maxHeads);
  const dimension = integerField(fields, 'dimension', GPT_LIMITS.maxDimension);
  if (dimension % heads !== 0)
    throw new GptConfigError(
      'dimension',
      `gpt dimension = ${dimension}: expected a multiple of heads (${heads})`,
    );
  const rate = fields.dropout ?? 0;
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1))
    throw new GptConfigError('dropout', `gpt dropout = ${JSON.stringify(rate)}: expected a number in [0, 1)`);
  return { vocabSize, blockSize, layers, heads, dimension, dropout: rate };
}

/** GPT-2's initial weight spread. */
const INIT_STD = 0.02;

/** y = x W^T + b, GPT-2 initialised (W N(0, std), b 0). */
class GptLinear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(inFeatures: number, outFeatures: number, std: number, random: Random) {
    super();
    this.weight = normalParameter([outFeatures, inFeatures], std, random);
    this.bias = constantParameter([outFeatures], 0);
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** What the causal mask adds above the diagonal on a device: exp of it minus any score is 0. */
const MASKED_SCORE = -1e30;

/**
 * Causal attention weights from raw scores (..., T, T): row i is softmax(scale * s[i, 0..i])
 * and 0 after i, in one pass on the CPU (no mask tensor added). Rule, within a row: gs = scale *
 * y * (g - sum(g * y)). On a device it is that composition, softmax(scale * s + mask) with a
 * (T, T) mask of 0 and -1e30 uploaded per call, whose gradient the ops' rules give.
 */
export function causalSoftmax(scores: Tensor, scale: number): Tensor {
  const length = scores.shape[scores.rank - 1];
  check(scores.rank >= 2 && scores.shape[scores.rank - 2] === length, 'invalid_shape', () => {
    return `causalSoftmax: expected square scores (..., T, T), got [${scores.shape.join(', ')}]`;
  });
  if (scores.device !== 'cpu') {
    const above = new Float32Array(length * length);
    for (let i = 0; i < length; i++) above.fill(MASKED_SCORE, i * length + i + 1, (i + 1) * length);
    const mask = deviceUpload(scores.device, above, [length, length]);
    return softmax(add(mul(scores, scale), mask));
  }
  const x = contiguousData(scores);
  const y = pool.take(scores.size);
  const rows = scores.size / length;
  // The shifted scores (-inf after the diagonal), then every exp at once (WebAssembly SIMD where
  // it runs, internal/expKernels.ts), then each row's normalisation.
  for (let row = 0; row < rows; row++) {
    const base = row * length;
    const last = row % length;
    let maximum = Number.NEGATIVE_INFINITY;
    for (let j = 0; j <= last; j++) maximum = Math.max(maximum, x[base + j]);
    for (let j = 0; j <= last; j++) y[base + j] = scale * (x[base + j] - maximum);
    y.fill(Number.NEGATIVE_INFINITY, base + last + 1, base + length);
  }
  if (!expKernel(y)) for (let i = 0; i < y.length; i++) y[i] = Math.exp(y[i]);
  for (let row = 0; row < rows; row++) {
    const base = row * length;
    const last = row % length;
    let total = 0;
    for (let j = 0; j <= last; j++) total += y[base + j];
    const inverse = 1 / total;
    for (let j = 0; j <= last; j++) y[base + j] *= inverse;
  }
  releaseTemporary(scores, x);
  return makeResult(y, scores.shape, 'causalSoftmax', [scores], (g) => {
    const gs = gradBuffer(scores);
    for (let row = 0; row < rows; row++) {
      const base = row * length;
      const last = row % length;
      let dot = 0;
      for (let j = 0; j <= last; j++) dot += g[base + j] * y[base + j];
      for (let j = 0; j <= last; j++) gs[base + j] += scale * y[base + j] * (g[base + j] - dot);
    }
  });
}

/** x (B, T, D) -> (B, T, D); each position attends to itself and the earlier ones. */
export class CausalSelfAttention extends Module {
  readonly query: GptLinear;
  readonly key: GptLinear;
  readonly value: GptLinear;
  readonly output: GptLinear;

  constructor(
    readonly dimension: number,
    readonly heads: number,
    random: Random,
    projectionStd: number,
  ) {
    super();
    this.query = new GptLinear(dimension, dimension, INIT_STD, random);
    this.key = new GptLinear(dimension, dimension, INIT_STD, random);
    this.value = new GptLinear(dimension, dimension, INIT_STD, random);
    this.output = new GptLinear(dimension, dimension, projectionStd, random);
  }

  /** (B, T, D) -> (B, H, T, D/H) */
  private splitHeads(x: Tensor): Tensor {
    const [batch, length] = x.shape;
    return permute(reshape(x, [batch, length, this.heads, this.dimension / this.heads]), [0, 2, 1, 3]);
  }

  forward(x: Tensor): Tensor {
    const [batch, length] = x.shape;
    const q = this.splitHeads(this.query.forward(x));
    const k = this.splitHeads(this.key.forward(x));
    const v = this.splitHeads(this.value.forward(x));
    const weights = causalSoftmax(
      matmul(q, transpose(k, -2, -1)),
      1 / Math.sqrt(this.dimension / this.heads),
    );
    const attended = matmul(weights, v);
    return this.output.forward(reshape(permute(attended, [0, 2, 1, 3]), [batch, length, this.dimension]));
  }
}

/** One pre-norm block: attention then the GELU-tanh MLP, each added to the residual stream. */
export class GptBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attention: CausalSelfAttention;
  readonly norm2: LayerNorm;
  readonly fc: GptLinear;
  readonly projection: GptLinear;
  /** Only with dropout (checkpoints save the generators a model holds). */
  private readonly random: Random | undefined;

  constructor(
    dimension: number,
    heads: number,
    private readonly dropoutRate: number,
    random: Random,
    projectionStd: number,
  ) {
    super();
    this.norm1 = new LayerNorm(dimension);
    this.attention = new CausalSelfAttention(dimension, heads, random, projectionStd);
    this.norm2 = new LayerNorm(dimension);
    this.fc = new GptLinear(dimension, 4 * dimension, INIT_STD, random);
    this.projection = new GptLinear(4 * dimension, dimension, projectionStd, random);
    this.random = dropoutRate > 0 ? random : undefined;
  }

  private drop(x: Tensor): Tensor {
    if (this.random === undefined) return x;
    return dropout(x, this.dropoutRate, this.random, this.training);
  }

  forward(x: Tensor): Tensor {
    const attended = add(x, this.drop(this.attention.forward(this.norm1.forward(x))));
    const hidden = geluTanh(this.fc.forward(this.norm2.forward(attended)));
    return add(attended, this.drop(this.projection.forward(hidden)));
  }
}

/** Token embedding (V, D) that is also the output head. */
class TokenEmbedding extends Module {
  readonly weight: Parameter;

  constructor(vocabSize: number, dimension: number, random: Random) {
    super();
    this.weight = normalParameter([vocabSize, dimension], INIT_STD, random);
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

export interface GptOptions {
  /** The generator the initial weights (and dropout) draw from; default the `manualSeed` one. */
  readonly random?: Random;
}

/** ids (B, T), integers in [0, vocabSize), T <= blockSize -> logits (B, T, vocabSize). */
export class Gpt extends Module {
  readonly config: Required<GptConfig>;
  readonly tokenEmbedding: TokenEmbedding;
  readonly positionEmbedding: Parameter;
  readonly blocks: GptBlock[];
  readonly finalNorm: LayerNorm;
  /** Only with dropout (checkpoints save the generators a model holds). */
  private readonly random: Random | undefined;
  private readonly positions: Int32Array;

  constructor(config: GptConfig, options: GptOptions = {}) {
    super();
    this.config = checkGptConfig(config);
    const { vocabSize, blockSize, layers, heads, dimension, dropout: rate } = this.config;
    const random = initRandom(options.random);
    this.random = rate > 0 ? random : undefined;
    this.tokenEmbedding = new TokenEmbedding(vocabSize, dimension, random);
    this.positionEmbedding = normalParameter([blockSize, dimension], INIT_STD, random);
    const projectionStd = INIT_STD / Math.sqrt(2 * layers);
    this.blocks = Array.from(
      { length: layers },
      () => new GptBlock(dimension, heads, rate, random, projectionStd),
    );
    this.finalNorm = new LayerNorm(dimension);
    this.positions = Int32Array.from({ length: blockSize }, (_, index) => index);
  }

  forward(ids: Tensor): Tensor {
    const { blockSize, dropout: rate } = this.config;
    check(ids.rank === 2, 'invalid_shape', () => {
      return `Gpt: expected token ids (B, T), got [${ids.shape.join(', ')}]`;
    });
    const length = ids.shape[1];
    check(length >= 1 && length <= blockSize, 'invalid_shape', () => {
      return `Gpt: a context of ${length} tokens; this model takes 1 to ${blockSize} (its blockSize)`;
    });
    const tokens = this.tokenEmbedding.forward(ids);
    const positions = embedding(this.positionEmbedding, this.positions.subarray(0, length));
    let x = add(tokens, positions);
    if (this.random !== undefined) x = dropout(x, rate, this.random, this.training);
    for (const block of this.blocks) x = block.forward(x);
    return linear(this.finalNorm.forward(x), this.tokenEmbedding.weight, null);
  }
}

/** How `generateTokens` picks each token. */
export interface SamplingOptions {
  /** Tokens to add (0 to 100,000). */
  readonly tokens: number;
  /** Logits are divided by it; > 0 (default 1). */
  readonly temperature?: number;
  /** Sample among the k most likely tokens only (default: all). */
  readonly topK?: number;
  /** Draws from it (default: a generator seeded with 0). */
  readonly random?: Random;
}

/** The most tokens one `generateTokens` call adds. */
export const MAX_GENERATED_TOKENS = 100_000;

/** Samples one id from `logits` (its row of V values) with temperature and top-k. */
export function sampleToken(logits: Float32Array, temperature: number, topK: number, random: Random): number {
  const count = logits.length;
  let threshold = Number.NEGATIVE_INFINITY;
  if (topK < count) {
    const sorted = Float32Array.from(logits).sort();
    threshold = sorted[count - topK];
  }
  let maximum = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (logits[i] > maximum) maximum = logits[i];
  const weights = new Float64Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (logits[i] < threshold) continue;
    weights[i] = Math.exp((logits[i] - maximum) / temperature);
    total += weights[i];
  }
  let draw = random.next() * total;
  for (let i = 0; i < count; i++) {
    if (weights[i] === 0) continue;
    draw -= weights[i];
    if (draw < 0) return i;
  }
  // Rounding left a sliver: the last token that had any weight.
  for (let i = count - 1; i >= 0; i--) if (weights[i] > 0) return i;
  return 0;
}

/**
 * Continues `prompt` (token ids, at least one) by `options.tokens` tokens sampled from `model`
 * in eval mode without gradients; returns the new ids only. The same model, prompt, options and
 * seed give the same tokens.
 */
export function generateTokens(model: Gpt, prompt: readonly number[], options: SamplingOptions): number[] {
  const { vocabSize, blockSize } = model.config;
  const temperature = options.temperature ?? 1;
  const topK = options.topK ?? vocabSize;
  check(
    Number.isInteger(options.tokens) && options.tokens >= 0 && options.tokens <= MAX_GENERATED_TOKENS,
    'invalid_argument',
    () => `generate: tokens must be an integer from 0 to ${MAX_GENERATED_TOKENS}, got ${options.tokens}`,
  );
  check(Number.isFinite(temperature) && temperature > 0, 'invalid_argument', () => {
    return `generate: temperature must be a number > 0, got ${temperature}`;
  });
  check(Number.isInteger(topK) && topK >= 1, 'invalid_argument', () => {
    return `generate: topK must be an integer >= 1, got ${topK}`;
  });
  check(prompt.length >= 1, 'invalid_argument', () => 'generate: the prompt needs at least one token');
  for (const id of prompt)
    check(Number.isInteger(id) && id >= 0 && id < vocabSize, 'invalid_argument', () => {
      return `generate: token ${id} is not in [0, ${vocabSize})`;
    });
  const random = options.random ?? new Random(0);
  const context = [...prompt];
  const added: number[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let n = 0; n < options.tokens; n++) {
        const window = context.slice(-blockSize);
        const input = fromData(Float32Array.from(window), [1, window.length]);
        const logits = model.forward(input);
        const values = contiguousData(logits);
        const last = values.slice((window.length - 1) * vocabSize, window.length * vocabSize);
        dispose(logits);
        const id = sampleToken(last, temperature, Math.min(topK, vocabSize), random);
        context.push(id);
        added.push(id);
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return added;
}
