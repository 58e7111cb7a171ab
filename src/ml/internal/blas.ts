/**
 * General matrix products, C = alpha * op(A) * op(B) + beta * C, row-major, where op transposes
 * or not. Through OpenBLAS's `cblas_sgemm` (via koffi) when the library is present, otherwise a
 * cache-blocked TypeScript loop; the first fallback prints a one-line notice to stderr.
 *
 * Operands are (array, offset, leading dimension) triples, so batched and transposed operands
 * are passed without copies. Set `ZBMD_BLAS=typescript` to force the fallback and
 * `ZBMD_OPENBLAS=/path/libopenblas.so` to point at a library elsewhere.
 *
 * Kernel choice: an OpenBLAS built with DYNAMIC_ARCH picks its kernels for the CPU it knows, and
 * a release older than the CPU falls back to an older family (Debian 12's 0.3.21 runs AMD Zen 5
 * with its AVX2 "Haswell" kernels, about half the speed of its AVX-512 "SkylakeX" kernels there).
 * So when the CPU reports AVX-512 F, DQ, BW and VL (/proc/cpuinfo) and OPENBLAS_CORETYPE is not
 * set, zbmd loads OpenBLAS with OPENBLAS_CORETYPE=SkylakeX (the variable is read when the library
 * loads; it is removed again afterwards, so child processes do not inherit it). A value the user
 * set is left alone, and `blasInfo().core` says which kernels were chosen.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export type BlasBackendName = 'openblas' | 'typescript';

export type GemmFunction = (
  transposeA: boolean,
  transposeB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  aOffset: number,
  lda: number,
  b: Float32Array,
  bOffset: number,
  ldb: number,
  beta: number,
  c: Float32Array,
  cOffset: number,
  ldc: number,
) => void;

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

const LIBRARY_PATHS = [
  '/usr/lib/x86_64-linux-gnu/libopenblas.so.0',
  '/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0',
  '/usr/lib/aarch64-linux-gnu/libopenblas.so.0',
  '/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0',
  'libopenblas.so.0',
  'libopenblas.so',
  'libopenblas.dylib',
];

type RawSgemm = (...args: unknown[]) => void;

interface OpenBlas {
  readonly path: string;
  /** The kernel family OpenBLAS runs (openblas_get_corename), or null when it cannot say. */
  readonly core: string | null;
  readonly sgemm: RawSgemm;
  threads: number;
  readonly setThreads: ((threads: number) => void) | null;
}

let openBlas: OpenBlas | null | undefined;
let active: BlasBackendName | undefined;
let noticePrinted = false;

/** The AVX-512 subsets OpenBLAS's SkylakeX kernels use. */
const AVX512_FLAGS = ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'];

/** Whether /proc/cpuinfo lists every flag of AVX512_FLAGS (false where there is no such file). */
export function cpuHasAvx512(cpuinfo: string | null = readCpuinfo()): boolean {
  if (cpuinfo === null) return false;
  const line = cpuinfo.split('\n').find((text) => text.startsWith('flags'));
  if (line === undefined) return false;
  const flags = new Set(
    line
      .slice(line.indexOf(':') + 1)
      .trim()
      .split(/\s+/),
  );
  return AVX512_FLAGS.every((flag) => flags.has(flag));
}

function readCpuinfo(): string | null {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return null;
  }
}

/**
 * The OPENBLAS_CORETYPE to load OpenBLAS with: none when the user set one (theirs stands) or the
 * CPU lacks AVX-512, else SkylakeX (see the file comment).
 */
export function chosenCoreType(environment: NodeJS.ProcessEnv, avx512: boolean): string | null {
  if (environment.OPENBLAS_CORETYPE !== undefined) return null;
  return avx512 ? 'SkylakeX' : null;
}

