/**
 * 2x2, stride 2 max pooling in WebAssembly, assembled here from its opcodes like the Adam kernel
 * (internal/simd.ts). JavaScript's comparisons compile to branches, and on real activations the
 * winner of each window is a coin toss, so the JavaScript loop spends most of its time on
 * mispredicted branches; WebAssembly's `select` compiles to a conditional move, which has no
 * branch to mispredict. The input is copied into the kernel's memory and the results out (both
 * memcpy, cheap next to the loop).
 *
 * maxpool(in, out, winners, rows, outWidth, width), byte offsets in the kernel's memory; `rows`
 * output rows of `outWidth`, output row r reading input rows 2r and 2r+1 (so planes of even
 * height stack into one run of rows):
 *   out[r, c] = the first maximum of in[2r, 2c], in[2r, 2c+1], in[2r+1, 2c], in[2r+1, 2c+1]
 *   winners[r, c] = its element index in `in` (a NaN wins only in the first position, as in the
 *   JavaScript loop: `x > NaN` and `NaN > x` are both false)
 */
import {
  BLOCK,
  BR_IF,
  EMPTY_BLOCK,
  END,
  F32_GT,
  F32_LOAD,
  F32_REINTERPRET_I32,
  I32,
  I32_ADD,
  I32_CONST,
  I32_EQZ,
  I32_LOAD,
  I32_LT_U,
  I32_MUL,
  I32_SHL,
  I32_STORE,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  LOOP,
  name,
  SELECT,
  section,
  unsignedLeb128,
  vector,
  type WasmMemory,
  wasm,
} from './simd.js';

// Parameters: 0 in, 1 out, 2 winners, 3 rows, 4 outWidth, 5 width. Locals (i32): 6 r, 7 c, 8 i
// (the window's first element), 9 top address, 10 bottom address, 11 k (winner), 12 the
// winner's bits, 13 the comparison.
const [IN, OUT, WINNERS, ROWS, OUT_WIDTH, WIDTH] = [0, 1, 2, 3, 4, 5];
const [ROW, COLUMN, INDEX, TOP, BOTTOM, WINNER, VALUE_BITS, CONDITION] = [6, 7, 8, 9, 10, 11, 12, 13];

/** local += constant */
const increment = (local: number, constant: number): number[] => [
  LOCAL_GET,
  local,
  I32_CONST,
  constant,
  I32_ADD,
  LOCAL_SET,
  local,
];

/**
 * Candidate at address local + offset, element index `index`: replaces the winner when strictly
 * greater. The value is kept as its bits in an i32 local: an i32 `select` compiles to a
 * conditional move, where an f32 one may compile to a branch.
 */
function candidate(addressLocal: number, offset: number, index: number[]): number[] {
  return [
    ...[LOCAL_GET, addressLocal, F32_LOAD, 2, offset, LOCAL_GET, VALUE_BITS, F32_REINTERPRET_I32, F32_GT],
    ...[LOCAL_SET, CONDITION],
    // k = condition ? index : k
    ...[...index, LOCAL_GET, WINNER, LOCAL_GET, CONDITION, SELECT, LOCAL_SET, WINNER],
    // bits = condition ? candidate's bits : bits
    ...[LOCAL_GET, addressLocal, I32_LOAD, 2, offset, LOCAL_GET, VALUE_BITS, LOCAL_GET, CONDITION, SELECT],
    ...[LOCAL_SET, VALUE_BITS],
  ];
}

