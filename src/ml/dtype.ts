// The array conversions live with safetensors (byte-exact with the reference); storage reuses them.
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from './safetensors.js';
/**
 * Element types. Every op computes in f32; f16, bf16 and i8 are storage types (for checkpoints,
 * memory-bound inference), converted to and from f32 with the functions below.
 */
export type Dtype = 'f32' | 'f16' | 'bf16' | 'i8';

export type Storage = Float32Array | Uint16Array | Int8Array;

export const DTYPES: readonly Dtype[] = ['f32', 'f16', 'bf16', 'i8'];

export function bytesPerElement(dtype: Dtype): number {
  return dtype === 'f32' ? 4 : dtype === 'i8' ? 1 : 2;
}

/** Converts f32 values to `dtype` storage. i8 rounds to the nearest integer and saturates. */
export function encodeStorage(values: Float32Array, dtype: Dtype): Storage {
  switch (dtype) {
    case 'f32':
      return values.slice();
    case 'f16':
      return float32ToFloat16Bits(values);
    case 'bf16':
      return float32ToBfloat16Bits(values);
    case 'i8': {
      const out = new Int8Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = Math.max(-128, Math.min(127, Math.round(values[i])));
      return out;
    }
  }
}

/** Converts `dtype` storage back to f32 values. */
export function decodeStorage(storage: Storage, dtype: Dtype): Float32Array {
  if (dtype === 'f16') return float16BitsToFloat32(storage as Uint16Array);
  if (dtype === 'bf16') return bfloat16BitsToFloat32(storage as Uint16Array);
  return Float32Array.from(storage);
}

/** Symmetric i8 quantisation: `values ≈ quantized * scale`, scale = max|value| / 127. */
export function quantizeInt8(values: Float32Array): { quantized: Int8Array; scale: number } {
  let maximum = 0;
  for (let i = 0; i < values.length; i++) maximum = Math.max(maximum, Math.abs(values[i]));
  const scale = maximum === 0 ? 1 : maximum / 127;
  const quantized = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++)
    quantized[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scale)));
  return { quantized, scale };
}

export function dequantizeInt8(quantized: Int8Array, scale: number): Float32Array {
  const out = new Float32Array(quantized.length);
  for (let i = 0; i < quantized.length; i++) out[i] = quantized[i] * scale;
  return out;
}
