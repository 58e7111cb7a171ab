/**
 * A workspace for convolution in WebAssembly memory, with two SIMD kernels assembled from
 * opcodes like the other kernels (internal/simd.ts): `add` (dst += src, 4 lanes of f32 at a time)
 * and `maxPoolRelu` (2x2 stride-2 max pooling then ReLU, 4 windows at a time), so that conv2d
 * fused with pooling and ReLU (ops/conv.ts `conv2dMaxPoolRelu`) pools the product OpenBLAS wrote
 * into the workspace where it lies.
 *
 * conv2d (ops/conv.ts) works image by image in it: im2col builds an image's columns with
 * `copyWithin` and `fill` inside the workspace (no subarray views, no allocation), OpenBLAS reads
 * and writes the workspace directly (koffi passes the typed array's memory), and col2im adds the
 * rows of an image's column gradient onto its input gradient with the SIMD `add`, which is
 * several times faster than an element loop in JavaScript.
 *
 * The workspace grows to the largest image seen, up to CONV_WORKSPACE_BYTES_MAX; beyond that, or
 * without WebAssembly SIMD, `convWorkspace` returns null and conv2d keeps its JavaScript loops.
 */

import {
  BLOCK,
  BR_IF,
  EMPTY_BLOCK,
  END,
  F32,
  F32_LOAD,
  F32X4_ADD,
  F32X4_GT,
  F32X4_MAX,
  F32X4_SPLAT,
  I32,
  I32_ADD,
  I32_CONST,
  I32_EQZ,
  I32_LOAD,
  I32_LT_U,
  I32_MUL,
  I32_SHL,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  LOOP,
  name,
  section,
  simd,
  unsignedLeb128,
  V128,
  V128_LOAD,
  V128_STORE,
  V128_ZERO,
  vector,
  type WasmMemory,
  wasm,
} from './simd.js';

// add: parameters 0 dst, 1 src, 2 byteLength (a multiple of 16); local 3 the index.
function addBody(): number[] {
  const at = (base: number): number[] => [LOCAL_GET, base, LOCAL_GET, 3, I32_ADD];
  const step = [...at(0), ...at(0), ...V128_LOAD, ...at(1), ...V128_LOAD, ...F32X4_ADD, ...V128_STORE];
  const code = [
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, 2, I32_EQZ, BR_IF, 0, LOOP, EMPTY_BLOCK],
    ...step,
    ...[LOCAL_GET, 3, I32_CONST, 16, I32_ADD, LOCAL_TEE, 3, LOCAL_GET, 2, I32_LT_U],
    ...[BR_IF, 0, END, END],
  ];
  const body = [...vector([[1, I32]]), ...code, END];
  return [...unsignedLeb128(body.length), ...body];
}

// maxPoolRelu: parameters 0 in, 1 out, 2 winners (byte addresses), 3 rows, 4 outWidth, 5 width,
// 6 indexBase, 7 masked, 8 bias (f32); i32 locals 9 r, 10 c (output column), 11 top, 12 bottom
// (row addresses); v128 locals 13-16 the window's four candidates a, b, c, d (top-left,
// top-right, bottom-left, bottom-right), 17 best, 18 index, 19 mask, 20 a's indices, 21-22 two
// loaded vectors, 23 the bias in every lane.
const [P_IN, P_OUT, P_WINNERS, P_ROWS, P_OUT_WIDTH, P_WIDTH, P_BASE, P_MASKED, P_BIAS] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8,
];
const [L_ROW, L_COLUMN, L_TOP, L_BOTTOM] = [9, 10, 11, 12];
const [V_A, V_B, V_C, V_D, V_BEST, V_INDEX, V_MASK, V_INDICES, V_FIRST, V_SECOND, V_BIAS] = [
  13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];
const I8X16_SHUFFLE = simd(0x0d);
const I32X4_SPLAT = simd(0x11);
const I32X4_ADD = simd(0xae);
const V128_BITSELECT = simd(0x52);
const V128_CONST = simd(0x0c);
const EVEN_LANES = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
const ODD_LANES = EVEN_LANES.map((lane) => lane + 4);
/** i32 lanes 0, 2, 4, 6: the first element of four consecutive windows. */
const WINDOW_STARTS = [0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0];

