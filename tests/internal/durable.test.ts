import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WritableFile } from '../../src/internal/durable.js';
import {
  isPublishTargetExists,
  isShortWrite,
  ShortWrite,
  syncDirectory,
  writeFileDurably,
  writeFully,
} from '../../src/internal/durable.js';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-durable-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

/**
 * A real file whose writes go through after `budget` bytes only partly: each write is cut to at
 * most `step` bytes, and once the budget is spent a write reports 0 bytes (a full device) or
 * throws (an I/O error), as `mode` says.
 */
function faultyOpen(budget: number, step: number, mode: 'zero' | 'throw') {
  return async (path: string): Promise<WritableFile> => {
    const handle = await open(path, 'wx');
    let left = budget;
    return {
      async write(buffer, offset, length, position) {
        if (left <= 0) {
          if (mode === 'throw') throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          return { bytesWritten: 0 };
        }
        const cut = Math.min(length, step, left);
        const { bytesWritten } = await handle.write(buffer, offset, cut, position);
        left -= bytesWritten;
        return { bytesWritten };
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  };
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('writeFully', () => {
  it('loops over short writes until all bytes are out', async () => {
    const path = join(directory, 'short');
    const file = await faultyOpen(1_000, 3, 'zero')(path);
    await writeFully(file, bytes('0123456789abcdef'), 4, path);
    await file.close();
    const written = await readFile(path);
    expect(written.subarray(4).toString()).toBe('0123456789abcdef');
  });

  it('turns a write of 0 bytes into a ShortWrite naming the offset, not an endless loop', async () => {
    const path = join(directory, 'stalls');
    const file = await faultyOpen(5, 2, 'zero')(path);
    const failure = await writeFully(file, bytes('0123456789'), 100, path).catch((error: unknown) => error);
    await file.close();
    expect(isShortWrite(failure)).toBe(true);
    expect(failure).toBeInstanceOf(ShortWrite);
    const shortWrite = failure as ShortWrite;
    expect(shortWrite._tag).toBe('ShortWrite');
    expect(shortWrite.name).toBe('ShortWrite');
    expect(shortWrite.path).toBe(path);
    expect(shortWrite.position).toBe(105);
    expect(shortWrite.remaining).toBe(5);
    expect(shortWrite.message).toContain('offset 105');
  });
});

describe('writeFileDurably', () => {
  it('writes the chunks in order and returns the byte count, leaving no temporary file', async () => {
    const path = join(directory, 'out.bin');
    const count = await writeFileDurably(path, [bytes('head:'), bytes(''), bytes('body')]);
    expect(count).toBe(9);
    expect((await readFile(path)).toString()).toBe('head:body');
    expect(await readdir(directory)).toEqual(['out.bin']);
  });

  it('replaces an existing file by default', async () => {
    const path = join(directory, 'out.bin');
    await writeFile(path, 'old contents');
    await writeFileDurably(path, bytes('new'));
    expect((await readFile(path)).toString()).toBe('new');
    expect(await readdir(directory)).toEqual(['out.bin']);
  });

  for (const mode of ['zero', 'throw'] as const) {
    it(`failing mid-write (${mode === 'zero' ? '0 bytes written' : 'an I/O error'}) removes the temporary and keeps the old file`, async () => {
      const path = join(directory, 'model.safetensors');
      await writeFile(path, 'the old, complete file');
      const failure = await writeFileDurably(path, [bytes('a'.repeat(64)), bytes('b'.repeat(64))], {
        openFile: faultyOpen(70, 16, mode),
      }).catch((error: unknown) => error);
      if (mode === 'zero') expect(isShortWrite(failure)).toBe(true);
      else expect((failure as NodeJS.ErrnoException).code).toBe('EIO');
      expect((await readFile(path)).toString()).toBe('the old, complete file');
      expect(await readdir(directory)).toEqual(['model.safetensors']);
    });
  }

  it('uses the temporary name it is given and removes it after a failure', async () => {
    const path = join(directory, 'final');
    const temporary = join(directory, '.final.mine.tmp');
    const seen: string[] = [];
    const failure = await writeFileDurably(path, bytes('0123456789'), {
      temporary,
      openFile: async (name) => {
        seen.push(name);
        return faultyOpen(4, 4, 'zero')(name);
      },
    }).catch((error: unknown) => error);
    expect(seen).toEqual([temporary]);
    expect(isShortWrite(failure)).toBe(true);
    expect(await readdir(directory)).toEqual([]);
  });

  it('never-replace publishes a new name and refuses an existing one, keeping it', async () => {
    const path = join(directory, '0000000000000001.ckpt');
    await writeFileDurably(path, bytes('first'), { publish: 'never-replace' });
    expect((await readFile(path)).toString()).toBe('first');
    const failure = await writeFileDurably(path, bytes('second'), { publish: 'never-replace' }).catch(
      (error: unknown) => error,
    );
    expect(isPublishTargetExists(failure)).toBe(true);
    expect((await readFile(path)).toString()).toBe('first');
    expect(await readdir(directory)).toEqual(['0000000000000001.ckpt']);
  });

  it('fails without a trace when the directory does not exist', async () => {
    const path = join(directory, 'missing', 'out');
    const failure = await writeFileDurably(path, bytes('x')).catch((error: unknown) => error);
    expect((failure as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(await readdir(directory)).toEqual([]);
  });
});

describe('syncDirectory', () => {
  it('syncs a directory and reports one that is missing', async () => {
    await syncDirectory(directory);
    await expect(syncDirectory(join(directory, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
