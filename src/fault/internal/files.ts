import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDirectory } from '../../internal/durable.js';

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
