import * as zlib from 'node:zlib';

/**
 * CRC-32 (IEEE 802.3, the one of zlib, gzip and PNG). Node's native `zlib.crc32` exists from
 * Node 20.15 on; older Node 20 releases get the table-driven version below, which computes the
 * same values, so logs written by either are read by both.
 */
export const crc32: (data: Uint8Array, previous?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data, previous = 0) =>
        (zlib as unknown as { crc32(data: Uint8Array, value: number): number }).crc32(data, previous)
    : crc32Portable;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let index = 0; index < 256; index++) {
    let value = index;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    table[index] = value >>> 0;
  }
  return table;
})();

/** Table-driven CRC-32, for Node releases without `zlib.crc32`; `previous` continues a CRC. */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let index = 0; index < data.length; index++) crc = TABLE[(crc ^ data[index]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
