/**
 * PyTorch's layers as zbmd modules, against PyTorch's values (tests/ml/fixtures/
 * torch_layers_goldens.json and torch_*.safetensors, made by make_torch_layers_goldens.py with
 * Debian's python3-torch 1.13): each case loads the module's parameters by their PyTorch names
 * (so the state-dict mapping is under test too), compares the outputs and the gradients of
 * sum_k sum(out_k * w_k) for every input and parameter. Tolerance: 2e-5 absolute + 1e-4 relative.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AdaptiveAvgPool1d,
  AdaptiveAvgPool2d,
  adaptiveAvgPool1d,
  adaptiveAvgPool2d,
  add,
  BatchNorm2d,
  backward,
  Conv1d,
  Conv2d,
  ConvTranspose2d,
  Flatten,
  GRU,
  LayerNorm,
  Linear,
  LSTM,
  loadPyTorchSafetensors,
  loadPyTorchStateDict,
  MaxPool2d,
  Module,
  MultiHeadAttention,
  manualSeed,
  max,
  min,
  mul,
  pow,
  pytorchNames,
  pytorchStateDict,
  ReLU,
  readStateDictFile,
  Sequential,
  type StateDict,
  savePyTorchSafetensors,
  sum,
  type Tensor,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
  tensor,
  toArray,
  zeros,
} from '../../src/ml/index.js';

interface Values {
  readonly shape: number[];
  readonly data: number[];
}

interface Case {
  readonly inputs: Record<string, Values>;
  readonly params: Record<string, Values>;
  readonly w: Values[];
  readonly out: Values[];
  readonly grads: Record<string, Values>;
}

interface StateCase {
  readonly x: Values;
  readonly eval: Values;
  readonly names: string[];
}

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/torch_layers_goldens.json', import.meta.url), 'utf8'),
) as { cases: Record<string, Case>; stateDicts: Record<string, StateCase> };

function goldenCase(name: string): Case {
  const found = golden.cases[name];
  if (found === undefined) throw new Error(`no golden case ${name}`);
  return found;
}

function expectClose(actual: ArrayLike<number>, expected: Values, label: string): void {
  const want = expected.data;
  expect(actual.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tolerance = 2e-5 + 1e-4 * Math.abs(want[i]);
    const difference = Math.abs(actual[i] - want[i]);
    if (!(difference <= tolerance)) {
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${want[i]} (tolerance ${tolerance})`);
    }
  }
}

const asState = (values: Record<string, Values>): StateDict =>
  Object.fromEntries(
    Object.entries(values).map(([name, v]) => [name, { shape: v.shape, data: Float32Array.from(v.data) }]),
  );

const fixture = (name: string) => new URL(`./fixtures/torch_${name}.safetensors`, import.meta.url).pathname;

/** Every parameter's gradient under its PyTorch name and layout. */
function pytorchGradients(module: Module): Record<string, number[]> {
  const parameters = new Map(module.namedParameters());
  const out: Record<string, number[]> = {};
  for (const { pytorch, zbmd } of pytorchNames(module)) {
    if (!parameters.has(zbmd[0])) continue;
    out[pytorch] = zbmd.flatMap((name) => [...(parameters.get(name)!.grad ?? [])]);
  }
  return out;
}

/**
 * Loads the case's parameters into `module` by PyTorch name, runs `f` on the inputs (those with
 * a gradient in the fixture require one), checks every output and gradient.
 */
function checkCase(
  name: string,
  module: Module | null,
  f: (inputs: Record<string, Tensor>) => Tensor[],
): void {
  const c = goldenCase(name);
  if (module !== null) loadPyTorchStateDict(module, asState(c.params));
  const inputs: Record<string, Tensor> = {};
  for (const [key, values] of Object.entries(c.inputs))
    inputs[key] = tensor(values.data, values.shape, { requiresGrad: key in c.grads });
  const outs = f(inputs);
  expect(outs.length, `${name}: outputs`).toBe(c.out.length);
  let total: Tensor | null = null;
  outs.forEach((out, k) => {
    expect(out.shape, `${name} output ${k} shape`).toEqual(c.out[k].shape);
    expectClose(toArray(out), c.out[k], `${name} output ${k}`);
    const term = sum(mul(out, tensor(c.w[k].data, c.w[k].shape)));
    total = total === null ? term : add(total, term);
  });
  backward(total!);
  const parameterGradients = module === null ? {} : pytorchGradients(module);
  for (const [key, values] of Object.entries(c.grads)) {
    const actual = key in c.inputs ? inputs[key].grad : parameterGradients[key];
    expect(actual, `${name}: gradient of ${key}`).toBeDefined();
    expectClose(actual ?? [], values, `${name} gradient of ${key}`);
  }
}

