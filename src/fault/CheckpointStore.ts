import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isPublishTargetExists, syncDirectory, writeFileDurably } from '../internal/durable.js';
import { guardOf, TaggedError } from '../internal/errors.js';
import type { CheckpointDefect } from './internal/CheckpointFormat.js';
import { decodeCheckpoint, encodeCheckpoint } from './internal/CheckpointFormat.js';
import { acquireWriterLock } from './internal/WriterLock.js';

export type CheckpointMetadata = Readonly<Record<string, unknown>>;

export interface SavedCheckpoint {
  readonly key: string;
  /** Increases by one with every save under the key, from 1. */
  readonly sequence: number;
  /** Size of the stored file (header + metadata + payload). */
  readonly bytes: number;
}

/** A corrupt or torn checkpoint that was skipped. */
export interface CheckpointCorruption {
  readonly key: string;
  readonly sequence: number;
  readonly location: string;
  readonly defect: CheckpointDefect | 'unreadable';
  readonly detail: string;
}

export interface LoadedCheckpoint {
  readonly key: string;
  readonly sequence: number;
  readonly payload: Buffer;
  readonly metadata: CheckpointMetadata;
  /** Newer checkpoints that failed verification and were passed over, newest first. */
  readonly skipped: readonly CheckpointCorruption[];
}

export interface CheckpointInfo {
  readonly key: string;
  readonly sequence: number;
  readonly bytes: number;
}

export interface PruneResult {
  readonly kept: readonly number[];
  readonly removed: readonly number[];
}

/**
 * Where checkpoints live. `loadLatest` returns the newest checkpoint that verifies, passing
 * over (and reporting) torn or corrupt newer ones; it never returns a partly valid one.
 */
export interface CheckpointStore {
  save(key: string, payload: Uint8Array, metadata?: CheckpointMetadata): Promise<SavedCheckpoint>;
  loadLatest(key: string): Promise<LoadedCheckpoint | undefined>;
  /** Checkpoints under `key`, oldest first (not verified). */
  list(key: string): Promise<readonly CheckpointInfo[]>;
  /**
   * Keeps the newest `keep` checkpoints that verify and removes everything older. Corrupt
   * checkpoints newer than the oldest kept one are left for inspection; a corrupt file is never
   * the reason a good one is removed.
   */
  prune(key: string, keep: number): Promise<PruneResult>;
}

export const CHECKPOINT_LIMITS = {
  /** Keys are file names: letters, digits, '.', '_', '-', starting with a letter or digit. */
  maxKeyLength: 200,
  /** Largest payload accepted by `save`. */
  maxPayloadBytes: 1024 * 1024 * 1024,
  /** Largest metadata, as JSON. */
  maxMetadataBytes: 1024 * 1024,
} as const;

export class InvalidCheckpointArgument extends TaggedError('InvalidCheckpointArgument') {
  constructor(
    readonly argument: string,
    readonly detail: string,
  ) {
    super(`checkpoint store: invalid ${argument}: ${detail}`);
  }
}

export const isInvalidCheckpointArgument = guardOf(InvalidCheckpointArgument);

/**
 * A save would need a sequence past `Number.MAX_SAFE_INTEGER` (2^53 - 1, the largest integer a
 * JavaScript number holds exactly), or the directory holds a file numbered past it. Sequences
 * are never reused or rounded: move the checkpoints you want to keep under a new key.
 */
export class CheckpointSequenceExhausted extends TaggedError('CheckpointSequenceExhausted') {
  constructor(
    readonly key: string,
    /** The sequence that cannot be used, as written (a decimal string: it may not fit a number). */
    readonly sequence: string,
    readonly location: string,
  ) {
    super(
      `checkpoint store: key '${key}' at ${location}: sequence ${sequence} is past the largest safe sequence ${Number.MAX_SAFE_INTEGER}; save under a new key (or move the checkpoints to keep)`,
    );
  }
}

export const isCheckpointSequenceExhausted = guardOf(CheckpointSequenceExhausted);

/** The file for the sequence a save claimed exists already (another writer made it); it is kept. */
export class CheckpointSequenceTaken extends TaggedError('CheckpointSequenceTaken') {
  constructor(readonly location: string) {
    super(
      `checkpoint store: ${location} already exists and is kept (a sequence is never reused); is another writer saving under this key?`,
    );
  }
}

export const isCheckpointSequenceTaken = guardOf(CheckpointSequenceTaken);

