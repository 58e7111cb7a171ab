/**
 * ReLU forward and backward in WebAssembly SIMD (4 lanes of f32), assembled from opcodes like the
 * Adam kernel (internal/simd.ts). In JavaScript `x > 0 ? x : 0` and `if (x > 0) gx += g` compile to
 * branches that activations (half positive, in no order) mispredict half the time; the SIMD
 * comparisons give lane masks instead. Arrays are copied into the kernel's memory and back
 * (memcpy).
 *
 *   relu(x, y, byteLength):              y = max(x, 0)  (NaN stays NaN, -0 becomes 0)
 *   reluBackward(x, g, gx, byteLength):  gx += g where x > 0 (g masked, so g elsewhere is ignored)
 * byteLength a multiple of 16; the caller pads (the padding lanes are never copied back).
 */
import {
  BLOCK,
  BR_IF,
  EMPTY_BLOCK,
  END,
  F32X4_ADD,
  F32X4_GT,
  F32X4_MAX,
  I32,
  I32_ADD,
  I32_CONST,
  I32_EQZ,
  I32_LT_U,
  LOCAL_GET,
  LOCAL_TEE,
  LOOP,
  name,
  reusableKernel,
  section,
  unsignedLeb128,
  V128_AND,
  V128_LOAD,
  V128_STORE,
  V128_ZERO,
  vector,
} from './simd.js';

/**
 * A loop over byte offsets 0, 16, ... < byteLength (parameter `lengthParameter`, local `index`)
 * around `step`.
 */
function loopOver(lengthParameter: number, index: number, step: number[]): number[] {
  return [
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, lengthParameter, I32_EQZ, BR_IF, 0, LOOP, EMPTY_BLOCK],
    ...step,
    ...[LOCAL_GET, index, I32_CONST, 16, I32_ADD, LOCAL_TEE, index, LOCAL_GET, lengthParameter, I32_LT_U],
    ...[BR_IF, 0, END, END],
  ];
}

const at = (base: number, index: number): number[] => [LOCAL_GET, base, LOCAL_GET, index, I32_ADD];

function functionBody(localsSpec: number[][], code: number[]): number[] {
  const body = [...vector(localsSpec), ...code, END];
  return [...unsignedLeb128(body.length), ...body];
}

// relu: parameters 0 x, 1 y, 2 byteLength; local 3 the index. Also assembled into the
// convolution workspace (internal/convKernel.ts).
export function reluBody(): number[] {
  const step = [...at(1, 3), ...at(0, 3), ...V128_LOAD, ...V128_ZERO, ...F32X4_MAX, ...V128_STORE];
  return functionBody([[1, I32]], loopOver(2, 3, step));
}

// reluBackward: parameters 0 x, 1 g, 2 gx, 3 byteLength; local 4 the index.
function reluBackwardBody(): number[] {
  const mask = [...at(0, 4), ...V128_LOAD, ...V128_ZERO, ...F32X4_GT];
  const masked = [...at(1, 4), ...V128_LOAD, ...mask, ...V128_AND];
  const step = [...at(2, 4), ...at(2, 4), ...V128_LOAD, ...masked, ...F32X4_ADD, ...V128_STORE];
  return functionBody([[1, I32]], loopOver(3, 4, step));
}

function moduleBytes(): Uint8Array {
  const forwardType = [0x60, ...vector([[I32], [I32], [I32]]), 0];
  const backwardType = [0x60, ...vector([[I32], [I32], [I32], [I32]]), 0];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([forwardType, backwardType])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0], [1]])),
    ...section(
      7,
      vector([
        [...name('relu'), 0x00, 0x00],
        [...name('reluBackward'), 0x00, 0x01],
      ]),
    ),
    ...section(10, vector([reluBody(), reluBackwardBody()])),
  ]);
}

/** The kernel's memory is at most this large; bigger tensors take the JavaScript loops. */
export const RELU_KERNEL_BYTES_MAX = 256 * 1024 * 1024;

const instanceOf = reusableKernel(moduleBytes, RELU_KERNEL_BYTES_MAX, (exports) => ({
  relu: exports.relu as (x: number, y: number, byteLength: number) => void,
  reluBackward: exports.reluBackward as (x: number, g: number, gx: number, byteLength: number) => void,
}));

/** Bytes of `length` f32 rounded up to whole 16-byte vectors. */
const paddedBytes = (length: number): number => Math.ceil(length / 4) * 16;

/** y = max(x, 0); false when WebAssembly SIMD is unavailable or x is too large (use the JS loop). */
export function reluKernel(x: Float32Array, y: Float32Array): boolean {
  const bytes = paddedBytes(x.length);
  const kernel = instanceOf(2 * bytes);
  if (kernel === null) return false;
  const buffer = kernel.memory.buffer;
  new Float32Array(buffer, 0, x.length).set(x);
  kernel.relu(0, bytes, bytes);
  y.set(new Float32Array(buffer, bytes, x.length));
  return true;
}

/** gx += g where x > 0; false when the kernel cannot run (use the JS loop). */
export function reluBackwardKernel(x: Float32Array, g: Float32Array, gx: Float32Array): boolean {
  const bytes = paddedBytes(x.length);
  const kernel = instanceOf(3 * bytes);
  if (kernel === null) return false;
  const buffer = kernel.memory.buffer;
  new Float32Array(buffer, 0, x.length).set(x);
  new Float32Array(buffer, bytes, x.length).set(g);
  new Float32Array(buffer, 2 * bytes, x.length).set(gx);
  kernel.reluBackward(0, bytes, 2 * bytes, bytes);
  gx.set(new Float32Array(buffer, 2 * bytes, x.length));
  return true;
}