/** Runs `f` with a fresh module loaded from the case (checkCase loads it first). */
function withModule<M extends Module>(
  name: string,
  module: M,
  f: (m: M, inputs: Record<string, Tensor>) => Tensor[],
): void {
  checkCase(name, module, (inputs) => f(module, inputs));
}

describe('MultiHeadAttention matches nn.MultiheadAttention (batch_first)', () => {
  const attention = () => new MultiHeadAttention(8, 2);

  it('self-attention, and cross-attention with 3 queries over 5 keys and separate values', () => {
    withModule('mhaSelf', attention(), (m, { q }) => [m.forward(q)]);
    withModule('mhaCross', attention(), (m, { q, k, v }) => [m.attend(q, { key: k, value: v })]);
  });

  it('key-padding, boolean (T, S) and per-head (B * heads, T, S) masks, and an additive mask', () => {
    withModule('mhaPadding', attention(), (m, { q, k, v, padding }) => [
      m.attend(q, { key: k, value: v, keyPaddingMask: padding }),
    ]);
    withModule('mhaBoolean', attention(), (m, { q, k, v, padding, mask }) => [
      m.attend(q, { key: k, value: v, keyPaddingMask: padding, attentionMask: mask }),
    ]);
    withModule('mhaPerHead', attention(), (m, { q, k, v, mask }) => [
      m.attend(q, { key: k, value: v, attentionMask: mask }),
    ]);
    withModule('mhaAdditive', attention(), (m, { q, k, v, mask }) => [
      m.attend(q, { key: k, value: v, additiveMask: mask }),
    ]);
  });

  it('causal with fewer queries than keys: top-left is PyTorch 2 is_causal, true is bottom-right', () => {
    withModule('mhaCausalTopLeft', attention(), (m, { q, k, v }) => [
      m.attend(q, { key: k, value: v, causal: 'top-left' }),
    ]);
    withModule('mhaCausalBottomRight', attention(), (m, { q, k, v }) => [
      m.attend(q, { key: k, value: v, causal: true }),
    ]);
    withModule('mhaCausalTopLeft', new MultiHeadAttention(8, 2, { causal: 'top-left' }), (m, { q, k, v }) => [
      m.attend(q, { key: k, value: v }),
    ]);
  });

  it('returns the attention weights as need_weights does, averaged over the heads or per head', () => {
    withModule('mhaWeights', attention(), (m, { q, k, v, padding }) => {
      const { output, weights } = m.attendWithWeights(q, { key: k, value: v, keyPaddingMask: padding });
      return [output, weights];
    });
    withModule('mhaWeightsPerHead', attention(), (m, { q, k, v }) => {
      const { output, weights } = m.attendWithWeights(q, { key: k, value: v, averageWeights: false });
      return [output, weights];
    });
  });

  it('keys and values of other widths (kdim, vdim), loaded from q_proj_weight, k_proj_weight, v_proj_weight', () => {
    const m = new MultiHeadAttention(8, 2, { kdim: 5, vdim: 3 });
    expect(pytorchNames(m).map((n) => n.pytorch)).toEqual([
      'q_proj_weight',
      'k_proj_weight',
      'v_proj_weight',
      'in_proj_bias',
      'out_proj.weight',
      'out_proj.bias',
    ]);
    withModule('mhaKdimVdim', m, (module, { q, k, v }) => [module.attend(q, { key: k, value: v })]);
    expect(() => m.forward(tensor(new Array(16).fill(0), [1, 2, 8]))).toThrow(/expected key \(1, T, 5\)/);
  });

  it('a query whose keys are all masked gives NaN, as PyTorch', () => {
    const m = attention();
    const x = tensor(
      Array.from({ length: 16 }, (_, i) => i / 16),
      [1, 2, 8],
    );
    const out = toArray(m.attend(x, { keyPaddingMask: tensor([1, 1], [1, 2]) }));
    expect(out.every(Number.isNaN)).toBe(true);
  });

  it('refuses masks of the wrong shape or with values other than 0 and 1', () => {
    const m = attention();
    const x = tensor(new Array(2 * 3 * 8).fill(0.1), [2, 3, 8]);
    expect(() => m.attend(x, { keyPaddingMask: tensor([0, 0, 0], [1, 3]) })).toThrow(
      /keyPaddingMask must be \(2, 3\)/,
    );
    expect(() => m.attend(x, { attentionMask: tensor(new Array(9).fill(0.5), [3, 3]) })).toThrow(
      /attentionMask is boolean.*additiveMask/,
    );
    expect(() => m.attend(x, { additiveMask: tensor(new Array(12).fill(0), [3, 4]) })).toThrow(
      /additiveMask must be/,
    );
    expect(() => m.attend(x, { key: tensor(new Array(8).fill(0), [1, 1, 8]) })).toThrow(/expected key \(2,/);
  });

  it('is initialised as PyTorch: in-projection xavier-uniform, zero biases, output +-1/sqrt(D)', () => {
    manualSeed(3);
    const d = 64;
    const m = new MultiHeadAttention(d, 4);
    const inBound = Math.sqrt(6 / (4 * d));
    const inProjection = pytorchStateDict(m).in_proj_weight.data;
    const maxAbs = (values: ArrayLike<number>) => Math.max(...Array.from(values, Math.abs));
    expect(maxAbs(inProjection)).toBeLessThanOrEqual(inBound);
    expect(maxAbs(inProjection)).toBeGreaterThan(0.95 * inBound);
    // uniform in +-b has variance b^2 / 3
    const variance = Array.from(inProjection, (v) => v * v).reduce((a, b) => a + b, 0) / inProjection.length;
    expect(Math.abs(variance / ((inBound * inBound) / 3) - 1)).toBeLessThan(0.05);
    expect(maxAbs(m.output.weight.data)).toBeLessThanOrEqual(1 / Math.sqrt(d));
    expect(maxAbs(m.output.weight.data)).toBeGreaterThan(0.95 / Math.sqrt(d));
    for (const p of [m.query, m.key, m.value, m.output]) expect(maxAbs(p.bias!.data)).toBe(0);
  });
});

describe('TransformerDecoderLayer and TransformerEncoder match PyTorch, values and gradients', () => {
  const options = { dimFeedforward: 16, dropout: 0 };
  const causal = tensor([0, 1, 1, 0, 0, 1, 0, 0, 0], [3, 3]);

  it('a decoder layer with a causal target mask and a padded memory, post-norm and pre-norm', () => {
    for (const [name, normFirst] of [
      ['decoderLayer', false],
      ['decoderLayerPrenorm', true],
    ] as const) {
      withModule(
        name,
        new TransformerDecoderLayer(8, 2, { ...options, normFirst }),
        (m, { tgt, memory, padding }) => [
          m.decode(tgt, memory, { target: { attentionMask: causal }, memory: { keyPaddingMask: padding } }),
        ],
      );
    }
    expect(() => new TransformerDecoderLayer(8, 2, options).forward(causal)).toThrow(/call decode/);
  });

  it('a two-layer encoder with a final norm and a key-padding mask', () => {
    const layers = [new TransformerEncoderLayer(8, 2, options), new TransformerEncoderLayer(8, 2, options)];
    withModule(
      'encoderStack',
      new TransformerEncoder(layers, { norm: new LayerNorm(8) }),
      (m, { x, padding }) => [m.encode(x, { keyPaddingMask: padding })],
    );
    expect(() => new TransformerEncoder([layers[0], layers[0]])).toThrow(/appears twice/);
  });
});

describe('loading state dicts that PyTorch saved (safetensors)', () => {
  async function reproduces(name: string, module: Module): Promise<void> {
    const c = golden.stateDicts[name];
    expect(
      pytorchNames(module)
        .map((n) => n.pytorch)
        .sort(),
    ).toEqual([...c.names].sort());
    await loadPyTorchSafetensors(module, fixture(name));
    module.eval();
    const out = module.forward(tensor(c.x.data, c.x.shape));
    expect(out.shape).toEqual(c.eval.shape);
    expectClose(toArray(out), c.eval, `${name} output`);
  }

  it('a TransformerEncoderLayer, post-norm with relu and pre-norm with gelu', async () => {
    await reproduces('encoder_layer', new TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0 }));
    await reproduces(
      'encoder_layer_prenorm',
      new TransformerEncoderLayer(8, 2, {
        dimFeedforward: 16,
        dropout: 0,
        normFirst: true,
        activation: 'gelu',
      }),
    );
  });

  it('round-trips through PyTorch names: saved by zbmd, read back identically', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-torch-'));
    try {
      const layer = new TransformerEncoderLayer(8, 2, { dimFeedforward: 16 });
      await loadPyTorchSafetensors(layer, fixture('encoder_layer'));
      await savePyTorchSafetensors(layer, join(directory, 'layer.safetensors'));
      const written = await readStateDictFile(join(directory, 'layer.safetensors'));
      const original = await readStateDictFile(fixture('encoder_layer'));
      expect(Object.keys(written).sort()).toEqual(Object.keys(original).sort());
      for (const [key, value] of Object.entries(original)) expect(written[key].data).toEqual(value.data);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('names what is missing, unexpected or of the wrong shape', async () => {
    const state = await readStateDictFile(fixture('encoder_layer'));
    const layer = () => new TransformerEncoderLayer(8, 2, { dimFeedforward: 16 });
    const { 'norm2.bias': _dropped, ...missing } = state;
    expect(() => loadPyTorchStateDict(layer(), missing)).toThrow(/missing norm2\.bias/);
    loadPyTorchStateDict(layer(), missing, { strict: false });
    expect(() => loadPyTorchStateDict(layer(), { ...state, 'extra.weight': state['norm2.bias'] })).toThrow(
      /unexpected extra\.weight/,
    );
    expect(() =>
      loadPyTorchStateDict(new TransformerEncoderLayer(8, 2, { dimFeedforward: 32 }), state),
    ).toThrow(/'linear1\.weight' has shape \[16, 8\], the module \(linear1\.weight\) expects \[32, 8\]/);
  });
});

describe('LSTM and GRU match nn.LSTM and nn.GRU (names weight_ih_l0..., gates i f g o and r z n)', () => {
  it('a 2-layer batch-first LSTM with initial states: output, h_n, c_n and every gradient', () => {
    withModule('lstm2BatchFirst', new LSTM(3, 5, { numLayers: 2, batchFirst: true }), (m, { x, h0, c0 }) => {
      const { output, h, c } = m.run(x, h0, c0);
      return [output, h, c!];
    });
  });

  it('a 1-layer LSTM (T, B, I) from zero states, with and without biases', () => {
    withModule('lstm1', new LSTM(3, 5), (m, { x }) => {
      const { output, h, c } = m.run(x);
      return [output, h, c!];
    });
    const noBias = new LSTM(3, 4, { bias: false });
    expect(noBias.namedParameters().map(([name]) => name)).toEqual(['weight_ih_l0', 'weight_hh_l0']);
    withModule('lstmNoBias', noBias, (m, { x }) => {
      const { output, h, c } = m.run(x);
      return [output, h, c!];
    });
  });

  it('a 2-layer batch-first GRU with an initial state, and a 1-layer one', () => {
    withModule('gru2BatchFirst', new GRU(3, 5, { numLayers: 2, batchFirst: true }), (m, { x, h0 }) => {
      const { output, h } = m.run(x, h0);
      return [output, h];
    });
    withModule('gru1', new GRU(3, 5), (m, { x }) => {
      const { output, h } = m.run(x);
      return [output, h];
    });
  });

  it('bidirectional: a 2-layer batch-first LSTM with initial states, and a GRU', () => {
    const lstm = new LSTM(3, 4, { numLayers: 2, batchFirst: true, bidirectional: true });
    expect(lstm.layerWeights(1, true).weightIh.shape).toEqual([16, 8]);
    withModule('lstmBidirectional', lstm, (m, { x, h0, c0 }) => {
      const { output, h, c } = m.run(x, h0, c0);
      return [output, h, c!];
    });
    withModule('gruBidirectional', new GRU(3, 4, { bidirectional: true }), (m, { x }) => {
      const { output, h } = m.run(x);
      return [output, h];
    });
  });

  it('loads a PyTorch-saved LSTM tagger and reproduces its outputs', async () => {
    class Tagger extends Module {
      readonly rnn = new LSTM(3, 4, { numLayers: 2, batchFirst: true });
      readonly head = new Linear(4, 2);
      forward(x: Tensor): Tensor {
        return this.head.forward(this.rnn.forward(x));
      }
    }
    const c = golden.stateDicts.lstm;
    const tagger = new Tagger();
    await loadPyTorchSafetensors(tagger, fixture('lstm'));
    expectClose(toArray(tagger.forward(tensor(c.x.data, c.x.shape))), c.eval, 'lstm tagger');
  });

  it('starts uniform in +-1/sqrt(H) and refuses bad shapes', () => {
    manualSeed(5);
    const gru = new GRU(6, 16);
    const values = gru.parameters().flatMap((p) => [...p.data]);
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(0.25);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.24);
    expect(() =>
      gru.run(tensor(new Array(12).fill(0), [2, 1, 6]), tensor(new Array(16).fill(0), [1, 1, 16])),
    ).not.toThrow();
    expect(() => gru.forward(tensor(new Array(10).fill(0), [2, 1, 5]))).toThrow(
      /GRU: expected input \(T, B, 6\)/,
    );
    expect(() =>
      gru.run(tensor(new Array(12).fill(0), [2, 1, 6]), tensor(new Array(16).fill(0), [1, 16])),
    ).toThrow(/h0 must be \(1, 1, 16\)/);
  });
});

