import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import type { KernelLaunch } from '../../src/gpu/Backend.js';
import { bindCudaLaunch } from '../../src/gpu/backends/cudaLaunch.js';
import { bindLaunch } from '../../src/gpu/backends/webgpuLaunch.js';
import {
  allCudaKernels,
  BINARY_OP_NAMES,
  BINARY_OPS,
  compileJavaScript,
  firstMismatch,
  generateKernel,
  openDevice,
  POOL_OP_NAMES,
  REDUCE_OP_NAMES,
  TOLERANCES,
  toCuda,
  toJavaScript,
  toWgsl,
  UNARY_OP_NAMES,
  UNARY_OPS,
} from '../../src/gpu/index.js';
import { erf } from '../../src/ml/ops/elementwise.js';
import { naiveConv2d, naiveMatmul } from './naive.js';
import { runCase, uniform } from './opCases.js';

function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const hasNvcc = hasCommand('nvcc');

describe('one description, three targets', () => {
  it('emits the same expression tree as WGSL, CUDA C and JavaScript', () => {
    expect(toWgsl(UNARY_OPS.relu)).toBe('max(x, 0.0)');
    expect(toCuda(UNARY_OPS.relu)).toBe('fmaxf(x, 0.0f)');
    expect(toJavaScript(UNARY_OPS.relu)).toBe('Math.max(x, 0.0)');
    expect(toCuda(UNARY_OPS.sigmoid)).toBe('(1.0f / (1.0f + expf((-x))))');
    expect(toWgsl(UNARY_OPS.tanh)).toBe('tanh(clamp(x, (-15.0), 15.0))');
    expect(toWgsl(BINARY_OPS.reluBackward)).toBe('select(0.0, y, x > 0.0)');
    expect(toCuda(BINARY_OPS.reluBackward)).toBe('(x > 0.0f ? y : 0.0f)');
    expect(toJavaScript(BINARY_OPS.reluBackward)).toBe('(x > 0 ? y : 0.0)');
  });

  it('the gradient ops are the derivatives of the unary ops (central differences in f64)', () => {
    const step = 1e-4;
    for (const [op, forward, usesOutput] of [
      ['reluBackward', 'relu', false],
      ['geluBackward', 'gelu', false],
      ['sigmoidBackward', 'sigmoid', true],
      ['tanhBackward', 'tanh', true],
    ] as const) {
      const f = compileJavaScript(UNARY_OPS[forward]);
      const derivative = compileJavaScript(BINARY_OPS[op]);
      for (const point of [-3.1, -1.2, -0.4, 0.3, 0.9, 2.7]) {
        const numeric = (f(point + step, 0) - f(point - step, 0)) / (2 * step);
        const at = usesOutput ? f(point, 0) : point;
        expect(derivative(at, 2), `${op} at ${point}`).toBeCloseTo(2 * numeric, 5);
      }
    }
  });

  it('generateKernel gives every backend its source for every elementwise op', () => {
    for (const op of UNARY_OP_NAMES) {
      const kernel = generateKernel({ kind: 'unary', op });
      expect(kernel.wgsl.source).toContain(toWgsl(UNARY_OPS[op]));
      expect(kernel.cuda.source).toContain(toCuda(UNARY_OPS[op]));
      expect(kernel.cuda.source).toContain(`extern "C" __global__ void unary_${op}(`);
    }
    for (const op of BINARY_OP_NAMES)
      expect(generateKernel({ kind: 'binary', op, broadcast: true }).wgsl.source).toContain('stridesA');
    for (const op of REDUCE_OP_NAMES)
      expect(generateKernel({ kind: 'reduce', op }).cuda.parameters).toEqual([
        'pointer',
        'pointer',
        'u32',
        'u32',
      ]);
  });

  it.skipIf(!hasNvcc)(
    'every generated CUDA C kernel compiles with nvcc -ptx',
    () => {
      const directory = mkdtempSync(join(tmpdir(), 'zbmd-ptx-'));
      const compile = (name: string, source: string): string | undefined => {
        const file = join(directory, `${name}.cu`);
        writeFileSync(file, source);
        try {
          execFileSync('nvcc', ['-ptx', '-arch=compute_90', file, '-o', join(directory, `${name}.ptx`)], {
            stdio: 'pipe',
          });
          return undefined;
        } catch (error) {
          return `${name}: ${(error as { stderr?: Buffer }).stderr?.toString() ?? String(error)}`;
        }
      };
      try {
        const kernels = allCudaKernels();
        expect(kernels.length).toBe(
          // softmax, layernorm, im2col, convOutput, col2im, adamStep, amsgradStep, sgdStep,
          // adagradStep, rmspropStep, indexRows and its backward; pool2d and its backward per pooling op
          UNARY_OP_NAMES.length +
            2 * BINARY_OP_NAMES.length +
            REDUCE_OP_NAMES.length +
            12 +
            2 * POOL_OP_NAMES.length,
        );
        // One translation unit is fast (each kernel is self-contained); on failure, compile each
        // alone so the error names its kernel.
        const together = compile('all_kernels', kernels.map((kernel) => kernel.source).join('\n'));
        const failures =
          together === undefined
            ? []
            : kernels.map((kernel) => compile(kernel.name, kernel.source)).filter((f) => f !== undefined);
        expect(failures.join('\n')).toBe('');
        expect(together).toBeUndefined();
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    },
    120_000,
  );
});

describe('cpu reference kernels against definitions', () => {
  it('indexRows picks rows by number and its backward adds each lookup onto its row', async () => {
    const device = await openDevice('cpu');
    const table = Float32Array.of(1, 2, 3, 4, 5, 6); // 3 rows of 2
    const [out, grad] = [device.allocate(4 * 8), device.allocate(4 * 6)];
    device.indexRows(device.upload(table), device.upload(Float32Array.of(2, 0, 2.5, 9)), out, {
      count: 4,
      dimension: 2,
      rows: 3,
    });
    expect(Array.from(await device.readFloat32(out))).toEqual([5, 6, 1, 2, 0, 0, 0, 0]);
    // lookups [2, 0, 2] grouped by row: row 0 at position 1, row 2 at positions 0 and 2
    const gradient = device.upload(Float32Array.of(1, 10, 100, 1000, 10000, 100000));
    const positions = device.upload(Float32Array.of(1, 0, 2));
    const starts = device.upload(Float32Array.of(0, 1, 1, 3));
    device.indexRowsBackward(gradient, positions, starts, grad, { count: 3, dimension: 2, rows: 3 });
    expect(Array.from(await device.readFloat32(grad))).toEqual([100, 1000, 0, 0, 10001, 100010]);
    const small = device.allocate(4);
    expect(() => device.indexRows(small, small, out, { count: 1, dimension: 1, rows: 2 ** 24 + 1 })).toThrow(
      /rows must be at most 2\^24 \(f32 holds its indices exactly\), got 16777217/,
    );
    expect(() => device.indexRows(small, small, out, { count: 4, dimension: 2, rows: 3 })).toThrow(
      /table holds 1 elements, needs 6/,
    );
    device.destroy();
  });

  it('a batched matmul is each product on its own: offsets, shared operands and transposes', async () => {
    const device = await openDevice('cpu');
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          count: fc.integer({ min: 1, max: 5 }),
          m: fc.integer({ min: 1, max: 9 }),
          n: fc.integer({ min: 1, max: 9 }),
          k: fc.integer({ min: 1, max: 9 }),
          gapA: fc.option(fc.integer({ min: 0, max: 4 })),
          gapB: fc.option(fc.integer({ min: 0, max: 4 })),
          transposeA: fc.boolean(),
          transposeB: fc.boolean(),
          seed: fc.integer(),
        }),
        async ({ count, m, n, k, gapA, gapB, transposeA, transposeB, seed }) => {
          // a gap of null shares one matrix between all products (stride 0)
          const strideA = gapA === null ? 0 : m * k + gapA;
          const strideB = gapB === null ? 0 : k * n + gapB;
          const random = new Random(seed);
          const a = uniform(random, (count - 1) * strideA + m * k, -1, 1);
          const b = uniform(random, (count - 1) * strideB + k * n, -1, 1);
          const result = await runCase(device, {
            name: 'batched',
            tolerance: TOLERANCES.f32.matmul,
            inputs: [a, b],
            outputLength: count * m * n,
            run: (d, [x, y], o) =>
              d.matmul(x, y, o, m, n, k, { transposeA, transposeB, batch: { count, strideA, strideB } }),
          });
          const plain = (values: Float32Array, rows: number, columns: number, transposed: boolean) =>
            transposed
              ? Float32Array.from(
                  { length: rows * columns },
                  (_, e) => values[(e % columns) * rows + Math.floor(e / columns)],
                )
              : values;
          for (let i = 0; i < count; i++) {
            const left = plain(a.slice(i * strideA, i * strideA + m * k), m, k, transposeA);
            const right = plain(b.slice(i * strideB, i * strideB + k * n), k, n, transposeB);
            const product = result.slice(i * m * n, (i + 1) * m * n);
            expect(
              firstMismatch(product, naiveMatmul(left, right, m, n, k), TOLERANCES.f32.matmul),
              `product ${i}`,
            ).toBeUndefined();
          }
        },
      ),
      { seed: 11, numRuns: 60 },
    );
    const buffer = device.upload(new Float32Array(8));
    const out = device.allocate(64);
    const batched = (batch: { count: number; strideA: number; strideB: number }) => () =>
      device.matmul(buffer, buffer, out, 2, 2, 2, { batch });
    expect(batched({ count: 0, strideA: 4, strideB: 4 })).toThrow(
      /batch.count must be an integer in \[1, 2147483647\], got 0/,
    );
    expect(batched({ count: 2, strideA: -1, strideB: 4 })).toThrow(
      /batch.strideA must be an integer in \[0, 2\^32 - 1\], got -1/,
    );
    expect(batched({ count: 2, strideA: 4, strideB: 5 })).toThrow(/b holds 8 elements, needs 9/);
    expect(batched({ count: 5, strideA: 0, strideB: 0 })).toThrow(/output holds 16 elements, needs 20/);
    expect(batched({ count: 2, strideA: 4, strideB: 0 })).not.toThrow();
    device.destroy();
  });

  it('matmul equals the triple loop for any shape', async () => {
    const device = await openDevice('cpu');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        async (m, n, k, seed) => {
          const random = new Random(seed);
          const a = uniform(random, m * k, -1, 1);
          const b = uniform(random, k * n, -1, 1);
          const result = await runCase(device, {
            name: 'mm',
            tolerance: TOLERANCES.f32.matmul,
            inputs: [a, b],
            outputLength: m * n,
            run: (d, [x, y], o) => d.matmul(x, y, o, m, n, k),
          });
          expect(firstMismatch(result, naiveMatmul(a, b, m, n, k), TOLERANCES.f32.matmul)).toBeUndefined();
        },
      ),
      { seed: 7, numRuns: 40 },
    );
    device.destroy();
  });

  it('conv2d (im2col + matmul) equals the definition of convolution, with stride, padding and dilation', async () => {
    const device = await openDevice('cpu');
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          inChannels: fc.integer({ min: 1, max: 3 }),
          outChannels: fc.integer({ min: 1, max: 3 }),
        }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 0, max: 1 }),
        fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 })),
        fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })),
        fc.integer(),
        async (sizes, kernelSize, stride, padding, dilation, extra, seed) => {
          const random = new Random(seed);
          // the smallest input the dilated kernel fits, plus a few rows and columns
          const height = dilation[0] * (kernelSize - 1) + 1 + extra[0];
          const width = dilation[1] * (kernelSize - 1) + 1 + extra[1];
          const shape = {
            ...sizes,
            height,
            width,
            kernelHeight: kernelSize,
            kernelWidth: kernelSize,
            stride,
            padding,
            dilation,
          };
          const input = uniform(random, sizes.batch * sizes.inChannels * height * width, -1, 1);
          const weight = uniform(
            random,
            sizes.outChannels * sizes.inChannels * kernelSize * kernelSize,
            -1,
            1,
          );
          const bias = uniform(random, sizes.outChannels, -1, 1);
          const expected = naiveConv2d(
            input,
            weight,
            bias,
            shape,
            [stride, stride],
            [padding, padding],
            dilation,
          );
          const result = await runCase(device, {
            name: 'conv',
            tolerance: TOLERANCES.f32.matmul,
            inputs: [input, weight, bias],
            outputLength: expected.length,
            run: (d, [x, w, b], o) => d.conv2d(x, w, b, o, shape),
          });
          expect(firstMismatch(result, expected, TOLERANCES.f32.matmul)).toBeUndefined();
        },
      ),
      { seed: 11, numRuns: 40 },
    );
    device.destroy();
  });

  it('conv2d refuses groups other than 1 on a device, and groups that do not divide the channels', async () => {
    const device = await openDevice('cpu');
    const shape = {
      batch: 1,
      inChannels: 4,
      height: 4,
      width: 4,
      outChannels: 4,
      kernelHeight: 3,
      kernelWidth: 3,
    };
    const input = device.upload(new Float32Array(64));
    const weight = device.upload(new Float32Array(4 * 4 * 9));
    const output = device.allocate(4 * 4 * 9 * 4);
    expect(() => device.conv2d(input, weight, undefined, output, { ...shape, groups: 2 })).toThrow(
      /groups must be 1 on a device, got 2/,
    );
    expect(() => device.im2col(input, output, { ...shape, groups: 3 })).toThrow(/groups \(3\) must divide/);
    expect(() => device.im2col(input, output, { ...shape, dilation: 2 })).toThrow(/does not fit/);
    device.destroy();
  });

  it('softmax rows sum to one, layernorm rows have mean 0 and variance 1, reductions match Math', async () => {
    const device = await openDevice('cpu');
    const random = new Random(3);
    const rows = 4;
    const columns = 50;
    const x = uniform(random, rows * columns, -20, 20);
    const ones = new Float32Array(columns).fill(1);
    const zeros = new Float32Array(columns);
    const soft = await runCase(device, {
      name: 's',
      tolerance: TOLERANCES.f32.reduction,
      inputs: [x],
      outputLength: rows * columns,
      run: (d, [i], o) => d.softmax(i, o, rows, columns),
    });
    const norm = await runCase(device, {
      name: 'l',
      tolerance: TOLERANCES.f32.reduction,
      inputs: [x, ones, zeros],
      outputLength: rows * columns,
      run: (d, [i, g, b], o) => d.layernorm(i, g, b, o, rows, columns),
    });
    const maxima = await runCase(device, {
      name: 'm',
      tolerance: TOLERANCES.f32.reduction,
      inputs: [x],
      outputLength: rows,
      run: (d, [i], o) => d.reduce('max', i, o, rows, columns),
    });
    for (let row = 0; row < rows; row++) {
      const slice = (values: Float32Array) => Array.from(values.subarray(row * columns, (row + 1) * columns));
      expect(slice(soft).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      const normalized = slice(norm);
      const mean = normalized.reduce((a, b) => a + b, 0) / columns;
      expect(mean).toBeCloseTo(0, 5);
      expect(normalized.reduce((a, b) => a + (b - mean) ** 2, 0) / columns).toBeCloseTo(1, 3);
      expect(maxima[row]).toBe(Math.max(...slice(x)));
    }
    device.destroy();
  });

  it('elementwise ops match their Math definitions', async () => {
    const device = await openDevice('cpu');
    const x = new Float32Array([-3, -0.5, 0, 0.5, 3]);
    const definitions: Record<string, (v: number) => number> = {
      neg: (v) => -v,
      relu: (v) => Math.max(v, 0),
      sigmoid: (v) => 1 / (1 + Math.exp(-v)),
      tanh: Math.tanh,
      exp: Math.exp,
      gelu: (v) => 0.5 * v * (1 + erf(v * Math.SQRT1_2)), // the exact form, as the ML layer's
    };
    for (const [op, definition] of Object.entries(definitions)) {
      const result = await runCase(device, {
        name: op,
        tolerance: TOLERANCES.f32.elementwise,
        inputs: [x],
        outputLength: 5,
        run: (d, [i], o) => d.unary(op as 'neg', i, o),
      });
      expect(
        firstMismatch(result, Array.from(x, definition), TOLERANCES.f32.elementwise),
        op,
      ).toBeUndefined();
    }
    device.destroy();
  });
});

