/**
 * 2-D convolution (im2col + one gemm for the whole batch) and pooling, NCHW layout.
 *
 * conv2d: x (N, C, H, W), weight (O, C, KH, KW), bias (O) -> (N, O, OH, OW)
 *   cols (C*KH*KW, N*OH*OW) = im2col(x);  y' (O, N*P) = weight (O, CKK) @ cols
 *   gweight += g' @ cols^T;  gcols = weight^T @ g';  gx += col2im(gcols);  gbias += rows of g'
 * maxPool2d: gradient to the (first) maximum of each window; avgPool2d: spread evenly.
 */

import { check } from '../errors.js';
import { addAccumulated, float64Accumulator } from '../internal/accumulate.js';
import { matrixProduct } from '../internal/blas.js';
import { maxPool2x2Kernel } from '../internal/maxPoolKernel.js';
import { indexPool, pool } from '../internal/pool.js';
import { contiguousData, gradBuffer, makeResult, releaseTemporary, type Tensor } from '../Tensor.js';
import { conv2dOnDevice, pool2dOnDevice } from './convDevice.js';

export interface Conv2dOptions {
  readonly stride?: number;
  readonly padding?: number;
}

export interface Pool2dOptions {
  /** Defaults to the kernel size. */
  readonly stride?: number;
}

interface ConvGeometry {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly stride: number;
  readonly padding: number;
  readonly outHeight: number;
  readonly outWidth: number;
}

function geometry(
  x: Tensor,
  kernelHeight: number,
  kernelWidth: number,
  stride: number,
  padding: number,
  context: string,
): ConvGeometry {
  check(
    x.rank === 4,
    'invalid_shape',
    () => `${context}: input must be (N, C, H, W), got [${x.shape.join(', ')}]`,
  );
  check(
    Number.isInteger(stride) && stride >= 1,
    'invalid_argument',
    () => `${context}: stride must be an integer >= 1, got ${stride}`,
  );
  check(
    Number.isInteger(padding) && padding >= 0,
    'invalid_argument',
    () => `${context}: padding must be an integer >= 0, got ${padding}`,
  );
  const [batch, channels, height, width] = x.shape;
  const outHeight = Math.floor((height + 2 * padding - kernelHeight) / stride) + 1;
  const outWidth = Math.floor((width + 2 * padding - kernelWidth) / stride) + 1;
  check(outHeight >= 1 && outWidth >= 1, 'shape_mismatch', () => {
    return `${context}: kernel ${kernelHeight}x${kernelWidth} does not fit input ${height}x${width} with padding ${padding}`;
  });
  return { batch, channels, height, width, kernelHeight, kernelWidth, stride, padding, outHeight, outWidth };
}

/** The output columns [start, end) whose input column ow*stride - padding + kernelColumn is inside the image. */
function validColumns(g: ConvGeometry, kernelColumn: number): [number, number] {
  const start = Math.max(0, Math.ceil((g.padding - kernelColumn) / g.stride));
  const end = Math.min(g.outWidth, Math.floor((g.width - 1 + g.padding - kernelColumn) / g.stride) + 1);
  return [start, Math.max(start, end)];
}

/**
 * A "same" convolution (stride 1, output as wide as the input): for one (c, kh, kw) and one image,
 * the im2col rows of the valid output rows are one contiguous run of the input plane shifted by
 * (kh - p) rows and (kw - p) columns, except the few columns that fall off the left or right edge
 * (they wrap to the neighbouring row and are zeroed). One long copy instead of a loop per row.
 */
function isSameWidth(g: ConvGeometry): boolean {
  return g.stride === 1 && g.outWidth === g.width;
}

