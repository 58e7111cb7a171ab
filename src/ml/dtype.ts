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

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** Rounds one f32 value to IEEE binary16 bits (round to nearest even, overflow to infinity). */
export function float32ToFloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfMantissa = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const roundUp = remainder > halfway || (remainder === halfway && (halfMantissa & 1) === 1);
    return sign | (halfMantissa + (roundUp ? 1 : 0));
  }
  const halfMantissa = mantissa >>> 13;
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (halfMantissa & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent (and may reach infinity).
  return (sign | (halfExponent << 10) | halfMantissa) + (roundUp ? 1 : 0);
}

/** Decodes IEEE binary16 bits to a number. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Rounds one f32 value to bfloat16 bits (the high half of the f32, round to nearest even). */
export function float32ToBfloat16Bits(value: number): number {
  scratchFloat[0] = value;
  const bits = scratchBits[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bfloat16BitsToFloat32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0];
}

/** Converts f32 values to `dtype` storage. i8 rounds to the nearest integer and saturates. */
export function encodeStorage(values: Float32Array, dtype: Dtype): Storage {
  switch (dtype) {
    case 'f32':
      return values.slice();
    case 'f16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]);
      return out;
    }
    case 'bf16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = float32ToBfloat16Bits(values[i]);
      return out;
    }
    case 'i8': {
      const out = new Int8Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = Math.max(-128, Math.min(127, Math.round(values[i])));
      return out;
    }
  }
}

/** Converts `dtype` storage back to f32 values. */
export function decodeStorage(storage: Storage, dtype: Dtype): Float32Array {
  const out = new Float32Array(storage.length);
  if (dtype === 'f16') for (let i = 0; i < storage.length; i++) out[i] = float16BitsToFloat32(storage[i]);
  else if (dtype === 'bf16')
    for (let i = 0; i < storage.length; i++) out[i] = bfloat16BitsToFloat32(storage[i]);
  else out.set(storage);
  return out;
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