const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const FILE_PATTERN = /^(\d{16})\.ckpt$/;
const TEMP_PATTERN = /^\.\d{16}\.ckpt\.\d+\.\d+\.tmp$/;

export function validateCheckpointKey(key: string): void {
  if (typeof key !== 'string' || key.length > CHECKPOINT_LIMITS.maxKeyLength || !KEY_PATTERN.test(key)) {
    throw new InvalidCheckpointArgument(
      'key',
      `${JSON.stringify(key)}: use letters, digits, '.', '_', '-' (starting with a letter or digit), at most ${CHECKPOINT_LIMITS.maxKeyLength} characters`,
    );
  }
}

function encodeForSave(payload: Uint8Array, metadata: CheckpointMetadata): Buffer[] {
  if (!(payload instanceof Uint8Array))
    throw new InvalidCheckpointArgument('payload', 'a Uint8Array (or Buffer)');
  if (payload.byteLength > CHECKPOINT_LIMITS.maxPayloadBytes) {
    throw new InvalidCheckpointArgument(
      'payload',
      `${payload.byteLength} bytes exceeds ${CHECKPOINT_LIMITS.maxPayloadBytes}`,
    );
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InvalidCheckpointArgument('metadata', 'a plain JSON object');
  }
  const json = JSON.stringify(metadata);
  if (Buffer.byteLength(json) > CHECKPOINT_LIMITS.maxMetadataBytes) {
    throw new InvalidCheckpointArgument(
      'metadata',
      `more than ${CHECKPOINT_LIMITS.maxMetadataBytes} bytes as JSON`,
    );
  }
  return encodeCheckpoint(json, payload);
}

export interface DirectoryCheckpointStoreOptions {
  /** Told about every corrupt or torn checkpoint that `loadLatest` or `prune` passes over. */
  readonly onCorruption?: (corruption: CheckpointCorruption) => void;
}

/**
 * Checkpoints in a local directory: `<root>/<key>/<sequence, 16 digits>.ckpt`, in the format of
 * `internal/CheckpointFormat.ts` (magic, format version, lengths, SHA-256).
 *
 * A save is atomic: the file is written under a temporary name in the same directory, fsync'ed,
 * renamed into place, and the directory is fsync'ed, so after a crash a checkpoint is either
 * complete or absent (a stray temporary file is ignored and removed by `prune`). The checksum
 * catches what the file system does not (bit rot, a torn write on a file system without
 * ordered data).
 *
 * One writer per key: the first `save` or `prune` of a key takes a writer lock,
 * `<root>/.<key>.lock` (pid and host; a stale lock of a dead process of this host is taken
 * over), held until `close()`. A second store writing the key, in this process or another,
 * fails with `FileLocked` naming the holder. Reading (`loadLatest`, `list`) takes no lock.
 */
export class DirectoryCheckpointStore implements CheckpointStore {
  private readonly nextSequence = new Map<string, number>();
  private readonly locks = new Map<string, () => Promise<void>>();
  private readonly keyQueues = new Map<string, Promise<unknown>>();
  private temporaryCounter = 0;

  constructor(
    readonly root: string,
    private readonly options: DirectoryCheckpointStoreOptions = {},
  ) {}