/** The output rows [start, end) whose input row oh - p + kh is inside the image (stride 1). */
function validRows(g: ConvGeometry, kernelRow: number): [number, number] {
  const shift = kernelRow - g.padding;
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

function im2colSameWidth(x: Float32Array, g: ConvGeometry, cols: Float32Array): void {
  const { batch, channels, height, width, kernelHeight, kernelWidth, padding, outHeight } = g;
  const positions = outHeight * width;
  const columns = batch * positions;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = ((c * kernelHeight + kh) * kernelWidth + kw) * columns;
        const columnShift = kw - padding;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        for (let n = 0; n < batch; n++) {
          const target = rowBase + n * positions;
          cols.fill(0, target, target + rowStart * width);
          cols.fill(0, target + rowEnd * width, target + positions);
          const source =
            (n * channels + c) * height * width + (rowStart + kh - padding) * width + columnShift;
          const first = target + rowStart * width;
          const length = (rowEnd - rowStart) * width;
          for (let i = skipFront; i < length - skipBack; i++) cols[first + i] = x[source + i];
          if (columnShift !== 0) zeroEdgeColumns(cols, target, width, rowStart, rowEnd, columnShift);
        }
      }
    }
  }
}

/** The adjoint of im2colSameWidth (gcols' wrapped edge columns are zeroed first, then one long add). */
function col2imSameWidth(gcols: Float32Array, g: ConvGeometry, gx: Float32Array): void {
  const { batch, channels, height, width, kernelHeight, kernelWidth, padding, outHeight } = g;
  const positions = outHeight * width;
  const columns = batch * positions;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      const [rowStart, rowEnd] = validRows(g, kh);
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = ((c * kernelHeight + kh) * kernelWidth + kw) * columns;
        const columnShift = kw - padding;
        const skipFront = Math.max(0, -columnShift);
        const skipBack = Math.max(0, columnShift);
        for (let n = 0; n < batch; n++) {
          const source = rowBase + n * positions;
          if (columnShift !== 0) zeroEdgeColumns(gcols, source, width, rowStart, rowEnd, columnShift);
          const target =
            (n * channels + c) * height * width + (rowStart + kh - padding) * width + columnShift;
          const first = source + rowStart * width;
          const length = (rowEnd - rowStart) * width;
          for (let i = skipFront; i < length - skipBack; i++) gx[target + i] += gcols[first + i];
        }
      }
    }
  }
}

/** cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*s - p + kh, ow*s - p + kw] (0 outside). */
function im2col(x: Float32Array, g: ConvGeometry, cols: Float32Array): void {
  const { batch, channels, height, width, kernelHeight, kernelWidth, stride, padding, outHeight, outWidth } =
    g;
  const positions = outHeight * outWidth;
  const columns = batch * positions;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = ((c * kernelHeight + kh) * kernelWidth + kw) * columns;
        const [start, end] = validColumns(g, kw);
        const shift = kw - padding;
        for (let n = 0; n < batch; n++) {
          const plane = (n * channels + c) * height * width;
          for (let oh = 0; oh < outHeight; oh++) {
            const ih = oh * stride - padding + kh;
            const target = rowBase + n * positions + oh * outWidth;
            if (ih < 0 || ih >= height) {
              cols.fill(0, target, target + outWidth);
              continue;
            }
            const source = plane + ih * width + shift;
            for (let ow = 0; ow < start; ow++) cols[target + ow] = 0;
            for (let ow = start; ow < end; ow++) cols[target + ow] = x[source + ow * stride];
            for (let ow = end; ow < outWidth; ow++) cols[target + ow] = 0;
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: gx[n, c, ih, iw] += gcols[(c, kh, kw), (n, oh, ow)]. */
function col2im(gcols: Float32Array, g: ConvGeometry, gx: Float32Array): void {
  const { batch, channels, height, width, kernelHeight, kernelWidth, stride, padding, outHeight, outWidth } =
    g;
  const positions = outHeight * outWidth;
  const columns = batch * positions;
  for (let c = 0; c < channels; c++) {
    for (let kh = 0; kh < kernelHeight; kh++) {
      for (let kw = 0; kw < kernelWidth; kw++) {
        const rowBase = ((c * kernelHeight + kh) * kernelWidth + kw) * columns;
        const [start, end] = validColumns(g, kw);
        const shift = kw - padding;
        for (let n = 0; n < batch; n++) {
          const plane = (n * channels + c) * height * width;
          for (let oh = 0; oh < outHeight; oh++) {
            const ih = oh * stride - padding + kh;
            if (ih < 0 || ih >= height) continue;
            const source = rowBase + n * positions + oh * outWidth;
            const target = plane + ih * width + shift;
            for (let ow = start; ow < end; ow++) gx[target + ow * stride] += gcols[source + ow];
          }
        }
      }
    }
  }
}

/** out (N, O, P) = product (O, N, P) reordered, plus bias[o] when given: one pass. */
function toBatchMajor(
  product: Float32Array,
  outChannels: number,
  batch: number,
  positions: number,
  bias: Float32Array | null,
  out: Float32Array,
): void {
  for (let o = 0; o < outChannels; o++) {
    const value = bias === null ? 0 : bias[o];
    for (let n = 0; n < batch; n++) {
      const source = (o * batch + n) * positions;
      const target = (n * outChannels + o) * positions;
      for (let p = 0; p < positions; p++) out[target + p] = product[source + p] + value;
    }
  }
}

/**
 * product (O, N, P) = gradient (N, O, P) reordered; when `biasSums` is given, also its sums over
 * N and P per channel (float64, internal/accumulate.ts), the bias gradient, in the same pass.
 */
function toGemmLayout(
  gradient: Float32Array,
  outChannels: number,
  batch: number,
  positions: number,
  product: Float32Array,
  biasSums: Float64Array | null,
): void {
  for (let o = 0; o < outChannels; o++) {
    let total = 0;
    for (let n = 0; n < batch; n++) {
      const source = (n * outChannels + o) * positions;
      const target = (o * batch + n) * positions;
      for (let p = 0; p < positions; p++) {
        const value = gradient[source + p];
        product[target + p] = value;
        total += value;
      }
    }
    if (biasSums !== null) biasSums[o] = total;
  }
}

function checkConvolution(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  options: Conv2dOptions,
): ConvGeometry {
  check(
    weight.rank === 4,
    'invalid_shape',
    () => `conv2d: weight must be (O, C, KH, KW), got [${weight.shape.join(', ')}]`,
  );
  const [outChannels, weightChannels, kernelHeight, kernelWidth] = weight.shape;
  const g = geometry(x, kernelHeight, kernelWidth, options.stride ?? 1, options.padding ?? 0, 'conv2d');
  check(weightChannels === g.channels, 'shape_mismatch', () => {
    return `conv2d: input has ${g.channels} channels, weight expects ${weightChannels}`;
  });
  check(bias === null || (bias.rank === 1 && bias.shape[0] === outChannels), 'shape_mismatch', () => {
    return `conv2d: bias must be (${outChannels}), got [${bias?.shape.join(', ')}]`;
  });
  return g;
}

/** 2-D cross-correlation (PyTorch's conv2d) with stride and zero padding. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  const g = checkConvolution(x, weight, bias, options);
  if (x.device !== 'cpu' || weight.device !== 'cpu' || (bias !== null && bias.device !== 'cpu')) {
    return conv2dOnDevice(x, weight, bias, g.stride, g.padding);
  }
  const outChannels = weight.shape[0];
  const positions = g.outHeight * g.outWidth;
  const columns = g.batch * positions;
  const depth = g.channels * g.kernelHeight * g.kernelWidth;
  const xv = contiguousData(x);
  const cols = pool.take(depth * columns);
  if (isSameWidth(g)) im2colSameWidth(xv, g, cols);
  else im2col(xv, g, cols);
  releaseTemporary(x, xv);
  const wv = contiguousData(weight);
  const product = pool.take(outChannels * columns);
  // product (O, N*P) = weight (O, CKK) @ cols (CKK, N*P)
  matrixProduct(false, false, outChannels, columns, depth, wv, cols, product, false);
  const out = pool.take(outChannels * columns);
  const bv = bias === null ? null : contiguousData(bias);
  toBatchMajor(product, outChannels, g.batch, positions, bv, out);
  if (bias !== null && bv !== null) releaseTemporary(bias, bv);
  const scratch = [cols, product];
  if (wv.buffer !== weight.storage.buffer) scratch.push(wv);
  const backward = (gradient: Float32Array): void => {
    // product is free now: it takes the output gradient in the gemm layout g' (O, N*P), and
    // the bias gradient is summed on the way.
    const biasSums = bias?.requiresGrad ? float64Accumulator(outChannels) : null;
    toGemmLayout(gradient, outChannels, g.batch, positions, product, biasSums);
    if (bias !== null && biasSums !== null) addAccumulated(gradBuffer(bias), biasSums);
    // gweight (O, CKK) += g' @ cols^T
    if (weight.requiresGrad)
      matrixProduct(false, true, outChannels, depth, columns, product, cols, gradBuffer(weight), true);
    if (x.requiresGrad) {
      // cols is free too: it takes gcols (CKK, N*P) = weight^T @ g', then col2im into gx.
      matrixProduct(true, false, depth, columns, outChannels, wv, product, cols, false);
      if (isSameWidth(g)) col2imSameWidth(cols, g, gradBuffer(x));
      else col2im(cols, g, gradBuffer(x));
    }
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

function poolGeometry(x: Tensor, kernelSize: number, stride: number, context: string): ConvGeometry {
  check(
    Number.isInteger(kernelSize) && kernelSize >= 1,
    'invalid_argument',
    () => `${context}: kernel size must be an integer >= 1`,
  );
  return geometry(x, kernelSize, kernelSize, stride, 0, context);
}

function maxPoolWindows(
  xv: Float32Array,
  g: ConvGeometry,
  kernelSize: number,
  out: Float32Array,
  winners: Int32Array,
): void {
  const planes = g.batch * g.channels;
  const outPlane = g.outHeight * g.outWidth;
  for (let plane = 0; plane < planes; plane++) {
    const inBase = plane * g.height * g.width;
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++) {
        let best = inBase + oh * g.stride * g.width + ow * g.stride;
        for (let kh = 0; kh < kernelSize; kh++) {
          const row = inBase + (oh * g.stride + kh) * g.width + ow * g.stride;
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
function maxPool2x2(xv: Float32Array, g: ConvGeometry, out: Float32Array, winners: Int32Array): void {
  const planes = g.batch * g.channels;
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
  if (x.device !== 'cpu') return pool2dOnDevice('max', x, kernelSize, g.stride);
  const planes = g.batch * g.channels;
  const outPlane = g.outHeight * g.outWidth;
  const xv = contiguousData(x);
  const out = pool.take(planes * outPlane);
  const winners = indexPool.take(planes * outPlane);
  if (kernelSize === 2 && g.stride === 2) {
    // WebAssembly (branch-free) when it is there, else the JavaScript loop.
    if (!maxPool2x2Kernel(xv, planes, g.height, g.width, out, winners)) maxPool2x2(xv, g, out, winners);
  } else maxPoolWindows(xv, g, kernelSize, out, winners);
  releaseTemporary(x, xv);
  const result = makeResult(
    out,
    [g.batch, g.channels, g.outHeight, g.outWidth],
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
  if (x.device !== 'cpu') return pool2dOnDevice('avg', x, kernelSize, g.stride);
  const planes = g.batch * g.channels;
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
          const row = inBase + (oh * g.stride + kh) * g.width + ow * g.stride;
          for (let kw = 0; kw < kernelSize; kw++) total += xv[row + kw];
        }
        out[plane * outPlane + oh * g.outWidth + ow] = total * scale;
      }
    }
  }
  releaseTemporary(x, xv);
  return makeResult(out, [g.batch, g.channels, g.outHeight, g.outWidth], 'avgPool2d', [x], (gradient) => {
    const gx = gradBuffer(x);
    for (let plane = 0; plane < planes; plane++) {
      const inBase = plane * g.height * g.width;
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++) {
          const share = gradient[plane * outPlane + oh * g.outWidth + ow] * scale;
          for (let kh = 0; kh < kernelSize; kh++) {
            const row = inBase + (oh * g.stride + kh) * g.width + ow * g.stride;
            for (let kw = 0; kw < kernelSize; kw++) gx[row + kw] += share;
          }
        }
      }
    }
  });
}
