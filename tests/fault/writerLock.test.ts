/**
 * One writer per event log and per checkpoint key: a second writer in this process or in a child
 * process is refused with FileLocked naming the holder (pid@host) and the lock file; a lock left
 * by a dead process of this host is taken over; a lock held on another host is refused.
 *
 * The child (fixtures/lockHolder.mjs) runs on the compiled library in dist/, so this needs
 * `npm run build` first, as crashSafety.test.ts does.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FileLocked } from '../../src/fault/index.js';
import { DirectoryCheckpointStore, FileEventStore, isFileLocked } from '../../src/fault/index.js';
import { acquireWriterLock, parseLock } from '../../src/fault/internal/WriterLock.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const holderScript = join(here, 'fixtures', 'lockHolder.mjs');
const compiled = join(here, '..', '..', 'dist', 'src', 'fault', 'index.js');

let root: string;
let counter = 0;
const children: ChildProcess[] = [];
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-lock-'));
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const freshPath = () => join(root, `target-${counter++}`);

/** Starts the child and resolves with it and its first line, bounded in time. */
function startChild(args: string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [holderScript, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('lock holder child said nothing in 15 s')), 15_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ child, line });
    });
    child.once('error', reject);
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const deadPid = 2147483646; // beyond any pid_max: no such process

describe('writer lock', () => {
  it('has the compiled library the child needs (run `npm run build` first)', () => {
    expect(existsSync(compiled), `${compiled} is missing: run npm run build`).toBe(true);
  });

  it('writes pid and host into the lock file and removes it on release', async () => {
    const path = freshPath();
    const release = await acquireWriterLock(path);
    expect(parseLock(await readFile(`${path}.lock`, 'utf8'))).toEqual({ pid: process.pid, host: hostname() });
    await release();
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('refuses a second writer in this process, naming the holder and the lock file', async () => {
    const path = freshPath();
    const release = await acquireWriterLock(path);
    const error = (await acquireWriterLock(path).catch((caught) => caught)) as FileLocked;
    expect(isFileLocked(error)).toBe(true);
    expect([error.holderPid, error.holderHost, error.lockPath]).toEqual([
      process.pid,
      hostname(),
      `${path}.lock`,
    ]);
    expect(error.message).toContain(`${process.pid}@${hostname()}`);
    expect(error.message).toContain(`${path}.lock`);
    await release();
    const again = await acquireWriterLock(path);
    await again();
  });

  it('takes over a stale lock of a dead process of this host (new and old lock formats)', async () => {
    for (const contents of [
      JSON.stringify({ pid: deadPid, host: hostname() }),
      String(deadPid),
      '',
      '{"pid":',
    ]) {
      const path = freshPath();
      await writeFile(`${path}.lock`, contents);
      const release = await acquireWriterLock(path);
      expect(parseLock(await readFile(`${path}.lock`, 'utf8'))?.pid).toBe(process.pid);
      await release();
    }
  });

  it('refuses a lock held on another host, whose process it cannot check', async () => {
    const path = freshPath();
    await writeFile(`${path}.lock`, JSON.stringify({ pid: deadPid, host: 'some-other-host' }));
    const error = (await acquireWriterLock(path).catch((caught) => caught)) as FileLocked;
    expect(isFileLocked(error) && error.holder).toBe(`${deadPid}@some-other-host`);
    expect(error.message).toMatch(/another host/);
    expect(error.message).toContain(`remove ${path}.lock`);
    expect(existsSync(`${path}.lock`)).toBe(true);
  });

  it('of two writers racing for one stale lock, exactly one gets it', async () => {
    for (let round = 0; round < 20; round++) {
      const path = freshPath();
      await writeFile(`${path}.lock`, JSON.stringify({ pid: deadPid, host: hostname() }));
      const results = await Promise.allSettled([acquireWriterLock(path), acquireWriterLock(path)]);
      const held = results.filter((result) => result.status === 'fulfilled');
      expect(held).toHaveLength(1);
      const refused = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
      expect(isFileLocked(refused.reason)).toBe(true);
      await (held[0] as PromiseFulfilledResult<() => Promise<void>>).value();
    }
  });
});

describe('one writer per store', () => {
  it('FileEventStore: a child process is refused while this process has the log open, naming pid@host', async () => {
    const path = `${freshPath()}.zlog`;
    const store = await FileEventStore.open(path);
    const { line } = await startChild(['events', path]);
    expect(line).toMatch(/^refused /);
    expect(line).toContain(`${process.pid}@${hostname()}`);
    await store.close();
  });

  it('FileEventStore: this process is refused while a child holds the log; after the child is killed, the stale lock is taken over', async () => {
    const path = `${freshPath()}.zlog`;
    const { child, line } = await startChild(['events', path]);
    expect(line).toBe('held');
    const error = (await FileEventStore.open(path).catch((caught) => caught)) as FileLocked;
    expect(isFileLocked(error) && error.holder).toBe(`${child.pid}@${hostname()}`);
    await killed(child);
    const store = await FileEventStore.open(path);
    await store.append('s', [{ type: 'after' }], 'any');
    await store.close();
  });

  it('DirectoryCheckpointStore: a second store writing a key is refused, in this process and in a child', async () => {
    const directory = freshPath();
    const store = new DirectoryCheckpointStore(directory);
    await store.save('model', Buffer.from('one'));
    const sameProcess = new DirectoryCheckpointStore(directory);
    const error = (await sameProcess
      .save('model', Buffer.from('two'))
      .catch((caught) => caught)) as FileLocked;
    expect(isFileLocked(error)).toBe(true);
    expect([error.path, error.lockPath]).toEqual([join(directory, 'model'), join(directory, '.model.lock')]);
    await expect(sameProcess.prune('model', 1)).rejects.toSatisfy(isFileLocked);
    expect((await sameProcess.loadLatest('model'))?.payload.toString()).toBe('one'); // reading needs no lock
    await sameProcess.save('other-key', Buffer.from('fine')); // keys are locked one by one
    const { line } = await startChild(['checkpoints', directory, 'model']);
    expect(line).toMatch(/^refused /);
    expect(line).toContain(`${process.pid}@${hostname()}`);
    await store.close();
    await sameProcess.close();
    expect((await sameProcess.save('model', Buffer.from('two'))).sequence).toBe(2);
    await sameProcess.close();
  });

  it('DirectoryCheckpointStore: the lock of a killed child is taken over', async () => {
    const directory = freshPath();
    const { child, line } = await startChild(['checkpoints', directory, 'model']);
    expect(line).toBe('held');
    const store = new DirectoryCheckpointStore(directory);
    const error = (await store.save('model', Buffer.from('x')).catch((caught) => caught)) as FileLocked;
    expect(isFileLocked(error) && error.holder).toBe(`${child.pid}@${hostname()}`);
    await killed(child);
    expect((await store.save('model', Buffer.from('mine'))).sequence).toBe(2);
    await store.close();
  });
});
