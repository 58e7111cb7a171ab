import fc from 'fast-check';

/**
 * Mutations of a valid file, for fuzzing its reader: bit flips, byte overwrites, truncations,
 * insertions, deletions, and edits of the file's length fields (where the format keeps them).
 * Positions are fractions of the current length, so one mutation list applies to any file.
 */
export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'field'; readonly field: number; readonly value: FieldValue };

/** A length field of the format: where it is and how wide (little- or big-endian). */
export interface LengthField {
  readonly offset: number;
  readonly bytes: 4 | 8;
  readonly endian: 'le' | 'be';
}

/** What to write into a length field: a value near the current one, or one at a boundary. */
export type FieldValue =
  | { readonly kind: 'delta'; readonly delta: number }
  | { readonly kind: 'bit'; readonly bit: number }
  | { readonly kind: 'absolute'; readonly value: bigint };

const position = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

const fieldValue: fc.Arbitrary<FieldValue> = fc.oneof(
  fc.record({ kind: fc.constant('delta' as const), delta: fc.integer({ min: -16, max: 16 }) }),
  fc.record({ kind: fc.constant('bit' as const), bit: fc.integer({ min: 0, max: 63 }) }),
  fc.record({
    kind: fc.constant('absolute' as const),
    value: fc.constantFrom(0n, 1n, 0x7fffffffn, 0xffffffffn, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n),
  }),
);

export function mutationArbitrary(fieldCount: number): fc.Arbitrary<Mutation> {
  const kinds: fc.Arbitrary<Mutation>[] = [
    fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: position }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), at: position, count: fc.integer({ min: 1, max: 16 }) }),
  ];
  if (fieldCount > 0) {
    const field = fc.record({
      kind: fc.constant('field' as const),
      field: fc.integer({ min: 0, max: fieldCount - 1 }),
      value: fieldValue,
    });
    kinds.push(field, field); // length fields are what readers trust most: edit them often
  }
  return fc.oneof(...kinds);
}

/** One to three mutations. */
export function mutationsArbitrary(fieldCount: number): fc.Arbitrary<Mutation[]> {
  return fc.array(mutationArbitrary(fieldCount), { minLength: 1, maxLength: 3 });
}

export function mutate(
  file: Uint8Array,
  mutations: readonly Mutation[],
  fields: readonly LengthField[],
): Buffer {
  let bytes: Buffer = Buffer.from(file);
  for (const mutation of mutations) bytes = applyOne(bytes, mutation, fields);
  return bytes;
}

function applyOne(bytes: Buffer, mutation: Mutation, fields: readonly LengthField[]): Buffer {
  const index = (at: number) => Math.floor(at * bytes.length);
  switch (mutation.kind) {
    case 'flip': {
      if (bytes.length === 0) return bytes;
      bytes[index(mutation.at)] ^= 1 << mutation.bit;
      return bytes;
    }
    case 'set': {
      if (bytes.length === 0) return bytes;
      bytes[index(mutation.at)] = mutation.value;
      return bytes;
    }
    case 'truncate':
      return bytes.subarray(0, index(mutation.at));
    case 'insert': {
      const at = index(mutation.at);
      return Buffer.concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
    }
    case 'delete': {
      const at = index(mutation.at);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.count)]);
    }
    case 'field':
      return editField(bytes, fields[mutation.field], mutation.value);
  }
}

function editField(bytes: Buffer, field: LengthField | undefined, value: FieldValue): Buffer {
  if (field === undefined || field.offset + field.bytes > bytes.length) return bytes;
  const bits = BigInt(field.bytes * 8);
  const mask = (1n << bits) - 1n;
  const current = readField(bytes, field);
  let next: bigint;
  if (value.kind === 'delta') next = (current + BigInt(value.delta)) & mask;
  else if (value.kind === 'bit') next = (current ^ (1n << BigInt(value.bit % Number(bits)))) & mask;
  else next = value.value & mask;
  writeField(bytes, field, next);
  return bytes;
}

function readField(bytes: Buffer, field: LengthField): bigint {
  if (field.bytes === 8)
    return field.endian === 'le' ? bytes.readBigUInt64LE(field.offset) : bytes.readBigUInt64BE(field.offset);
  return BigInt(field.endian === 'le' ? bytes.readUInt32LE(field.offset) : bytes.readUInt32BE(field.offset));
}

function writeField(bytes: Buffer, field: LengthField, value: bigint): void {
  if (field.bytes === 8) {
    if (field.endian === 'le') bytes.writeBigUInt64LE(value, field.offset);
    else bytes.writeBigUInt64BE(value, field.offset);
  } else if (field.endian === 'le') bytes.writeUInt32LE(Number(value), field.offset);
  else bytes.writeUInt32BE(Number(value), field.offset);
}

/**
 * The outcome of reading one input: its data, or a typed error. Anything else (a TypeError or
 * RangeError from inside, an untyped Error) is a failure of the reader, reported with the input.
 */
export function describeInput(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.subarray(0, 96)).toString('hex');
  return `${bytes.length} bytes: ${hex}${bytes.length > 96 ? '...' : ''}`;
}
