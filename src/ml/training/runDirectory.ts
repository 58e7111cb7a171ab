/**
 * The checkpoint directory of a run: created without `mkdir -p` (Node's recursive mkdir spins
 * for ever under /proc), locked against a second writer, and claimed by a new run only when it
 * holds no run, or when told to start over (`fresh`).
 */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { acquireWriterLock, isFileLocked } from '../../fault/internal/WriterLock.js';
import { MANIFEST_FILE } from './checkpointFiles.js';
import { TrainingError } from './errors.js';

/** The lock file of a run directory is `<checkpointDir>/train.lock`. */
export const RUN_LOCK_NAME = 'train';
/** Deepest directory created (a path longer than this is refused, not walked). */
const MAX_PATH_DEPTH = 256;

/** Creates `directory` and its missing parents one level at a time; `field` names the option in errors. */
export async function makeDirectory(directory: string, field: string): Promise<void> {
  const absolute = resolve(directory);
  const chain: string[] = [];
  for (let path = absolute; chain.length <= MAX_PATH_DEPTH; path = dirname(path)) {
    chain.unshift(path);
    if (dirname(path) === path) break;
  }
  if (chain.length > MAX_PATH_DEPTH)
    throw new TrainingError(
      'invalid_config',
      `${field} ${directory}: more than ${MAX_PATH_DEPTH} levels deep`,
    );
  for (const path of chain) {
    const found = await stat(path).catch((error: NodeJS.ErrnoException) => error);
    if (!(found instanceof Error)) {
      if (!found.isDirectory()) throw unusable(field, directory, `${path} is not a directory`);
      continue;
    }
    if (found.code !== 'ENOENT') throw unusable(field, directory, found.message);
    try {
      await mkdir(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw unusable(field, directory, (error as Error).message);
    }
  }
}

function unusable(field: string, directory: string, why: string): TrainingError {
  return new TrainingError(
    'invalid_config',
    `${field} ${directory} cannot be used: ${why}; choose a writable directory`,
  );
}

/**
 * Takes the writer lock of a run directory (creating it, unless `resume`: then it must exist);
 * resolves to the release. A lock held
 * by a live process is refused with `checkpoint_locked`, naming the holder.
 */
export async function lockRunDirectory(directory: string, resume = false): Promise<() => Promise<void>> {
  // Resuming from a directory that is not there: say so, and create nothing.
  if (
    resume &&
    !(await stat(directory).then(
      (found) => found.isDirectory(),
      () => false,
    ))
  )
    throw new TrainingError('no_checkpoint', `${directory} is not a directory holding a run to resume`);
  await makeDirectory(directory, 'checkpointDir');
  try {
    return await acquireWriterLock(join(directory, RUN_LOCK_NAME));
  } catch (error) {
    if (!isFileLocked(error)) throw unusable('checkpointDir', directory, (error as Error).message);
    throw new TrainingError(
      'checkpoint_locked',
      `${directory} is in use by another run (${error.message}); wait for it to end, or use another --checkpoint-dir`,
      { cause: error },
    );
  }
}

/** The files of a run in `directory`: its manifest, tensor files and metrics (none: empty). */
async function runFilesIn(directory: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names.filter(
    (name) =>
      name === MANIFEST_FILE || name === 'metrics.jsonl' || /^checkpoint-\d{10}\.safetensors$/.test(name),
  );
}

/**
 * A new run needs a directory without a run: one that holds a run is refused (`run_exists`)
 * unless `fresh` says to delete that run's files (and only those).
 */
export async function claimDirectory(directory: string, fresh: boolean): Promise<void> {
  const ours = await runFilesIn(directory);
  if (ours.length === 0) return;
  if (!fresh) {
    throw new TrainingError(
      'run_exists',
      `${directory} holds a run (${ours.includes(MANIFEST_FILE) ? MANIFEST_FILE : ours[0]}); ` +
        'continue it with --resume (resume: true), or start over with --fresh (fresh: true, deletes its ' +
        'checkpoints and metrics) or another --checkpoint-dir',
    );
  }
  for (const name of ours) await unlink(join(directory, name));
}
