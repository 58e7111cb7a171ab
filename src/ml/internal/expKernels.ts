/**
 * Kernels built on one exponential in WebAssembly SIMD, 4 lanes of f32, assembled from opcodes
 * like the ReLU kernel: `exp` itself (the causal softmax's) and GELU's tanh form (GPT-2's). In
 * JavaScript each element costs a Math.exp or Math.tanh call (about 14 ns on this project's CI
 * machine); here exp is range reduction plus a polynomial, 4 lanes at once.
 *
 * With u = K (v + C v^3) (K = sqrt(2 / pi), C = 0.044715) and s = sigmoid(2u) = 1 / (1 + e^-2u):
 *   y     = 0.5 v (1 + tanh u) = v s
 *   slope = 0.5 (1 + tanh u) + 0.5 v (1 - tanh^2 u) K (1 + 3 C v^2) = s + 2 K v s (1 - s) (1 + 3 C v^2)
 * (1 + tanh u = 2s and 1 - tanh^2 u = 4 s (1 - s), 1 - s = e^-2u s: no cancellation). e^z, z = -2u clamped
 * to [-88, 88], is 2^n e^r with n = nearest(z log2 e), r = z - n ln 2 (ln 2 in two parts), e^r
 * its degree-7 Taylor polynomial (|r| <= ln 2 / 2: truncation under 6e-9) and 2^n built in the
 * exponent bits. The result is within a few f32 ulps of the float64 formula.
 *
 *   exp(x, y, byteLength)                byteLength a multiple of 16; the caller pads
 *   geluTanh(x, y, slope, byteLength)    (runInSlots does)
 */
import {
  F32X4_ADD,
  F32X4_DIV,
  F32X4_GT,
  F32X4_MAX,
  F32X4_MUL,
  F32X4_SUB,
  functionBody,
  I32,
  I32_ADD,
  I32_CONST,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  loopOver,
  memoryKernelModule,
  reusableKernel,
  runInSlots,
  simd,
  V128,
  V128_AND,
  V128_LOAD,
  V128_STORE,
} from './simd.js';

const F32X4_MIN = simd(0xe8);
const F32X4_LE = simd(0x45);
const F32X4_LT = simd(0x43);
const V128_ANDNOT = simd(0x4f);
const V128_BITSELECT = simd(0x52);
const F32X4_NEAREST = simd(0x6a);
const I32X4_TRUNC_SAT_F32X4_S = simd(0xf8);
const I32X4_ADD = simd(0xae);
const I32X4_SHL = simd(0xab);

/** v128.const with `value` in every f32 lane. */
function f32x4(value: number): number[] {
  const bytes = new Uint8Array(new Float32Array([value, value, value, value]).buffer);
  return [...simd(0x0c), ...bytes];
}

/** v128.const with `value` in every i32 lane. */
function i32x4(value: number): number[] {
  const bytes = new Uint8Array(new Int32Array([value, value, value, value]).buffer);
  return [...simd(0x0c), ...bytes];
}

const K = Math.sqrt(2 / Math.PI);
const C = 0.044715;
/** Cody and Waite's split of ln 2 for f32: the high part has few bits, so n * it is exact. */
const LN2_HIGH = 0.693359375;
const LN2_LOW = -2.1219444e-4;
/** exp(z) is clamped to z in [-88, 88] (f32's range). */
const EXP_LIMIT = 88;

// parameters 0 x, 1 y, 2 slope, 3 byteLength; i32 local 4 the byte index; v128 locals 5 v, 6 v^2,
// 7 z clamped (then e^z), 8 n, 9 r, 10 z unclamped (then s).
const [P_X, P_Y, P_SLOPE, P_LENGTH, L_INDEX, L_V, L_V2, L_Z, L_N, L_R, L_S] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
];

const get = (local: number): number[] => [LOCAL_GET, local];
const at = (base: number): number[] => [LOCAL_GET, base, LOCAL_GET, L_INDEX, I32_ADD];

/**
 * e^z for z (clamped) in local `z`, n and r through locals `n` and `r`; leaves on the stack
 * 2^(n + 127 - exponentBias) e^r: e^z itself with the bias 127 (n in [-127, 127]; -127 gives
 * 0), e^z / 2 with 126 (n up to 128, for the whole f32 range: the caller doubles it).
 */
function exponential(z = L_Z, n = L_N, r = L_R, exponentBias = 127): number[] {
  const taylor = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
  const horner: number[] = [...f32x4(taylor[0])];
  for (const coefficient of taylor.slice(1))
    horner.push(...get(r), ...F32X4_MUL, ...f32x4(coefficient), ...F32X4_ADD);
  return [
    ...[...get(z), ...f32x4(Math.LOG2E), ...F32X4_MUL, ...F32X4_NEAREST, LOCAL_SET, n],
    ...[...get(z), ...get(n), ...f32x4(LN2_HIGH), ...F32X4_MUL, ...F32X4_SUB],
    ...[...get(n), ...f32x4(LN2_LOW), ...F32X4_MUL, ...F32X4_SUB, LOCAL_SET, r],
    ...horner,
    // 2^n: n + exponentBias in the exponent bits
    ...[
      ...get(n),
      ...I32X4_TRUNC_SAT_F32X4_S,
      ...i32x4(exponentBias),
      ...I32X4_ADD,
      I32_CONST,
      23,
      ...I32X4_SHL,
    ],
    ...F32X4_MUL,
  ];
}

/** Past this, e^z is above f32's largest value (+inf); below EXP_FLOOR (e^z < 2.6e-38) it is taken as 0. */
const EXP_CEILING = 88.72283;
const EXP_FLOOR = -86.6;

