/**
 * A WebAssembly SIMD kernel for the Adam update (4 lanes of f32 at a time), several times faster
 * than the scalar JavaScript loop on the training hot path. The module is assembled here from
 * its opcodes (no toolchain needed). When WebAssembly or SIMD is unavailable,
 * `createAdamKernel` returns null and the optimizer keeps its JavaScript loop.
 *
 * adam(p, g, m, v, byteLength, beta1, 1-beta1, beta2, 1-beta2, stepSize, 1/sqrt(1-beta2^t),
 *      epsilon, coupledDecay, shrink), all offsets in bytes into the kernel's memory:
 *   g' = g + coupledDecay * p;  m = beta1 m + (1-beta1) g';  v = beta2 v + (1-beta2) g'^2
 *   p = p * shrink - stepSize * m / (sqrt(v) * invCorrection2 + epsilon)
 * adamZeroing(same arguments) is the same update that also stores zeros over g once it has read
 * it (Optimizer.stepAndZeroGrad: no separate pass to clear the gradients).
 */

// WebAssembly opcodes shared by the hand-assembled kernels (this file, reluKernel.ts, maxPoolKernel.ts).
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

export const LOCAL_GET = 0x20;
export const LOCAL_SET = 0x21;
export const LOCAL_TEE = 0x22;
export const I32_CONST = 0x41;
export const I32_ADD = 0x6a;
export const I32_MUL = 0x6c;
export const I32_SHL = 0x74;
export const I32_EQZ = 0x45;
export const I32_LT_U = 0x49;
export const I32_LOAD = 0x28;
export const I32_STORE = 0x36;
export const F32_LOAD = 0x2a;
export const F32_GT = 0x5e;
export const F32_REINTERPRET_I32 = 0xbe;
export const SELECT = 0x1b;
export const BLOCK = 0x02;
export const LOOP = 0x03;
export const BR_IF = 0x0d;
export const END = 0x0b;
export const EMPTY_BLOCK = 0x40;

/** SIMD instructions: the 0xfd prefix, then the opcode as unsigned LEB128. */
export const simd = (opcode: number): number[] => [0xfd, ...unsignedLeb128(opcode)];
export const V128_LOAD = [...simd(0x00), 4, 0];
export const V128_STORE = [...simd(0x0b), 4, 0];
export const V128_ZERO = [...simd(0x0c), ...new Array(16).fill(0)];
export const F32X4_SPLAT = simd(0x13);
export const F32X4_GT = simd(0x44);
export const V128_AND = simd(0x4e);
export const F32X4_SQRT = simd(0xe3);
export const F32X4_ADD = simd(0xe4);
export const F32X4_SUB = simd(0xe5);
export const F32X4_MUL = simd(0xe6);
export const F32X4_DIV = simd(0xe7);
export const F32X4_MAX = simd(0xe9);

export function unsignedLeb128(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

export function section(id: number, body: number[]): number[] {
  return [id, ...unsignedLeb128(body.length), ...body];
}

export function vector(items: number[][]): number[] {
  return [...unsignedLeb128(items.length), ...items.flat()];
}

export function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...unsignedLeb128(bytes.length), ...bytes];
}

// Parameters 0-4: p, g, m, v, byteLength (i32); 5-13: the f32 scalars. Locals: 14 the byte
// index; 15-23 the scalars splatted to vectors; 24-26 g', m, v of the current lanes.
const INDEX = 14;
const SPLAT = (parameter: number): number => parameter + 10;
const [B1, C1, B2, C2, STEP, CORRECTION, EPSILON, DECAY, SHRINK] = [5, 6, 7, 8, 9, 10, 11, 12, 13].map(SPLAT);
const G = 24;
const M = 25;
const V = 26;

/** address = local(base) + index */
const address = (base: number): number[] => [LOCAL_GET, base, LOCAL_GET, INDEX, I32_ADD];

/**
 * The update over [0, byteLength); with `zeroGradient` the kernel also stores zeros over g once
 * it has read it (optimizer.stepAndZeroGrad: the gradient is cleared in the same pass).
 */
