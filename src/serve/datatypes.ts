/**
 * The Open Inference Protocol datatypes zbmd serves, written once: how each is held in memory,
 * what onnxruntime calls it, and how one JSON value of it is checked and stored.
 */
import { float16BitsToFloat32, float32ToFloat16Bits } from '../ml/dtype.js';

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array | string[];

interface DatatypeInfo {
  /** onnxruntime's name for the type. */
  readonly ort: string;
  /** What a JSON element must be, for the error message. */
  readonly expects: string;
  allocate(length: number): TensorData;
  /** Stores `value` at `index`; false when `value` is not of this type. */
  store(data: TensorData, index: number, value: unknown): boolean;
  /** The JSON values of `data`, flat. */
  toJson(data: TensorData): unknown[];
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function integerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

export const DATATYPES = {
  FP32: {
    ort: 'float32',
    expects: 'a number',
    allocate: (length) => new Float32Array(length),
    store: (data, index, value) => {
      if (typeof value !== 'number') return false;
      (data as Float32Array)[index] = value;
      return true;
    },
    toJson: (data) => Array.from(data as Float32Array),
  },
  FP16: {
    ort: 'float16',
    expects: 'a number',
    allocate: (length) => new Uint16Array(length),
    store: (data, index, value) => {
      if (typeof value !== 'number') return false;
      (data as Uint16Array)[index] = float32ToFloat16Bits(Float32Array.of(value))[0];
      return true;
    },
    toJson: (data) => Array.from(float16BitsToFloat32(data as Uint16Array)),
  },
  INT64: {
    ort: 'int64',
    expects: 'an integer',
    allocate: (length) => new BigInt64Array(length),
    store: (data, index, value) => {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return false;
      (data as BigInt64Array)[index] = BigInt(value);
      return true;
    },
    // Values beyond 2^53 lose precision as JSON numbers; OIP's JSON form has no other way.
    toJson: (data) => Array.from(data as BigInt64Array, Number),
  },
  INT32: {
    ort: 'int32',
    expects: `an integer in [${INT32_MIN}, ${INT32_MAX}]`,
    allocate: (length) => new Int32Array(length),
    store: (data, index, value) => {
      if (!integerIn(value, INT32_MIN, INT32_MAX)) return false;
      (data as Int32Array)[index] = value;
      return true;
    },
    toJson: (data) => Array.from(data as Int32Array),
  },
  UINT8: {
    ort: 'uint8',
    expects: 'an integer in [0, 255]',
    allocate: (length) => new Uint8Array(length),
    store: (data, index, value) => {
      if (!integerIn(value, 0, 255)) return false;
      (data as Uint8Array)[index] = value;
      return true;
    },
    toJson: (data) => Array.from(data as Uint8Array),
  },
  BOOL: {
    ort: 'bool',
    expects: 'true or false',
    allocate: (length) => new Uint8Array(length),
    store: (data, index, value) => {
      if (typeof value !== 'boolean') return false;
      (data as Uint8Array)[index] = value ? 1 : 0;
      return true;
    },
    toJson: (data) => Array.from(data as Uint8Array, (value) => value !== 0),
  },
  BYTES: {
    ort: 'string',
    expects: 'a string',
    allocate: (length) => new Array<string>(length).fill(''),
    store: (data, index, value) => {
      if (typeof value !== 'string') return false;
      (data as string[])[index] = value;
      return true;
    },
    toJson: (data) => [...(data as string[])],
  },
} as const satisfies Record<string, DatatypeInfo>;

export type Datatype = keyof typeof DATATYPES;

export const DATATYPE_NAMES = Object.keys(DATATYPES) as Datatype[];

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && Object.hasOwn(DATATYPES, value);
}

/** The OIP datatype of an onnxruntime type name, or undefined when zbmd does not serve it. */
export function datatypeOfOrt(ort: string): Datatype | undefined {
  return DATATYPE_NAMES.find((name) => DATATYPES[name].ort === ort);
}

/** The rows `[start, end)` of `data` holding `rowSize` elements each. */
export function sliceRows(data: TensorData, start: number, end: number, rowSize: number): TensorData {
  return data.slice(start * rowSize, end * rowSize) as TensorData;
}

/** `parts` one after another, in one array of their type. */
export function concatData(datatype: Datatype, parts: readonly TensorData[]): TensorData {
  if (parts.length === 1) return parts[0];
  const length = parts.reduce((total, part) => total + part.length, 0);
  const out = DATATYPES[datatype].allocate(length);
  let offset = 0;
  for (const part of parts) {
    if (Array.isArray(out))
      for (let index = 0; index < part.length; index++) out[offset + index] = (part as string[])[index];
    else (out as Float32Array).set(part as Float32Array, offset);
    offset += part.length;
  }
  return out;
}
