/**
 * 2-D convolution (im2col + gemm over the whole batch, group by group) and pooling, NCHW layout.
 * The geometry (sizes, stride, padding, dilation, groups) is the one field list of every layer,
 * CONV2D_GEOMETRY_FIELDS (src/gpu/kernels/ops.ts, checked here by ops/convGeometry.ts).
 *
 * conv2d: x (N, C, H, W), weight (O, C/G, KH, KW), bias (O) -> (N, O, OH, OW); per group g
 * (input channels [g C/G, (g+1) C/G), output channels [g O/G, (g+1) O/G)), with P = OH*OW:
 *   cols (C*KH*KW, N*P) = im2col(x);  product_g (O/G, N*P) = weight_g @ cols_g + bias_g
 *   gweight_g += gT_g @ cols_g^T;  gcols_g = weight_g^T @ gT_g;  gx += col2im(gcols)
 *   gbias += sums of g over N and P (float64); gT is the output gradient as (O, N*P)
 * maxPool2d: gradient to the (first) maximum of each window; avgPool2d: spread evenly.
 *
 * One gemm per group over the whole batch, so that OpenBLAS splits each product between its
 * threads (the per-image products were too small to split: w16d ran them on one thread); the
 * product and the gradient are reordered between (O, N*P) and (N, O, P), one block copy per
 * (n, o). A "same"-size convolution (stride 1, output as large as the input) works in a
 * WebAssembly workspace of its own from forward to backward (internal/convKernel.ts
 * `takeConvBuffer`): x is copied once into a zero-padded channel-major copy, each row of cols is
 * that copy read at the row's tap offset with SIMD row copies (the padding gives the zeros), and
 * col2im adds the rows back onto it (`paddedColumns`, `paddedColumnGradients`); without
 * WebAssembly SIMD it takes the same-width path. `conv2dMaxPoolRelu` fuses conv2d, 2x2 max
 * pooling and ReLU (see there). Workspaces and buffers are reused (internal/pool.ts and the
 * workspaces' own pool): a training loop whose shapes repeat allocates nothing after its first
 * step. Results for a seed are bit-equal run to run for a given OpenBLAS thread count.
 */

import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { addAccumulated, float64Accumulator, sumStrided } from '../internal/accumulate.js';
import { gemm } from '../internal/blas.js';
import {
  type ConvWorkspace,
  convWorkspace,
  type RowBlock,
  releaseConvBuffer,
  takeConvBuffer,
} from '../internal/convKernel.js';
import { maxPool2x2Kernel } from '../internal/maxPoolKernel.js';
import { indexPool, pool } from '../internal/pool.js';
import { contiguousData, gradBuffer, makeResult, releaseTemporary, type Tensor } from '../Tensor.js';
import { conv2dOnDevice, pool2dOnDevice } from './convDevice.js';
import { type Conv2dGeometry, convGeometry, type Pair } from './convGeometry.js';

export {
  CONV2D_GEOMETRY_FIELDS,
  type Conv2dGeometry,
  type Conv2dGeometryField,
  type Pair,
} from './convGeometry.js';

export interface Conv2dOptions {
  /** One number for both dimensions or [height, width], as PyTorch's; default 1. */
  readonly stride?: Pair;
  /** Zeros added on each side; one number or [height, width]; default 0. */
  readonly padding?: Pair;
  /** Spacing between kernel taps (PyTorch's `dilation`); one number or [height, width]; default 1. */
  readonly dilation?: Pair;
  /**
   * Channel groups (PyTorch's `groups`): input and output channels split into this many groups,
   * each convolved with its own weights; the weight is (O, C / groups, KH, KW). Default 1.
   */
  readonly groups?: number;
}

export interface Pool2dOptions {
  /** Defaults to the kernel size. */
  readonly stride?: number;
}

/** The output columns [start, end) whose input column ow*s - p + kw*d is inside the image. */
function validColumns(g: Conv2dGeometry, kernelColumn: number): [number, number] {
  const offset = kernelColumn * g.dilationWidth - g.paddingWidth;
  const start = Math.max(0, Math.ceil(-offset / g.strideWidth));
  const end = Math.min(g.outWidth, Math.floor((g.width - 1 - offset) / g.strideWidth) + 1);
  return [start, Math.max(start, end)];
}

/**
 * A "same" convolution (stride 1, dilation 1, output as wide as the input): for one (c, kh, kw)
 * and one image, the im2col rows of the valid output rows are one contiguous run of the input
 * plane shifted by (kh - p) rows and (kw - p) columns, except the few columns that fall off the
 * left or right edge (they wrap to the neighbouring row and are zeroed). One block copy instead
 * of a loop per row.
 */
function isSameWidth(g: Conv2dGeometry): boolean {
  const unitSteps =
    g.strideHeight === 1 && g.strideWidth === 1 && g.dilationHeight === 1 && g.dilationWidth === 1;
  return unitSteps && g.outWidth === g.width;
}

/** The output rows [start, end) whose input row oh - p + kh is inside the image (stride 1, dilation 1). */
function validRows(g: Conv2dGeometry, kernelRow: number): [number, number] {
  const shift = kernelRow - g.paddingHeight;
  const start = Math.max(0, -shift);
  return [start, Math.max(start, Math.min(g.outHeight, g.height - shift))];
}