function loadOpenBlas(): OpenBlas | null {
  if (openBlas !== undefined) return openBlas;
  openBlas = null;
  let koffi: typeof import('koffi');
  try {
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch {
    return null;
  }
  const override = process.env.ZBMD_OPENBLAS;
  const coreType = chosenCoreType(process.env, cpuHasAvx512());
  for (const path of override ? [override] : LIBRARY_PATHS) {
    try {
      // Read by the library's initialiser, during the load; not left for child processes.
      if (coreType !== null) process.env.OPENBLAS_CORETYPE = coreType;
      let library: ReturnType<typeof koffi.load>;
      try {
        library = koffi.load(path);
      } finally {
        if (coreType !== null) delete process.env.OPENBLAS_CORETYPE;
      }
      const sgemm = library.func(
        'void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, ' +
          'const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)',
      ) as RawSgemm;
      let threads = 1;
      let setThreads: ((threads: number) => void) | null = null;
      try {
        threads = (library.func('int openblas_get_num_threads()') as () => number)();
        setThreads = library.func('void openblas_set_num_threads(int threads)') as (threads: number) => void;
      } catch {
        // Not every build exports these; threading then stays as the library chose.
      }
      let core: string | null = null;
      try {
        core = (library.func('const char *openblas_get_corename()') as () => string)();
      } catch {
        // Older builds have no corename; `core` then stays unknown.
      }
      openBlas = { path, core, sgemm, threads, setThreads };
      return openBlas;
    } catch {
      // Try the next path.
    }
  }
  return null;
}

/** Which backend matrix products use; resolves (and prints the fallback notice) on first call. */
export function blasBackend(): BlasBackendName {
  if (active !== undefined) return active;
  const wanted = process.env.ZBMD_BLAS;
  if (wanted !== 'typescript' && loadOpenBlas() !== null) {
    active = 'openblas';
    return active;
  }
  active = 'typescript';
  if (!noticePrinted) {
    noticePrinted = true;
    const why =
      wanted === 'typescript' ? 'ZBMD_BLAS=typescript' : 'OpenBLAS not found (install libopenblas0-pthread)';
    process.stderr.write(`zbmd: ${why}; matrix products use the slower TypeScript fallback\n`);
  }
  return active;
}

/** Chooses the backend explicitly (tests and benchmarks). Returns false if OpenBLAS is missing. */
export function setBlasBackend(name: BlasBackendName): boolean {
  if (name === 'openblas' && loadOpenBlas() === null) return false;
  active = name;
  return true;
}

/**
 * Sets OpenBLAS's thread count (for example 1 per worker when several trainers share a machine).
 * Returns false when OpenBLAS is not in use or cannot change it.
 */
export function setBlasThreads(threads: number): boolean {
  if (!Number.isInteger(threads) || threads < 1)
    throw new RangeError(`setBlasThreads: expected an integer >= 1, got ${threads}`);
  const library = blasBackend() === 'openblas' ? openBlas : null;
  if (!library?.setThreads) return false;
  library.setThreads(threads);
  library.threads = threads;
  return true;
}

export interface BlasInfo {
  readonly backend: BlasBackendName;
  /** The OpenBLAS file loaded, null for the TypeScript fallback. */
  readonly library: string | null;
  readonly threads: number;
  /** OpenBLAS's kernel family (for example `SkylakeX`, `Haswell`); null when not OpenBLAS or unknown. */
  readonly core: string | null;
}

export function blasInfo(): BlasInfo {
  const backend = blasBackend();
  const openblas = backend === 'openblas' ? (openBlas ?? null) : null;
  return {
    backend,
    library: openblas?.path ?? null,
    threads: openblas?.threads ?? 1,
    core: openblas?.core ?? null,
  };
}

/**
 * Products with fewer output elements than this run on one OpenBLAS thread. OpenBLAS splits a
 * product between its threads by output tiles; a small output (a convolution's weight gradient,
 * 16 x 9 with k = 50,176) split in two costs more in handing work over than it saves: that one
 * ran about 4 times slower on two threads than on one on the shared 2-core machine.
 */
export const SINGLE_THREAD_OUTPUT_MAX = 4096;

/**
 * Products of fewer multiply-adds (m * n * k) than this also run on one thread: split in two,
 * half of the output is written in the other core's cache, and the ops after the product (the
 * optimizer reading a weight gradient, the next layer reading an activation) then fetch it from
 * there. The MLP of the bench (784-128-10, batch 32: products of 3.2 million multiply-adds)
 * trained faster with these on one thread; its larger products stay on two.
 */
export const SINGLE_THREAD_WORK_MAX = 8_000_000;

/**
 * Products with at least this many output elements run on every thread whatever their work: an
 * output of 1 MiB and more does not stay in one core's cache anyway, and a product that short
 * in k is bound by writing it. The CNN's first convolution (16 x 50,176, k = 9: 7.2 million
 * multiply-adds) took 0.56 ms on one thread and 0.28 ms on two.
 */
export const SPLIT_OUTPUT_MIN = 262_144;

/** Whether `gemm` runs an m x n product over k on one OpenBLAS thread (the three rules above). */
export function runsOnOneThread(m: number, n: number, k: number): boolean {
  const output = m * n;
  if (output < SINGLE_THREAD_OUTPUT_MAX) return true;
  return output < SPLIT_OUTPUT_MIN && output * k < SINGLE_THREAD_WORK_MAX;
}

/**
 * A product with an output this small and a longer inner dimension runs as inner-dimension
 * slices of K_SLICE (the first with beta, the rest added on): OpenBLAS 0.3.21 (Haswell kernels)
 * took 2 to 3 times as long over one long k as over slices of it, for example 0.47 ms against
 * 0.20 ms for the CNN's first weight gradient (16 x 9, k = 50,176), one thread. Outputs of
 * 32 x 32 and up gained nothing from slicing, so they do not.
 */
export const SLICED_OUTPUT_MAX = 1024;
export const K_SLICE = 4096;

/** C = alpha * op(A) * op(B) + beta * C with the active backend. */
export const gemm: GemmFunction = (ta, tb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc) => {
  if (m === 0 || n === 0) return;
  if (k === 0) {
    scaleMatrix(m, n, beta, c, co, ldc);
    return;
  }
  if ((active ?? blasBackend()) === 'openblas') {
    const library = openBlas as OpenBlas;
    // A small product runs on one thread (runsOnOneThread); the thread count goes back after.
    const single = runsOnOneThread(m, n, k) && library.threads > 1 && library.setThreads !== null;
    if (single) library.setThreads?.(1);
    try {
      if (m * n <= SLICED_OUTPUT_MAX && k > K_SLICE) {
        // Slice s is columns [k0, k0 + K_SLICE) of op(A) and rows of op(B).
        for (let k0 = 0; k0 < k; k0 += K_SLICE) {
          const slice = Math.min(K_SLICE, k - k0);
          const aAt = ao + (ta ? k0 * lda : k0);
          const bAt = bo + (tb ? k0 : k0 * ldb);
          openBlasGemm(ta, tb, m, n, slice, alpha, a, aAt, lda, b, bAt, ldb, k0 === 0 ? beta : 1, c, co, ldc);
        }
      } else openBlasGemm(ta, tb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc);
    } finally {
      if (single) library.setThreads?.(library.threads);
    }
  } else typescriptGemm(ta, tb, m, n, k, alpha, a, ao, lda, b, bo, ldb, beta, c, co, ldc);
};

/** The OpenBLAS path, also used directly by the benchmark's reference figure. */
export const openBlasGemm: GemmFunction = (
  ta,
  tb,
  m,
  n,
  k,
  alpha,
  a,
  ao,
  lda,
  b,
  bo,
  ldb,
  beta,
  c,
  co,
  ldc,
) => {
  const library = loadOpenBlas();
  if (library === null) throw new Error('openBlasGemm: OpenBLAS is not available');
  library.sgemm(
    CBLAS_ROW_MAJOR,
    ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
    tb ? CBLAS_TRANS : CBLAS_NO_TRANS,
    m,
    n,
    k,
    alpha,
    ao === 0 ? a : a.subarray(ao),
    lda,
    bo === 0 ? b : b.subarray(bo),
    ldb,
    beta,
    co === 0 ? c : c.subarray(co),
    ldc,
  );
};

/** Raw access for the benchmark's "OpenBLAS called directly" reference; null when missing. */
export function rawOpenBlasSgemm(): RawSgemm | null {
  return loadOpenBlas()?.sgemm ?? null;
}

function scaleMatrix(m: number, n: number, beta: number, c: Float32Array, co: number, ldc: number): void {
  for (let i = 0; i < m; i++) {
    const row = co + i * ldc;
    if (beta === 0) c.fill(0, row, row + n);
    else if (beta !== 1) for (let j = 0; j < n; j++) c[row + j] *= beta;
  }
}

const BLOCK_COLUMNS = 256;
const BLOCK_DEPTH = 128;
let packedA = new Float32Array(0);
let packedB = new Float32Array(0);

/** Packs op(B) (k x n) into a row-major scratch so the inner loop runs over contiguous memory. */
function packB(
  transposeB: boolean,
  k: number,
  n: number,
  b: Float32Array,
  bo: number,
  ldb: number,
): Float32Array {
  if (packedB.length < k * n) packedB = new Float32Array(k * n);
  for (let p = 0; p < k; p++) {
    const row = p * n;
    if (transposeB) for (let j = 0; j < n; j++) packedB[row + j] = b[bo + j * ldb + p];
    else packedB.set(b.subarray(bo + p * ldb, bo + p * ldb + n), row);
  }
  return packedB;
}

/** alpha * op(A) (m x k), row-major, in a scratch. */
function packA(
  transposeA: boolean,
  m: number,
  k: number,
  alpha: number,
  a: Float32Array,
  ao: number,
  lda: number,
): Float32Array {
  if (packedA.length < m * k) packedA = new Float32Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++)
      packedA[i * k + p] = alpha * (transposeA ? a[ao + p * lda + i] : a[ao + i * lda + p]);
  }
  return packedA;
}

