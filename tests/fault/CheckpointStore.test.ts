import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CheckpointCorruption, CheckpointStore, MessageCodec } from '../../src/fault/index.js';
import {
  CheckpointManager,
  DirectoryCheckpointStore,
  InMemoryCheckpointStore,
  isCheckpointDecodeError,
  isCheckpointSequenceExhausted,
  isCheckpointSequenceTaken,
  isInvalidCheckpointArgument,
} from '../../src/fault/index.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-checkpoints-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('DirectoryCheckpointStore', () => {
  it('saves and loads the latest checkpoint with its metadata; sequences count up from 1', async () => {
    const store = new DirectoryCheckpointStore(root);
    const first = await store.save('model', bytes('one'), { step: 1 });
    const second = await store.save('model', bytes('two'), { step: 2 });
    expect([first.sequence, second.sequence]).toEqual([1, 2]);
    const latest = await store.loadLatest('model');
    expect(latest?.payload.toString()).toBe('two');
    expect(latest?.metadata).toEqual({ step: 2 });
    expect(latest?.sequence).toBe(2);
    expect(latest?.skipped).toEqual([]);
    expect((await store.list('model')).map((info) => info.sequence)).toEqual([1, 2]);
  });

  it('returns undefined for a key with no checkpoints and keeps keys apart', async () => {
    const store = new DirectoryCheckpointStore(root);
    expect(await store.loadLatest('nothing')).toBeUndefined();
    await store.save('a', bytes('A'));
    await store.save('b', bytes('B'));
    expect((await store.loadLatest('a'))?.payload.toString()).toBe('A');
    expect(await store.list('nothing')).toEqual([]);
  });

  it('leaves no temporary file behind and writes the documented header', async () => {
    const store = new DirectoryCheckpointStore(root);
    await store.save('model', bytes('payload'), { a: 1 });
    expect(await readdir(join(root, 'model'))).toEqual(['0000000000000001.ckpt']);
    const file = await readFile(store.fileOf('model', 1));
    expect(file.subarray(0, 8).toString('latin1')).toBe('ZBMDCKPT');
    expect(file.readUInt32LE(8)).toBe(1);
    expect(file.readUInt32LE(12)).toBe(Buffer.byteLength('{"a":1}'));
    expect(file.readBigUInt64LE(16)).toBe(7n);
    expect(file.length).toBe(56 + 7 + 7);
  });

  it('continues the sequence in a new store instance (after a restart)', async () => {
    const first = new DirectoryCheckpointStore(root);
    await first.save('model', bytes('one'));
    await first.close();
    const second = new DirectoryCheckpointStore(root);
    const saved = await second.save('model', bytes('two'));
    expect(saved.sequence).toBe(2);
    await second.close();
  });

  it('passes over a corrupt latest checkpoint, reports it, and loads the previous good one', async () => {
    const reported: CheckpointCorruption[] = [];
    const store = new DirectoryCheckpointStore(root, {
      onCorruption: (corruption) => reported.push(corruption),
    });
    await store.save('model', bytes('good'));
    await store.save('model', bytes('bad!'));
    const path = store.fileOf('model', 2);
    const file = await readFile(path);
    file[file.length - 1] ^= 0x01;
    await writeFile(path, file);
    const latest = await store.loadLatest('model');
    expect(latest?.payload.toString()).toBe('good');
    expect(latest?.skipped.map((skip) => [skip.sequence, skip.defect])).toEqual([[2, 'checksum_mismatch']]);
    expect(reported).toHaveLength(1);
    expect(reported[0].location).toBe(path);
  });

  it('detects a torn (truncated) checkpoint', async () => {
    const store = new DirectoryCheckpointStore(root);
    await store.save('model', bytes('good'));
    await store.save('model', Buffer.alloc(10_000, 7));
    await truncate(store.fileOf('model', 2), 5000);
    const latest = await store.loadLatest('model');
    expect(latest?.sequence).toBe(1);
    expect(latest?.skipped[0].defect).toBe('length_mismatch');
    await truncate(store.fileOf('model', 1), 20);
    const none = await store.loadLatest('model');
    expect(none).toBeUndefined();
  });

  it('ignores stray temporary files, and prune removes them', async () => {
    const store = new DirectoryCheckpointStore(root);
    await store.save('model', bytes('good'));
    const stray = join(root, 'model', '.0000000000000002.ckpt.123.0.tmp');
    await writeFile(stray, 'half a checkpoint');
    expect((await store.loadLatest('model'))?.payload.toString()).toBe('good');
    await store.prune('model', 5);
    expect(await readdir(join(root, 'model'))).toEqual(['0000000000000001.ckpt']);
  });

  it('prune keeps the newest good checkpoints, never removing a good one because of a corrupt one', async () => {
    const store = new DirectoryCheckpointStore(root);
    for (let step = 1; step <= 5; step++) await store.save('model', bytes(`step ${step}`));
    await truncate(store.fileOf('model', 5), 10);
    const result = await store.prune('model', 2);
    expect(result).toEqual({ kept: [4, 3], removed: [1, 2] });
    expect((await store.list('model')).map((info) => info.sequence)).toEqual([3, 4, 5]);
    expect((await store.loadLatest('model'))?.payload.toString()).toBe('step 4');
  });

  it('rejects keys that are not plain file names and oversized metadata', async () => {
    const store = new DirectoryCheckpointStore(root);
    for (const key of ['', '../escape', 'a/b', '.hidden', 'x'.repeat(201)]) {
      await expect(store.save(key, bytes('x'))).rejects.toSatisfy(isInvalidCheckpointArgument);
    }
    await expect(store.save('model', bytes('x'), { big: 'x'.repeat(1024 * 1024) })).rejects.toThrow(
      /metadata/,
    );
    await expect(store.prune('model', 0)).rejects.toThrow(/keep/);
  });

  it('serializes concurrent saves of one key into distinct sequences', async () => {
    const store = new DirectoryCheckpointStore(root);
    const saved = await Promise.all(
      Array.from({ length: 8 }, (_, index) => store.save('model', bytes(`v${index}`))),
    );
    expect(saved.map((entry) => entry.sequence).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await store.loadLatest('model'))?.payload.toString()).toBe('v7');
  });
});