/** Zeros the edge columns of output rows [rowStart, rowEnd) that a column shift pushes off the image. */
function zeroEdgeColumns(
  cols: Float32Array,
  base: number,
  width: number,
  rowStart: number,
  rowEnd: number,
  columnShift: number,
): void {
  const from = columnShift < 0 ? 0 : width - columnShift;
  const to = columnShift < 0 ? -columnShift : width;
  for (let row = rowStart; row < rowEnd; row++) {
    const at = base + row * width;
    for (let column = from; column < to; column++) cols[at + column] = 0;
  }
}

/** A "same" convolution whose output is also as tall as its input: image n's P = H*W positions. */
function isSameSize(g: Conv2dGeometry): boolean {
  return isSameWidth(g) && g.outHeight === g.height;
}

/**
 * The batch's im2col matrix cols (C*KH*KW, N*P) at `at` (row r at `at + r*N*P`, image n's
 * columns at n*P within it), from x (N, C, H, W) at `xAt` (the same-width path: block copies,
 * row by row so that the writes run through cols in order). x and cols may be one array: then
 * the copies are `copyWithin`, with no view to allocate.
 */
function im2colSameWidth(
  x: Float32Array,
  xAt: number,
  g: Conv2dGeometry,
  cols: Float32Array,
  at: number,
): void {
  const { batch, inChannels: channels, height, width, kernelHeight, kernelWidth, outHeight } = g;
  const { paddingHeight, paddingWidth } = g;
  const positions = outHeight * width;
  const rowStride = batch * positions;
  const image = channels * height * width;
  const inPlace = x === cols;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const row = at + ((c * kernelHeight + kh) * kernelWidth + kw) * rowStride;
        const columnShift = kw - paddingWidth;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        const length = (rowEnd - rowStart) * width;
        for (let n = 0; n < batch; n++) {
          const target = row + n * positions;
          if (rowStart > 0) cols.fill(0, target, target + rowStart * width);
          if (rowEnd < outHeight) cols.fill(0, target + rowEnd * width, target + positions);
          const source =
            xAt + n * image + c * height * width + (rowStart + kh - paddingHeight) * width + columnShift;
          const first = target + rowStart * width;
          if (length - skipBack > skipFront) {
            if (inPlace) cols.copyWithin(first + skipFront, source + skipFront, source + length - skipBack);
            else cols.set(x.subarray(source + skipFront, source + length - skipBack), first + skipFront);
          }
          if (columnShift !== 0) zeroEdgeColumns(cols, target, width, rowStart, rowEnd, columnShift);
        }
      }
    }
  }
}

/** gx[from + i] += gcols[source + i] for i in [0, length): four at a time. */
function addRun(gx: Float32Array, from: number, gcols: Float32Array, source: number, length: number): void {
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    gx[from + i] += gcols[source + i];
    gx[from + i + 1] += gcols[source + i + 1];
    gx[from + i + 2] += gcols[source + i + 2];
    gx[from + i + 3] += gcols[source + i + 3];
  }
  for (; i < length; i++) gx[from + i] += gcols[source + i];
}

/**
 * The adjoint of im2colSameWidth: gx (N, C, H, W) at `gxAt` += col2im(gcols at `at`), row by row
 * (gcols' wrapped edge columns are zeroed first, then one long add per image). With a workspace,
 * gcols and gx are its view and the adds are its SIMD kernel.
 */
function col2imSameWidth(
  gcols: Float32Array,
  at: number,
  g: Conv2dGeometry,
  gx: Float32Array,
  gxAt: number,
  workspace: ConvWorkspace | null,
): void {
  const { batch, inChannels: channels, height, width, kernelHeight, kernelWidth, outHeight } = g;
  const { paddingHeight, paddingWidth } = g;
  const positions = outHeight * width;
  const rowStride = batch * positions;
  const image = channels * height * width;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const row = at + ((c * kernelHeight + kh) * kernelWidth + kw) * rowStride;
        const columnShift = kw - paddingWidth;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        const count = (rowEnd - rowStart) * width - skipBack - skipFront;
        for (let n = 0; n < batch; n++) {
          const source = row + n * positions;
          if (columnShift !== 0) zeroEdgeColumns(gcols, source, width, rowStart, rowEnd, columnShift);
          const target =
            gxAt + n * image + c * height * width + (rowStart + kh - paddingHeight) * width + columnShift;
          const first = source + rowStart * width;
          if (workspace !== null) workspace.add(target + skipFront, first + skipFront, count);
          else addRun(gx, target + skipFront, gcols, first + skipFront, count);
        }
      }
    }
  }
}

/**
 * Image n's columns of cols (rows `rowStride` apart, from `at`):
 * cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*s - p + kh*d, ow*s - p + kw*d] (0 outside).
 */
