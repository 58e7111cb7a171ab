/**
 * Conv1d and ConvTranspose2d, as PyTorch's F.conv1d and F.conv_transpose2d, on the host.
 *
 * conv1d: x (N, C, L), weight (O, C, K), bias (O) -> (N, O, floor((L + 2p - K) / s) + 1): the
 *   input padded, then conv2d on (N, C, 1, L) with a (O, C, 1, K) kernel, so conv2d's rules give
 *   the gradients.
 * convTranspose2d: x (N, Cin, H, W), weight (Cin, Cout, KH, KW), bias (Cout) ->
 *   (N, Cout, (H - 1) sh - 2 ph + KH + oph, (W - 1) sw - 2 pw + KW + opw), the gradient of a
 *   conv2d with respect to its input: per image, cols (Cout KH KW, H W) = W^T @ x, then each
 *   column added into the output at (h sh - ph + kh, w sw - pw + kw) (col2im).
 *   gcols = im2col(g);  gx += W @ gcols;  gW += x @ gcols^T;  gbias += g summed per channel.
 */
import type { Conv2dGeometry } from '../../gpu/kernels/ops.js';
import { unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { matrixProduct } from '../internal/blas.js';
import { pool } from '../internal/pool.js';
import { contiguousData, gradBuffer, makeResult, releaseTemporary, type Tensor } from '../Tensor.js';
import { conv2d } from './conv.js';
import { type Pair, pairOf } from './convGeometry.js';

export type { Pair } from './convGeometry.js';

import { pad } from './indexing.js';
import { reshape } from './shape.js';

export interface Conv1dOptions {
  readonly stride?: number;
  readonly padding?: number;
}

/** 1-D convolution, (N, C, L) with a (O, C, K) kernel. */
export function conv1d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv1dOptions = {},
): Tensor {
  if (x.device !== 'cpu' || weight.device !== 'cpu' || (bias !== null && bias.device !== 'cpu'))
    unavailableOnDevice('conv1d', bias === null ? [x, weight] : [x, weight, bias]);
  check(x.rank === 3, 'invalid_shape', () => `conv1d: input must be (N, C, L), got [${x.shape.join(', ')}]`);
  check(weight.rank === 3 && weight.shape[1] === x.shape[1], 'shape_mismatch', () => {
    return `conv1d: weight must be (O, ${x.shape[1]}, K) for ${x.shape[1]} input channels, got [${weight.shape.join(', ')}]`;
  });
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  check(Number.isInteger(padding) && padding >= 0, 'invalid_argument', () => {
    return `conv1d: padding must be an integer >= 0, got ${padding}`;
  });
  const [batch, channels] = x.shape;
  const padded = padding > 0 ? pad(x, [padding, padding]) : x;
  const length = padded.shape[2];
  const [outChannels, , kernel] = weight.shape;
  check(kernel <= length, 'shape_mismatch', () => {
    return `conv1d: kernel ${kernel} does not fit input length ${x.shape[2]} with padding ${padding}`;
  });
  const out = conv2d(
    reshape(padded, [batch, channels, 1, length]),
    reshape(weight, [outChannels, channels, 1, kernel]),
    bias,
    { stride },
  );
  return reshape(out, [batch, outChannels, out.shape[3]]);
}

export interface ConvTranspose2dOptions {
  readonly stride?: Pair;
  readonly padding?: Pair;
  /** Spacing between kernel taps; 1 by default. */
  readonly dilation?: Pair;
  /** Added to one side of the output (PyTorch's output_padding); each below its stride or its dilation. */
  readonly outputPadding?: Pair;
}

/**
 * A transposed convolution's geometry is the geometry of the convolution it is the input gradient
 * of, with the roles swapped: that convolution reads this one's output (N, Cout, OH, OW) and
 * produces this one's input (N, Cin, H, W). So `inChannels` is Cout, `outChannels` is Cin,
 * `height`/`width` are OH/OW and `outHeight`/`outWidth` are H/W, and the one geometry list
 * (CONV2D_GEOMETRY_FIELDS) describes both.
 */
function transposedGeometry(x: Tensor, weight: Tensor, options: ConvTranspose2dOptions): Conv2dGeometry {
  const context = 'convTranspose2d';
  check(
    x.rank === 4,
    'invalid_shape',
    () => `${context}: input must be (N, C, H, W), got [${x.shape.join(', ')}]`,
  );
  check(weight.rank === 4 && weight.shape[0] === x.shape[1], 'shape_mismatch', () => {
    return `${context}: weight must be (${x.shape[1]}, Cout, KH, KW) for ${x.shape[1]} input channels (PyTorch's layout), got [${weight.shape.join(', ')}]`;
  });
  const stride = pairOf(options.stride ?? 1);
  const padding = pairOf(options.padding ?? 0);
  const dilation = pairOf(options.dilation ?? 1);
  const extra = pairOf(options.outputPadding ?? 0);
  const integers = (values: number[], least: number) =>
    values.every((v) => Number.isInteger(v) && v >= least);
  check(integers(stride, 1), 'invalid_argument', () => {
    return `${context}: stride must be integers >= 1, got [${stride.join(', ')}]`;
  });
  check(integers(padding, 0), 'invalid_argument', () => {
    return `${context}: padding must be integers >= 0, got [${padding.join(', ')}]`;
  });
  check(integers(dilation, 1), 'invalid_argument', () => {
    return `${context}: dilation must be integers >= 1, got [${dilation.join(', ')}]`;
  });
  check(
    extra.every((p, d) => Number.isInteger(p) && p >= 0 && (p < stride[d] || p < dilation[d])),
    'invalid_argument',
    () =>
      `${context}: outputPadding [${extra.join(', ')}] must be integers >= 0 and below the stride [${stride.join(', ')}] or the dilation [${dilation.join(', ')}]`,
  );
  const [batch, inChannels, height, width] = x.shape;
  const [, outChannels, kernelHeight, kernelWidth] = weight.shape;
  const size = (d: number, input: number, kernel: number) =>
    (input - 1) * stride[d] - 2 * padding[d] + dilation[d] * (kernel - 1) + extra[d] + 1;
  const outHeight = size(0, height, kernelHeight);
  const outWidth = size(1, width, kernelWidth);
  check(outHeight >= 1 && outWidth >= 1, 'shape_mismatch', () => {
    return `${context}: padding [${padding.join(', ')}] leaves no output for input ${height}x${width} and kernel ${kernelHeight}x${kernelWidth}`;
  });
  return {
    batch,
    inChannels: outChannels,
    height: outHeight,
    width: outWidth,
    outChannels: inChannels,
    kernelHeight,
    kernelWidth,
    strideHeight: stride[0],
    strideWidth: stride[1],
    paddingHeight: padding[0],
    paddingWidth: padding[1],
    dilationHeight: dilation[0],
    dilationWidth: dilation[1],
    groups: 1,
    outHeight: height,
    outWidth: width,
  };
}