/**
 * Windows 4 at a time from the row at address local `row`, plus the bias: a/b or c/d (even and
 * odd lanes). The bias goes onto each value before any comparison, so the windows compare the
 * biased values (those of conv2d's output).
 */
function loadPairs(row: number, even: number, odd: number): number[] {
  const address = [LOCAL_GET, row, LOCAL_GET, L_COLUMN, I32_CONST, 3, I32_SHL, I32_ADD];
  const biased = [LOCAL_GET, V_BIAS, ...F32X4_ADD];
  return [
    ...[...address, ...V128_LOAD.slice(0, -1), 0, LOCAL_SET, V_FIRST],
    ...[...address, ...V128_LOAD.slice(0, -1), 16, LOCAL_SET, V_SECOND],
    ...[LOCAL_GET, V_FIRST, LOCAL_GET, V_SECOND, ...I8X16_SHUFFLE, ...EVEN_LANES, ...biased, LOCAL_SET, even],
    ...[LOCAL_GET, V_FIRST, LOCAL_GET, V_SECOND, ...I8X16_SHUFFLE, ...ODD_LANES, ...biased, LOCAL_SET, odd],
  ];
}

/** best, index = candidate, a's indices + offset where candidate > best (the first maximum wins). */
function takeIfGreater(candidate: number, offset: number[]): number[] {
  return [
    ...[LOCAL_GET, candidate, LOCAL_GET, V_BEST, ...F32X4_GT, LOCAL_SET, V_MASK],
    ...[LOCAL_GET, candidate, LOCAL_GET, V_BEST, LOCAL_GET, V_MASK, ...V128_BITSELECT, LOCAL_SET, V_BEST],
    ...[LOCAL_GET, V_INDICES, ...offset, ...I32X4_SPLAT, ...I32X4_ADD],
    ...[LOCAL_GET, V_INDEX, LOCAL_GET, V_MASK, ...V128_BITSELECT, LOCAL_SET, V_INDEX],
  ];
}

/**
 * out[r, c] = max(0, the first maximum of the window bias + in[2r, 2c], bias + in[2r, 2c+1],
 * bias + in[2r+1, 2c], bias + in[2r+1, 2c+1]) and winners[r, c] = indexBase + its element index from `in` where that maximum
 * is > 0, else `masked` (ReLU's mask, for a backward without a branch), for r < rows and
 * c < outWidth, four columns at a time: a row's last vector may read up to 8 elements past the
 * row pair and write up to 3 past the row's outputs (the next row's, written after; the caller
 * leaves room after the last). The comparisons are the scalar kernel's (internal/maxPoolKernel.ts)
 * lane by lane: `x > best` (a NaN wins only as the first candidate), then ReLU (f32x4.max).
 */