function im2col(
  x: Float32Array,
  g: Conv2dGeometry,
  n: number,
  cols: Float32Array,
  at: number,
  rowStride: number,
): void {
  const { inChannels: channels, height, width, kernelHeight, kernelWidth, strideHeight, strideWidth } = g;
  const { paddingHeight, paddingWidth, dilationHeight, dilationWidth } = g;
  const { outHeight, outWidth } = g;
  for (let c = 0; c < channels; c++) {
    const plane = (n * channels + c) * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = at + ((c * kernelHeight + kh) * kernelWidth + kw) * rowStride;
        const [start, end] = validColumns(g, kw);
        const shift = kw * dilationWidth - paddingWidth;
        for (let oh = 0; oh < outHeight; oh++) {
          const ih = oh * strideHeight - paddingHeight + kh * dilationHeight;
          const target = rowBase + oh * outWidth;
          if (ih < 0 || ih >= height) {
            cols.fill(0, target, target + outWidth);
            continue;
          }
          const source = plane + ih * width + shift;
          for (let ow = 0; ow < start; ow++) cols[target + ow] = 0;
          if (strideWidth === 1 && end > start)
            cols.set(x.subarray(source + start, source + end), target + start);
          else for (let ow = start; ow < end; ow++) cols[target + ow] = x[source + ow * strideWidth];
          for (let ow = end; ow < outWidth; ow++) cols[target + ow] = 0;
        }
      }
    }
  }
}

/** The adjoint of im2col for image n: gx[n, c, ih, iw] += gcols[(c, kh, kw), (n, oh, ow)]. */
function col2im(
  gcols: Float32Array,
  at: number,
  rowStride: number,
  g: Conv2dGeometry,
  n: number,
  gx: Float32Array,
): void {
  const { inChannels: channels, height, width, kernelHeight, kernelWidth, strideHeight, strideWidth } = g;
  const { paddingHeight, paddingWidth, dilationHeight, dilationWidth } = g;
  const { outHeight, outWidth } = g;
  for (let c = 0; c < channels; c++) {
    const plane = (n * channels + c) * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = at + ((c * kernelHeight + kh) * kernelWidth + kw) * rowStride;
        const [start, end] = validColumns(g, kw);
        const shift = kw * dilationWidth - paddingWidth;
        for (let oh = 0; oh < outHeight; oh++) {
          const ih = oh * strideHeight - paddingHeight + kh * dilationHeight;
          if (ih < 0 || ih >= height) continue;
          const source = rowBase + oh * outWidth;
          const target = plane + ih * width + shift;
          if (strideWidth === 1) addRun(gx, target + start, gcols, source + start, end - start);
          else for (let ow = start; ow < end; ow++) gx[target + ow * strideWidth] += gcols[source + ow];
        }
      }
    }
  }
}

/**
 * (N, O, P) <-> (O, N, P): one block copy of P values per (n, o). `toBatchRows` reads the
 * per-image layout (N, O, P) at `from` and writes the channel-major one (O, N*P) at `to`.
 */
function reorder<T extends Float32Array | Int32Array>(
  source: T,
  from: number,
  target: T,
  to: number,
  outChannels: number,
  batch: number,
  positions: number,
  toBatchRows: boolean,
): void {
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const perImage = (n * outChannels + o) * positions;
      const perChannel = (o * batch + n) * positions;
      const s = from + (toBatchRows ? perImage : perChannel);
      const t = to + (toBatchRows ? perChannel : perImage);
      if (source === target) target.copyWithin(t, s, s + positions);
      else (target as Float32Array).set((source as Float32Array).subarray(s, s + positions), t);
    }
  }
}

/** rows (O, length) += bias[o] on row o. */
function addRowBias(rows: Float32Array, bias: Float32Array, length: number): void {
  for (let o = 0; o < bias.length; o++) {
    const b = bias[o];
    const end = (o + 1) * length;
    for (let i = o * length; i < end; i++) rows[i] += b;
  }
}

/**
 * The bias gradient: the sum of each row of rows (O, length) in float64
 * (internal/accumulate.ts), four running sums so the adds do not wait on each other.
 */
function biasSums(rows: Float32Array, at: number, outChannels: number, length: number): Float64Array {
  const sums = float64Accumulator(outChannels);
  for (let o = 0; o < outChannels; o++) sums[o] = sumStrided(rows, at + o * length, length, 1);
  return sums;
}

function checkConvolution(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  options: Conv2dOptions,
): Conv2dGeometry {
  check(
    weight.rank === 4,
    'invalid_shape',
    () => `conv2d: weight must be (O, C / groups, KH, KW), got [${weight.shape.join(', ')}]`,
  );
  const [outChannels, weightChannels, kernelHeight, kernelWidth] = weight.shape;
  const g = convGeometry(
    x,
    {
      outChannels,
      kernelHeight,
      kernelWidth,
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      dilation: options.dilation ?? 1,
      groups: options.groups ?? 1,
    },
    'conv2d',
  );
  check(weightChannels * g.groups === g.inChannels, 'shape_mismatch', () => {
    const per = g.groups === 1 ? '' : ` (${g.groups} groups of ${g.inChannels / g.groups})`;
    return `conv2d: input has ${g.inChannels} channels${per}, weight expects ${weightChannels} per group`;
  });
  check(bias === null || (bias.rank === 1 && bias.shape[0] === outChannels), 'shape_mismatch', () => {
    return `conv2d: bias must be (${outChannels}), got [${bias?.shape.join(', ')}]`;
  });
  return g;
}