function adamBody(zeroGradient: boolean): number[] {
  const code: number[] = [];
  for (let parameter = 5; parameter <= 13; parameter++)
    code.push(LOCAL_GET, parameter, ...F32X4_SPLAT, LOCAL_SET, SPLAT(parameter));
  code.push(BLOCK, EMPTY_BLOCK, LOCAL_GET, 4, I32_EQZ, BR_IF, 0, LOOP, EMPTY_BLOCK);
  // g' = g + decay * p
  code.push(
    ...address(1),
    ...V128_LOAD,
    LOCAL_GET,
    DECAY,
    ...address(0),
    ...V128_LOAD,
    ...F32X4_MUL,
    ...F32X4_ADD,
    LOCAL_SET,
    G,
  );
  if (zeroGradient) code.push(...address(1), ...V128_ZERO, ...V128_STORE);
  // m = b1 * m + c1 * g'
  code.push(...address(2), LOCAL_GET, B1, ...address(2), ...V128_LOAD, ...F32X4_MUL);
  code.push(LOCAL_GET, C1, LOCAL_GET, G, ...F32X4_MUL, ...F32X4_ADD, LOCAL_TEE, M, ...V128_STORE);
  // v = b2 * v + (c2 * g') * g'
  code.push(...address(3), LOCAL_GET, B2, ...address(3), ...V128_LOAD, ...F32X4_MUL);
  code.push(
    LOCAL_GET,
    C2,
    LOCAL_GET,
    G,
    ...F32X4_MUL,
    LOCAL_GET,
    G,
    ...F32X4_MUL,
    ...F32X4_ADD,
    LOCAL_TEE,
    V,
    ...V128_STORE,
  );
  // p = p * shrink - (step * m) / (sqrt(v) * correction + epsilon)
  code.push(...address(0), ...address(0), ...V128_LOAD, LOCAL_GET, SHRINK, ...F32X4_MUL);
  code.push(LOCAL_GET, STEP, LOCAL_GET, M, ...F32X4_MUL);
  code.push(
    LOCAL_GET,
    V,
    ...F32X4_SQRT,
    LOCAL_GET,
    CORRECTION,
    ...F32X4_MUL,
    LOCAL_GET,
    EPSILON,
    ...F32X4_ADD,
  );
  code.push(...F32X4_DIV, ...F32X4_SUB, ...V128_STORE);
  // index += 16; loop while index < byteLength
  code.push(
    LOCAL_GET,
    INDEX,
    I32_CONST,
    16,
    I32_ADD,
    LOCAL_TEE,
    INDEX,
    LOCAL_GET,
    4,
    I32_LT_U,
    BR_IF,
    0,
    END,
    END,
    END,
  );
  const locals = vector([
    [1, I32],
    [12, V128],
  ]);
  const body = [...locals, ...code];
  return [...unsignedLeb128(body.length), ...body];
}

function adamModuleBytes(): Uint8Array {
  const functionType = [0x60, ...vector([[I32], [I32], [I32], [I32], [I32], ...new Array(9).fill([F32])]), 0];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([functionType])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0], [0]])),
    ...section(
      7,
      vector([
        [...name('adam'), 0x00, 0x00],
        [...name('adamZeroing'), 0x00, 0x01],
      ]),
    ),
    ...section(10, vector([adamBody(false), adamBody(true)])),
  ];
  return new Uint8Array(bytes);
}

/** The slice of the WebAssembly API used here (the project's TypeScript lib has no DOM types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

export const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

function adamModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = wasm === undefined ? null : new wasm.Module(adamModuleBytes());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

export type AdamKernelFunction = (
  p: number,
  g: number,
  m: number,
  v: number,
  byteLength: number,
  beta1: number,
  oneMinusBeta1: number,
  beta2: number,
  oneMinusBeta2: number,
  stepSize: number,
  inverseCorrection2: number,
  epsilon: number,
  coupledDecay: number,
  shrink: number,
) => void;

/** A kernel instance over its own memory of `bytes` bytes (never grown, so views stay valid). */
export interface AdamKernel {
  readonly memory: WasmMemory;
  readonly adam: AdamKernelFunction;
  /** The same update, and zeros stored over g once read. */
  readonly adamZeroing: AdamKernelFunction;
}

const PAGE_BYTES = 65536;

export function createAdamKernel(bytes: number): AdamKernel | null {
  const module = adamModule();
  if (module === null || wasm === undefined) return null;
  try {
    const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE_BYTES)) });
    const instance = new wasm.Instance(module, { env: { memory } });
    return {
      memory,
      adam: instance.exports.adam as AdamKernelFunction,
      adamZeroing: instance.exports.adamZeroing as AdamKernelFunction,
    };
  } catch {
    return null;
  }
}

