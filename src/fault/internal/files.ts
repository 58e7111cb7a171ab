import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Flushes a directory's entries (a rename or a new file) to stable storage. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `buffer` at `position`, looping over short writes. */
export async function writeFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, position + written);
    if (bytesWritten <= 0) throw new Error(`short write: 0 bytes at offset ${position + written}`);
    written += bytesWritten;
  }
}

/** Reads `length` bytes from the start of the file. */
export async function readFully(handle: FileHandle, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let read = 0;
  while (read < length) {
    const { bytesRead } = await handle.read(buffer, read, length - read, read);
    if (bytesRead === 0) return buffer.subarray(0, read); // the file shrank under us
    read += bytesRead;
  }
  return buffer;
}

/** Opens `path` for reading and writing, creating it (and syncing its directory) if missing. */
export async function openOrCreate(path: string): Promise<{ handle: FileHandle; created: boolean }> {
  try {
    return { handle: await open(path, 'r+'), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const handle = await open(path, 'wx+');
  await syncDirectory(dirname(path));
  return { handle, created: true };
}