describe('launchers agree with the generated signatures', () => {
  const buffer = (pointer: number) => ({ byteLength: 1024, pointer: BigInt(pointer) });
  const geometry = {
    batch: 1,
    inChannels: 2,
    height: 5,
    width: 5,
    outChannels: 3,
    kernelHeight: 3,
    kernelWidth: 3,
    strideHeight: 1,
    strideWidth: 1,
    paddingHeight: 1,
    paddingWidth: 1,
    dilationHeight: 1,
    dilationWidth: 1,
    groups: 1,
    outHeight: 5,
    outWidth: 5,
  };
  const launches: KernelLaunch[] = [
    ...UNARY_OP_NAMES.map(
      (op): KernelLaunch => ({ kind: 'unary', op, input: buffer(1), output: buffer(2), count: 7 }),
    ),
    ...BINARY_OP_NAMES.flatMap((op): KernelLaunch[] => [
      {
        kind: 'binary',
        op,
        a: buffer(1),
        b: buffer(2),
        output: buffer(3),
        count: 8,
        layout: { kind: 'same' },
      },
      {
        kind: 'binary',
        op,
        a: buffer(1),
        b: buffer(2),
        output: buffer(3),
        count: 6,
        layout: { kind: 'broadcast', shape: [1, 1, 2, 3], stridesA: [0, 0, 3, 1], stridesB: [0, 0, 0, 1] },
      },
    ]),
    ...REDUCE_OP_NAMES.map(
      (op): KernelLaunch => ({
        kind: 'reduce',
        op,
        input: buffer(1),
        output: buffer(2),
        rows: 3,
        columns: 4,
      }),
    ),
    { kind: 'softmax', input: buffer(1), output: buffer(2), rows: 3, columns: 4 },
    {
      kind: 'layernorm',
      input: buffer(1),
      gamma: buffer(2),
      beta: buffer(3),
      output: buffer(4),
      rows: 3,
      columns: 4,
      epsilon: 1e-5,
    },
    { kind: 'im2col', input: buffer(1), output: buffer(2), geometry },
    { kind: 'convOutput', product: buffer(1), bias: undefined, output: buffer(2), geometry },
    { kind: 'col2im', columns: buffer(1), output: buffer(2), geometry },
    ...POOL_OP_NAMES.flatMap((op): KernelLaunch[] => {
      const pool = { planes: 6, height: 8, width: 6, kernelSize: 2, stride: 2, outHeight: 4, outWidth: 3 };
      return [
        { kind: 'pool2d', op, input: buffer(1), output: buffer(2), geometry: pool },
        {
          kind: 'pool2dBackward',
          op,
          input: buffer(1),
          gradient: buffer(2),
          output: buffer(3),
          geometry: pool,
        },
      ];
    }),
    {
      kind: 'adamStep',
      output: buffer(1),
      gradient: buffer(2),
      firstMoment: buffer(3),
      secondMoment: buffer(4),
      count: 9,
      beta1: 0.9,
      oneMinusBeta1: 0.1,
      beta2: 0.999,
      oneMinusBeta2: 0.001,
      epsilon: 1e-8,
      stepSize: 0.01,
      inverseCorrection2: 1.2,
      coupledDecay: 0.1,
      shrink: 0.999,
    },
  ];

  it('every CUDA launch passes one value per kernel parameter, in the signature order', () => {
    for (const launch of launches) {
      const bound = bindCudaLaunch(launch as Exclude<KernelLaunch, { kind: 'matmul' }>);
      const signature = /\(([^)]*)\)/.exec(bound.kernel.source)![1].split(',');
      expect(bound.values.length, bound.kernel.name).toBe(bound.kernel.parameters.length);
      expect(signature.length, bound.kernel.name).toBe(bound.kernel.parameters.length);
      signature.forEach((parameter, index) => {
        const expected = { pointer: /\*/, u32: /^\s*unsigned int /, f32: /^\s*float / }[
          bound.kernel.parameters[index]
        ];
        expect(parameter, `${bound.kernel.name} parameter ${index}`).toMatch(expected);
        expect(typeof bound.values[index], `${bound.kernel.name} value ${index}`).toBe(
          bound.kernel.parameters[index] === 'pointer' ? 'bigint' : 'number',
        );
      });
    }
  });

  it('every WGSL launch binds its buffers then the uniform, as the shader declares', () => {
    const matmuls = [false, true].flatMap((transposeA) =>
      [false, true].map(
        (transposeB): KernelLaunch => ({
          kind: 'matmul',
          a: buffer(1),
          b: buffer(2),
          output: buffer(3),
          m: 3,
          n: 4,
          k: 5,
          precision: 'f32',
          outputDType: 'f32',
          transposeA,
          transposeB,
          batch: 2,
          strideA: 15,
          strideB: 0,
        }),
      ),
    );
    expect(new Set(matmuls.map((launch) => bindLaunch(launch).kernel.name))).toEqual(
      new Set(['matmul', 'matmul_ta', 'matmul_tb', 'matmul_ta_tb']),
    );
    for (const launch of [...launches, ...matmuls]) {
      const bound = bindLaunch(launch);
      const bindings = [...bound.kernel.source.matchAll(/@binding\((\d+)\) var<(\w+)/g)];
      expect(
        bindings.map((match) => Number(match[1])),
        bound.kernel.name,
      ).toEqual(bindings.map((_, index) => index));
      expect(bindings.length, bound.kernel.name).toBe(bound.buffers.length + 1);
      expect(bindings.at(-1)![2], bound.kernel.name).toBe('uniform');
    }
  });
});
