/**
 * The geometry of a 2-D window op over NCHW input: conv2d, max and average pooling and their
 * gradient rules (ops/conv.ts) read it and nothing else. It is the gpu layer's
 * `Conv2dGeometry` (CONV2D_GEOMETRY_FIELDS, src/gpu/kernels/ops.ts), the one field list the device
 * kernels take too, so a geometry checked here goes to a device as it is.
 *
 *   outHeight = floor((height + 2 paddingHeight - dilationHeight (kernelHeight - 1) - 1) / strideHeight) + 1
 *   outWidth  = floor((width  + 2 paddingWidth  - dilationWidth  (kernelWidth  - 1) - 1) / strideWidth)  + 1
 *
 * as PyTorch's Conv2d and MaxPool2d define them. A pool has outChannels = inChannels, dilation 1
 * and groups 1 (each plane is pooled on its own).
 */
import { type Conv2dGeometry, convOutputSize } from '../../gpu/kernels/ops.js';
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';

export {
  CONV2D_GEOMETRY_FIELDS,
  type Conv2dGeometry,
  type Conv2dGeometryField,
} from '../../gpu/kernels/ops.js';

/** A size given once for both dimensions, or as [height, width] (PyTorch's int or tuple). */
export type Pair = number | readonly [number, number];

export const pairOf = (value: Pair): [number, number] =>
  typeof value === 'number' ? [value, value] : [value[0], value[1]];

/** What a caller chooses; the rest follows from the input's and the kernel's shapes. */
export interface WindowChoice {
  readonly outChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly groups: number;
}

function checkIntegers(context: string, field: string, value: Pair, least: number): [number, number] {
  const values = pairOf(value);
  check(
    values.every((v) => Number.isInteger(v) && v >= least),
    'invalid_argument',
    () => {
      return typeof value === 'number'
        ? `${context}: ${field} must be an integer >= ${least}, got ${value}`
        : `${context}: ${field} must be integers >= ${least} ([height, width]), got [${values.join(', ')}]`;
    },
  );
  return values;
}

/** "3" for a square pair, "3x2" otherwise. */
const shown = (height: number, width: number): string =>
  height === width ? `${height}` : `${height}x${width}`;

/** Checks x is (N, C, H, W) and each choice, then computes the output size; a tagged error names what is wrong. */
export function convGeometry(x: Tensor, choice: WindowChoice, context: string): Conv2dGeometry {
  check(
    x.rank === 4,
    'invalid_shape',
    () => `${context}: input must be (N, C, H, W), got [${x.shape.join(', ')}]`,
  );
  const { outChannels, kernelHeight, kernelWidth, groups } = choice;
  const [strideHeight, strideWidth] = checkIntegers(context, 'stride', choice.stride, 1);
  const [paddingHeight, paddingWidth] = checkIntegers(context, 'padding', choice.padding, 0);
  const [dilationHeight, dilationWidth] = checkIntegers(context, 'dilation', choice.dilation, 1);
  checkIntegers(context, 'groups', groups, 1);
  const [batch, inChannels, height, width] = x.shape;
  check(inChannels % groups === 0 && outChannels % groups === 0, 'invalid_argument', () => {
    return `${context}: groups (${groups}) must divide the input channels (${inChannels}) and the output channels (${outChannels})`;
  });
  const outHeight = convOutputSize(height, kernelHeight, strideHeight, paddingHeight, dilationHeight);
  const outWidth = convOutputSize(width, kernelWidth, strideWidth, paddingWidth, dilationWidth);
  check(outHeight >= 1 && outWidth >= 1, 'shape_mismatch', () => {
    const spans = `${dilationHeight * (kernelHeight - 1) + 1}x${dilationWidth * (kernelWidth - 1) + 1}`;
    const dilated =
      dilationHeight === 1 && dilationWidth === 1
        ? ''
        : ` (dilation ${shown(dilationHeight, dilationWidth)}: spans ${spans})`;
    return `${context}: kernel ${kernelHeight}x${kernelWidth}${dilated} does not fit input ${height}x${width} with padding ${shown(paddingHeight, paddingWidth)}`;
  });
  return {
    batch,
    inChannels,
    height,
    width,
    outChannels,
    kernelHeight,
    kernelWidth,
    strideHeight,
    strideWidth,
    paddingHeight,
    paddingWidth,
    dilationHeight,
    dilationWidth,
    groups,
    outHeight,
    outWidth,
  };
}