function maxPoolReluBody(): number[] {
  const outputIndex = [LOCAL_GET, L_ROW, LOCAL_GET, P_OUT_WIDTH, I32_MUL, LOCAL_GET, L_COLUMN, I32_ADD];
  const code = [
    ...[LOCAL_GET, P_BIAS, ...F32X4_SPLAT, LOCAL_SET, V_BIAS],
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, P_ROWS, I32_EQZ, BR_IF, 0, LOCAL_GET, P_OUT_WIDTH, I32_EQZ, BR_IF, 0],
    LOOP,
    EMPTY_BLOCK,
    // top = in + 4 * 2r * width; bottom = top + 4 * width; c = 0
    ...[LOCAL_GET, P_IN, LOCAL_GET, L_ROW, I32_CONST, 1, I32_SHL, LOCAL_GET, P_WIDTH, I32_MUL],
    ...[I32_CONST, 2, I32_SHL, I32_ADD, LOCAL_TEE, L_TOP],
    ...[
      LOCAL_GET,
      P_WIDTH,
      I32_CONST,
      2,
      I32_SHL,
      I32_ADD,
      LOCAL_SET,
      L_BOTTOM,
      I32_CONST,
      0,
      LOCAL_SET,
      L_COLUMN,
    ],
    LOOP,
    EMPTY_BLOCK,
    ...loadPairs(L_TOP, V_A, V_B),
    ...loadPairs(L_BOTTOM, V_C, V_D),
    // a's indices: indexBase + 2r * width + 2c + (0, 2, 4, 6)
    ...[LOCAL_GET, P_BASE, LOCAL_GET, L_ROW, I32_CONST, 1, I32_SHL, LOCAL_GET, P_WIDTH, I32_MUL, I32_ADD],
    ...[LOCAL_GET, L_COLUMN, I32_CONST, 1, I32_SHL, I32_ADD, ...I32X4_SPLAT, ...V128_CONST, ...WINDOW_STARTS],
    ...[...I32X4_ADD, LOCAL_TEE, V_INDICES, LOCAL_SET, V_INDEX, LOCAL_GET, V_A, LOCAL_SET, V_BEST],
    ...takeIfGreater(V_B, [I32_CONST, 1]),
    ...takeIfGreater(V_C, [LOCAL_GET, P_WIDTH]),
    ...takeIfGreater(V_D, [LOCAL_GET, P_WIDTH, I32_CONST, 1, I32_ADD]),
    // index = best > 0 ? index : masked (a NaN is masked too)
    ...[
      LOCAL_GET,
      V_INDEX,
      LOCAL_GET,
      P_MASKED,
      ...I32X4_SPLAT,
      LOCAL_GET,
      V_BEST,
      ...V128_ZERO,
      ...F32X4_GT,
    ],
    ...[...V128_BITSELECT, LOCAL_SET, V_INDEX],
    // out and winners at element r * outWidth + c
    ...[LOCAL_GET, P_OUT, ...outputIndex, I32_CONST, 2, I32_SHL, I32_ADD],
    ...[LOCAL_GET, V_BEST, ...V128_ZERO, ...F32X4_MAX, ...V128_STORE],
    ...[
      LOCAL_GET,
      P_WINNERS,
      ...outputIndex,
      I32_CONST,
      2,
      I32_SHL,
      I32_ADD,
      LOCAL_GET,
      V_INDEX,
      ...V128_STORE,
    ],
    // c += 4 while c < outWidth
    ...[LOCAL_GET, L_COLUMN, I32_CONST, 4, I32_ADD, LOCAL_TEE, L_COLUMN, LOCAL_GET, P_OUT_WIDTH, I32_LT_U],
    ...[BR_IF, 0, END],
    // r += 1 while r < rows
    ...[LOCAL_GET, L_ROW, I32_CONST, 1, I32_ADD, LOCAL_TEE, L_ROW, LOCAL_GET, P_ROWS, I32_LT_U, BR_IF, 0],
    ...[END, END],
  ];
  const body = [
    ...vector([
      [4, I32],
      [11, V128],
    ]),
    ...code,
    END,
  ];
  return [...unsignedLeb128(body.length), ...body];
}

const F32_STORE = 0x38;
const F64 = 0x7c;
const F64_ADD = 0xa0;
const F64_PROMOTE_F32 = 0xbb;

/**
 * Opens the block a loop over `count` elements lives in: leaves it at once when local `count` is
 * 0, else turns the count into bytes (x 4), the loop's bound. The caller ends the block.
 */
function skipIfNoneElseBytes(count: number): number[] {
  return [
    BLOCK,
    EMPTY_BLOCK,
    LOCAL_GET,
    count,
    I32_EQZ,
    BR_IF,
    0,
    LOCAL_GET,
    count,
    I32_CONST,
    2,
    I32_SHL,
    LOCAL_SET,
    count,
  ];
}

