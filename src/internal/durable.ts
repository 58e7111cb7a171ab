/**
 * Durable file writes, below every layer (imports nothing of zbmd): the one place that writes a
 * file so that a crash leaves either the old contents or the whole new ones, never a torn file.
 *
 * `writeFileDurably` writes the bytes to a temporary file in the target's directory, looping
 * over short writes (a write that reports 0 bytes is a `ShortWrite`, not an endless loop),
 * fsyncs it, publishes it under the final name (a rename that replaces, or a hard link that never
 * replaces), fsyncs the directory so the new name itself is durable, and removes the temporary
 * file if anything before publishing fails. The checkpoint store, training checkpoints, saved
 * models, and the safetensors and IDX writers all use it.
 */
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { guardOf, TaggedError } from './errors.js';

/** The part of a file handle that a durable write uses (a `FileHandle` is one). */
export interface WritableFile {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** A write reported 0 bytes written before the data was all out (a full or failing device). */
export class ShortWrite extends TaggedError('ShortWrite') {
  constructor(
    /** The file written, when known. */
    readonly path: string | undefined,
    /** The file offset at which the write stalled. */
    readonly position: number,
    /** Bytes still to write from there. */
    readonly remaining: number,
  ) {
    super(
      `short write${path === undefined ? '' : ` to ${path}`}: 0 bytes written at offset ${position} with ${remaining} to go; is the disk full or failing?`,
    );
  }
}

export const isShortWrite = guardOf(ShortWrite);

/** A never-replace publish found a file already under the final name (it is kept as it is). */
export class PublishTargetExists extends TaggedError('PublishTargetExists') {
  constructor(readonly path: string) {
    super(`${path} already exists and is not replaced`);
  }
}

export const isPublishTargetExists = guardOf(PublishTargetExists);

/** Writes all of `data` at `position`, looping over short writes; 0 bytes written is a `ShortWrite`. */
export async function writeFully(
  file: WritableFile,
  data: Uint8Array,
  position: number,
  path?: string,
): Promise<void> {
  let written = 0;
  while (written < data.byteLength) {
    const { bytesWritten } = await file.write(data, written, data.byteLength - written, position + written);
    if (!(bytesWritten > 0)) throw new ShortWrite(path, position + written, data.byteLength - written);
    written += bytesWritten;
  }
}

/**
 * Flushes a directory's entries (a rename, a new or removed file) to stable storage. Platforms
 * that cannot open a directory for fsync (Windows: EISDIR, EPERM; some file systems: EINVAL)
 * make the rename as durable as they can, and the call returns.
 */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw error;
  } finally {
    await handle?.close();
  }
}

export interface DurableWriteOptions {
  /**
   * `replace` (the default): a rename, replacing a file already under the name, atomically.
   * `never-replace`: a hard link, which fails with `PublishTargetExists` where a file is already
   * there (that file is kept); file systems without hard links get a rename.
   */
  readonly publish?: 'replace' | 'never-replace';
  /** The temporary file's path, in the target's directory; default `.<name>.<random>.tmp` beside it. */
  readonly temporary?: string;
  /** Opens the temporary file for writing (exclusive create); tests pass a faulty one. */
  readonly openFile?: (path: string) => Promise<WritableFile>;
}

/**
 * Writes `data` (one buffer or several, written in order) to `path` durably and atomically, as
 * the module comment describes, and returns the number of bytes written. On failure before the
 * file is published, the temporary file is removed and a file already at `path` is untouched.
 */
export async function writeFileDurably(
  path: string,
  data: Uint8Array | readonly Uint8Array[],
  options: DurableWriteOptions = {},
): Promise<number> {
  const directory = dirname(path);
  const temporary =
    options.temporary ?? join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const chunks = data instanceof Uint8Array ? [data] : data;
  const file = await (options.openFile ?? openExclusive)(temporary);
  let bytes = 0;
  try {
    for (const chunk of chunks) {
      await writeFully(file, chunk, bytes, temporary);
      bytes += chunk.byteLength;
    }
    await file.sync();
  } catch (error) {
    await file.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await file.close();
  await publish(temporary, path, options.publish ?? 'replace');
  await syncDirectory(directory);
  return bytes;
}

async function openExclusive(path: string): Promise<WritableFile> {
  return open(path, 'wx');
}

async function publish(temporary: string, final: string, mode: 'replace' | 'never-replace'): Promise<void> {
  if (mode === 'replace') {
    try {
      await rename(temporary, final);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    return;
  }
  try {
    await link(temporary, final);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      await unlink(temporary).catch(() => undefined);
      throw new PublishTargetExists(final);
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    await publish(temporary, final, 'replace');
    return;
  }
  await unlink(temporary);
}
