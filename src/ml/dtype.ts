// The one home of zbmd's element types and of the f32 <-> f16 / bf16 conversions.
import { TensorError } from './errors.js';
/**
 * Element types. Every op computes in f32; f16, bf16 and i8 are storage types (for checkpoints,
 * memory-bound inference), converted to and from f32 with the functions below. i32 holds
 * integer indices and labels (`indexTensor`): the ops that take indices (embedding,
 * crossEntropy's labels, gather, indexSelect, scatter) read it exactly; a float op on it is a
 * `TensorError` `invalid_dtype` (convert with `toDtype(t, 'f32')`).
 */
export type Dtype = 'f32' | 'f16' | 'bf16' | 'i8' | 'i32';

export type Storage = Float32Array | Uint16Array | Int8Array | Int32Array;

export const DTYPES: readonly Dtype[] = ['f32', 'f16', 'bf16', 'i8', 'i32'];

export function bytesPerElement(dtype: Dtype): number {
  return dtype === 'f32' || dtype === 'i32' ? 4 : dtype === 'i8' ? 1 : 2;
}

/** The largest magnitude an i32 holds. */
const INT32_LIMIT = 2 ** 31;

/**
 * f32 -> i32 as PyTorch's `.to(torch.int32)`: truncated toward zero. NaN, infinities and values
 * outside [-2^31, 2^31) are refused (PyTorch leaves them undefined).
 */
function float32ToInt32(values: Float32Array): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = Math.trunc(values[i]);
    if (!(value >= -INT32_LIMIT && value < INT32_LIMIT))
      throw new TensorError(
        'invalid_argument',
        `toDtype i32: element ${i} is ${values[i]}, not a number an int32 can hold`,
      );
    out[i] = value;
  }
  return out;
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
    case 'i32':
      return float32ToInt32(values);
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

// ---------------------------------------------------------------------------------------------
// f16 and bf16 conversions (round to nearest, ties to even), the one implementation: tensor
// storage, safetensors (byte-exact with the reference) and serving use these.

const float32Scratch = new Float32Array(1);
const uint32Scratch = new Uint32Array(float32Scratch.buffer);
let float16Table: Float32Array | undefined;

/** IEEE 754 binary32 -> binary16 bits, one value (round to nearest even; NaN stays NaN, quiet). */
function float32BitsToFloat16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const halfExponent = exponent - 112; // rebias 127 -> 15
  if (halfExponent >= 31) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const half = 1 << (shift - 1);
    const remainder = full & ((1 << shift) - 1);
    let result = full >>> shift;
    if (remainder > half || (remainder === half && (result & 1) === 1)) result++;
    return sign | result;
  }
  let result = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (result & 1) === 1)) result++; // may carry to Inf
  return sign | result;
}

function float16BitsToFloat32Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) {
    uint32Scratch[0] = ((bits & 0x8000) << 16) | 0x7f800000 | (mantissa << 13);
    return float32Scratch[0];
  }
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Converts float32 values to IEEE binary16 bits, rounding to nearest even. */
export function float32ToFloat16Bits(
  values: Float32Array,
  out = new Uint16Array(values.length),
): Uint16Array {
  checkSameLength(values.length, out.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16(bits[i]);
  return out;
}

/** Converts IEEE binary16 bits to float32 values (exact: every half value is a float). */
export function float16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  checkSameLength(bits.length, out.length);
  if (float16Table === undefined) {
    float16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) float16Table[i] = float16BitsToFloat32Value(i);
  }
  const table = float16Table;
  // Copy through 32-bit words so NaN payloads survive exactly.
  const tableWords = new Uint32Array(table.buffer);
  const outWords = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) outWords[i] = tableWords[bits[i]];
  return out;
}

/** Converts float32 values to bfloat16 bits (the top 16 bits), rounding to nearest even. */
export function float32ToBfloat16Bits(
  values: Float32Array,
  out = new Uint16Array(values.length),
): Uint16Array {
  checkSameLength(values.length, out.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    const word = bits[i];
    if ((word & 0x7f800000) === 0x7f800000 && (word & 0x7fffff) !== 0) {
      out[i] = (word >>> 16) | 0x40; // NaN: keep sign and payload top, force quiet
    } else {
      out[i] = (word + 0x7fff + ((word >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** Converts bfloat16 bits to float32 values (exact). */
export function bfloat16BitsToFloat32(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  checkSameLength(bits.length, out.length);
  const outWords = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) outWords[i] = bits[i] << 16;
  return out;
}

function checkSameLength(inputLength: number, outputLength: number): void {
  if (inputLength !== outputLength) {
    throw new RangeError(
      `output has ${outputLength} elements, input ${inputLength}; pass an output of the same length`,
    );
  }
}
