import * as zlib from 'node:zlib';

/**
 * CRC-32 (IEEE 802.3, the one of zlib, gzip and PNG) from `node:zlib`. Node's `zlib.crc32`
 * exists from Node 20.15 on; the package supports Node >= 20, so on an older 20.x release the
 * table-driven `crc32Portable` below is used instead. The choice is made once, when this module
 * loads; both compute the same values, so logs written by either are read by both.
 */
const native = (zlib as Partial<Pick<typeof zlib, 'crc32'>>).crc32;

/** True when `crc32` is Node's native `zlib.crc32` (Node >= 20.15), false on the fallback. */
export const crc32IsNative: boolean = typeof native === 'function';

/** CRC-32 of `data`; `previous` continues a CRC over data that came before. */
export const crc32: (data: Uint8Array, previous?: number) => number =
  typeof native === 'function' ? (data, previous = 0) => native(data, previous) : crc32Portable;

let table: Uint32Array | undefined;

/** The fallback's table, built on first use (never, where `zlib.crc32` exists and is used). */
function crcTable(): Uint32Array {
  if (table !== undefined) return table;
  table = new Uint32Array(256);
  for (let index = 0; index < 256; index++) {
    let value = index;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    table[index] = value >>> 0;
  }
  return table;
}

/** Table-driven CRC-32, for Node releases without `zlib.crc32`; `previous` continues a CRC. */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  const lookup = crcTable();
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let index = 0; index < data.length; index++) crc = lookup[(crc ^ data[index]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