/**
 * Visits every (column row, input position, output position) pair of one image of the transposed
 * convolution whose adjoint geometry is `a`: visit(colsIndex, outIndex) with colsIndex into
 * (Cout KH KW, H W) and outIndex into (Cout, OH, OW), the taps im2col of the adjoint reads.
 */
function forEachTap(a: Conv2dGeometry, visit: (colsIndex: number, outIndex: number) => void): void {
  const pixels = a.outHeight * a.outWidth;
  for (let co = 0; co < a.inChannels; co++)
    for (let kh = 0; kh < a.kernelHeight; kh++)
      for (let kw = 0; kw < a.kernelWidth; kw++) {
        const row = ((co * a.kernelHeight + kh) * a.kernelWidth + kw) * pixels;
        for (let h = 0; h < a.outHeight; h++) {
          const oy = h * a.strideHeight - a.paddingHeight + kh * a.dilationHeight;
          if (oy < 0 || oy >= a.height) continue;
          const outRow = (co * a.height + oy) * a.width;
          for (let w = 0; w < a.outWidth; w++) {
            const ox = w * a.strideWidth - a.paddingWidth + kw * a.dilationWidth;
            if (ox >= 0 && ox < a.width) visit(row + h * a.outWidth + w, outRow + ox);
          }
        }
      }
}

/** Transposed 2-D convolution (the "deconvolution" of decoders and U-Nets), PyTorch's layout. */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: ConvTranspose2dOptions = {},
): Tensor {
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  if (inputs.some((input) => input.device !== 'cpu')) unavailableOnDevice('convTranspose2d', inputs);
  const a = transposedGeometry(x, weight, options);
  // in the transposed convolution's own terms (a is its adjoint's geometry)
  const [inChannels, outChannels] = [a.outChannels, a.inChannels];
  const [outHeight, outWidth] = [a.height, a.width];
  check(bias === null || bias.size === outChannels, 'shape_mismatch', () => {
    return `convTranspose2d: bias must have ${outChannels} elements, got ${bias!.size}`;
  });
  const pixels = a.outHeight * a.outWidth;
  const colsRows = outChannels * a.kernelHeight * a.kernelWidth;
  const plane = outHeight * outWidth;
  const outPlane = outChannels * plane;
  const xv = contiguousData(x);
  const wv = contiguousData(weight);
  const bv = bias === null ? null : contiguousData(bias);
  const out = pool.take(a.batch * outPlane).fill(0);
  const cols = pool.take(colsRows * pixels);
  for (let n = 0; n < a.batch; n++) {
    const image = xv.subarray(n * inChannels * pixels, (n + 1) * inChannels * pixels);
    matrixProduct(true, false, colsRows, pixels, inChannels, wv, image, cols, false);
    const target = out.subarray(n * outPlane, (n + 1) * outPlane);
    forEachTap(a, (c, o) => {
      target[o] += cols[c];
    });
    if (bv !== null) {
      for (let co = 0; co < outChannels; co++)
        for (let i = 0; i < plane; i++) target[co * plane + i] += bv[co];
    }
  }
  pool.release(cols);
  if (bias !== null) releaseTemporary(bias, bv!);
  const shape = [a.batch, outChannels, outHeight, outWidth];
  return makeResult(out, shape, 'convTranspose2d', inputs, (gy) => {
    const gcols = pool.take(colsRows * pixels);
    const gx = x.requiresGrad ? gradBuffer(x) : null;
    const gw = weight.requiresGrad ? gradBuffer(weight) : null;
    for (let n = 0; n < a.batch; n++) {
      const source = gy.subarray(n * outPlane, (n + 1) * outPlane);
      gcols.fill(0);
      forEachTap(a, (c, o) => {
        gcols[c] = source[o];
      });
      const base = n * inChannels * pixels;
      if (gx !== null)
        matrixProduct(
          false,
          false,
          inChannels,
          pixels,
          colsRows,
          wv,
          gcols,
          gx.subarray(base, base + inChannels * pixels),
          true,
        );
      if (gw !== null)
        matrixProduct(
          false,
          true,
          inChannels,
          colsRows,
          pixels,
          xv.subarray(base, base + inChannels * pixels),
          gcols,
          gw,
          true,
        );
    }
    pool.release(gcols);
    if (bias?.requiresGrad) {
      const gb = gradBuffer(bias);
      for (let n = 0; n < a.batch; n++)
        for (let co = 0; co < outChannels; co++) {
          let total = 0;
          for (let i = 0; i < plane; i++) total += gy[n * outPlane + co * plane + i];
          gb[co] += total;
        }
    }
  });
}
