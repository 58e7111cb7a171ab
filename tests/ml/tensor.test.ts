import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as codecs from '../../src/ml/dtype.js';
import * as ml from '../../src/ml/index.js';
import * as safetensors from '../../src/ml/safetensors.js';
import { expectClose } from './helpers.js';

/** Scalar views of the array codecs, for readable bit-pattern tests. */
const dtype = {
  float32ToFloat16Bits: (value: number): number => codecs.float32ToFloat16Bits(Float32Array.of(value))[0],
  float16BitsToFloat32: (bits: number): number => codecs.float16BitsToFloat32(Uint16Array.of(bits))[0],
  float32ToBfloat16Bits: (value: number): number => codecs.float32ToBfloat16Bits(Float32Array.of(value))[0],
  bfloat16BitsToFloat32: (bits: number): number => codecs.bfloat16BitsToFloat32(Uint16Array.of(bits))[0],
};

describe('Tensor', () => {
  it('infers shapes from nested arrays and checks flat values against a shape', () => {
    const t = ml.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(ml.toArray(t)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => ml.tensor([1, 2, 3], [2, 2])).toThrow(/do not fill shape/);
    expect(() => ml.zeros([2, -1])).toThrow(ml.TensorError);
  });

  it('reshape of a contiguous tensor and transpose are views over the same storage', () => {
    const t = ml.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const r = ml.reshape(t, [3, -1]);
    const tr = ml.transpose(t);
    expect(r.storage).toBe(t.storage);
    expect(tr.storage).toBe(t.storage);
    expect(tr.shape).toEqual([3, 2]);
    expect(ml.toArray(tr)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(ml.isContiguous(tr)).toBe(false);
    // Reshaping a non-contiguous view copies into row-major order.
    expect(ml.toArray(ml.reshape(tr, [6]))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(ml.toArray(ml.permute(ml.tensor([0, 1, 2, 3, 4, 5, 6, 7], [2, 2, 2]), [2, 0, 1]))).toEqual([
      0, 2, 4, 6, 1, 3, 5, 7,
    ]);
  });

  it('slices and concatenates along an axis', () => {
    const t = ml.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(ml.toArray(ml.slice(t, 1, 1, 3))).toEqual([2, 3, 5, 6]);
    expect(ml.toArray(ml.slice(t, 0, -1))).toEqual([4, 5, 6]);
    const joined = ml.concat([t, ml.tensor([7, 8], [2, 1])], 1);
    expect(joined.shape).toEqual([2, 4]);
    expect(ml.toArray(joined)).toEqual([1, 2, 3, 7, 4, 5, 6, 8]);
    expect(() => ml.concat([t, ml.tensor([7, 8, 9], [3, 1])], 1)).toThrow(/does not match/);
    expect(() => ml.slice(t, 1, 2, 5)).toThrow(/out of range/);
  });

  it('reports bad axes, shapes and dtypes as typed errors', () => {
    const t = ml.zeros([2, 3]);
    const reasonOf = (body: () => unknown): string | undefined => {
      try {
        body();
      } catch (error) {
        return ml.isTensorError(error) ? error.reason : 'other';
      }
      return undefined;
    };
    expect(reasonOf(() => ml.sum(t, 2))).toBe('invalid_axis');
    expect(reasonOf(() => ml.add(t, ml.zeros([4])))).toBe('shape_mismatch');
    expect(reasonOf(() => ml.matmul(t, ml.zeros([2, 3])))).toBe('shape_mismatch');
    expect(reasonOf(() => ml.relu(ml.toDtype(t, 'f16')))).toBe('invalid_dtype');
    expect(reasonOf(() => ml.reshape(t, [4, 2]))).toBe('shape_mismatch');
    expect(reasonOf(() => ml.crossEntropy(t, new Int32Array([0, 3])))).toBe('invalid_argument');
    expect(reasonOf(() => ml.permute(t, [0, 0]))).toBe('invalid_axis');
  });

  it('backward twice through the same graph is refused', () => {
    const w = ml.tensor([1, 2], [2], { requiresGrad: true });
    const loss = ml.sum(ml.mul(w, w));
    ml.backward(loss);
    expect(Array.from(w.grad!)).toEqual([2, 4]);
    expect(() => ml.backward(loss)).toThrow(/already used/);
  });

  it('accumulates gradients across uses and backwards; noGrad records nothing', () => {
    const w = ml.tensor([3], [1], { requiresGrad: true });
    ml.backward(ml.sum(ml.add(ml.mul(w, w), w)));
    expect(Array.from(w.grad!)).toEqual([7]);
    ml.backward(ml.sum(ml.mul(w, 2)));
    expect(Array.from(w.grad!)).toEqual([9]);
    const y = ml.noGrad(() => ml.mul(w, w));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
  });

  it('disposeGraph returns intermediates and marks them disposed, leaving leaves intact', () => {
    const w = ml.tensor([1, 2, 3], [3], { requiresGrad: true });
    const hidden = ml.relu(ml.mul(w, 2));
    const loss = ml.sum(hidden);
    ml.backward(loss);
    ml.disposeGraph(loss);
    expect(hidden.disposed).toBe(true);
    expect(() => hidden.data).toThrow(/disposed/);
    expect(ml.toArray(w)).toEqual([1, 2, 3]);
    expect(Array.from(w.grad!)).toEqual([2, 2, 2]);
  });
});

describe('dtypes', () => {
  it('encodes known f16 bit patterns, rounding to nearest even', () => {
    expect(dtype.float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(dtype.float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(dtype.float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(dtype.float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(dtype.float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(dtype.float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(dtype.float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(dtype.float16BitsToFloat32(0x3555)).toBeCloseTo(0.33325, 5);
    expect(Number.isNaN(dtype.float16BitsToFloat32(dtype.float32ToFloat16Bits(Number.NaN)))).toBe(true);
  });

  it('round-trips f16 exactly for every finite half value', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      const value = dtype.float16BitsToFloat32(bits);
      const back = dtype.float32ToFloat16Bits(value);
      // +0 and -0 keep their sign bits.
      if (back !== bits) expect.fail(`0x${bits.toString(16)} -> ${value} -> 0x${back.toString(16)}`);
    }
  });

  it('tensor storage conversion agrees bit for bit with the safetensors codecs', () => {
    const random = new Random(9);
    const values = Float32Array.from({ length: 5000 }, (_, i) =>
      i % 2 ? random.normal() * 10 ** random.nextInt(6) : random.normal() * 1e-5,
    );
    values.set([0, -0, 65504, 65520, 1e-8, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], 0);
    const tensor = ml.fromData(values, [values.length]);
    expect(Array.from(ml.toDtype(tensor, 'f16').storage)).toEqual(
      Array.from(ml.float32ToFloat16Bits(values)),
    );
    expect(Array.from(ml.toDtype(tensor, 'bf16').storage)).toEqual(
      Array.from(ml.float32ToBfloat16Bits(values)),
    );
    const halves = Uint16Array.from({ length: 0x7c00 }, (_, i) => i);
    expect(Array.from(ml.decodeStorage(halves, 'f16'))).toEqual(Array.from(ml.float16BitsToFloat32(halves)));
  });

  it('has one f16 / bf16 implementation: safetensors and the package re-export dtype.ts', () => {
    const homes = [
      [codecs.float32ToFloat16Bits, safetensors.float32ToFloat16Bits, ml.float32ToFloat16Bits],
      [codecs.float16BitsToFloat32, safetensors.float16BitsToFloat32, ml.float16BitsToFloat32],
      [codecs.float32ToBfloat16Bits, safetensors.float32ToBfloat16Bits, ml.float32ToBfloat16Bits],
      [codecs.bfloat16BitsToFloat32, safetensors.bfloat16BitsToFloat32, ml.bfloat16BitsToFloat32],
    ] as const;
    for (const [own, fromSafetensors, fromPackage] of homes) {
      expect(typeof own).toBe('function');
      expect(fromSafetensors).toBe(own);
      expect(fromPackage).toBe(own);
    }
  });

  it('encodes bf16 as the rounded high half of f32', () => {
    expect(dtype.float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(dtype.float32ToBfloat16Bits(-3.5)).toBe(0xc060);
    expect(dtype.bfloat16BitsToFloat32(0x4049)).toBeCloseTo(3.140625, 6);
    expect(dtype.float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(dtype.float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it('converts tensors between dtypes (views included) and quantises i8 symmetrically', () => {
    const random = new Random(3);
    const values = Float32Array.from({ length: 24 }, () => random.normal());
    const t = ml.transpose(ml.fromData(values, [4, 6]));
    for (const dtype of ['f16', 'bf16'] as const) {
      const stored = ml.toDtype(t, dtype);
      expect(stored.dtype).toBe(dtype);
      expect(stored.storage).toBeInstanceOf(Uint16Array);
      expectClose(ml.toArray(stored), ml.toArray(t), dtype === 'f16' ? 1e-3 : 8e-3);
      expectClose(ml.toArray(ml.toDtype(stored, 'f32')), ml.toArray(stored), 0);
    }
    const i8 = ml.toDtype(ml.tensor([1.4, -2.6, 300, -300]), 'i8');
    expect(Array.from(i8.storage)).toEqual([1, -3, 127, -128]);
    const { quantized, scale } = ml.quantizeInt8(values);
    expectClose(ml.dequantizeInt8(quantized, scale), values, scale);
  });
});