/**
 * conv2d's matrix products over the whole batch (N*P = `columns` columns), one gemm per group:
 * weight_g is rows [gi*groupOut, ...) of the weight, each groupDepth long; cols_g is rows
 * [gi*groupDepth, ...) of the columns; the output (and its gradient) is (O, N*P), channel-major.
 */
interface GroupProducts {
  readonly groups: number;
  readonly groupOut: number;
  readonly groupDepth: number;
  readonly columns: number;
}

function groupProducts(g: Conv2dGeometry, columns: number): GroupProducts {
  const depth = g.inChannels * g.kernelHeight * g.kernelWidth;
  return { groups: g.groups, groupOut: g.outChannels / g.groups, groupDepth: depth / g.groups, columns };
}

/** out (O, N*P) = weight_g @ cols_g, per group. */
function forwardProducts(
  s: GroupProducts,
  weight: Float32Array,
  cols: Float32Array,
  colsAt: number,
  out: Float32Array,
): void {
  const { groupOut, groupDepth, columns } = s;
  for (let gi = 0; gi < s.groups; gi++) {
    gemm(
      false,
      false,
      groupOut,
      columns,
      groupDepth,
      1,
      weight,
      gi * groupOut * groupDepth,
      groupDepth,
      cols,
      colsAt + gi * groupDepth * columns,
      columns,
      0,
      out,
      gi * groupOut * columns,
      columns,
    );
  }
}

/** gweight_g (O/G, depth/G) += gT_g (O/G, N*P) @ cols_g^T, per group. */
function weightGradients(
  s: GroupProducts,
  gT: Float32Array,
  cols: Float32Array,
  colsAt: number,
  gw: Float32Array,
): void {
  const { groupOut, groupDepth, columns } = s;
  for (let gi = 0; gi < s.groups; gi++) {
    gemm(
      false,
      true,
      groupOut,
      groupDepth,
      columns,
      1,
      gT,
      gi * groupOut * columns,
      columns,
      cols,
      colsAt + gi * groupDepth * columns,
      columns,
      1,
      gw,
      gi * groupOut * groupDepth,
      groupDepth,
    );
  }
}

/** gcols_g (depth/G, N*P) = weight_g^T @ gT_g, per group (gT at the start of its array). */
function columnGradients(
  s: GroupProducts,
  weight: Float32Array,
  gT: Float32Array,
  gcols: Float32Array,
  gcolsAt: number,
): void {
  const { groupOut, groupDepth, columns } = s;
  for (let gi = 0; gi < s.groups; gi++) {
    gemm(
      true,
      false,
      groupDepth,
      columns,
      groupOut,
      1,
      weight,
      gi * groupOut * groupDepth,
      groupDepth,
      gT,
      gi * groupOut * columns,
      columns,
      0,
      gcols,
      gcolsAt + gi * groupDepth * columns,
      columns,
    );
  }
}