/**
 * C rows i and i+1, columns [j0, j1), depth [p0, p1): two rows by four depths per pass, so each
 * loaded element of B feeds two rows and each C element is read and written once per four depths.
 */
function twoRows(
  a: Float32Array,
  k: number,
  b: Float32Array,
  n: number,
  c: Float32Array,
  rowC0: number,
  rowC1: number,
  i: number,
  p0: number,
  p1: number,
  j0: number,
  j1: number,
): void {
  const a0 = i * k;
  const a1 = a0 + k;
  let p = p0;
  for (; p + 4 <= p1; p += 4) {
    const s00 = a[a0 + p];
    const s01 = a[a0 + p + 1];
    const s02 = a[a0 + p + 2];
    const s03 = a[a0 + p + 3];
    const s10 = a[a1 + p];
    const s11 = a[a1 + p + 1];
    const s12 = a[a1 + p + 2];
    const s13 = a[a1 + p + 3];
    const b0 = p * n;
    const b1 = b0 + n;
    const b2 = b1 + n;
    const b3 = b2 + n;
    for (let j = j0; j < j1; j++) {
      const x0 = b[b0 + j];
      const x1 = b[b1 + j];
      const x2 = b[b2 + j];
      const x3 = b[b3 + j];
      c[rowC0 + j] += s00 * x0 + s01 * x1 + s02 * x2 + s03 * x3;
      c[rowC1 + j] += s10 * x0 + s11 * x1 + s12 * x2 + s13 * x3;
    }
  }
  for (; p < p1; p++) {
    const s0 = a[a0 + p];
    const s1 = a[a1 + p];
    const row = p * n;
    for (let j = j0; j < j1; j++) {
      const x = b[row + j];
      c[rowC0 + j] += s0 * x;
      c[rowC1 + j] += s1 * x;
    }
  }
}

