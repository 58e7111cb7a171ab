/**
 * 2-D convolution (im2col + gemm, image by image and group by group) and pooling, NCHW layout.
 * The geometry (sizes, stride, padding, dilation, groups) is the one field list of every layer,
 * CONV2D_GEOMETRY_FIELDS (src/gpu/kernels/ops.ts, checked here by ops/convGeometry.ts).
 *
 * conv2d: x (N, C, H, W), weight (O, C/G, KH, KW), bias (O) -> (N, O, OH, OW); per image n and
 * group g (input channels [g C/G, (g+1) C/G), output channels [g O/G, (g+1) O/G)):
 *   cols_n (C*KH*KW, P) = im2col(x_n);  y_n,g (O/G, P) = bias_g + weight_g (O/G, C/G*KK) @ cols_n,g
 *   gweight_g += g_n,g @ cols_n,g^T;  gcols_n,g = weight_g^T @ g_n,g;  gx_n += col2im(gcols_n)
 *   gbias += sums of g over N and P (float64)
 * maxPool2d: gradient to the (first) maximum of each window; avgPool2d: spread evenly.
 *
 * Image by image: im2col fills image n's block of cols (C*KH*KW, P) and the gemm reads it while it
 * is in cache; the product lands in the output's (O, P) block of image n directly (no reorder),
 * and the backward reads g_n (O, P) where it lies in the output gradient. Those products are
 * small, so they run on one OpenBLAS thread (`onOneThread`). Workspaces come from the buffer pool
 * (internal/pool.ts): a training loop whose shapes repeat allocates nothing after its first step.
 * The copies of im2col's "same" path are block copies (TypedArray.set, a memcpy), several times
 * faster than element loops in V8.
 */

import { unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { addAccumulated, float64Accumulator } from '../internal/accumulate.js';
import { gemm, onOneThread } from '../internal/blas.js';
import { type ConvWorkspace, convWorkspace } from '../internal/convKernel.js';
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

/** The output columns [start, end) whose input column ow*s - p + kw*d is inside the image (s, p, d: the width's). */
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

/**
 * One image's im2col block (C*KH*KW, P) at `at` in cols, from the image at `xBase` in x (the
 * same-width path: block copies). x and cols may be one array (the WebAssembly workspace): then
 * the copies are `copyWithin`, with no view to allocate.
 */
function im2colSameWidth(
  x: Float32Array,
  xBase: number,
  g: Conv2dGeometry,
  cols: Float32Array,
  at: number,
): void {
  const { inChannels, height, width, kernelHeight, kernelWidth, paddingHeight, paddingWidth, outHeight } = g;
  const positions = outHeight * width;
  const inPlace = x === cols;
  for (let c = 0; c < inChannels; c++) {
    const plane = xBase + c * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const target = at + ((c * kernelHeight + kh) * kernelWidth + kw) * positions;
        const columnShift = kw - paddingWidth;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        cols.fill(0, target, target + rowStart * width);
        cols.fill(0, target + rowEnd * width, target + positions);
        const source = plane + (rowStart + kh - paddingHeight) * width + columnShift;
        const first = target + rowStart * width;
        const length = (rowEnd - rowStart) * width;
        if (length - skipBack > skipFront) {
          if (inPlace) cols.copyWithin(first + skipFront, source + skipFront, source + length - skipBack);
          else cols.set(x.subarray(source + skipFront, source + length - skipBack), first + skipFront);
        }
        if (columnShift !== 0) zeroEdgeColumns(cols, target, width, rowStart, rowEnd, columnShift);
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
 * The adjoint of im2colSameWidth for one image (gcols' wrapped edge columns are zeroed first, then
 * one long add per row of gcols). With a workspace, gcols and gx are its view and the adds are
 * its SIMD kernel.
 */
function col2imSameWidth(
  gcols: Float32Array,
  at: number,
  g: Conv2dGeometry,
  gx: Float32Array,
  gxBase: number,
  workspace: ConvWorkspace | null,
): void {
  const { inChannels, height, width, kernelHeight, kernelWidth, paddingHeight, paddingWidth, outHeight } = g;
  const positions = outHeight * width;
  for (let c = 0; c < inChannels; c++) {
    const plane = gxBase + c * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const source = at + ((c * kernelHeight + kh) * kernelWidth + kw) * positions;
        const columnShift = kw - paddingWidth;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        if (columnShift !== 0) zeroEdgeColumns(gcols, source, width, rowStart, rowEnd, columnShift);
        const target = plane + (rowStart + kh - paddingHeight) * width + columnShift;
        const first = source + rowStart * width;
        const count = (rowEnd - rowStart) * width - skipBack - skipFront;
        if (workspace !== null) workspace.add(target + skipFront, first + skipFront, count);
        else addRun(gx, target + skipFront, gcols, first + skipFront, count);
      }
    }
  }
}

/** Image n's block at `at`: cols[(c, kh, kw), (oh, ow)] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 outside). */
function im2col(x: Float32Array, g: Conv2dGeometry, n: number, cols: Float32Array, at: number): void {
  const { inChannels, height, width, kernelHeight, kernelWidth, strideHeight, strideWidth } = g;
  const { paddingHeight, paddingWidth, dilationHeight, dilationWidth, outHeight, outWidth } = g;
  const positions = outHeight * outWidth;
  for (let c = 0; c < inChannels; c++) {
    const plane = (n * inChannels + c) * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = at + ((c * kernelHeight + kh) * kernelWidth + kw) * positions;
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

/** The adjoint of im2col for image n: gx[n, c, ih, iw] += gcols[(c, kh, kw), (oh, ow)]. */
function col2im(gcols: Float32Array, at: number, g: Conv2dGeometry, n: number, gx: Float32Array): void {
  const { inChannels, height, width, kernelHeight, kernelWidth, strideHeight, strideWidth } = g;
  const { paddingHeight, paddingWidth, dilationHeight, dilationWidth, outHeight, outWidth } = g;
  const positions = outHeight * outWidth;
  for (let c = 0; c < inChannels; c++) {
    const plane = (n * inChannels + c) * height * width;
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = at + ((c * kernelHeight + kh) * kernelWidth + kw) * positions;
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
 * The bias gradient: sums of gradient (N, O, P) over N and P per channel, in float64
 * (internal/accumulate.ts), four running sums per row so the adds do not wait on each other.
 */
function biasSums(
  gradient: Float32Array,
  outChannels: number,
  batch: number,
  positions: number,
): Float64Array {
  const sums = float64Accumulator(outChannels);
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const row = (n * outChannels + o) * positions;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let p = 0;
      for (; p + 4 <= positions; p += 4) {
        s0 += gradient[row + p];
        s1 += gradient[row + p + 1];
        s2 += gradient[row + p + 2];
        s3 += gradient[row + p + 3];
      }
      for (; p < positions; p++) s0 += gradient[row + p];
      sums[o] += s0 + s1 + (s2 + s3);
    }
  }
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

/** 2-D cross-correlation (PyTorch's conv2d) with stride, zero padding, dilation and groups. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  const g = checkConvolution(x, weight, bias, options);
  if (x.device !== 'cpu' || weight.device !== 'cpu' || (bias !== null && bias.device !== 'cpu')) {
    const inputs = bias === null ? [x, weight] : [x, weight, bias];
    if (g.groups !== 1) unavailableOnDevice('conv2d with groups', inputs);
    return conv2dOnDevice(x, weight, bias, g);
  }
  const { batch, outChannels, groups } = g;
  const positions = g.outHeight * g.outWidth;
  const depth = g.inChannels * g.kernelHeight * g.kernelWidth;
  // Per group: weight rows [gi*groupOut, ...) (each groupDepth long), cols rows [gi*groupDepth, ...).
  const groupOut = outChannels / groups;
  const groupDepth = depth / groups;
  const imageCols = depth * positions;
  const imageOut = outChannels * positions;
  const imageX = g.inChannels * g.height * g.width;
  const sameWidth = isSameWidth(g);
  // The same-width path works in the WebAssembly workspace: [image | its columns].
  const useWorkspace = sameWidth && convWorkspace(imageX + imageCols) !== null;
  const xv = contiguousData(x);
  const wv = contiguousData(weight);
  const bv = bias === null ? null : contiguousData(bias);
  // cols (N, depth, P) is kept for the weight gradient; out (N, O, P) is the result's storage.
  const cols = pool.take(batch * imageCols);
  const out = pool.take(batch * imageOut);
  // The bias goes in first (one fill per row), and the product adds onto it (beta = 1).
  const beta = bv === null ? 0 : 1;
  onOneThread(() => {
    const view = useWorkspace ? (convWorkspace(imageX + imageCols) as ConvWorkspace).view : null;
    for (let n = 0; n < batch; n++) {
      const c0 = n * imageCols;
      const o0 = n * imageOut;
      // Where image n's columns are built: the workspace (after its image) or cols itself.
      let columns = cols;
      let base = c0;
      if (view !== null) {
        view.set(xv.subarray(n * imageX, (n + 1) * imageX));
        im2colSameWidth(view, 0, g, view, imageX);
        columns = view;
        base = imageX;
      } else if (sameWidth) im2colSameWidth(xv, n * imageX, g, cols, c0);
      else im2col(xv, g, n, cols, c0);
      if (bv !== null)
        for (let o = 0; o < outChannels; o++) out.fill(bv[o], o0 + o * positions, o0 + (o + 1) * positions);
      // out_n,g (O/G, P) (+)= weight_g (O/G, depth/G) @ cols_n,g (depth/G, P)
      for (let gi = 0; gi < groups; gi++) {
        const w0 = gi * groupOut * groupDepth;
        const cg = base + gi * groupDepth * positions;
        const og = o0 + gi * groupOut * positions;
        gemm(
          false,
          false,
          groupOut,
          positions,
          groupDepth,
          1,
          wv,
          w0,
          groupDepth,
          columns,
          cg,
          positions,
          beta,
          out,
          og,
          positions,
        );
      }
      if (view !== null) cols.set(view.subarray(imageX, imageX + imageCols), c0);
    }
  });
  releaseTemporary(x, xv);
  if (bias !== null && bv !== null) releaseTemporary(bias, bv);
  const scratch = [cols];
  if (wv.buffer !== weight.storage.buffer) scratch.push(wv);
  const backward = (gradient: Float32Array): void => {
    if (bias?.requiresGrad)
      addAccumulated(gradBuffer(bias), biasSums(gradient, outChannels, batch, positions));
    const gw = weight.requiresGrad ? gradBuffer(weight) : null;
    const gx = x.requiresGrad ? gradBuffer(x) : null;
    if (gw === null && gx === null) return;
    // Image by image, so cols_n and gcols_n stay in cache: the output gradient g_n (O, P) is a
    // block of gradient (N, O, P) as it is.
    onOneThread(() => {
      // With the workspace, gcols_n goes into it (after a copy of gx_n) and col2im adds there.
      const workspace = useWorkspace && gx !== null ? convWorkspace(imageX + imageCols) : null;
      for (let n = 0; n < batch; n++) {
        const c0 = n * imageCols;
        const o0 = n * imageOut;
        const gcols = workspace === null ? cols : workspace.view;
        const gcolsBase = workspace === null ? c0 : imageX;
        for (let gi = 0; gi < groups; gi++) {
          const w0 = gi * groupOut * groupDepth;
          const og = o0 + gi * groupOut * positions;
          // gweight_g (O/G, depth/G) += g_n,g @ cols_n,g^T
          if (gw !== null) {
            const cg = c0 + gi * groupDepth * positions;
            gemm(
              false,
              true,
              groupOut,
              groupDepth,
              positions,
              1,
              gradient,
              og,
              positions,
              cols,
              cg,
              positions,
              1,
              gw,
              w0,
              groupDepth,
            );
          }
          // gcols_n,g = weight_g^T @ g_n,g (into cols_n,g itself once read, without the workspace)
          if (gx !== null) {
            const gg = gcolsBase + gi * groupDepth * positions;
            gemm(
              true,
              false,
              groupDepth,
              positions,
              groupOut,
              1,
              wv,
              w0,
              groupDepth,
              gradient,
              og,
              positions,
              0,
              gcols,
              gg,
              positions,
            );
          }
        }
        if (gx === null) continue;
        if (workspace !== null) {
          const view = workspace.view;
          view.set(gx.subarray(n * imageX, (n + 1) * imageX));
          col2imSameWidth(view, imageX, g, view, 0, workspace);
          gx.set(view.subarray(0, imageX), n * imageX);
        } else if (sameWidth) col2imSameWidth(cols, c0, g, gx, n * imageX, null);
        else col2im(cols, c0, g, n, gx);
      }
    });
  };
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return makeResult(
    out,
    [g.batch, outChannels, g.outHeight, g.outWidth],
    'conv2d',
    inputs,
    backward,
    scratch,
  );
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