/** 2-D cross-correlation (PyTorch's conv2d) with stride, zero padding, dilation and groups. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  const g = checkConvolution(x, weight, bias, options);
  if (anyOnDevice([x, weight, bias])) {
    const inputs = bias === null ? [x, weight] : [x, weight, bias];
    if (g.groups !== 1) unavailableOnDevice('conv2d with groups', inputs);
    return conv2dOnDevice(x, weight, bias, g);
  }
  const { batch, outChannels } = g;
  const positions = g.outHeight * g.outWidth;
  const depth = g.inChannels * g.kernelHeight * g.kernelWidth;
  // The whole batch's columns: cols (depth, N*P), one row per (c, kh, kw), image n at n*P.
  const columns = batch * positions;
  const products = groupProducts(g, columns);
  const imageX = g.inChannels * g.height * g.width;
  const sameWidth = isSameWidth(g);
  // A "same"-size convolution builds its columns in a workspace of its own, kept for the
  // backward, from a zero-padded copy of x (`paddedColumns`, as the fused op does).
  const layout = isSameSize(g) ? fusedLayout(g, depth, g.inChannels * columns) : null;
  const space = layout === null ? null : takeConvBuffer(layout.elements);
  const xv = contiguousData(x);
  const wv = contiguousData(weight);
  const bv = bias === null ? null : contiguousData(bias);
  // Elsewhere: work = [a copy of x (same-width path only) | cols]: with x in the same array,
  // im2col's block copies are copyWithin (no view per copy). Kept for the weight gradient.
  let cols: Float32Array;
  let colsAt: number;
  if (space !== null && layout !== null) {
    paddedColumns(space, xv, g, layout);
    [cols, colsAt] = [space.view, layout.colsAt];
  } else {
    colsAt = sameWidth ? batch * imageX : 0;
    cols = pool.take(colsAt + depth * columns);
    if (sameWidth) {
      cols.set(xv);
      im2colSameWidth(cols, 0, g, cols, colsAt);
    } else for (let n = 0; n < batch; n++) im2col(xv, g, n, cols, colsAt + n * positions, columns);
  }
  // product (O, N*P) = weight_g @ cols_g per group: one large gemm per group, which OpenBLAS
  // splits between its threads; then the bias, row by row (after the whole product, as the fused
  // op adds it: the same sums, bit for bit); then a reorder to (N, O, P) in the product's second
  // half (copyWithin, no views) and one copy into the result.
  const size = outChannels * columns;
  const product = pool.take(2 * size);
  forwardProducts(products, wv, cols, colsAt, product);
  if (bv !== null) addRowBias(product, bv, columns);
  reorder(product, 0, product, size, outChannels, batch, positions, false);
  const out = pool.take(size);
  out.set(product.subarray(size));
  pool.release(product);
  releaseTemporary(x, xv);
  if (bias !== null && bv !== null) releaseTemporary(bias, bv);
  const scratch = space === null ? [cols] : [];
  if (wv.buffer !== weight.storage.buffer) scratch.push(wv);
  const backward = (gradient: Float32Array): void => {
    try {
      const gw = weight.requiresGrad ? gradBuffer(weight) : null;
      // A fresh input gradient is all zeros: the workspace path then need not read it.
      const freshGx = x.grad === null;
      const gx = x.requiresGrad ? gradBuffer(x) : null;
      if (gw === null && gx === null && !bias?.requiresGrad) return;
      // The output gradient channel-major, gT (O, N*P), as the product was: copied into gT's
      // second half, then reordered within gT (copyWithin, no views).
      const gT = pool.take(2 * size);
      gT.set(gradient, size);
      reorder(gT, size, gT, 0, outChannels, batch, positions, true);
      if (bias?.requiresGrad) addAccumulated(gradBuffer(bias), biasSums(gT, 0, outChannels, columns));
      if (gw !== null) weightGradients(products, gT, cols, colsAt, gw);
      if (gx !== null && space !== null && layout !== null) {
        // The column gradient where the columns were, then back through xpad to (N, C, H, W).
        columnGradients(products, wv, gT, cols, colsAt);
        paddedColumnGradients(space, g, layout, freshGx ? null : gx);
        gx.set(cols.subarray(colsAt, colsAt + batch * imageX));
      } else if (gx !== null) {
        // gcols (depth, N*P) = weight_g^T @ gT_g per group, then col2im image by image. With the
        // workspace ([gx | gcols] in WebAssembly memory) the adds are SIMD; else gcols goes into
        // cols itself (read for the weight gradient already) and the adds are JavaScript.
        const workspace = sameWidth ? convWorkspace(batch * imageX + depth * columns) : null;
        const gcols = workspace === null ? cols : workspace.view;
        const gcolsAt = workspace === null ? colsAt : batch * imageX;
        columnGradients(products, wv, gT, gcols, gcolsAt);
        if (workspace !== null) {
          const view = workspace.view;
          view.set(gx);
          col2imSameWidth(view, gcolsAt, g, view, 0, workspace);
          gx.set(view.subarray(0, batch * imageX));
        } else if (sameWidth) col2imSameWidth(cols, colsAt, g, gx, 0, null);
        else for (let n = 0; n < batch; n++) col2im(cols, colsAt + n * positions, columns, g, n, gx);
      }
      pool.release(gT);
    } finally {
      if (space !== null) releaseConvBuffer(space);
    }
  };
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  const result = makeResult(
    out,
    [g.batch, outChannels, g.outHeight, g.outWidth],
    'conv2d',
    inputs,
    backward,
    scratch,
  );
  if (!result.requiresGrad && space !== null) releaseConvBuffer(space);
  return result;
}

/**
 * Where the fused op keeps things in its own workspace (element offsets): the zero-padded input
 * channel-major, xpad (C, N, H + 2ph, W + 2pw), at 0; the columns (depth, N*P) at `colsAt`; the
 * product (O, N*P) and pooling's outputs, later the output gradient, at `productAt` (a region
 * also large enough for x, C*N*P, staged there in the backward).
 */
interface FusedLayout {
  readonly paddedWidth: number;
  readonly paddedPlane: number;
  readonly colsAt: number;
  readonly productAt: number;
  readonly elements: number;
}

function fusedLayout(g: Conv2dGeometry, depth: number, productRegion: number): FusedLayout {
  const paddedWidth = g.width + 2 * g.paddingWidth;
  const paddedPlane = (g.height + 2 * g.paddingHeight) * paddedWidth;
  const colsAt = g.inChannels * g.batch * paddedPlane;
  const productAt = colsAt + depth * g.batch * g.height * g.width;
  // (+ 4: copyRows may read and write back 3 elements past the last row)
  return { paddedWidth, paddedPlane, colsAt, productAt, elements: productAt + productRegion + 4 };
}

/** The rows from xpad's middle for channel c to an unpadded (N, C, H, W) at `unpaddedAt`. */
function middleRows(g: Conv2dGeometry, at: FusedLayout, c: number, unpaddedAt: number): RowBlock {
  const plane = g.height * g.width;
  return {
    dst: unpaddedAt + c * plane,
    dstRow: g.width,
    dstImage: g.inChannels * plane,
    src: c * g.batch * at.paddedPlane + g.paddingHeight * at.paddedWidth + g.paddingWidth,
    srcRow: at.paddedWidth,
    srcImage: at.paddedPlane,
    images: g.batch,
    rows: g.height,
    width: g.width,
  };
}

