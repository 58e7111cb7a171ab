/**
 * The geometry of a 2-D window op over NCHW input, named once: conv2d, max and average pooling
 * and their gradient rules (ops/conv.ts) all read these fields and nothing else.
 *
 *   outHeight = floor((height + 2 padding - dilation (kernelHeight - 1) - 1) / stride) + 1
 *   outWidth  = floor((width  + 2 padding - dilation (kernelWidth  - 1) - 1) / stride) + 1
 *
 * as PyTorch's Conv2d and MaxPool2d define them. A pool has outChannels = channels,
 * dilation 1 and groups 1 (each plane is pooled on its own).
 */
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';

/** The field list. */
export const CONV_GEOMETRY_FIELDS = [
  'batch',
  'channels',
  'height',
  'width',
  'outChannels',
  'kernelHeight',
  'kernelWidth',
  'stride',
  'padding',
  'dilation',
  'groups',
  'outHeight',
  'outWidth',
] as const;

export type ConvGeometryField = (typeof CONV_GEOMETRY_FIELDS)[number];

/** One number per field of CONV_GEOMETRY_FIELDS. */
export type ConvGeometry = { readonly [Field in ConvGeometryField]: number };

/** What a caller chooses; the rest follows from the input's and the kernel's shapes. */
export interface WindowChoice {
  readonly outChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
}

function checkInteger(context: string, field: string, value: number, least: number): void {
  check(
    Number.isInteger(value) && value >= least,
    'invalid_argument',
    () => `${context}: ${field} must be an integer >= ${least}, got ${value}`,
  );
}

/** Checks x is (N, C, H, W) and each choice, then computes the output size; a tagged error names what is wrong. */
export function convGeometry(x: Tensor, choice: WindowChoice, context: string): ConvGeometry {
  check(
    x.rank === 4,
    'invalid_shape',
    () => `${context}: input must be (N, C, H, W), got [${x.shape.join(', ')}]`,
  );
  const { outChannels, kernelHeight, kernelWidth, stride, padding, dilation, groups } = choice;
  checkInteger(context, 'stride', stride, 1);
  checkInteger(context, 'padding', padding, 0);
  checkInteger(context, 'dilation', dilation, 1);
  checkInteger(context, 'groups', groups, 1);
  const [batch, channels, height, width] = x.shape;
  check(channels % groups === 0 && outChannels % groups === 0, 'invalid_argument', () => {
    return `${context}: groups (${groups}) must divide the input channels (${channels}) and the output channels (${outChannels})`;
  });
  const spanHeight = dilation * (kernelHeight - 1) + 1;
  const spanWidth = dilation * (kernelWidth - 1) + 1;
  const outHeight = Math.floor((height + 2 * padding - spanHeight) / stride) + 1;
  const outWidth = Math.floor((width + 2 * padding - spanWidth) / stride) + 1;
  check(outHeight >= 1 && outWidth >= 1, 'shape_mismatch', () => {
    const dilated = dilation === 1 ? '' : ` (dilation ${dilation}: spans ${spanHeight}x${spanWidth})`;
    return `${context}: kernel ${kernelHeight}x${kernelWidth}${dilated} does not fit input ${height}x${width} with padding ${padding}`;
  });
  return {
    batch,
    channels,
    height,
    width,
    outChannels,
    kernelHeight,
    kernelWidth,
    stride,
    padding,
    dilation,
    groups,
    outHeight,
    outWidth,
  };
}
