import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import {
  blasBackend,
  chosenCoreType,
  cpuHasAvx512,
  gemm,
  K_SLICE,
  openBlasGemm,
  rawOpenBlasSgemm,
  runsOnOneThread,
  SLICED_OUTPUT_MAX,
  setBlasBackend,
  typescriptGemm,
} from '../../src/ml/internal/blas.js';
import { expectClose, uniformArray } from './helpers.js';

/** Before any product loads OpenBLAS (blas.ts sets the variable only for the load). */
const CORETYPE_AT_IMPORT = process.env.OPENBLAS_CORETYPE;

/** C = alpha op(A) op(B) + beta C, straight from the definition, in float64. */
function reference(
  ta: boolean,
  tb: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
): number[] {
  const out = Array.from(c);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let total = 0;
      for (let p = 0; p < k; p++)
        total += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      out[i * ldc + j] = alpha * total + beta * c[i * ldc + j];
    }
  return out;
}

const openBlasPresent = rawOpenBlasSgemm() !== null;

describe('gemm backends', () => {
  afterAll(() => {
    setBlasBackend(openBlasPresent ? 'openblas' : 'typescript');
  });

  it('the TypeScript fallback and OpenBLAS agree with the definition (transposes, offsets, alpha, beta)', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 1, max: 40 }),
          n: fc.integer({ min: 1, max: 300 }),
          k: fc.integer({ min: 1, max: 150 }),
        }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 1000 }),
        ({ m, n, k }, ta, tb, seed) => {
          const random = new Random(seed);
          const offset = 3;
          const lda = (ta ? m : k) + 1;
          const ldb = (tb ? k : n) + 2;
          const ldc = n + 1;
          const a = uniformArray(random, offset + (ta ? k : m) * lda);
          const b = uniformArray(random, offset + (tb ? n : k) * ldb);
          const c = uniformArray(random, offset + m * ldc);
          const [alpha, beta] = [0.5 + random.next(), random.next() < 0.3 ? 0 : random.next()];
          const expected = reference(
            ta,
            tb,
            m,
            n,
            k,
            alpha,
            a.subarray(offset),
            lda,
            b.subarray(offset),
            ldb,
            beta,
            c.subarray(offset),
            ldc,
          );
          const fallback = Float32Array.from(c);
          typescriptGemm(ta, tb, m, n, k, alpha, a, offset, lda, b, offset, ldb, beta, fallback, offset, ldc);
          expectClose(fallback.subarray(offset), expected, 1e-4);
          expectClose(fallback.subarray(0, offset), c.subarray(0, offset), 0);
          if (openBlasPresent) {
            const blas = Float32Array.from(c);
            openBlasGemm(ta, tb, m, n, k, alpha, a, offset, lda, b, offset, ldb, beta, blas, offset, ldc);
            expectClose(blas.subarray(offset), fallback.subarray(offset), 1e-4);
            expectClose(blas.subarray(0, offset), c.subarray(0, offset), 0);
          }
        },
      ),
      { numRuns: 30, seed: 11 },
    );
  });

  it('a small output over a long k (run in k slices) agrees with the definition', () => {
    // 3 x 5 over k = 2.5 K_SLICE: two whole slices and a part, every transpose, offsets, beta.
    const [m, n, k] = [3, 5, Math.floor(2.5 * K_SLICE)];
    expect(m * n).toBeLessThanOrEqual(SLICED_OUTPUT_MAX);
    for (const [ta, tb] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const random = new Random(ta ? (tb ? 4 : 3) : tb ? 2 : 1);
      const offset = 2;
      const lda = (ta ? m : k) + 1;
      const ldb = (tb ? k : n) + 3;
      const ldc = n + 2;
      const a = uniformArray(random, offset + (ta ? k : m) * lda);
      const b = uniformArray(random, offset + (tb ? n : k) * ldb);
      const c = uniformArray(random, offset + m * ldc);
      const expected = reference(
        ta,
        tb,
        m,
        n,
        k,
        0.75,
        a.subarray(offset),
        lda,
        b.subarray(offset),
        ldb,
        0.5,
        c.subarray(offset),
        ldc,
      );
      const out = Float32Array.from(c);
      gemm(ta, tb, m, n, k, 0.75, a, offset, lda, b, offset, ldb, 0.5, out, offset, ldc);
      // Each entry sums 10,240 products of values in [-1, 1): f32 error well under 2e-3.
      expectClose(out.subarray(offset), expected, 2e-3);
      expectClose(out.subarray(0, offset), c.subarray(0, offset), 0);
    }
  });

  it('setBlasThreads changes OpenBLAS threading and rejects bad counts', () => {
    expect(() => ml.setBlasThreads(0)).toThrow(RangeError);
    if (!openBlasPresent) return;
    const before = ml.blasInfo().threads;
    expect(ml.setBlasThreads(1)).toBe(true);
    expect(ml.blasInfo().threads).toBe(1);
    ml.setBlasThreads(before);
  });

  it('chooses one thread for small products and every thread for large outputs', () => {
    // A weight gradient with a long k (16 x 9, k = 50,176): a tiny output stays on one thread.
    expect(runsOnOneThread(16, 9, 50_176)).toBe(true);
    // The MLP's products (784-128-10, batch 32): under 8 million multiply-adds.
    expect(runsOnOneThread(32, 128, 784)).toBe(true);
    expect(runsOnOneThread(128, 784, 32)).toBe(true);
    // The CNN's first convolution (16 x 50,176, k = 9): little work, but a 3 MiB output.
    expect(runsOnOneThread(16, 50_176, 9)).toBe(false);
    expect(runsOnOneThread(1, 262_144, 1)).toBe(false);
    expect(runsOnOneThread(1, 262_143, 1)).toBe(true);
    // Large work on a mid-sized output (the CNN's second convolution).
    expect(runsOnOneThread(32, 12_544, 144)).toBe(false);
    expect(runsOnOneThread(64, 128, 977)).toBe(false);
    expect(runsOnOneThread(64, 128, 976)).toBe(true);
  });

  it('k = 0 scales C by beta; an empty output is a no-op', () => {
    const c = new Float32Array([1, 2, 3, 4]);
    gemm(false, false, 2, 2, 0, 1, new Float32Array(0), 0, 1, new Float32Array(0), 0, 2, 0.5, c, 0, 2);
    expect(Array.from(c)).toEqual([0.5, 1, 1.5, 2]);
    gemm(false, false, 0, 2, 3, 1, new Float32Array(0), 0, 3, new Float32Array(6), 0, 2, 0, c, 0, 2);
    expect(Array.from(c)).toEqual([0.5, 1, 1.5, 2]);
  });

  it('training gives the same results on either backend (within f32 tolerance)', () => {
    const run = (): number[] => {
      ml.manualSeed(3);
      const model = new ml.Sequential(new ml.Linear(6, 16), new ml.ReLU(), new ml.Linear(16, 3));
      const optimizer = new ml.SGD(model.parameters(), { learningRate: 0.1 });
      const random = new Random(1);
      const batch = {
        inputs: uniformArray(random, 8 * 6),
        labels: new Int32Array([0, 1, 2, 0, 1, 2, 0, 1]),
        size: 8,
        featureShape: [6],
      };
      return Array.from({ length: 5 }, () => ml.trainStep(model, optimizer, batch));
    };
    expect(setBlasBackend('typescript')).toBe(true);
    expect(blasBackend()).toBe('typescript');
    const fallback = run();
    if (openBlasPresent) {
      expect(setBlasBackend('openblas')).toBe(true);
      expectClose(run(), fallback, 1e-5);
    }
  });
});