/** The rows from xpad's plane c at tap (kh, kw) to row (c, kh, kw) of the columns. */
function tapRows(g: Conv2dGeometry, at: FusedLayout, c: number, kh: number, kw: number): RowBlock {
  const plane = g.height * g.width;
  return {
    dst: at.colsAt + ((c * g.kernelHeight + kh) * g.kernelWidth + kw) * g.batch * plane,
    dstRow: g.width,
    dstImage: plane,
    src: c * g.batch * at.paddedPlane + kh * at.paddedWidth + kw,
    srcRow: at.paddedWidth,
    srcImage: at.paddedPlane,
    images: g.batch,
    rows: g.height,
    width: g.width,
  };
}

/** The same rows the other way: from where they went to where they came from. */
function reversed(b: RowBlock): RowBlock {
  return {
    ...b,
    dst: b.src,
    dstRow: b.srcRow,
    dstImage: b.srcImage,
    src: b.dst,
    srcRow: b.dstRow,
    srcImage: b.dstImage,
  };
}

/** Calls `visit` for each tap (c, kh, kw), in the columns' row order. */
function forEachTap(g: Conv2dGeometry, visit: (c: number, kh: number, kw: number) => void): void {
  for (let c = 0; c < g.inChannels; c++)
    for (let kh = 0; kh < g.kernelHeight; kh++) for (let kw = 0; kw < g.kernelWidth; kw++) visit(c, kh, kw);
}

/**
 * xpad (C, N, H + 2ph, W + 2pw) at 0 in the workspace: zeros, with `values` (N, C, H, W) in the
 * middle, put first at `stagingAt` (C*N*H*W elements that are free), then copied channel by
 * channel.
 */
function padInto(
  space: ConvWorkspace,
  values: Float32Array,
  g: Conv2dGeometry,
  at: FusedLayout,
  stagingAt: number,
): void {
  space.view.set(values, stagingAt);
  space.view.fill(0, 0, at.colsAt);
  for (let c = 0; c < g.inChannels; c++) space.copyRows(reversed(middleRows(g, at, c, stagingAt)));
}

/**
 * The columns of a same-size convolution in the workspace: x (N, C, H, W) goes into the columns'
 * place, then channel by channel into the middle of xpad (its border zero), then each row
 * (c, kh, kw) of the columns is xpad's plane c read at row offset kh and column offset kw, image
 * by image and row by row (`copyRows`): the padding supplies the zeros, nothing is patched after.
 */
function paddedColumns(space: ConvWorkspace, xv: Float32Array, g: Conv2dGeometry, at: FusedLayout): void {
  // (x is staged where the columns go: they are written after it is in xpad)
  padInto(space, xv, g, at, at.colsAt);
  forEachTap(g, (c, kh, kw) => space.copyRows(tapRows(g, at, c, kh, kw)));
}

/**
 * The adjoint of paddedColumns: gx (N, C, H, W) at `colsAt` from the column gradient at `colsAt`
 * (depth, N*P): each row is added onto xpad where paddedColumns read it (`addRows`, in the rows'
 * order, as col2im adds them), then xpad's middle is copied out channel by channel. xpad starts
 * as zeros, or as the gradient x already has in the middle (`prior`), which the rows add to.
 */
function paddedColumnGradients(
  space: ConvWorkspace,
  g: Conv2dGeometry,
  at: FusedLayout,
  prior: Float32Array | null,
): void {
  // (the prior is staged where the output gradient was: the gemms have read it)
  if (prior === null) space.view.fill(0, 0, at.colsAt);
  else padInto(space, prior, g, at, at.productAt);
  forEachTap(g, (c, kh, kw) => space.addRows(reversed(tapRows(g, at, c, kh, kw))));
  for (let c = 0; c < g.inChannels; c++) space.copyRows(middleRows(g, at, c, at.colsAt));
}

/**
 * relu(maxPool2d(conv2d(x, weight, bias, options), 2)) in one op, with the same values and
 * gradients (ReLU before the pooling is the same function: max and ReLU commute). `Sequential`
 * runs its Conv2d, MaxPool2d(2), ReLU layers this way. Where it applies (CPU tensors, a "same"
 * convolution of even height and width, WebAssembly SIMD there), the op works in a workspace of
 * its own, kept from the forward to the backward (internal/convKernel.ts `takeConvBuffer`): the
 * columns come from a zero-padded copy of x (`paddedColumns`), the product OpenBLAS writes there,
 * channel-major (O, N, H, W), is pooled, biased and clamped there by the workspace's kernels, and
 * only the pooled result is copied out (N, O, H/2, W/2): no full-size output, no reorder of it,
 * no separate pooling and ReLU passes. The backward writes the output gradient straight into the
 * winners' places of the product-sized gradient, which the gemms read in place, takes the bias
 * gradient from the pooled gradient, and adds the column gradient back through the padded copy.
 *
 * Returns null where it does not apply: the caller then runs the three ops.
 */