// scatter: parameters 0 base, 1 winners, 2 values, 3 count (base a byte address, the others
// byte addresses of i32 / f32 arrays); local 4 the byte index. base[winners[i]] = values[i].
function scatterBody(): number[] {
  const code = [
    ...skipIfNoneElseBytes(3),
    ...[LOOP, EMPTY_BLOCK],
    ...[LOCAL_GET, 0, LOCAL_GET, 1, LOCAL_GET, 4, I32_ADD, I32_LOAD, 2, 0, I32_CONST, 2, I32_SHL, I32_ADD],
    ...[LOCAL_GET, 2, LOCAL_GET, 4, I32_ADD, F32_LOAD, 2, 0, F32_STORE, 2, 0],
    ...[LOCAL_GET, 4, I32_CONST, 4, I32_ADD, LOCAL_TEE, 4, LOCAL_GET, 3, I32_LT_U, BR_IF, 0],
    ...[END, END],
  ];
  const body = [...vector([[1, I32]]), ...code, END];
  return [...unsignedLeb128(body.length), ...body];
}

// gatherSum: parameters 0 base, 1 winners, 2 count; locals 3 the byte index, 4 the f64 total.
// Returns the float64 sum of base[winners[i]] for i < count.
function gatherSumBody(): number[] {
  const code = [
    ...skipIfNoneElseBytes(2),
    ...[LOOP, EMPTY_BLOCK],
    ...[
      LOCAL_GET,
      4,
      LOCAL_GET,
      0,
      LOCAL_GET,
      1,
      LOCAL_GET,
      3,
      I32_ADD,
      I32_LOAD,
      2,
      0,
      I32_CONST,
      2,
      I32_SHL,
    ],
    ...[I32_ADD, F32_LOAD, 2, 0, F64_PROMOTE_F32, F64_ADD, LOCAL_SET, 4],
    ...[LOCAL_GET, 3, I32_CONST, 4, I32_ADD, LOCAL_TEE, 3, LOCAL_GET, 2, I32_LT_U, BR_IF, 0],
    ...[END, END, LOCAL_GET, 4],
  ];
  const body = [
    ...vector([
      [1, I32],
      [1, F64],
    ]),
    ...code,
    END,
  ];
  return [...unsignedLeb128(body.length), ...body];
}

const I32_AND = 0x71;

// copyRows / addRows: parameters 0 dst, 1 dstRow, 2 dstImage (bytes), 3 src, 4 srcRow,
// 5 srcImage (bytes), 6 images, 7 rows, 8 width (elements); i32 locals 9 n, 10 r, 11 i (the
// byte within the row), 12 d, 13 s (row addresses), 14 dImage, 15 sImage (image addresses),
// 16 the row's bytes in whole vectors; v128 local 17 the lanes of the last part-vector.
const [R_DST, R_DST_ROW, R_DST_IMAGE, R_SRC, R_SRC_ROW, R_SRC_IMAGE, R_IMAGES, R_ROWS, R_WIDTH] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8,
];
const [R_N, R_R, R_I, R_D, R_S, R_D_IMAGE, R_S_IMAGE, R_VECTOR_BYTES] = [9, 10, 11, 12, 13, 14, 15, 16];
const R_TAIL_MASK = 17;
const I32X4_GT_S = simd(0x3b);
const LANE_NUMBERS = [0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];

/** local += local or constant */
const addTo = (local: number, amount: number[]): number[] => [
  LOCAL_GET,
  local,
  ...amount,
  I32_ADD,
  LOCAL_SET,
  local,
];

/**
 * For n < images and r < rows: width elements from src + n*srcImage + r*srcRow to (copy) or
 * onto (add) dst + n*dstImage + r*dstRow, 4 lanes at a time; a row's last width % 4 elements
 * are one vector whose other lanes keep dst's values (bitselect), so exactly the rows' elements
 * change and rows may border padding or other rows. That last vector reads up to 3 elements
 * past a row of src and of dst: leave room after the last.
 */
