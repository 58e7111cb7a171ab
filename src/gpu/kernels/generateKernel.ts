/**
 * seeds/001 "generateKernel": one description of an elementwise op, its source for every
 * backend. `generateKernel({ kind: 'unary', op: 'gelu' })` gives the WGSL, the CUDA C and the
 * JavaScript expression the cpu backend evaluates.
 */
import { type CudaKernel, cudaBinary, cudaReduce, cudaUnary } from './cuda.js';
import { toJavaScript } from './Expression.js';
import {
  BINARY_OPS,
  type BinaryOpName,
  REDUCE_OPS,
  type ReduceOpName,
  UNARY_OPS,
  type UnaryOpName,
} from './ops.js';
import { type WgslKernel, wgslBinary, wgslReduce, wgslUnary } from './wgsl.js';

export type KernelDescription =
  | { readonly kind: 'unary'; readonly op: UnaryOpName }
  | { readonly kind: 'binary'; readonly op: BinaryOpName; readonly broadcast?: boolean }
  | { readonly kind: 'reduce'; readonly op: ReduceOpName };

export interface GeneratedKernel {
  readonly wgsl: WgslKernel;
  readonly cuda: CudaKernel;
  /** The op as a JavaScript expression of x (and y), as the cpu backend compiles it. */
  readonly javascript: string;
}

export function generateKernel(description: KernelDescription): GeneratedKernel {
  switch (description.kind) {
    case 'unary':
      return {
        wgsl: wgslUnary(description.op),
        cuda: cudaUnary(description.op),
        javascript: toJavaScript(UNARY_OPS[description.op]),
      };
    case 'binary': {
      const broadcast = description.broadcast ?? false;
      return {
        wgsl: wgslBinary(description.op, broadcast),
        cuda: cudaBinary(description.op, broadcast),
        javascript: toJavaScript(BINARY_OPS[description.op]),
      };
    }
    case 'reduce':
      return {
        wgsl: wgslReduce(description.op),
        cuda: cudaReduce(description.op),
        javascript: toJavaScript(REDUCE_OPS[description.op].combine),
      };
  }
}