describe('checkpoint format', () => {
  it('property: any single corrupted byte is detected; a damaged file is never loaded', async () => {
    const store = new InMemoryCheckpointStore();
    await store.save('k', bytes('previous'), { step: 1 });
    const saved = await store.save('k', bytes('payload that matters'), { step: 2 });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: saved.bytes - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (offset, mask) => {
          const copy = new InMemoryCheckpointStore();
          await copy.save('k', bytes('previous'), { step: 1 });
          await copy.save('k', bytes('payload that matters'), { step: 2 });
          copy.corrupt('k', 2, (file) => {
            file[offset] ^= mask;
            return file;
          });
          const latest = await copy.loadLatest('k');
          return (
            latest?.sequence === 1 && latest.payload.toString() === 'previous' && latest.skipped.length === 1
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: any truncation of the latest file falls back to the previous one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 99 }), async (percent) => {
        const store = new InMemoryCheckpointStore();
        await store.save('k', bytes('previous'));
        await store.save('k', Buffer.alloc(300, 1), { note: 'latest' });
        store.corrupt('k', 2, (file) => file.subarray(0, Math.floor((file.length * percent) / 100)));
        return (await store.loadLatest('k'))?.payload.toString() === 'previous';
      }),
      { numRuns: 100 },
    );
  });
});

/** The counter actor of seeds/001's 'checkpoint and recovery' test. */
interface CounterActor {
  state: number;
  mailbox: { increment: number }[];
}

function processMailbox(actor: CounterActor): void {
  for (let message = actor.mailbox.shift(); message !== undefined; message = actor.mailbox.shift()) {
    actor.state += message.increment;
  }
}