export function conv2dMaxPoolRelu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor | null {
  if (anyOnDevice([x, weight, bias])) return null;
  const g = checkConvolution(x, weight, bias, options);
  if (!isSameSize(g) || g.height % 2 !== 0 || g.width % 2 !== 0) return null;
  const { batch, inChannels: channels, height, width, outChannels } = g;
  const plane = height * width;
  const columns = batch * plane;
  const depth = channels * g.kernelHeight * g.kernelWidth;
  const products = groupProducts(g, columns);
  const pooledPlane = plane / 4;
  const pooled = outChannels * batch * pooledPlane;
  // From productAt: forward [product (O, N*P) | 8 | pooled (N, O, P/4) | 4 | winners | 4];
  // backward [gT (O, N*P) | masked slot, 3 | the output gradient, where pooled was | 8 |
  // winners, kept from the forward]. (The pooling kernel may read 8 elements past the product
  // and write 3 past the outputs.)
  const pooledAt = outChannels * columns + 8;
  const winnersAt = pooledAt + pooled + 4;
  const valuesAt = outChannels * columns + 4;
  const productRegion = Math.max(winnersAt + pooled + 4, channels * columns);
  const layout = fusedLayout(g, depth, productRegion);
  const { colsAt, productAt } = layout;
  const space = takeConvBuffer(layout.elements);
  if (space === null) return null;
  const xv = contiguousData(x);
  const wv = contiguousData(weight);
  const bv = bias === null ? null : contiguousData(bias);
  paddedColumns(space, xv, g, layout);
  forwardProducts(products, wv, space.view, colsAt, space.view.subarray(productAt));
  // Plane (o, n) of the product plus bias o is pooled (and clamped) into the result's place
  // (n, o): the pooled planes come out in (N, O, H/2, W/2) order, winners as indices into the
  // workspace (they stay there for the backward), or, where the result is not positive (ReLU's
  // mask), `masked`: one element past the gradient's (O, N*P), so that its scatter has no branch. The bias goes on
  // in the pooling kernel, before the windows compare: no pass to fill the product with it.
  const masked = productAt + outChannels * columns;
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const at = productAt + (n * outChannels + o) * pooledPlane;
      const from = productAt + (o * batch + n) * plane;
      const b = bv === null ? 0 : bv[o];
      space.maxPoolRelu(from, pooledAt + at, winnersAt + at, height / 2, width / 2, width, from, masked, b);
    }
  }
  const out = pool.take(pooled);
  out.set(space.view.subarray(productAt + pooledAt, productAt + pooledAt + pooled));
  releaseTemporary(x, xv);
  if (bias !== null && bv !== null) releaseTemporary(bias, bv);
  const scratch: Float32Array[] = [];
  if (wv.buffer !== weight.storage.buffer) scratch.push(wv);
  const backward = (gradient: Float32Array): void => {
    // (The graph runs a backward once at most: the workspace goes back at its end.)
    const m = space.view;
    try {
      const gw = weight.requiresGrad ? gradBuffer(weight) : null;
      const freshGx = x.grad === null;
      const gx = x.requiresGrad ? gradBuffer(x) : null;
      // gT (O, N*P): zero but at the winners of windows whose result is positive (ReLU's mask).
      m.fill(0, productAt, productAt + outChannels * columns);
      m.set(gradient, productAt + valuesAt);
      space.scatter(0, productAt + winnersAt, productAt + valuesAt, pooled);
      m[masked] = 0;
      if (bias?.requiresGrad) {
        // The bias gradient: the values that went through, read back (the masked slot reads 0).
        const sums = float64Accumulator(outChannels);
        for (let n = 0; n < batch; n++) {
          for (let o = 0; o < outChannels; o++) {
            const from = productAt + winnersAt + (n * outChannels + o) * pooledPlane;
            sums[o] += space.gatherSum(0, from, pooledPlane);
          }
        }
        addAccumulated(gradBuffer(bias), sums);
      }
      const gT = m.subarray(productAt);
      if (gw !== null) weightGradients(products, gT, m, colsAt, gw);
      if (gx !== null) {
        // The column gradient where the columns were, then back through xpad to (N, C, H, W).
        columnGradients(products, wv, gT, m, colsAt);
        paddedColumnGradients(space, g, layout, freshGx ? null : gx);
        gx.set(m.subarray(colsAt, colsAt + channels * columns));
      }
    } finally {
      releaseConvBuffer(space);
    }
  };
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  const result = makeResult(
    out,
    [batch, outChannels, height / 2, width / 2],
    'conv2dMaxPoolRelu',
    inputs,
    backward,
    scratch,
  );
  if (!result.requiresGrad) releaseConvBuffer(space);
  return result;
}

