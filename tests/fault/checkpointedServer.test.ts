import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem, castTo, type GenServer, reply, startGenServer } from '../../src/actor/index.js';
import {
  CheckpointManager,
  checkpointed,
  DirectoryCheckpointStore,
  type SavedMessage,
} from '../../src/fault/index.js';
import { type SupervisionEvent, startSupervisor } from '../../src/supervision/index.js';

type Cast = { add: number } | 'crash';
const Counter: GenServer<number, number> = {
  init: (start) => start,
  handleCast: (request: Cast, value) => {
    if (request === 'crash') throw new Error('counter crashed');
    return value + request.add;
  },
  handleCall: (_request: 'get', _from, value) => reply(value, value),
};

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function manager(): CheckpointManager<number, SavedMessage> {
  const directory = mkdtempSync(join(tmpdir(), 'zbmd-checkpointed-'));
  directories.push(directory);
  return new CheckpointManager<number, SavedMessage>({
    store: new DirectoryCheckpointStore(directory),
    serialize: (value) => Buffer.from(JSON.stringify(value)),
    deserialize: (bytes) => JSON.parse(Buffer.from(bytes).toString()) as number,
  });
}

/**
 * Real disk (fsync per checkpoint) is behind every step here, and on a loaded machine it is slow:
 * calls wait up to DISK_WAIT_MS (not the 5 s default), and `until` yields to the event loop
 * until `condition` holds for as long. The test's own timeout (vitest's 30 s) bounds the whole.
 */
const DISK_WAIT_MS = 25_000;

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + DISK_WAIT_MS;
  while (!condition() && Date.now() < deadline) await new Promise<void>((resolve) => setImmediate(resolve));
  expect(condition()).toBe(true);
}

describe('checkpointed GenServer under a supervisor', () => {
  it('the design book test: 42, a crash, recovery from the checkpoint, then +45 more = 87', async () => {
    const system = new ActorSystem({ onCrash: () => {} });
    const checkpoints = manager();
    const restarts: SupervisionEvent[] = [];
    await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 5,
      periodMs: 10_000,
      onEvent: (event) => event.kind === 'child_restarted' && restarts.push(event),
      children: [
        {
          id: 'counter',
          start: (ctx) =>
            startGenServer(ctx, checkpointed(Counter, { manager: checkpoints, key: 'counter' }), 0, {
              link: true,
              name: 'counter',
            }),
        },
      ],
    });
    castTo(system, 'counter', { add: 42 });
    expect(await system.call('counter', 'get', DISK_WAIT_MS)).toBe(42);
    // the crash and the work queued behind it: the emergency checkpoint keeps the queue
    castTo(system, 'counter', 'crash');
    for (let i = 0; i < 9; i++) castTo(system, 'counter', { add: 5 });
    await until(() => restarts.length === 1);
    await until(() => system.whereis('counter') !== undefined);
    expect(await system.call('counter', 'get', DISK_WAIT_MS)).toBe(42 + 45);
  });

  it('without a checkpoint the server starts from its arguments; with one it ignores them', async () => {
    const system = new ActorSystem({ onCrash: () => {} });
    const checkpoints = manager();
    const first = await startGenServer(system, checkpointed(Counter, { manager: checkpoints, key: 'c' }), 10);
    castTo(system, first, { add: 1 });
    expect(await system.call(first, 'get', DISK_WAIT_MS)).toBe(11);
    system.exit(first, 'kill'); // no emergency checkpoint for a kill: the periodic one is used
    const second = await startGenServer(
      system,
      checkpointed(Counter, { manager: checkpoints, key: 'c' }),
      10,
    );
    expect(await system.call(second, 'get', DISK_WAIT_MS)).toBe(11);
  });

  it('checkpoints every N messages when asked', async () => {
    const system = new ActorSystem({ onCrash: () => {} });
    const checkpoints = manager();
    const pid = await startGenServer(
      system,
      checkpointed(Counter, { manager: checkpoints, key: 'n', everyMessages: 3 }),
      0,
    );
    for (let i = 0; i < 4; i++) castTo(system, pid, { add: 1 });
    expect(await system.call(pid, 'get', DISK_WAIT_MS)).toBe(4);
    expect((await checkpoints.restore('n'))?.state).toBe(3);
    expect(() => checkpointed(Counter, { manager: checkpoints, key: 'x', everyMessages: 0 })).toThrow(
      /everyMessages/,
    );
  });
});