describe('fallback notice', () => {
  it('prints one line to stderr, once, when OpenBLAS is missing or disabled', async () => {
    const { vi } = await import('vitest');
    for (const [variable, value, reason] of [
      ['ZBMD_BLAS', 'typescript', /ZBMD_BLAS=typescript/],
      ['ZBMD_OPENBLAS', '/nonexistent/libopenblas.so', /OpenBLAS not found/],
    ] as const) {
      vi.stubEnv(variable, value);
      vi.resetModules();
      const fresh = await import('../../src/ml/internal/blas.js');
      const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        expect(fresh.blasBackend()).toBe('typescript');
        expect(fresh.blasBackend()).toBe('typescript');
        expect(fresh.blasInfo().library).toBeNull();
        expect(write).toHaveBeenCalledTimes(1);
        const line = String(write.mock.calls[0][0]);
        expect(line).toMatch(reason);
        expect(line.trim().split('\n')).toHaveLength(1);
      } finally {
        write.mockRestore();
        vi.unstubAllEnvs();
      }
    }
  });
});

describe('OpenBLAS kernel choice', () => {
  it('asks for the AVX-512 kernels only when the CPU has them and OPENBLAS_CORETYPE is unset', () => {
    const avx512 = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n';
    const avx2 = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n';
    expect(cpuHasAvx512(avx512)).toBe(true);
    expect(cpuHasAvx512(avx2)).toBe(false);
    expect(cpuHasAvx512('no flags line')).toBe(false);
    expect(cpuHasAvx512(null)).toBe(false);
    expect(chosenCoreType({}, true)).toBe('SkylakeX');
    expect(chosenCoreType({}, false)).toBeNull();
    expect(chosenCoreType({ OPENBLAS_CORETYPE: 'Haswell' }, true)).toBeNull();
  });

  it('blasInfo names the kernels OpenBLAS runs, and loading leaves OPENBLAS_CORETYPE as it was', () => {
    const info = ml.blasInfo();
    expect(process.env.OPENBLAS_CORETYPE).toBe(CORETYPE_AT_IMPORT);
    if (info.backend !== 'openblas') return;
    expect(info.core).toMatch(/^[A-Za-z0-9]+$/);
    if (CORETYPE_AT_IMPORT !== undefined)
      expect(info.core?.toLowerCase()).toBe(CORETYPE_AT_IMPORT.toLowerCase());
  });
});