function poolGeometry(x: Tensor, kernelSize: number, stride: number, context: string): Conv2dGeometry {
  check(
    Number.isInteger(kernelSize) && kernelSize >= 1,
    'invalid_argument',
    () => `${context}: kernel size must be an integer >= 1`,
  );
  const channels = x.rank === 4 ? x.shape[1] : 1;
  const window = { kernelHeight: kernelSize, kernelWidth: kernelSize, padding: 0, dilation: 1, groups: 1 };
  return convGeometry(x, { outChannels: channels, stride, ...window }, context);
}
function maxPoolWindows(
  xv: Float32Array,
  g: Conv2dGeometry,
  kernelSize: number,
  out: Float32Array,
  winners: Int32Array,
): void {
  const planes = g.batch * g.inChannels;
  const outPlane = g.outHeight * g.outWidth;
  for (let plane = 0; plane < planes; plane++) {
    const inBase = plane * g.height * g.width;
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++) {
        let best = inBase + oh * g.strideHeight * g.width + ow * g.strideWidth;
        for (let kh = 0; kh < kernelSize; kh++) {
          const row = inBase + (oh * g.strideHeight + kh) * g.width + ow * g.strideWidth;
          for (let kw = 0; kw < kernelSize; kw++) if (xv[row + kw] > xv[best]) best = row + kw;
        }
        const at = plane * outPlane + oh * g.outWidth + ow;
        out[at] = xv[best];
        winners[at] = best;
      }
    }
  }
}

/** The common 2x2, stride 2 case, unrolled (the first maximum wins, as in the general loop). */
function maxPool2x2(xv: Float32Array, g: Conv2dGeometry, out: Float32Array, winners: Int32Array): void {
  const planes = g.batch * g.inChannels;
  const { width, outHeight, outWidth } = g;
  let at = 0;
  for (let plane = 0; plane < planes; plane++) {
    const inBase = plane * g.height * width;
    for (let oh = 0; oh < outHeight; oh++) {
      const top = inBase + 2 * oh * width;
      for (let ow = 0; ow < outWidth; ow++, at++) {
        let best = top + 2 * ow;
        let value = xv[best];
        if (xv[best + 1] > value) value = xv[(best = top + 2 * ow + 1)];
        if (xv[top + width + 2 * ow] > value) value = xv[(best = top + width + 2 * ow)];
        if (xv[top + width + 2 * ow + 1] > value) value = xv[(best = top + width + 2 * ow + 1)];
        out[at] = value;
        winners[at] = best;
      }
    }
  }
}

/** Maximum over kernelSize x kernelSize windows. */
export function maxPool2d(x: Tensor, kernelSize: number, options: Pool2dOptions = {}): Tensor {
  const g = poolGeometry(x, kernelSize, options.stride ?? kernelSize, 'maxPool2d');
  if (x.device !== 'cpu') return pool2dOnDevice('max', x, kernelSize, g.strideHeight);
  const planes = g.batch * g.inChannels;
  const outPlane = g.outHeight * g.outWidth;
  const xv = contiguousData(x);
  const out = pool.take(planes * outPlane);
  const winners = indexPool.take(planes * outPlane);
  if (kernelSize === 2 && g.strideHeight === 2 && g.strideWidth === 2) {
    // WebAssembly (branch-free) when it is there, else the JavaScript loop.
    if (!maxPool2x2Kernel(xv, planes, g.height, g.width, out, winners)) maxPool2x2(xv, g, out, winners);
  } else maxPoolWindows(xv, g, kernelSize, out, winners);
  releaseTemporary(x, xv);
  const result = makeResult(
    out,
    [g.batch, g.inChannels, g.outHeight, g.outWidth],
    'maxPool2d',
    [x],
    (gradient) => {
      const gx = gradBuffer(x);
      for (let i = 0; i < gradient.length; i++) gx[winners[i]] += gradient[i];
      indexPool.release(winners);
    },
  );
  if (!result.requiresGrad) indexPool.release(winners);
  return result;
}

/** Mean over kernelSize x kernelSize windows. */
export function avgPool2d(x: Tensor, kernelSize: number, options: Pool2dOptions = {}): Tensor {
  const g = poolGeometry(x, kernelSize, options.stride ?? kernelSize, 'avgPool2d');
  if (x.device !== 'cpu') return pool2dOnDevice('avg', x, kernelSize, g.strideHeight);
  const planes = g.batch * g.inChannels;
  const outPlane = g.outHeight * g.outWidth;
  const scale = 1 / (kernelSize * kernelSize);
  const xv = contiguousData(x);
  const out = pool.take(planes * outPlane);
  for (let plane = 0; plane < planes; plane++) {
    const inBase = plane * g.height * g.width;
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++) {
        let total = 0;
        for (let kh = 0; kh < kernelSize; kh++) {
          const row = inBase + (oh * g.strideHeight + kh) * g.width + ow * g.strideWidth;
          for (let kw = 0; kw < kernelSize; kw++) total += xv[row + kw];
        }
        out[plane * outPlane + oh * g.outWidth + ow] = total * scale;
      }
    }
  }
  releaseTemporary(x, xv);
  return makeResult(out, [g.batch, g.inChannels, g.outHeight, g.outWidth], 'avgPool2d', [x], (gradient) => {
    const gx = gradBuffer(x);
    for (let plane = 0; plane < planes; plane++) {
      const inBase = plane * g.height * g.width;
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++) {
          const share = gradient[plane * outPlane + oh * g.outWidth + ow] * scale;
          for (let kh = 0; kh < kernelSize; kh++) {
            const row = inBase + (oh * g.strideHeight + kh) * g.width + ow * g.strideWidth;
            for (let kw = 0; kw < kernelSize; kw++) gx[row + kw] += share;
          }
        }
      }
    }
  });
}
