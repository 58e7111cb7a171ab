/**
 * Crash safety, proved by killing a writer process with SIGKILL at random moments and checking,
 * each time, that the store opens, that every acknowledged write is there, byte for byte, that
 * nothing half-written is read, and that the store accepts writes afterwards.
 *
 * The writer (fixtures/crashWriter.mjs) is plain JS running on the compiled library in dist/, so
 * this test needs `npm run build` first (CI does it in scripts/setup.sh); it fails with that
 * message when dist/ is missing. The kill moments come from a seeded Random: the writer is killed
 * after k acknowledgements plus j event-loop turns, so some kills land between writes and some in
 * the middle of one; half the event-log kills wait for the file to grow, so they land inside the
 * write() call and leave a real torn record (Linux cuts a large write short on SIGKILL; about one
 * round in five ends in a torn tail here). `ZBMD_CRASH_DEBUG=1` prints each round's recovery.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { DirectoryCheckpointStore, FileEventStore } from '../../src/fault/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const writer = join(here, 'fixtures', 'crashWriter.mjs');
const compiled = join(here, '..', '..', 'dist', 'src', 'fault', 'index.js');

const EVENT_PAYLOAD_LIMIT = 6_000_000; // as in the fixture
const CHECKPOINT_PAYLOAD_LIMIT = 4_000_000;

/** Same as payloadOf in the fixture. */
function payloadOf(n: number, sizeLimit: number): Buffer {
  return Buffer.alloc((n * 7919) % sizeLimit, n % 251);
}

interface KillOutcome {
  readonly ready: number;
  readonly lastAck: number;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** When to kill, once the writer has acknowledged `acks` writes and announced the next one. */
type KillMoment =
  | { readonly kind: 'turns'; readonly turns: number }
  /** As soon as the file grows: the kill lands inside the write() call, tearing the record. */
  | { readonly kind: 'growth'; readonly file: string };

/** Most event-loop turns spent waiting for a kill moment; then the writer is killed anyway. */
const MAX_WAIT_TURNS = 200_000;

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Runs the writer and kills it at `moment`, after the first "begin" line that follows `acks` acks. */
function runAndKill(args: string[], acks: number, moment: KillMoment): Promise<KillOutcome> {
  const child: ChildProcess = spawn(process.execPath, [writer, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let ready = 0;
  let lastAck = 0;
  let seen = 0;
  let stderr = '';
  let killing = false;
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const killWhen = (done: (turn: number) => boolean, turn = 0): void => {
    if (turn < MAX_WAIT_TURNS && !done(turn)) setImmediate(() => killWhen(done, turn + 1));
    else child.kill('SIGKILL');
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const [word, value] = line.split(' ');
    if (word === 'ready') ready = Number(value);
    if (word === 'ack') {
      lastAck = Number(value);
      seen++;
    }
    if (word === 'begin' && seen >= acks && !killing) {
      killing = true;
      if (moment.kind === 'turns') killWhen((turn) => turn >= moment.turns);
      else {
        const sizeAtBegin = fileSize(moment.file);
        killWhen(() => fileSize(moment.file) > sizeAtBegin);
      }
    }
  });
  return new Promise((resolve) => {
    child.on('exit', (_code, signal) => resolve({ ready, lastAck, signal, stderr }));
  });
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-crash-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('crash safety under SIGKILL', () => {
  it('has the compiled library the writer needs (run `npm run build` first)', () => {
    expect(existsSync(compiled), `missing ${compiled}: run \`npm run build\` before the tests`).toBe(true);
  });

  for (const sync of ['always', 'batch'] as const) {
    it(`FileEventStore (sync ${sync}): every acknowledged append survives, nothing torn is read`, async () => {
      const random = new Random(sync === 'always' ? 4242 : 4343);
      const path = join(root, `events-${sync}.zlog`);
      let expectedNext = 1;
      for (let round = 0; round < 10; round++) {
        // Half the kills aim at a write under way (a torn record), half at a random moment.
        const moment: KillMoment =
          round % 2 === 0 ? { kind: 'growth', file: path } : { kind: 'turns', turns: random.nextInt(20_000) };
        const outcome = await runAndKill(['events', path, sync], random.nextInt(8), moment);
        expect(outcome.signal, outcome.stderr).toBe('SIGKILL');
        expect(outcome.ready).toBe(expectedNext);
        const store = await FileEventStore.open(path);
        if (process.env.ZBMD_CRASH_DEBUG) console.log(sync, round, outcome.lastAck, store.recovery);
        const events = await store.read('counter');
        // Every acknowledged append is there; at most the writes in flight at the kill are extra.
        expect(events.length).toBeGreaterThanOrEqual(Math.max(outcome.lastAck, outcome.ready - 1));
        events.forEach((event, index) => {
          const data = event.data as { n: number; payload: string };
          expect(event.version).toBe(index + 1);
          expect(data.n).toBe(index + 1);
          expect(Buffer.from(data.payload, 'base64').equals(payloadOf(data.n, EVENT_PAYLOAD_LIMIT))).toBe(
            true,
          );
        });
        // The store is consistent: it takes the next append where the stream ends.
        await store.append(
          'counter',
          [
            {
              type: 'counted',
              data: {
                n: events.length + 1,
                payload: payloadOf(events.length + 1, EVENT_PAYLOAD_LIMIT).toString('base64'),
              },
            },
          ],
          events.length,
        );
        await store.close();
        expectedNext = events.length + 2;
      }
    });
  }

  it('DirectoryCheckpointStore: the latest acknowledged checkpoint (or a newer one) loads whole', async () => {
    const random = new Random(4444);
    const directory = join(root, 'checkpoints');
    let expectedNext = 1;
    for (let round = 0; round < 10; round++) {
      const outcome = await runAndKill(['checkpoints', directory], random.nextInt(6), {
        kind: 'turns',
        turns: random.nextInt(20_000),
      });
      expect(outcome.signal, outcome.stderr).toBe('SIGKILL');
      expect(outcome.ready).toBe(expectedNext);
      const store = new DirectoryCheckpointStore(directory);
      const latest = await store.loadLatest('model');
      expect(latest).toBeDefined();
      const n = latest!.metadata.n as number;
      const acknowledged = Math.max(outcome.lastAck, outcome.ready - 1);
      expect(n).toBeGreaterThanOrEqual(acknowledged);
      expect(n).toBeLessThanOrEqual(acknowledged + 1);
      expect(latest!.payload.equals(payloadOf(n, CHECKPOINT_PAYLOAD_LIMIT))).toBe(true);
      // Atomic rename: no torn checkpoint is ever visible under its final name.
      expect(latest!.skipped).toEqual([]);
      const saved = await store.save('model', payloadOf(n + 1, CHECKPOINT_PAYLOAD_LIMIT), { n: n + 1 });
      expect(saved.sequence).toBeGreaterThan(latest!.sequence);
      await store.close(); // the next writer takes the lock
      expectedNext = n + 2;
    }
    const names = await readdir(join(directory, 'model'));
    expect(names.every((name) => name.endsWith('.ckpt') || name.endsWith('.tmp'))).toBe(true);
  });
});
