import { CallRequest, type Context } from '../actor/ActorSystem.js';
import { isNormalOrShutdown } from '../actor/ExitReason.js';
import { CastRequest, type GenServer, Stop } from '../actor/GenServer.js';
import type { CheckpointManager } from './CheckpointManager.js';

/** A queued message as a checkpoint keeps it: casts and plain messages (calls are not kept). */
export type SavedMessage = { readonly cast: unknown } | { readonly info: unknown };

export interface CheckpointedOptions<State> {
  /** Where checkpoints go and how the state is serialized (`CheckpointManager`). */
  readonly manager: CheckpointManager<State, SavedMessage>;
  /** The checkpoint key: one per logical server (it survives restarts of the process). */
  readonly key: string;
  /** Take a checkpoint after this many handled messages. Default 1 (after every message). */
  readonly everyMessages?: number;
  /**
   * On a crash, save an emergency checkpoint: the last good state (the crashing callback's
   * changes never happened) and the messages still queued. Default true.
   */
  readonly emergency?: boolean;
  /** Told when a checkpoint fails to save; the server keeps running on its last checkpoint. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Wraps a GenServer so that it survives restarts with its state and its queued work: `init`
 * restores the latest good checkpoint (state, then the queued casts and messages, in order)
 * instead of starting from `args`, the server checkpoints every `everyMessages` messages, and a
 * crash saves an emergency checkpoint. Under a supervisor, a restart therefore continues from
 * the last checkpoint instead of from scratch.
 *
 * Calls in flight are not saved: their callers got `CallExit` when the server died and decide
 * themselves whether to retry.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { mkdtemp, rm } from 'node:fs/promises';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 * import { ActorSystem, callServer, type GenServer, reply, startGenServer } from 'zbmd';
 * import { CheckpointManager, checkpointed, DirectoryCheckpointStore } from 'zbmd/fault';
 *
 * const Counter: GenServer<number, number> = {
 *   init: (start) => start,
 *   handleCall: (request: 'get' | 'increment', _from, count) =>
 *     request === 'get' ? reply(count, count) : reply(count + 1, count + 1),
 * };
 * const dir = await mkdtemp(join(tmpdir(), 'zbmd-example-'));
 * const manager = new CheckpointManager<number, unknown>({
 *   store: new DirectoryCheckpointStore(dir),
 *   serialize: (count) => new TextEncoder().encode(String(count)),
 *   deserialize: (bytes) => Number(new TextDecoder().decode(bytes)),
 * });
 * const system = new ActorSystem();
 * const first = await startGenServer(system, checkpointed(Counter, { manager, key: 'counter' }), 0);
 * await callServer(system, first, 'increment');
 * system.exit(first, 'kill'); // a crash: the next start restores the checkpoint, not 0
 * const second = await startGenServer(system, checkpointed(Counter, { manager, key: 'counter' }), 0);
 * assert.equal(await callServer(system, second, 'get'), 1);
 * system.shutdown();
 * await rm(dir, { recursive: true, force: true });
 * ```
 */
export function checkpointed<State, Args>(
  server: GenServer<State, Args>,
  options: CheckpointedOptions<State>,
): GenServer<State, Args> {
  const every = options.everyMessages ?? 1;
  if (!Number.isInteger(every) || every < 1) {
    throw new RangeError(`checkpointed: everyMessages must be an integer >= 1, got ${String(every)}`);
  }
  let handled = 0;
  const save = async (state: State, context: Context): Promise<void> => {
    try {
      await options.manager.checkpoint(options.key, { state, messages: queuedMessages(context) });
    } catch (error) {
      options.onError?.(error);
    }
  };
  const after = async <R>(
    result: R,
    stateOf: (result: R) => State | undefined,
    context: Context,
  ): Promise<R> => {
    const state = stateOf(result);
    if (state !== undefined && ++handled % every === 0) await save(state, context);
    return result;
  };
  return {
    ...server,
    async init(args, context) {
      const restored = await options.manager.restore(options.key);
      if (restored === undefined) return server.init(args, context);
      for (const message of restored.messages) {
        context.send(context.self, 'cast' in message ? new CastRequest(message.cast) : message.info);
      }
      return restored.state;
    },
    handleCall:
      server.handleCall &&
      (async (request, from, state, context) =>
        after(await server.handleCall!(request, from, state, context), (result) => result.state, context)),
    handleCast:
      server.handleCast &&
      (async (request, state, context) =>
        after(await server.handleCast!(request, state, context), stateOfResult, context)),
    handleInfo:
      server.handleInfo &&
      (async (message, state, context) =>
        after(await server.handleInfo!(message, state, context), stateOfResult, context)),
    async terminate(reason, state, context) {
      if (options.emergency !== false && !isNormalOrShutdown(reason)) await save(state, context);
      await server.terminate?.(reason, state, context);
    },
  };
}

function stateOfResult<State>(result: State | Stop<State>): State {
  return result instanceof Stop ? result.state : result;
}

/**
 * The casts and plain-data messages still queued for this server, oldest first. Calls, signals
 * (EXIT, DOWN) and other class instances are not kept: they would not survive serialization.
 */
function queuedMessages(context: Context): SavedMessage[] {
  const saved: SavedMessage[] = [];
  for (const message of context.system.mailboxOf(context.self)) {
    if (message instanceof CastRequest) saved.push({ cast: message.request });
    else if (!(message instanceof CallRequest) && isPlainData(message)) saved.push({ info: message });
  }
  return saved;
}

function isPlainData(value: unknown): boolean {
  if (typeof value !== 'object' || value === null)
    return typeof value !== 'function' && typeof value !== 'symbol';
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === Array.prototype || prototype === null;
}