function rowsBody(add: boolean): number[] {
  const at = (row: number): number[] => [LOCAL_GET, row, LOCAL_GET, R_I, I32_ADD];
  const value = add
    ? [...at(R_S), ...V128_LOAD, ...at(R_D), ...V128_LOAD, ...F32X4_ADD]
    : [...at(R_S), ...V128_LOAD];
  const vectorStep = [...at(R_D), ...value, ...V128_STORE];
  const tailStep = [
    ...at(R_D),
    ...value,
    ...at(R_D),
    ...V128_LOAD,
    ...[LOCAL_GET, R_TAIL_MASK, ...V128_BITSELECT, ...V128_STORE],
  ];
  const code = [
    BLOCK,
    EMPTY_BLOCK,
    ...[LOCAL_GET, R_IMAGES, I32_EQZ, BR_IF, 0, LOCAL_GET, R_ROWS, I32_EQZ, BR_IF, 0],
    ...[LOCAL_GET, R_WIDTH, I32_EQZ, BR_IF, 0],
    // (0x7c is -4 in signed LEB128: width rounded down to whole vectors)
    ...[LOCAL_GET, R_WIDTH, I32_CONST, 0x7c, I32_AND, I32_CONST, 2, I32_SHL, LOCAL_SET, R_VECTOR_BYTES],
    // the tail's lanes: lane < width % 4
    ...[LOCAL_GET, R_WIDTH, I32_CONST, 3, I32_AND, ...I32X4_SPLAT, ...V128_CONST, ...LANE_NUMBERS],
    ...[...I32X4_GT_S, LOCAL_SET, R_TAIL_MASK],
    ...[LOCAL_GET, R_DST, LOCAL_SET, R_D_IMAGE, LOCAL_GET, R_SRC, LOCAL_SET, R_S_IMAGE],
    ...[LOOP, EMPTY_BLOCK],
    ...[LOCAL_GET, R_D_IMAGE, LOCAL_SET, R_D, LOCAL_GET, R_S_IMAGE, LOCAL_SET, R_S],
    ...[I32_CONST, 0, LOCAL_SET, R_R],
    ...[LOOP, EMPTY_BLOCK],
    ...[I32_CONST, 0, LOCAL_SET, R_I],
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, R_VECTOR_BYTES, I32_EQZ, BR_IF, 0, LOOP, EMPTY_BLOCK],
    ...vectorStep,
    ...addTo(R_I, [I32_CONST, 16]),
    ...[LOCAL_GET, R_I, LOCAL_GET, R_VECTOR_BYTES, I32_LT_U, BR_IF, 0, END, END],
    // the last part-vector, when width % 4 > 0
    ...[BLOCK, EMPTY_BLOCK, LOCAL_GET, R_WIDTH, I32_CONST, 3, I32_AND, I32_EQZ, BR_IF, 0],
    ...tailStep,
    END,
    ...addTo(R_D, [LOCAL_GET, R_DST_ROW]),
    ...addTo(R_S, [LOCAL_GET, R_SRC_ROW]),
    ...addTo(R_R, [I32_CONST, 1]),
    ...[LOCAL_GET, R_R, LOCAL_GET, R_ROWS, I32_LT_U, BR_IF, 0, END],
    ...addTo(R_D_IMAGE, [LOCAL_GET, R_DST_IMAGE]),
    ...addTo(R_S_IMAGE, [LOCAL_GET, R_SRC_IMAGE]),
    ...addTo(R_N, [I32_CONST, 1]),
    ...[LOCAL_GET, R_N, LOCAL_GET, R_IMAGES, I32_LT_U, BR_IF, 0, END],
    END,
  ];
  const body = [
    ...vector([
      [8, I32],
      [1, V128],
    ]),
    ...code,
    END,
  ];
  return [...unsignedLeb128(body.length), ...body];
}

function moduleBytes(): Uint8Array {
  const threeType = [0x60, ...vector([[I32], [I32], [I32]]), 0];
  const poolType = [0x60, ...vector([...new Array(8).fill([I32]), [F32]]), 0];
  const fourType = [0x60, ...vector(new Array(4).fill([I32])), 0];
  const sumType = [0x60, ...vector([[I32], [I32], [I32]]), 1, F64];
  const rowsType = [0x60, ...vector(new Array(9).fill([I32])), 0];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([threeType, poolType, fourType, sumType, rowsType])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0], [1], [2], [3], [4], [4]])),
    ...section(
      7,
      vector([
        [...name('add'), 0x00, 0x00],
        [...name('maxPoolRelu'), 0x00, 0x01],
        [...name('scatter'), 0x00, 0x02],
        [...name('gatherSum'), 0x00, 0x03],
        [...name('copyRows'), 0x00, 0x04],
        [...name('addRows'), 0x00, 0x05],
      ]),
    ),
    ...section(
      10,
      vector([addBody(), maxPoolReluBody(), scatterBody(), gatherSumBody(), rowsBody(false), rowsBody(true)]),
    ),
  ]);
}

