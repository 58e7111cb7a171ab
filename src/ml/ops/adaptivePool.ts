/**
 * Adaptive average pooling, as PyTorch's F.adaptive_avg_pool1d/2d: output cell i along an axis of
 * length L averages inputs floor(i L / O) to ceil((i + 1) L / O) (exclusive), so the windows
 * cover the input, may overlap, and O may exceed L. The gradient spreads evenly over each window.
 */
import { unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { pool } from '../internal/pool.js';
import { contiguousData, gradBuffer, makeResult, releaseTemporary, type Tensor } from '../Tensor.js';
import { reshape } from './shape.js';

/** (N, C, H, W) -> (N, C, OH, OW); `outputSize` a number (square) or [OH, OW]. */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | readonly [number, number]): Tensor {
  if (x.device !== 'cpu') unavailableOnDevice('adaptiveAvgPool2d', [x]);
  check(x.rank === 4, 'invalid_shape', () => {
    return `adaptiveAvgPool2d: input must be (N, C, H, W), got [${x.shape.join(', ')}]`;
  });
  const [outHeight, outWidth] = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
  check(
    [outHeight, outWidth].every((n) => Number.isInteger(n) && n >= 1),
    'invalid_argument',
    () => {
      return `adaptiveAvgPool: output size must be integers >= 1, got ${JSON.stringify(outputSize)}`;
    },
  );
  const [batch, channels, height, width] = x.shape;
  check(height >= 1 && width >= 1, 'invalid_shape', () => 'adaptiveAvgPool: the input is empty');
  const rows = windows(height, outHeight);
  const columns = windows(width, outWidth);
  const planes = batch * channels;
  const xv = contiguousData(x);
  const out = pool.take(planes * outHeight * outWidth);
  for (let p = 0; p < planes; p++)
    for (let i = 0; i < outHeight; i++)
      for (let j = 0; j < outWidth; j++) {
        let total = 0;
        for (let h = rows[2 * i]; h < rows[2 * i + 1]; h++)
          for (let w = columns[2 * j]; w < columns[2 * j + 1]; w++) total += xv[(p * height + h) * width + w];
        const count = (rows[2 * i + 1] - rows[2 * i]) * (columns[2 * j + 1] - columns[2 * j]);
        out[(p * outHeight + i) * outWidth + j] = total / count;
      }
  releaseTemporary(x, xv);
  return makeResult(out, [batch, channels, outHeight, outWidth], 'adaptiveAvgPool2d', [x], (g) => {
    const gx = gradBuffer(x);
    for (let p = 0; p < planes; p++)
      for (let i = 0; i < outHeight; i++)
        for (let j = 0; j < outWidth; j++) {
          const count = (rows[2 * i + 1] - rows[2 * i]) * (columns[2 * j + 1] - columns[2 * j]);
          const share = g[(p * outHeight + i) * outWidth + j] / count;
          for (let h = rows[2 * i]; h < rows[2 * i + 1]; h++)
            for (let w = columns[2 * j]; w < columns[2 * j + 1]; w++)
              gx[(p * height + h) * width + w] += share;
        }
  });
}

/** (N, C, L) -> (N, C, O). */
export function adaptiveAvgPool1d(x: Tensor, outputSize: number): Tensor {
  check(x.rank === 3, 'invalid_shape', () => {
    return `adaptiveAvgPool1d: input must be (N, C, L), got [${x.shape.join(', ')}]`;
  });
  const [batch, channels, length] = x.shape;
  const out = adaptiveAvgPool2d(reshape(x, [batch, channels, 1, length]), [1, outputSize]);
  return reshape(out, [batch, channels, outputSize]);
}

/** [start, end) of each of `count` windows over `length`, flattened. */
function windows(length: number, count: number): Int32Array {
  const out = new Int32Array(2 * count);
  for (let i = 0; i < count; i++) {
    out[2 * i] = Math.floor((i * length) / count);
    out[2 * i + 1] = Math.ceil(((i + 1) * length) / count);
  }
  return out;
}