describe('Conv1d, ConvTranspose2d and adaptive average pooling match PyTorch', () => {
  it('Conv1d with stride and padding, and without a bias', () => {
    withModule('conv1d', new Conv1d(3, 4, 3, { stride: 2, padding: 1 }), (m, { x }) => [m.forward(x)]);
    withModule('conv1dNoBias', new Conv1d(2, 3, 4, { bias: false }), (m, { x }) => [m.forward(x)]);
  });

  it('ConvTranspose2d: stride 2 with padding and output padding, a rectangular kernel, a 2x upsampling', () => {
    const layer = new ConvTranspose2d(3, 2, 3, { stride: 2, padding: 1, outputPadding: 1 });
    expect(layer.weight.shape).toEqual([3, 2, 3, 3]);
    withModule('convTranspose2d', layer, (m, { x }) => [m.forward(x)]);
    withModule(
      'convTranspose2dRect',
      new ConvTranspose2d(2, 3, [2, 3], { stride: [1, 2], padding: [0, 1], bias: false }),
      (m, { x }) => [m.forward(x)],
    );
    withModule('convTranspose2dUp', new ConvTranspose2d(2, 2, 2, { stride: 2 }), (m, { x }) => [
      m.forward(x),
    ]);
  });

  it('ConvTranspose2d with dilation (and output padding below the dilation, not the stride)', () => {
    const options = { stride: [2, 1], padding: [1, 0], dilation: [2, 3], outputPadding: [1, 2] } as const;
    withModule('convTranspose2dDilated', new ConvTranspose2d(2, 3, [3, 2], options), (m, { x }) => [
      m.forward(x),
    ]);
    const x = zeros([1, 2, 3, 4]);
    expect(() => new ConvTranspose2d(2, 3, 2, { dilation: 0 }).forward(x)).toThrow(
      /dilation must be integers >= 1/,
    );
    expect(() =>
      new ConvTranspose2d(2, 3, 2, { stride: 2, dilation: 2, outputPadding: 2 }).forward(x),
    ).toThrow(/below the stride \[2, 2\] or the dilation \[2, 2\]/);
  });

  it('adaptive average pooling, 1-D and 2-D, down, up and global', () => {
    checkCase('adaptiveAvgPool1d', null, ({ x }) => [adaptiveAvgPool1d(x, 3)]);
    checkCase('adaptiveAvgPool1dUp', null, ({ x }) => [new AdaptiveAvgPool1d(5).forward(x)]);
    checkCase('adaptiveAvgPool2d', null, ({ x }) => [adaptiveAvgPool2d(x, [3, 2])]);
    checkCase('adaptiveAvgPool2dGlobal', null, ({ x }) => [new AdaptiveAvgPool2d(1).forward(x)]);
  });

  it('refuses bad geometry with clear errors', () => {
    const x = tensor(new Array(2 * 3 * 3).fill(1), [1, 2, 3, 3]);
    expect(() => new ConvTranspose2d(2, 2, 3, { stride: 2, outputPadding: 2 }).forward(x)).toThrow(
      /outputPadding \[2, 2\] must be integers >= 0 and below the stride \[2, 2\]/,
    );
    expect(() => new ConvTranspose2d(3, 2, 3).forward(x)).toThrow(/weight must be \(2, Cout, KH, KW\)/);
    expect(() => new ConvTranspose2d(2, 2, 1, { padding: 2 }).forward(x)).toThrow(/leaves no output/);
    expect(() => new Conv1d(2, 2, 5).forward(tensor(new Array(8).fill(1), [1, 2, 4]))).toThrow(
      /kernel 5 does not fit/,
    );
    expect(() => adaptiveAvgPool2d(x, 0)).toThrow(/output size must be integers >= 1/);
  });

  it('loads a PyTorch-saved CNN (conv, batch norm with running statistics, pooling, linear) and reproduces it', async () => {
    const cnn = new Sequential(
      new Conv2d(1, 4, 3, { padding: 1 }),
      new BatchNorm2d(4),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(4, 6, 3),
      new BatchNorm2d(6),
      new ReLU(),
      new AdaptiveAvgPool2d(1),
      new Flatten(),
      new Linear(6, 3),
    );
    const c = golden.stateDicts.cnn;
    expect(
      pytorchNames(cnn)
        .map((n) => n.pytorch)
        .sort(),
    ).toEqual([...c.names].sort());
    await loadPyTorchSafetensors(cnn, fixture('cnn'));
    const batchNorm = cnn.layers[1] as BatchNorm2d;
    expect(toArray(batchNorm.numBatchesTracked!)).toEqual([3]);
    cnn.eval();
    expectClose(toArray(cnn.forward(tensor(c.x.data, c.x.shape))), c.eval, 'cnn output');
  });
});