const PAGE_BYTES = 65536;
/** The workspace is at most this large; a bigger image takes conv2d's JavaScript loops. */
export const CONV_WORKSPACE_BYTES_MAX = 256 * 1024 * 1024;

export interface ConvWorkspace {
  /** The whole workspace as f32 (a fresh view after each growth). */
  readonly view: Float32Array;
  /** The same memory as i32 (max pooling's winners). */
  readonly indices: Int32Array;
  /** view[dst + i] += view[src + i] for i in [0, count) (element indices; nothing when count <= 0). */
  add(dst: number, src: number, count: number): void;
  /**
   * 2x2 stride-2 max pooling then ReLU of `rows` pairs of input rows of `width` at element
   * `input` into `rows` rows of `outWidth` at `out`, with each window's first maximum's element
   * index from `input`, plus `indexBase`, in `indices` at `winners` (element offsets), or
   * `masked` where the result is not positive (ReLU's mask). `bias` is added to every input
   * before the windows compare (conv2d's bias, so that its gemm need not add it). It may read up
   * to 8 elements past the input and write up to 3 past each output: leave room.
   */
  maxPoolRelu(
    input: number,
    out: number,
    winners: number,
    rows: number,
    outWidth: number,
    width: number,
    indexBase: number,
    masked: number,
    bias: number,
  ): void;
  /** view[base + indices[winners + i]] = view[values + i] for i in [0, count) (element offsets). */
  scatter(base: number, winners: number, values: number, count: number): void;
  /** The float64 sum of view[base + indices[winners + i]] for i in [0, count). */
  gatherSum(base: number, winners: number, count: number): number;
  /**
   * For n < images, r < rows: the `width` elements at src + n*srcImage + r*srcRow copied to
   * (`copyRows`) or added onto (`addRows`) dst + n*dstImage + r*dstRow (element offsets and
   * strides). Exactly those elements are read and written: rows may border padding.
   */
  copyRows(rows: RowBlock): void;
  addRows(rows: RowBlock): void;
}

/** A block of rows for `copyRows` / `addRows`: element offsets and strides in the workspace. */
export interface RowBlock {
  readonly dst: number;
  readonly dstRow: number;
  readonly dstImage: number;
  readonly src: number;
  readonly srcRow: number;
  readonly srcImage: number;
  readonly images: number;
  readonly rows: number;
  readonly width: number;
}

let compiled: object | null | undefined;
let current: { workspace: ConvWorkspace; elements: number } | null = null;
let enabled = true;

/** Turns the workspace off (conv2d then takes its JavaScript loops) or back on: for tests. */
export function setConvWorkspaceEnabled(on: boolean): void {
  enabled = on;
}

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