function counterManager(store: CheckpointStore, keep?: number) {
  return new CheckpointManager<number, { increment: number }>({
    store,
    serialize: (state) => {
      const buffer = Buffer.alloc(8);
      buffer.writeDoubleLE(state);
      return buffer;
    },
    deserialize: (state) => Buffer.from(state).readDoubleLE(0),
    keep,
  });
}

describe('CheckpointManager', () => {
  for (const [label, makeStore] of [
    ['directory', () => new DirectoryCheckpointStore(root)],
    ['memory', () => new InMemoryCheckpointStore()],
  ] as const) {
    it(`seeds/001 'checkpoint and recovery' (${label}): 42, ten queued increments, crash, recover -> 42 + 45`, async () => {
      const store: CheckpointStore = makeStore();
      const manager = counterManager(store);
      // Create actor with state, send it 10 messages (increment 0..9) that are still queued.
      let actor: CounterActor | undefined = { state: 42, mailbox: [] };
      for (let index = 0; index < 10; index++) actor.mailbox.push({ increment: index });
      // Checkpoint state and mailbox.
      await manager.checkpoint('counter', { state: actor.state, messages: actor.mailbox });
      // Simulate crash: the actor and everything in memory is gone.
      actor = undefined;
      // Recover from a fresh manager (as a restarted process would).
      const restored = await counterManager(store).restore('counter');
      expect(restored).toBeDefined();
      const recovered: CounterActor = { state: restored!.state, mailbox: restored!.messages };
      expect(recovered.state).toBe(42);
      expect(recovered.mailbox).toHaveLength(10);
      processMailbox(recovered);
      // State should be preserved, and no queued message lost.
      expect(recovered.state).toBe(42 + 45);
    });
  }

  it('restores metadata: user fields, message count, state size', async () => {
    const manager = counterManager(new InMemoryCheckpointStore());
    await manager.checkpoint('counter', {
      state: 7,
      messages: [{ increment: 1 }],
      metadata: { reductions: 1234 },
    });
    const restored = await manager.restore('counter');
    expect(restored?.metadata).toMatchObject({ messageCount: 1, stateBytes: 8, user: { reductions: 1234 } });
    expect(typeof restored?.metadata.savedAtMs).toBe('number');
    expect(restored?.sequence).toBe(1);
  });

  it('restores the previous checkpoint when the latest is corrupt, and says so', async () => {
    const store = new InMemoryCheckpointStore();
    const manager = counterManager(store);
    await manager.checkpoint('counter', { state: 1 });
    await manager.checkpoint('counter', { state: 2 });
    store.corrupt('counter', 2, (file) => file.subarray(0, file.length - 1));
    const restored = await manager.restore('counter');
    expect(restored?.state).toBe(1);
    expect(restored?.skipped).toHaveLength(1);
  });

  it('returns undefined when there is nothing to restore', async () => {
    expect(await counterManager(new InMemoryCheckpointStore()).restore('counter')).toBeUndefined();
  });

  it('uses a pluggable message codec', async () => {
    const codec: MessageCodec<string> = {
      encode: (messages) => Buffer.from(messages.join('\n')),
      decode: (encoded) => (encoded.byteLength === 0 ? [] : Buffer.from(encoded).toString().split('\n')),
    };
    const manager = new CheckpointManager<string, string>({
      store: new InMemoryCheckpointStore(),
      serialize: (state) => Buffer.from(state),
      deserialize: (state) => Buffer.from(state).toString(),
      messageCodec: codec,
    });
    await manager.checkpoint('echo', { state: 'ready', messages: ['a', 'b'] });
    expect(await manager.restore('echo')).toMatchObject({ state: 'ready', messages: ['a', 'b'] });
  });

  it('raises CheckpointDecodeError (never a half-restored actor) when deserialize fails', async () => {
    const store = new InMemoryCheckpointStore();
    await counterManager(store).checkpoint('counter', { state: 1 });
    const broken = new CheckpointManager<number>({
      store,
      serialize: () => Buffer.alloc(0),
      deserialize: () => {
        throw new Error('incompatible state version');
      },
    });
    const error = await broken.restore('counter').catch((caught) => caught);
    expect(isCheckpointDecodeError(error)).toBe(true);
    expect(String(error)).toMatch(/incompatible state version/);
  });

  it('refuses a checkpoint that is not an actor checkpoint', async () => {
    const store = new InMemoryCheckpointStore();
    await store.save('counter', Buffer.from('raw'), {});
    await expect(counterManager(store).restore('counter')).rejects.toSatisfy(isCheckpointDecodeError);
  });

  it('prunes to `keep` checkpoints after each save', async () => {
    const store = new DirectoryCheckpointStore(root);
    const manager = counterManager(store, 2);
    for (let state = 0; state < 5; state++) await manager.checkpoint('counter', { state });
    expect((await store.list('counter')).map((info) => info.sequence)).toEqual([4, 5]);
    expect((await manager.restore('counter'))?.state).toBe(4);
  });
});

