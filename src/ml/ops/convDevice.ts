/**
 * conv2d, maxPool2d and avgPool2d on a GPU-layer device, forward and backward. The CPU ops in
 * `conv.ts` branch here when their input lives on a device. Their CPU gradient rules are host
 * loops, so these record rules of their own, written with device kernels:
 *
 * - conv2d, with g the output's gradient (N, O, OH, OW) gathered to gOut (O, N * OH * OW):
 *   x's gradient = col2im(weightᵀ @ gOut); weight's = gOut @ im2col(x)ᵀ (the transposes are
 *   flags of the matmul launch, not copies); bias's = gOut summed
 *   over its rows. Inputs that need no gradient (the images) get none computed.
 * - the pools: one pool2dBackward kernel (max: to each window's first maximum, as on the CPU).
 */
import type { Conv2dGeometry } from '../../gpu/kernels/ops.js';
import {
  deviceCol2im,
  deviceConv2d,
  deviceGather,
  deviceIm2col,
  devicePool2d,
  devicePool2dBackward,
  deviceProduct,
  deviceReduce,
} from '../deviceOps.js';
import { dispose, record, share, type Tensor } from '../Tensor.js';

// x: (N, C, H, W), weight: (O, C, KH, KW), bias: (O) -> (N, O, OH, OW); conv.ts checked the geometry
export function conv2dOnDevice(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  geometry: Conv2dGeometry,
): Tensor {
  const out = deviceConv2d(x, weight, bias, geometry);
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(out, 'conv2d', inputs, (g) => conv2dRule(x, weight, bias, g, geometry));
}

function conv2dRule(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  g: Tensor,
  geometry: Conv2dGeometry,
): Tensor[] {
  const [batch, outChannels, outHeight, outWidth] = g.shape;
  const positions = outHeight * outWidth;
  const patch = geometry.inChannels * geometry.kernelHeight * geometry.kernelWidth;
  // gOut: (O, N * P), the output's gradient with the channel axis first
  const gathered = deviceGather(
    'conv2d',
    g,
    [outChannels, batch, positions],
    [positions, outChannels * positions, 1],
  );
  const gOut = share(gathered, [outChannels, batch * positions]);
  dispose(gathered);
  const temporaries: Tensor[] = [gOut];
  try {
    let gx: Tensor | null = null;
    if (x.requiresGrad) {
      const weightMatrix = share(weight, [outChannels, patch]);
      const columns = deviceProduct(weightMatrix, gOut, true, false);
      temporaries.push(weightMatrix, columns);
      gx = deviceCol2im(columns, geometry);
    }
    let gw: Tensor | null = null;
    if (weight.requiresGrad) {
      const columns = deviceIm2col(x, geometry);
      const product = deviceProduct(gOut, columns, false, true);
      temporaries.push(columns, product);
      gw = share(product, weight.shape);
    }
    const gb = bias?.requiresGrad ? deviceReduce('sum', gOut, [false, true], [outChannels]) : null;
    return (bias === null ? [gx, gw] : [gx, gw, gb]) as Tensor[];
  } finally {
    for (const tensor of temporaries) dispose(tensor);
  }
}

// x: (N, C, H, W) -> (N, C, OH, OW); conv.ts checked the shapes
export function pool2dOnDevice(op: 'max' | 'avg', x: Tensor, kernelSize: number, stride: number): Tensor {
  const out = devicePool2d(op, x, kernelSize, stride);
  return record(out, `${op}Pool2d`, [x], (g) => [devicePool2dBackward(op, x, g, kernelSize, stride)]);
}