/** A workspace over a new memory of `pages` pages, or null. */
function createWorkspace(module: object, pages: number): ConvWorkspace | null {
  if (wasm === undefined) return null;
  try {
    const memory: WasmMemory = new wasm.Memory({ initial: pages });
    const { exports } = new wasm.Instance(module, { env: { memory } });
    const kernel = exports.add as (dst: number, src: number, byteLength: number) => void;
    const pool = exports.maxPoolRelu as (...offsets: number[]) => void;
    const scatter = exports.scatter as (...offsets: number[]) => void;
    const gatherSum = exports.gatherSum as (...offsets: number[]) => number;
    const copyRows = exports.copyRows as (...offsets: number[]) => void;
    const addRows = exports.addRows as (...offsets: number[]) => void;
    const view = new Float32Array(memory.buffer);
    const rowsKernel =
      (run: (...offsets: number[]) => void) =>
      (b: RowBlock): void =>
        run(
          b.dst * 4,
          b.dstRow * 4,
          b.dstImage * 4,
          b.src * 4,
          b.srcRow * 4,
          b.srcImage * 4,
          b.images,
          b.rows,
          b.width,
        );
    return {
      view,
      indices: new Int32Array(memory.buffer),
      add(dst, src, count) {
        if (count <= 0) return;
        const vectors = count & ~3;
        if (vectors > 0) kernel(dst * 4, src * 4, vectors * 4);
        for (let i = vectors; i < count; i++) view[dst + i] += view[src + i];
      },
      maxPoolRelu(input, out, winners, rows, outWidth, width, indexBase, masked, bias) {
        pool(input * 4, out * 4, winners * 4, rows, outWidth, width, indexBase, masked, bias);
      },
      scatter(base, winners, values, count) {
        if (count > 0) scatter(base * 4, winners * 4, values * 4, count);
      },
      gatherSum(base, winners, count) {
        return count > 0 ? gatherSum(base * 4, winners * 4, count) : 0;
      },
      copyRows: rowsKernel(copyRows),
      addRows: rowsKernel(addRows),
    };
  } catch {
    return null;
  }
}

/** The pages that hold `elements` f32, or null when that is over CONV_WORKSPACE_BYTES_MAX. */
function pagesFor(elements: number): number | null {
  return elements * 4 > CONV_WORKSPACE_BYTES_MAX ? null : Math.max(1, Math.ceil((elements * 4) / PAGE_BYTES));
}

/**
 * The shared workspace, of at least `elements` f32, or null (turned off, no WebAssembly SIMD, or
 * too large). Its contents last until the next op that uses it: an op's backward must not
 * expect what its forward left there.
 */
export function convWorkspace(elements: number): ConvWorkspace | null {
  if (!enabled) return null;
  if (current !== null && current.elements >= elements) return current.workspace;
  const module = compiledModule();
  const pages = pagesFor(elements);
  if (module === null || pages === null) return null;
  const workspace = createWorkspace(module, pages);
  if (workspace === null) return null;
  current = { workspace, elements: (pages * PAGE_BYTES) / 4 };
  return workspace;
}

/**
 * Workspaces an op keeps from its forward to its backward (the fused convolution's padded input
 * and columns), reused by size: at most CONV_BUFFERS_PER_SIZE_MAX idle ones of a size and
 * CONV_BUFFER_BYTES_MAX idle bytes in all (beyond that a released one is left to the garbage
 * collector, as one whose backward never runs is).
 */
export const CONV_BUFFERS_PER_SIZE_MAX = 4;
export const CONV_BUFFER_BYTES_MAX = 512 * 1024 * 1024;
const idleBuffers = new Map<number, ConvWorkspace[]>();
const idleSet = new WeakSet<ConvWorkspace>();
let idleBytes = 0;

/** A workspace of its own of at least `elements` f32 (null as for `convWorkspace`). */
export function takeConvBuffer(elements: number): ConvWorkspace | null {
  if (!enabled) return null;
  const module = compiledModule();
  const pages = pagesFor(elements);
  if (module === null || pages === null) return null;
  const idle = idleBuffers.get(pages)?.pop();
  if (idle !== undefined) {
    idleSet.delete(idle);
    idleBytes -= pages * PAGE_BYTES;
    return idle;
  }
  return createWorkspace(module, pages);
}

/** Hands a workspace from `takeConvBuffer` back once nothing uses it. */
export function releaseConvBuffer(buffer: ConvWorkspace): void {
  // (a second release of the same workspace must not hand it to two takers)
  if (idleSet.has(buffer)) return;
  const bytes = buffer.view.byteLength;
  const pages = bytes / PAGE_BYTES;
  const list = idleBuffers.get(pages) ?? [];
  if (list.length >= CONV_BUFFERS_PER_SIZE_MAX || idleBytes + bytes > CONV_BUFFER_BYTES_MAX) return;
  list.push(buffer);
  idleSet.add(buffer);
  idleBuffers.set(pages, list);
  idleBytes += bytes;
}
