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
  F32X4_ADD,
  F32X4_GT,
  F32X4_MAX,
  functionBody,
  I32,
  I32_ADD,
  LOCAL_GET,
  loopOver,
  memoryKernelModule,
  reusableKernel,
  runInSlots,
  V128_AND,
  V128_LOAD,
  V128_STORE,
  V128_ZERO,
} from './simd.js';

const at = (base: number, index: number): number[] => [LOCAL_GET, base, LOCAL_GET, index, I32_ADD];

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
  return memoryKernelModule([
    { name: 'relu', parameters: 3, body: reluBody() },
    { name: 'reluBackward', parameters: 4, body: reluBackwardBody() },
  ]);
}

/** The kernel's memory is at most this large; bigger tensors take the JavaScript loops. */
export const RELU_KERNEL_BYTES_MAX = 256 * 1024 * 1024;

const instanceOf = reusableKernel(moduleBytes, RELU_KERNEL_BYTES_MAX, (exports) => ({
  relu: exports.relu as (x: number, y: number, byteLength: number) => void,
  reluBackward: exports.reluBackward as (x: number, g: number, gx: number, byteLength: number) => void,
}));

/** y = max(x, 0); false when WebAssembly SIMD is unavailable or x is too large (use the JS loop). */
export function reluKernel(x: Float32Array, y: Float32Array): boolean {
  return runInSlots(
    instanceOf,
    x.length,
    [
      [x, null],
      [null, y],
    ],
    (kernel, bytes) => kernel.relu(0, bytes, bytes),
  );
}

/** gx += g where x > 0; false when the kernel cannot run (use the JS loop). */
export function reluBackwardKernel(x: Float32Array, g: Float32Array, gx: Float32Array): boolean {
  return runInSlots(
    instanceOf,
    x.length,
    [
      [x, null],
      [g, null],
      [gx, gx],
    ],
    (kernel, bytes) => kernel.reluBackward(0, bytes, 2 * bytes, bytes),
  );
}