function oneRow(
  a: Float32Array,
  k: number,
  b: Float32Array,
  n: number,
  c: Float32Array,
  rowC: number,
  i: number,
  p0: number,
  p1: number,
  j0: number,
  j1: number,
): void {
  for (let p = p0; p < p1; p++) {
    const s = a[i * k + p];
    const row = p * n;
    for (let j = j0; j < j1; j++) c[rowC + j] += s * b[row + j];
  }
}

/** The pure TypeScript fallback: A and B packed, then blocked over columns and depth, two rows at a time. */
export const typescriptGemm: GemmFunction = (
  ta,
  tb,
  m,
  n,
  k,
  alpha,
  a,
  ao,
  lda,
  b,
  bo,
  ldb,
  beta,
  c,
  co,
  ldc,
) => {
  scaleMatrix(m, n, beta, c, co, ldc);
  if (m === 0 || n === 0 || k === 0 || alpha === 0) return;
  const aPacked = packA(ta, m, k, alpha, a, ao, lda);
  const bPacked = packB(tb, k, n, b, bo, ldb);
  for (let j0 = 0; j0 < n; j0 += BLOCK_COLUMNS) {
    const j1 = Math.min(n, j0 + BLOCK_COLUMNS);
    for (let p0 = 0; p0 < k; p0 += BLOCK_DEPTH) {
      const p1 = Math.min(k, p0 + BLOCK_DEPTH);
      let i = 0;
      for (; i + 2 <= m; i += 2)
        twoRows(aPacked, k, bPacked, n, c, co + i * ldc, co + (i + 1) * ldc, i, p0, p1, j0, j1);
      if (i < m) oneRow(aPacked, k, bPacked, n, c, co + i * ldc, i, p0, p1, j0, j1);
    }
  }
};

/**
 * c (m, n) = op(a) @ op(b) [+ c when accumulating] for whole, contiguous row-major matrices:
 * op(a) is (m, k) and op(b) is (k, n), so the leading dimensions follow from the shapes.
 */
export function matrixProduct(
  transposeA: boolean,
  transposeB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  accumulate: boolean,
): void {
  const lda = transposeA ? m : k;
  const ldb = transposeB ? k : n;
  gemm(
    transposeA,
    transposeB,
    m,
    n,
    k,
    1,
    a,
    0,
    Math.max(1, lda),
    b,
    0,
    Math.max(1, ldb),
    accumulate ? 1 : 0,
    c,
    0,
    Math.max(1, n),
  );
}