describe('DirectoryCheckpointStore sequence limits', () => {
  async function directoryWith(name: string): Promise<DirectoryCheckpointStore> {
    const seed = new DirectoryCheckpointStore(join(root, 'seed'));
    await seed.save('model', bytes('highest'));
    await seed.close();
    await mkdir(join(root, 'checkpoints', 'model'), { recursive: true });
    await copyFile(seed.fileOf('model', 1), join(root, 'checkpoints', 'model', name));
    return new DirectoryCheckpointStore(join(root, 'checkpoints'));
  }

  it('refuses a save past Number.MAX_SAFE_INTEGER with a typed error, and never gives two saves one sequence', async () => {
    const store = await directoryWith('9007199254740990.ckpt');
    const last = await store.save('model', bytes('last one'));
    expect(last.sequence).toBe(Number.MAX_SAFE_INTEGER);
    const results = await Promise.allSettled([
      store.save('model', bytes('a')),
      store.save('model', bytes('b')),
    ]);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const error = (result as PromiseRejectedResult).reason;
      expect(isCheckpointSequenceExhausted(error), String(error)).toBe(true);
      expect(error.key).toBe('model');
      expect(error.message).toMatch(/9007199254740991/);
    }
    expect((await store.loadLatest('model'))?.payload.toString()).toBe('last one');
    expect((await store.list('model')).map((info) => info.sequence)).toEqual([
      9007199254740990,
      Number.MAX_SAFE_INTEGER,
    ]);
    await store.close();
  });

  it('refuses to save after a file with the largest sequence, keeping that file', async () => {
    const store = await directoryWith('9007199254740991.ckpt');
    const error = await store.save('model', bytes('new')).catch((caught) => caught);
    expect(isCheckpointSequenceExhausted(error), String(error)).toBe(true);
    expect((await store.loadLatest('model'))?.payload.toString()).toBe('highest');
    await store.close();
  });

  it('reports a file whose sequence is past Number.MAX_SAFE_INTEGER instead of misreading it', async () => {
    const store = await directoryWith('9999999999999999.ckpt');
    const error = await store.list('model').catch((caught) => caught);
    expect(isCheckpointSequenceExhausted(error), String(error)).toBe(true);
    expect(error.message).toMatch(/9999999999999999\.ckpt/);
    await expect(store.save('model', bytes('x'))).rejects.toSatisfy(isCheckpointSequenceExhausted);
    await store.close();
  });
});

describe('DirectoryCheckpointStore never replaces a checkpoint', () => {
  it('refuses a save whose sequence file appeared meanwhile, keeping that file', async () => {
    const store = new DirectoryCheckpointStore(root);
    await store.save('model', bytes('one'));
    const other = await readFile(store.fileOf('model', 1));
    await writeFile(store.fileOf('model', 2), other); // as if written behind the store's back
    const error = await store.save('model', bytes('two')).catch((caught) => caught);
    expect(isCheckpointSequenceTaken(error), String(error)).toBe(true);
    expect(error.location).toBe(store.fileOf('model', 2));
    expect((await readFile(store.fileOf('model', 2))).equals(other)).toBe(true);
    expect((await readdir(join(root, 'model'))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect((await store.save('model', bytes('three'))).sequence).toBe(3);
    await store.close();
  });
});