/** A kernel module's exports bound over a memory of `bytes` bytes (see `reusableKernel`). */
export type KernelInstance<T> = T & { readonly memory: WasmMemory; readonly bytes: number };

/**
 * The instance getter of a kernel module that copies arrays in and out of its own memory: the
 * module is compiled once (from `moduleBytes`, on first use), and one instance is kept and
 * reused while its memory holds the `bytes` asked for, replaced by a bigger one otherwise.
 * Null without WebAssembly SIMD, or for more than `bytesMax` bytes (the caller then takes its
 * JavaScript loop).
 */
export function reusableKernel<T>(
  moduleBytes: () => Uint8Array,
  bytesMax: number,
  bind: (exports: Record<string, unknown>) => T,
): (bytes: number) => KernelInstance<T> | null {
  let module: object | null | undefined;
  let instance: KernelInstance<T> | null = null;
  return (bytes) => {
    if (instance !== null && instance.bytes >= bytes) return instance;
    if (module === undefined) {
      try {
        module = wasm === undefined ? null : new wasm.Module(moduleBytes());
      } catch {
        module = null;
      }
    }
    if (module === null || wasm === undefined || bytes > bytesMax) return null;
    try {
      const pages = Math.max(1, Math.ceil(bytes / PAGE_BYTES));
      const memory = new wasm.Memory({ initial: pages });
      const { exports } = new wasm.Instance(module, { env: { memory } });
      instance = { ...bind(exports), memory, bytes: pages * PAGE_BYTES };
      return instance;
    } catch {
      return null;
    }
  };
}

/**
 * A loop over byte offsets 0, 16, ... < byteLength (parameter `lengthParameter`, local `index`)
 * around `step`; nothing when byteLength is 0.
 */
export function loopOver(lengthParameter: number, index: number, step: number[]): number[] {
  return [
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, lengthParameter, I32_EQZ, BR_IF, 0, LOOP, EMPTY_BLOCK],
    ...step,
    ...[LOCAL_GET, index, I32_CONST, 16, I32_ADD, LOCAL_TEE, index, LOCAL_GET, lengthParameter, I32_LT_U],
    ...[BR_IF, 0, END, END],
  ];
}

/** A function body: its locals (`[count, type]` pairs) and code, with its size in front. */
export function functionBody(locals: number[][], code: number[]): number[] {
  const body = [...vector(locals), ...code, END];
  return [...unsignedLeb128(body.length), ...body];
}

/**
 * The bytes of a module that imports `env.memory` and exports `functions`, each taking
 * `parameters` i32 values (byte offsets and lengths) and returning nothing.
 */
export function memoryKernelModule(
  functions: readonly { readonly name: string; readonly parameters: number; readonly body: number[] }[],
): Uint8Array {
  const types = functions.map(({ parameters }) => [
    0x60,
    ...vector(Array.from({ length: parameters }, () => [I32])),
    0,
  ]);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector(functions.map((_, index) => [index]))),
    ...section(7, vector(functions.map((f, index) => [...name(f.name), 0x00, index]))),
    ...section(10, vector(functions.map((f) => f.body))),
  ]);
}

/**
 * Runs a copy-in kernel over arrays of `length` f32, one slot of its memory each (padded to
 * whole vectors): slot i gets `slots[i][0]` copied in (when not null), `run(kernel, slotBytes)`
 * runs, then slot i is copied out into `slots[i][1]` (when not null). False when the kernel
 * cannot run (no WebAssembly SIMD, too large): the caller takes its JavaScript loop.
 */
export function runInSlots<T>(
  instanceOf: (bytes: number) => KernelInstance<T> | null,
  length: number,
  slots: readonly (readonly [Float32Array | null, Float32Array | null])[],
  run: (kernel: KernelInstance<T>, slotBytes: number) => void,
): boolean {
  const slotBytes = Math.ceil(length / 4) * 16;
  const kernel = instanceOf(slots.length * slotBytes);
  if (kernel === null) return false;
  const buffer = kernel.memory.buffer;
  slots.forEach(([input], slot) => {
    if (input !== null) new Float32Array(buffer, slot * slotBytes, length).set(input);
  });
  run(kernel, slotBytes);
  slots.forEach(([, output], slot) => {
    if (output !== null) output.set(new Float32Array(buffer, slot * slotBytes, length));
  });
  return true;
}
