import { open, readFile, unlink } from 'node:fs/promises';

/** Another live process (or another open store in this one) holds the writer lock of a file. */
export class FileLocked extends Error {
  readonly _tag = 'FileLocked';
  constructor(
    readonly path: string,
    readonly holderPid: number,
  ) {
    super(
      holderPid === process.pid
        ? `${path} is already open in this process; close it first`
        : `${path} is open for writing by process ${holderPid}; one writer at a time`,
    );
    this.name = 'FileLocked';
  }
}

export function isFileLocked(error: unknown): error is FileLocked {
  return error instanceof FileLocked;
}

/** Lock files this process holds (so a second open in the same process is refused too). */
const heldHere = new Set<string>();

/**
 * A writer lock: `<path>.lock` holding the owner's pid, created with O_EXCL. A lock left by a
 * process that no longer exists (killed, crashed) is stale and taken over. Node has no portable
 * flock, so this guards against a second writer started by mistake, not against a hostile one.
 */
export async function acquireWriterLock(path: string): Promise<() => Promise<void>> {
  const lockPath = `${path}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      heldHere.add(lockPath);
      return async () => {
        heldHere.delete(lockPath);
        await unlink(lockPath).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holderPid = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (
      Number.isInteger(holderPid) &&
      isAlive(holderPid) &&
      (holderPid !== process.pid || heldHere.has(lockPath))
    ) {
      throw new FileLocked(path, holderPid);
    }
    await unlink(lockPath).catch(() => {}); // stale: its owner is gone
  }
  throw new FileLocked(path, -1);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