describe("pow's gradients at base 0 are PyTorch's (masked, not NaN)", () => {
  it('d/da is 0 where the exponent is 0; d/db is 0 where a = 0 and b >= 0', () => {
    checkCase('powAtZero', null, ({ a, b }) => [pow(a, b)]);
    checkCase('powScalarZeroBase', null, ({ b }) => [pow(0, b)]);
    const a = tensor([0, 3], [2], { requiresGrad: true });
    backward(sum(pow(a, 0)));
    expect(a.grad).toEqual(Float32Array.from([0, 0]));
  });
});

describe('max and min ties over all or a list of axes share the gradient, as torch.max() and amax', () => {
  it('matches PyTorch over all axes and over a list of axes; one axis keeps the first extreme', () => {
    checkCase('maxTiesAll', null, ({ x }) => [max(x)]);
    checkCase('amaxTies', null, ({ x }) => [max(x, [0, 2])]);
    checkCase('minTiesAll', null, ({ x }) => [min(x)]);
    checkCase('aminTies', null, ({ x }) => [min(x, [1, 2])]);
    const x = tensor([3, 1, 3], [3], { requiresGrad: true });
    backward(max(x, 0));
    expect(x.grad).toEqual(Float32Array.from([1, 0, 0]));
    const withNan = tensor([Number.NaN, 1, 2, 2], [2, 2], { requiresGrad: true });
    backward(sum(max(withNan, [1])));
    expect(withNan.grad).toEqual(Float32Array.from([1, 0, 0.5, 0.5]));
  });
});