// exp: parameters 0 x, 1 y, 2 byteLength; i32 local 3 the byte index; v128 locals 4 x, 5 z
// (clamped), 6 n, 7 r.
function expBody(): number[] {
  const [X, Y, LENGTH, INDEX, VALUE, Z, N, R] = [0, 1, 2, 3, 4, 5, 6, 7];
  const address = (base: number): number[] => [LOCAL_GET, base, LOCAL_GET, INDEX, I32_ADD];
  const step = [
    ...[...address(Y), ...address(X), ...V128_LOAD, LOCAL_TEE, VALUE],
    ...[...f32x4(EXP_CEILING), ...F32X4_MIN, ...f32x4(EXP_FLOOR), ...F32X4_MAX, LOCAL_SET, Z],
    // e^z = 2 (e^z / 2), 0 below the floor, +inf past the ceiling; NaN stays NaN
    ...[...exponential(Z, N, R, 126), ...f32x4(2), ...F32X4_MUL],
    ...[...get(VALUE), ...f32x4(EXP_FLOOR), ...F32X4_LT, ...V128_ANDNOT, LOCAL_SET, Z],
    ...[...f32x4(Number.POSITIVE_INFINITY), ...get(Z), ...get(VALUE), ...f32x4(EXP_CEILING), ...F32X4_GT],
    ...[...V128_BITSELECT, ...V128_STORE],
  ];
  return functionBody(
    [
      [1, I32],
      [4, V128],
    ],
    loopOver(LENGTH, INDEX, step),
  );
}

function geluTanhBody(): number[] {
  const step = [
    ...[...at(P_X), ...V128_LOAD, LOCAL_TEE, L_V, ...get(L_V), ...F32X4_MUL, LOCAL_SET, L_V2],
    // z = -2u = -2K (v + C v^2 v), clamped
    ...[...f32x4(-2 * K), ...get(L_V), ...f32x4(C), ...get(L_V2), ...F32X4_MUL, ...get(L_V), ...F32X4_MUL],
    ...[...F32X4_ADD, ...F32X4_MUL, LOCAL_TEE, L_S],
    ...[...f32x4(EXP_LIMIT), ...F32X4_MIN, ...f32x4(-EXP_LIMIT), ...F32X4_MAX, LOCAL_SET, L_Z],
    // e = e^z (kept in L_Z), s = 1 / (1 + e), and 0 where the unclamped z (in L_S) is past 88 or
    // NaN: there s is below f32's range (so that v = -inf gives NaN, as 0.5 v (1 + tanh u) does)
    ...[...f32x4(1), ...f32x4(1), ...exponential(), LOCAL_TEE, L_Z, ...F32X4_ADD, ...F32X4_DIV],
    ...[...get(L_S), ...f32x4(EXP_LIMIT), ...F32X4_LE, ...V128_AND, LOCAL_SET, L_S],
    ...[...at(P_Y), ...get(L_V), ...get(L_S), ...F32X4_MUL, ...V128_STORE],
    // slope = s + 2K v s (1 - s) (1 + 3C v^2), 1 - s as e s (no cancellation where s is near 1)
    ...[...at(P_SLOPE), ...get(L_S), ...f32x4(2 * K), ...get(L_V), ...F32X4_MUL, ...get(L_S), ...F32X4_MUL],
    ...[...get(L_Z), ...get(L_S), ...F32X4_MUL, ...F32X4_MUL],
    ...[...f32x4(1), ...f32x4(3 * C), ...get(L_V2), ...F32X4_MUL, ...F32X4_ADD, ...F32X4_MUL],
    ...[...F32X4_ADD, ...V128_STORE],
  ];
  return functionBody(
    [
      [1, I32],
      [6, V128],
    ],
    loopOver(P_LENGTH, L_INDEX, step),
  );
}

function moduleBytes(): Uint8Array {
  return memoryKernelModule([
    { name: 'geluTanh', parameters: 4, body: geluTanhBody() },
    { name: 'exp', parameters: 3, body: expBody() },
  ]);
}

/** The kernel's memory is at most this large; bigger tensors take the JavaScript loop. */
export const GELU_KERNEL_BYTES_MAX = 256 * 1024 * 1024;

const instanceOf = reusableKernel(moduleBytes, GELU_KERNEL_BYTES_MAX, (exports) => ({
  geluTanh: exports.geluTanh as (x: number, y: number, slope: number, byteLength: number) => void,
  exp: exports.exp as (x: number, y: number, byteLength: number) => void,
}));

/**
 * values[i] = e^values[i] in place, in f32 within a few ulps (the exponential above); +inf past
 * ln of f32's largest value (88.7228), 0 below -86.6 (e^x under 2.6e-38 flushed), NaN stays NaN. False when
 * WebAssembly SIMD is unavailable or the array is too large (then use Math.exp).
 */
export function expKernel(values: Float32Array): boolean {
  return runInSlots(
    instanceOf,
    values.length,
    [
      [values, null],
      [null, values],
    ],
    (kernel, bytes) => kernel.exp(0, bytes, bytes),
  );
}

/**
 * y = geluTanh(x) and slope = its derivative at x, element by element; false when WebAssembly
 * SIMD is unavailable or x is too large (then use the JavaScript loop).
 */
export function geluTanhKernel(x: Float32Array, y: Float32Array, slope: Float32Array): boolean {
  return runInSlots(
    instanceOf,
    x.length,
    [
      [x, null],
      [null, y],
      [null, slope],
    ],
    (kernel, bytes) => kernel.geluTanh(0, bytes, 2 * bytes, bytes),
  );
}
