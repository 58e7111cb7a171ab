/**
 * A workspace for convolution in WebAssembly memory, with three kernels assembled from opcodes
 * like the other kernels (internal/simd.ts): `add` (dst += src, 4 lanes of f32 at a time), and
 * the 2x2 max pooling (internal/maxPoolKernel.ts) and ReLU (internal/reluKernel.ts) bodies, here
 * on the workspace's memory, so that conv2d fused with pooling and ReLU (ops/conv.ts
 * `conv2dMaxPoolRelu`) pools the product OpenBLAS wrote there without copying it.
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

import { maxPoolBody } from './maxPoolKernel.js';
import { reluBody } from './reluKernel.js';
import {
  BLOCK,
  BR_IF,
  EMPTY_BLOCK,
  END,
  F32X4_ADD,
  I32,
  I32_ADD,
  I32_CONST,
  I32_EQZ,
  I32_LT_U,
  LOCAL_GET,
  LOCAL_TEE,
  LOOP,
  name,
  section,
  unsignedLeb128,
  V128_LOAD,
  V128_STORE,
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

function moduleBytes(): Uint8Array {
  const threeType = [0x60, ...vector([[I32], [I32], [I32]]), 0];
  const sixType = [0x60, ...vector(new Array(6).fill([I32])), 0];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([threeType, sixType])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0], [1], [0]])),
    ...section(
      7,
      vector([
        [...name('add'), 0x00, 0x00],
        [...name('maxpool'), 0x00, 0x01],
        [...name('relu'), 0x00, 0x02],
      ]),
    ),
    ...section(10, vector([addBody(), maxPoolBody(), reluBody()])),
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
   * 2x2 stride-2 max pooling of `rows` pairs of input rows of `width` at element `input` into
   * `rows` rows of `outWidth` at `out`, with each window's first maximum's element index
   * (relative to `input`) in `indices` at `winners` (internal/maxPoolKernel.ts).
   */
  maxPool(input: number, out: number, winners: number, rows: number, outWidth: number, width: number): void;
  /** view[at + i] = max(view[at + i], 0) for i in [0, count) (NaN stays NaN). */
  relu(at: number, count: number): void;
}

let compiled: object | null | undefined;
let current: { workspace: ConvWorkspace; elements: number } | null = null;
let enabled = true;

/** Turns the workspace off (conv2d then takes its JavaScript loops) or back on: for tests. */
export function setConvWorkspaceEnabled(on: boolean): void {
  enabled = on;
}

/** A workspace of at least `elements` f32, or null (turned off, no WebAssembly SIMD, or too large). */
export function convWorkspace(elements: number): ConvWorkspace | null {
  if (!enabled) return null;
  if (current !== null && current.elements >= elements) return current.workspace;
  if (compiled === undefined) {
    try {
      compiled = wasm === undefined ? null : new wasm.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  if (compiled === null || wasm === undefined || elements * 4 > CONV_WORKSPACE_BYTES_MAX) return null;
  try {
    const pages = Math.ceil((elements * 4) / PAGE_BYTES);
    const memory: WasmMemory = new wasm.Memory({ initial: pages });
    const { exports } = new wasm.Instance(compiled, { env: { memory } });
    const kernel = exports.add as (dst: number, src: number, byteLength: number) => void;
    const pool = exports.maxpool as (...offsets: number[]) => void;
    const clamp = exports.relu as (x: number, y: number, byteLength: number) => void;
    const view = new Float32Array(memory.buffer);
    const workspace: ConvWorkspace = {
      view,
      indices: new Int32Array(memory.buffer),
      add(dst, src, count) {
        if (count <= 0) return;
        const vectors = count & ~3;
        if (vectors > 0) kernel(dst * 4, src * 4, vectors * 4);
        for (let i = vectors; i < count; i++) view[dst + i] += view[src + i];
      },
      maxPool(input, out, winners, rows, outWidth, width) {
        pool(input * 4, out * 4, winners * 4, rows, outWidth, width);
      },
      relu(at, count) {
        if (count <= 0) return;
        const vectors = count & ~3;
        if (vectors > 0) clamp(at * 4, at * 4, vectors * 4);
        for (let i = at + vectors; i < at + count; i++) view[i] = Math.max(view[i], 0);
      },
    };
    current = { workspace, elements: (pages * PAGE_BYTES) / 4 };
    return workspace;
  } catch {
    return null;
  }
}
