import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { guardOf, TaggedError } from '../../internal/errors.js';

/** Who holds a writer lock, as its lock file says. */
export interface LockHolder {
  readonly pid: number;
  /** `os.hostname()` of the holder; `undefined` for a lock written before hosts were recorded. */
  readonly host: string | undefined;
}

/**
 * Another live process (or another open store in this one) holds the writer lock of a file, or a
 * process on another host does (whose liveness cannot be checked from here).
 */
export class FileLocked extends TaggedError('FileLocked') {
  /** The lock file. */
  readonly lockPath: string;
  constructor(
    readonly path: string,
    readonly holderPid: number,
    readonly holderHost: string | undefined = undefined,
    lockPath: string = `${path}.lock`,
  ) {
    super(lockedMessage(path, holderPid, holderHost, lockPath));
    this.lockPath = lockPath;
  }

  /** `pid@host` of the holder. */
  get holder(): string {
    return `${this.holderPid}@${this.holderHost ?? 'unknown host'}`;
  }
}

function lockedMessage(path: string, pid: number, host: string | undefined, lockPath: string): string {
  const holder = `${pid}@${host ?? 'unknown host'}`;
  if (pid === process.pid && (host === undefined || host === hostname()))
    return `${path} is already open for writing in this process (${holder}, lock ${lockPath}); close it first`;
  if (host !== undefined && host !== hostname()) {
    return `${path} is locked for writing by process ${holder} on another host (lock ${lockPath}); one writer at a time. If that process is gone, remove ${lockPath}`;
  }
  return `${path} is open for writing by live process ${holder} (lock ${lockPath}); one writer at a time`;
}

export const isFileLocked = guardOf(FileLocked);

export interface WriterLockOptions {
  /** The lock file; default `<path>.lock`. */
  readonly lockPath?: string;
}

/** Lock files this process holds (so a second open in the same process is refused too). */
const heldHere = new Set<string>();

/** Most attempts to take a lock whose stale holder keeps being replaced; then `FileLocked`. */
const MAX_ATTEMPTS = 4;

/**
 * A writer lock on `path`: the file `<path>.lock` (or `options.lockPath`) holding `{"pid":…,"host":…}` of the owner. The
 * file appears whole (written under a temporary name, then hard-linked into place, which fails if
 * a lock is there), so nobody reads a half-written lock.
 *
 * A lock whose holder is a process of this host that no longer exists (killed, crashed) is stale
 * and taken over; a lock of a live process, or of another host (whose processes cannot be checked
 * from here), is refused with `FileLocked` naming the holder (`pid@host`) and the lock file. A
 * lock file holding only a pid (older zbmd) is taken as this host's. Node has no portable flock,
 * so this guards against a second writer started by mistake, not against a hostile one; a pid
 * reused by an unrelated live process keeps a stale lock held until that process ends.
 *
 * Resolves to the release function.
 */
export async function acquireWriterLock(
  path: string,
  options: WriterLockOptions = {},
): Promise<() => Promise<void>> {
  const lockPath = options.lockPath ?? `${path}.lock`;
  const contents = `${JSON.stringify({ pid: process.pid, host: hostname() })}\n`;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (await createLockFile(lockPath, contents)) {
      heldHere.add(lockPath);
      return async () => {
        heldHere.delete(lockPath);
        await unlink(lockPath).catch(() => {});
      };
    }
    const seen = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (seen === undefined) continue; // released meanwhile: try again
    const holder = parseLock(seen);
    if (holder !== undefined && !isStale(holder, lockPath)) {
      throw new FileLocked(path, holder.pid, holder.host, lockPath);
    }
    await removeStale(lockPath, seen);
  }
  throw new FileLocked(path, -1, undefined, lockPath);
}

/** Creates the lock file with `contents`; false when a lock file is there already. */
async function createLockFile(lockPath: string, contents: string): Promise<boolean> {
  const temporary = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeNew(temporary, contents);
  try {
    await link(temporary, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    // No hard links on this file system: create the lock file exclusively instead.
    try {
      await writeNew(lockPath, contents);
      return true;
    } catch (exclusive) {
      if ((exclusive as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw exclusive;
    }
  } finally {
    await unlink(temporary).catch(() => {});
  }
}

async function writeNew(path: string, contents: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(contents);
  } finally {
    await handle.close();
  }
}

/** The holder named by a lock file; `undefined` when it names none (a torn or foreign file). */
export function parseLock(text: string): LockHolder | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed), host: undefined };
  try {
    const parsed = JSON.parse(trimmed) as { pid?: unknown; host?: unknown };
    if (!Number.isSafeInteger(parsed.pid) || (parsed.pid as number) <= 0) return undefined;
    if (typeof parsed.host !== 'string' || parsed.host.length === 0) return undefined;
    return { pid: parsed.pid as number, host: parsed.host };
  } catch {
    return undefined;
  }
}

function isStale(holder: LockHolder, lockPath: string): boolean {
  if (holder.host !== undefined && holder.host !== hostname()) return false; // cannot tell: keep it
  if (holder.pid === process.pid) return !heldHere.has(lockPath);
  return !isAlive(holder.pid);
}

/**
 * Removes a stale lock file, but only the one judged stale: it is first renamed aside (atomic,
 * so of two processes taking over, one gets it) and put back if it turns out to be a fresh lock
 * another process made in between.
 */
async function removeStale(lockPath: string, staleContents: string): Promise<void> {
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // someone else moved it first
  }
  const moved = await readFile(aside, 'utf8').catch(() => staleContents);
  if (moved !== staleContents) await link(aside, lockPath).catch(() => {});
  await unlink(aside).catch(() => {});
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