  save(key: string, payload: Uint8Array, metadata: CheckpointMetadata = {}): Promise<SavedCheckpoint> {
    try {
      validateCheckpointKey(key);
      const parts = encodeForSave(payload, metadata);
      return this.serialized(key, () => this.write(key, parts));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async loadLatest(key: string): Promise<LoadedCheckpoint | undefined> {
    validateCheckpointKey(key);
    const infos = await this.list(key);
    const skipped: CheckpointCorruption[] = [];
    for (let index = infos.length - 1; index >= 0; index--) {
      const result = await this.verify(key, infos[index].sequence);
      if ('defect' in result) {
        skipped.push(result);
        this.options.onCorruption?.(result);
        continue;
      }
      return {
        key,
        sequence: infos[index].sequence,
        payload: result.payload,
        metadata: result.metadata,
        skipped,
      };
    }
    return undefined;
  }

  async list(key: string): Promise<readonly CheckpointInfo[]> {
    validateCheckpointKey(key);
    let names: string[];
    try {
      names = await readdir(join(this.root, key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const sequences = names.flatMap((name) => {
      const match = FILE_PATTERN.exec(name);
      if (match === null) return [];
      const sequence = Number(match[1]);
      if (!Number.isSafeInteger(sequence))
        throw new CheckpointSequenceExhausted(key, String(BigInt(match[1])), join(this.root, key, name));
      return [sequence];
    });
    sequences.sort((a, b) => a - b);
    const infos: CheckpointInfo[] = [];
    for (const sequence of sequences) {
      const size = await stat(this.fileOf(key, sequence)).then(
        (stats) => stats.size,
        () => -1, // removed meanwhile
      );
      if (size >= 0) infos.push({ key, sequence, bytes: size });
    }
    return infos;
  }

  prune(key: string, keep: number): Promise<PruneResult> {
    try {
      validateCheckpointKey(key);
      if (!Number.isInteger(keep) || keep < 1)
        throw new InvalidCheckpointArgument('keep', `an integer >= 1, got ${keep}`);
      return this.serialized(key, () => this.pruneNow(key, keep));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Waits for the saves and prunes under way, then releases the writer locks. A later save
   * takes its key's lock again (and reads the directory afresh).
   */
  async close(): Promise<void> {
    await Promise.all([...this.keyQueues.values()]);
    const releases = [...this.locks.values()];
    this.locks.clear();
    this.nextSequence.clear();
    for (const release of releases) await release();
  }

  /** Path of the file holding `sequence` under `key`. */
  fileOf(key: string, sequence: number): string {
    return join(this.root, key, `${String(sequence).padStart(16, '0')}.ckpt`);
  }

  private async pruneNow(key: string, keep: number): Promise<PruneResult> {
    await this.lockKey(key);
    const infos = await this.list(key);
    const kept: number[] = [];
    let index = infos.length - 1;
    for (; index >= 0 && kept.length < keep; index--) {
      const result = await this.verify(key, infos[index].sequence);
      if ('defect' in result) this.options.onCorruption?.(result);
      else kept.push(infos[index].sequence);
    }
    const removed: number[] = [];
    if (kept.length === keep) {
      for (; index >= 0; index--) {
        await unlink(this.fileOf(key, infos[index].sequence)).catch(ignoreMissing);
        removed.push(infos[index].sequence);
      }
    }
    await this.removeTemporaryFiles(key);
    if (removed.length > 0) await syncDirectory(join(this.root, key));
    return { kept, removed: removed.reverse() };
  }

  private async verify(
    key: string,
    sequence: number,
  ): Promise<CheckpointCorruption | { payload: Buffer; metadata: CheckpointMetadata }> {
    const location = this.fileOf(key, sequence);
    let file: Buffer;
    try {
      file = await readFile(location);
    } catch (error) {
      return { key, sequence, location, defect: 'unreadable', detail: (error as Error).message };
    }
    const decoded = decodeCheckpoint(file);
    if (!decoded.ok) return { key, sequence, location, defect: decoded.defect, detail: decoded.detail };
    return { payload: decoded.payload, metadata: decoded.metadata };
  }

  private async write(key: string, parts: Buffer[]): Promise<SavedCheckpoint> {
    const directory = join(this.root, key);
    const sequence = await this.claimSequence(key, directory);
    const final = this.fileOf(key, sequence);
    const temporary = join(
      directory,
      `.${String(sequence).padStart(16, '0')}.ckpt.${process.pid}.${this.temporaryCounter++}.tmp`,
    );
    let bytes: number;
    try {
      bytes = await writeFileDurably(final, parts, { temporary, publish: 'never-replace' });
    } catch (error) {
      if (isPublishTargetExists(error)) throw new CheckpointSequenceTaken(final);
      throw error;
    }
    return { key, sequence, bytes };
  }

  private async claimSequence(key: string, directory: string): Promise<number> {
    let next = this.nextSequence.get(key);
    if (next === undefined) {
      await mkdir(directory, { recursive: true });
      await syncDirectory(this.root);
      await this.lockKey(key);
      const infos = await this.list(key);
      next = (infos[infos.length - 1]?.sequence ?? 0) + 1;
    }
    // Past 2^53 - 1, next + 1 rounds back to next: two saves would share one file.
    if (!Number.isSafeInteger(next))
      throw new CheckpointSequenceExhausted(key, (BigInt(next - 1) + 1n).toString(), directory);
    this.nextSequence.set(key, next + 1);
    return next;
  }

  /** Takes the key's writer lock unless this store holds it already. */
  private async lockKey(key: string): Promise<void> {
    if (this.locks.has(key)) return;
    await mkdir(this.root, { recursive: true });
    // Keys start with a letter or digit, so '.<key>' never names another key's directory.
    const lockPath = join(this.root, `.${key}.lock`);
    this.locks.set(key, await acquireWriterLock(join(this.root, key), { lockPath }));
  }

  private async removeTemporaryFiles(key: string): Promise<void> {
    const names = await readdir(join(this.root, key)).catch(() => [] as string[]);
    for (const name of names)
      if (TEMP_PATTERN.test(name)) await unlink(join(this.root, key, name)).catch(ignoreMissing);
  }

  /** Runs operations on one key one after another (sequence numbers, prune vs save). */
  private serialized<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.keyQueues.get(key) ?? Promise.resolve();
    const next = previous.then(operation, operation);
    const settled = next.catch(() => undefined);
    this.keyQueues.set(key, settled);
    void settled.then(() => {
      if (this.keyQueues.get(key) === settled) this.keyQueues.delete(key);
    });
    return next;
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}

/**
 * Checkpoints in memory, verified the same way (the bytes are encoded and decoded), for tests
 * and simulations. `corrupt(key, sequence, mutate)` lets a test damage a stored checkpoint.
 */
export class InMemoryCheckpointStore implements CheckpointStore {
  private readonly files = new Map<string, Map<number, Buffer>>();

  constructor(private readonly options: DirectoryCheckpointStoreOptions = {}) {}

  async save(key: string, payload: Uint8Array, metadata: CheckpointMetadata = {}): Promise<SavedCheckpoint> {
    validateCheckpointKey(key);
    const file = Buffer.concat(encodeForSave(payload, metadata));
    const entries = this.files.get(key) ?? new Map<number, Buffer>();
    this.files.set(key, entries);
    const sequence = Math.max(0, ...entries.keys()) + 1;
    if (!Number.isSafeInteger(sequence))
      throw new CheckpointSequenceExhausted(key, (BigInt(sequence - 1) + 1n).toString(), `memory:${key}`);
    entries.set(sequence, file);
    return { key, sequence, bytes: file.length };
  }

  async loadLatest(key: string): Promise<LoadedCheckpoint | undefined> {
    const infos = await this.list(key);
    const skipped: CheckpointCorruption[] = [];
    for (let index = infos.length - 1; index >= 0; index--) {
      const sequence = infos[index].sequence;
      const decoded = decodeCheckpoint(this.files.get(key)!.get(sequence)!);
      if (decoded.ok)
        return { key, sequence, payload: Buffer.from(decoded.payload), metadata: decoded.metadata, skipped };
      const corruption: CheckpointCorruption = {
        key,
        sequence,
        location: `memory:${key}/${sequence}`,
        defect: decoded.defect,
        detail: decoded.detail,
      };
      skipped.push(corruption);
      this.options.onCorruption?.(corruption);
    }
    return undefined;
  }

  async list(key: string): Promise<readonly CheckpointInfo[]> {
    validateCheckpointKey(key);
    const entries = this.files.get(key) ?? new Map<number, Buffer>();
    return [...entries.entries()]
      .sort(([a], [b]) => a - b)
      .map(([sequence, file]) => ({ key, sequence, bytes: file.length }));
  }

  async prune(key: string, keep: number): Promise<PruneResult> {
    if (!Number.isInteger(keep) || keep < 1)
      throw new InvalidCheckpointArgument('keep', `an integer >= 1, got ${keep}`);
    const infos = await this.list(key);
    const entries = this.files.get(key);
    const kept: number[] = [];
    let index = infos.length - 1;
    for (; index >= 0 && kept.length < keep; index--) {
      if (decodeCheckpoint(entries!.get(infos[index].sequence)!).ok) kept.push(infos[index].sequence);
    }
    const removed: number[] = [];
    if (kept.length === keep) for (; index >= 0; index--) removed.push(infos[index].sequence);
    for (const sequence of removed) entries?.delete(sequence);
    return { kept, removed: removed.reverse() };
  }

  /** Test hook: changes the stored bytes of one checkpoint. */
  corrupt(key: string, sequence: number, mutate: (file: Buffer) => Buffer): void {
    const entries = this.files.get(key);
    const file = entries?.get(sequence);
    if (entries === undefined || file === undefined)
      throw new InvalidCheckpointArgument('sequence', `no checkpoint ${key}/${sequence}`);
    entries.set(sequence, mutate(Buffer.from(file)));
  }
}