/** The maxpool function's body (also assembled into the convolution workspace, internal/convKernel.ts). */
export function maxPoolBody(): number[] {
  const code: number[] = [BLOCK, EMPTY_BLOCK];
  code.push(LOCAL_GET, ROWS, I32_EQZ, BR_IF, 0, LOCAL_GET, OUT_WIDTH, I32_EQZ, BR_IF, 0);
  code.push(LOOP, EMPTY_BLOCK);
  // i = 2 r width; c = 0
  code.push(LOCAL_GET, ROW, I32_CONST, 1, I32_SHL, LOCAL_GET, WIDTH, I32_MUL, LOCAL_SET, INDEX);
  code.push(I32_CONST, 0, LOCAL_SET, COLUMN);
  code.push(LOOP, EMPTY_BLOCK);
  // top = in + 4 i; bottom = top + 4 width
  code.push(LOCAL_GET, IN, LOCAL_GET, INDEX, I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_TEE, TOP);
  code.push(LOCAL_GET, WIDTH, I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_SET, BOTTOM);
  // v = in[i]; k = i
  code.push(LOCAL_GET, TOP, I32_LOAD, 2, 0, LOCAL_SET, VALUE_BITS, LOCAL_GET, INDEX, LOCAL_SET, WINNER);
  code.push(...candidate(TOP, 4, [LOCAL_GET, INDEX, I32_CONST, 1, I32_ADD]));
  code.push(...candidate(BOTTOM, 0, [LOCAL_GET, INDEX, LOCAL_GET, WIDTH, I32_ADD]));
  code.push(...candidate(BOTTOM, 4, [LOCAL_GET, INDEX, LOCAL_GET, WIDTH, I32_ADD, I32_CONST, 1, I32_ADD]));
  code.push(LOCAL_GET, OUT, LOCAL_GET, VALUE_BITS, I32_STORE, 2, 0);
  code.push(LOCAL_GET, WINNERS, LOCAL_GET, WINNER, I32_STORE, 2, 0);
  code.push(...increment(OUT, 4), ...increment(WINNERS, 4), ...increment(INDEX, 2));
  // c += 1; loop while c < outWidth
  code.push(LOCAL_GET, COLUMN, I32_CONST, 1, I32_ADD, LOCAL_TEE, COLUMN, LOCAL_GET, OUT_WIDTH, I32_LT_U);
  code.push(BR_IF, 0, END);
  // r += 1; loop while r < rows
  code.push(LOCAL_GET, ROW, I32_CONST, 1, I32_ADD, LOCAL_TEE, ROW, LOCAL_GET, ROWS, I32_LT_U);
  code.push(BR_IF, 0, END, END, END);
  const locals = vector([[8, I32]]);
  const body = [...locals, ...code];
  return [...unsignedLeb128(body.length), ...body];
}

function moduleBytes(): Uint8Array {
  const functionType = [0x60, ...vector(new Array(6).fill([I32])), 0];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([functionType])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0]])),
    ...section(7, vector([[...name('maxpool'), 0x00, 0x00]])),
    ...section(10, vector([maxPoolBody()])),
  ]);
}

type MaxPoolFunction = (
  input: number,
  out: number,
  winners: number,
  rows: number,
  outWidth: number,
  width: number,
) => void;

interface Instance {
  readonly memory: WasmMemory;
  readonly maxpool: MaxPoolFunction;
  readonly bytes: number;
}

const PAGE_BYTES = 65536;
/** The kernel's memory is at most this large; bigger inputs take the JavaScript loop. */
export const MAX_POOL_KERNEL_BYTES_MAX = 256 * 1024 * 1024;

let compiled: object | null | undefined;
let instance: Instance | null = null;

function compiledModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = wasm === undefined ? null : new wasm.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** An instance with at least `bytes` of memory (a larger one replaces a smaller one). */
function instanceOf(bytes: number): Instance | null {
  if (instance !== null && instance.bytes >= bytes) return instance;
  const module = compiledModule();
  if (module === null || wasm === undefined || bytes > MAX_POOL_KERNEL_BYTES_MAX) return null;
  try {
    const pages = Math.ceil(bytes / PAGE_BYTES);
    const memory = new wasm.Memory({ initial: pages });
    const created = new wasm.Instance(module, { env: { memory } });
    instance = { memory, maxpool: created.exports.maxpool as MaxPoolFunction, bytes: pages * PAGE_BYTES };
    return instance;
  } catch {
    return null;
  }
}

/**
 * 2x2 stride-2 max pooling of `planes` planes of height x width (height even) into `out` and
 * `winners` (planes x height/2 x floor(width/2)); false when WebAssembly is unavailable or the
 * input is over the kernel's memory limit (the caller then runs its JavaScript loop).
 */
export function maxPool2x2Kernel(
  x: Float32Array,
  planes: number,
  height: number,
  width: number,
  out: Float32Array,
  winners: Int32Array,
): boolean {
  if (height % 2 !== 0) return false;
  const outputs = out.length;
  const kernel = instanceOf(4 * (x.length + 2 * outputs));
  if (kernel === null) return false;
  const buffer = kernel.memory.buffer;
  new Float32Array(buffer, 0, x.length).set(x);
  const outAt = 4 * x.length;
  const winnersAt = outAt + 4 * outputs;
  kernel.maxpool(0, outAt, winnersAt, (planes * height) / 2, Math.floor(width / 2), width);
  out.set(new Float32Array(buffer, outAt, outputs));
  winners.set(new Int32Array(buffer, winnersAt, outputs));
  return true;
}
