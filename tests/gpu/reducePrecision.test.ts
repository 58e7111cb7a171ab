/**
 * Device sums stay within 1e-6 relative of the exact (float64) sum of their float32 inputs, on
 * the cpu reference device and on WebGPU (SwiftShader here; CUDA's kernel is the same scheme,
 * checked by bench/device-check.sh's CUDA tests where a GPU is lent).
 *
 * The bound for 1e8 elements (what these 2^22-element rows stand for): a row is summed by 256
 * threads, each over a strided share of about 1e8 / 256 = 390,625 elements with compensated
 * (Kahan) addition, whose error is at most 2u + O(n u^2) times the sum of magnitudes
 * (u = 2^-24 = 6.0e-8; n u^2 = 1.4e-9 here), then by a pairwise tree over the 256 partials, 8
 * levels, one rounding each: 8u. In all about 10u = 6.0e-7 of the sum of magnitudes, under 1e-6
 * (for inputs of one sign the sum of magnitudes is the sum itself). The cpu reference device
 * accumulates in float64: n u_64 = 1e8 * 1.1e-16 = 1.1e-8. An uncompensated f32 loop over the
 * same share is off by 1.5e-4 on the constant row below already at 2^22 elements.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { type Device, openDevice } from '../../src/gpu/index.js';
import {
  backward,
  disposeGraph,
  Linear,
  mean,
  mul,
  sum,
  type Tensor,
  tensor,
  to,
  toArray,
} from '../../src/ml/index.js';
import { probeWebGpu } from './support.js';

const ELEMENTS = 1 << 22;
const RELATIVE = 1e-6;

function exactSum(values: Float32Array): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

function uniformRow(seed: number, count: number): Float32Array {
  const random = new Random(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = random.next();
  return values;
}

async function deviceRowSums(device: Device, values: Float32Array, rows: number): Promise<Float32Array> {
  const input = device.upload(values);
  const output = device.allocate(rows * 4);
  try {
    device.reduce('sum', input, output, rows, values.length / rows);
    return await device.readFloat32(output);
  } finally {
    input.release();
    output.release();
  }
}

function relativeError(got: number, exact: number): number {
  return Math.abs(got - exact) / Math.abs(exact);
}

/**
 * `linearRows`: the rows of the Linear case (SwiftShader runs a matmul's 64-row tiles at about a
 * millisecond each: 2^17 rows there; the float32 product with ones that linear used was off by 2.5e-3 over 2^18).
 */
function precisionCases(open: () => Promise<Device>, linearRows: number): void {
  let device: Device;
  afterAll(() => device?.destroy());

  it('a sum of 2^22 uniform values and of 2^22 copies of 0.1 is within 1e-6 of exact', async () => {
    device = await open();
    const uniform = uniformRow(7, ELEMENTS);
    const [uniformSum] = await deviceRowSums(device, uniform, 1);
    expect(relativeError(uniformSum, exactSum(uniform))).toBeLessThan(RELATIVE);
    // 0.1 is not a float32: every uncompensated addition rounds the same way.
    const constant = new Float32Array(ELEMENTS).fill(0.1);
    const [constantSum] = await deviceRowSums(device, constant, 1);
    expect(relativeError(constantSum, exactSum(constant))).toBeLessThan(RELATIVE);
  });

  it('each row of several long rows is within 1e-6 of its exact sum', async () => {
    const rows = 4;
    const values = uniformRow(11, ELEMENTS);
    const sums = await deviceRowSums(device, values, rows);
    const columns = ELEMENTS / rows;
    for (let row = 0; row < rows; row++) {
      const exact = exactSum(values.subarray(row * columns, (row + 1) * columns));
      expect(relativeError(sums[row], exact)).toBeLessThan(RELATIVE);
    }
  });

  it('sum and mean of a device tensor (the ml ops) keep the bound', async () => {
    const values = new Float32Array(ELEMENTS).fill(0.1);
    const x = await tensor(values, [ELEMENTS]).to(device);
    const [total] = toArray(await sum(x).to('cpu'));
    const [average] = toArray(await mean(x).to('cpu'));
    const exact = exactSum(values);
    expect(relativeError(total, exact)).toBeLessThan(RELATIVE);
    expect(relativeError(average, exact / ELEMENTS)).toBeLessThan(RELATIVE);
  });

  it("linear's bias gradient over many rows keeps the bound (not a float32 product with ones)", async () => {
    // loss = sum(0.1 * linear(x, w, b)): each row's gradient is 0.1, the bias's is their sum.
    const x = await tensor(new Float32Array(linearRows).fill(1), [linearRows, 1]).to(device);
    const layer = await new Linear(1, 1).to(device);
    const loss = sum(mul(layer.forward(x), 0.1));
    backward(loss);
    const [gradient] = toArray(await to(layer.bias?.deviceGrad as Tensor, 'cpu'));
    disposeGraph(loss);
    expect(relativeError(gradient, exactSum(new Float32Array(linearRows).fill(0.1)))).toBeLessThan(RELATIVE);
  });
}

describe('device sum precision on the cpu reference device', () => {
  precisionCases(() => openDevice('cpu'), ELEMENTS);
});

const webgpu = await probeWebGpu();
describe.skipIf(!webgpu.available)(`device sum precision on webgpu (${webgpu.reason})`, () => {
  precisionCases(() => openDevice('webgpu'), 1 << 17);
});
