import { guardOf, TaggedError } from '../internal/errors.js';
import type {
  CheckpointCorruption,
  CheckpointMetadata,
  CheckpointStore,
  SavedCheckpoint,
} from './CheckpointStore.js';
import { InvalidCheckpointArgument } from './CheckpointStore.js';

/** Encodes an actor's queued messages. */
export interface MessageCodec<Message> {
  encode(messages: readonly Message[]): Uint8Array;
  decode(bytes: Uint8Array): Message[];
}

/** Messages as UTF-8 JSON (the default): plain data only. */
export const jsonMessageCodec: MessageCodec<any> = {
  encode: (messages) => Buffer.from(JSON.stringify(messages), 'utf8'),
  decode: (bytes) => {
    const value: unknown = JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    );
    if (!Array.isArray(value)) throw new TypeError('message list is not a JSON array');
    return value;
  },
};

export interface CheckpointManagerOptions<State, Message> {
  readonly store: CheckpointStore;
  /** The actor says how its state becomes bytes... */
  readonly serialize: (state: State) => Uint8Array;
  /** ...and how it comes back. */
  readonly deserialize: (bytes: Uint8Array) => State;
  /** Default: `jsonMessageCodec`. */
  readonly messageCodec?: MessageCodec<Message>;
  /** Wall-clock source for `savedAtMs` (record keeping only). Default `Date.now`. */
  readonly timestamp?: () => number;
  /** After each checkpoint, keep this many per key and prune older ones. Default: keep all. */
  readonly keep?: number;
}

/** What an actor checkpoint carries besides state and messages. */
export interface ActorCheckpointMetadata {
  readonly savedAtMs: number;
  readonly messageCount: number;
  readonly stateBytes: number;
  /** The caller's own metadata (reductions, step number, ...). */
  readonly user: CheckpointMetadata;
}

export interface RestoredActor<State, Message> {
  readonly state: State;
  /** Messages that were queued when the checkpoint was taken, oldest first. */
  readonly messages: Message[];
  readonly metadata: ActorCheckpointMetadata;
  readonly sequence: number;
  /** Newer checkpoints that were corrupt and passed over. */
  readonly skipped: readonly CheckpointCorruption[];
}

/** A checkpoint that verified but cannot be turned back into an actor (format or codec mismatch). */
export class CheckpointDecodeError extends TaggedError('CheckpointDecodeError') {
  constructor(
    readonly key: string,
    readonly sequence: number,
    readonly detail: string,
  ) {
    super(`checkpoint ${key}/${sequence} cannot be restored: ${detail}`);
  }
}

export const isCheckpointDecodeError = guardOf(CheckpointDecodeError);

const KIND = 'zbmd.actor-checkpoint';
const STATE_LENGTH_BYTES = 4;

/**
 * Saves and restores an actor's state and mailbox (seeds/001 `CheckpointManager`).
 *
 * Payload: state length (u32 LE) | serialized state | encoded messages. The store adds the
 * checksum and the atomic write; the manager adds what an actor needs back.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { CheckpointManager, InMemoryCheckpointStore } from 'zbmd/fault';
 *
 * const manager = new CheckpointManager<{ count: number }, string>({
 *   store: new InMemoryCheckpointStore(),
 *   serialize: (state) => new TextEncoder().encode(JSON.stringify(state)),
 *   deserialize: (bytes) => JSON.parse(new TextDecoder().decode(bytes)),
 * });
 * await manager.checkpoint('counter', { state: { count: 3 }, messages: ['increment'] });
 * const restored = await manager.restore('counter');
 * assert.deepEqual(restored?.state, { count: 3 });
 * assert.deepEqual(restored?.messages, ['increment']);
 * ```
 */
export class CheckpointManager<State, Message = unknown> {
  private readonly codec: MessageCodec<Message>;
  private readonly timestamp: () => number;

  constructor(private readonly options: CheckpointManagerOptions<State, Message>) {
    this.codec = options.messageCodec ?? (jsonMessageCodec as MessageCodec<Message>);
    this.timestamp = options.timestamp ?? Date.now;
    if (options.keep !== undefined && (!Number.isInteger(options.keep) || options.keep < 1)) {
      throw new InvalidCheckpointArgument('keep', `an integer >= 1, got ${options.keep}`);
    }
  }

  async checkpoint(
    key: string,
    snapshot: {
      readonly state: State;
      readonly messages?: readonly Message[];
      readonly metadata?: CheckpointMetadata;
    },
  ): Promise<SavedCheckpoint> {
    const stateBytes = this.options.serialize(snapshot.state);
    const messages = snapshot.messages ?? [];
    const messageBytes = this.codec.encode(messages);
    const payload = Buffer.allocUnsafe(STATE_LENGTH_BYTES + stateBytes.byteLength + messageBytes.byteLength);
    payload.writeUInt32LE(stateBytes.byteLength, 0);
    payload.set(stateBytes, STATE_LENGTH_BYTES);
    payload.set(messageBytes, STATE_LENGTH_BYTES + stateBytes.byteLength);
    const metadata = {
      kind: KIND,
      savedAtMs: this.timestamp(),
      messageCount: messages.length,
      stateBytes: stateBytes.byteLength,
      user: snapshot.metadata ?? {},
    };
    const saved = await this.options.store.save(key, payload, metadata);
    if (this.options.keep !== undefined) await this.options.store.prune(key, this.options.keep);
    return saved;
  }

  /** The newest checkpoint that verifies, decoded; undefined when there is none. */
  async restore(key: string): Promise<RestoredActor<State, Message> | undefined> {
    const loaded = await this.options.store.loadLatest(key);
    if (loaded === undefined) return undefined;
    const { payload, metadata, sequence } = loaded;
    const fail = (detail: string) => new CheckpointDecodeError(key, sequence, detail);
    if (metadata.kind !== KIND) throw fail(`not an actor checkpoint (kind ${String(metadata.kind)})`);
    if (payload.length < STATE_LENGTH_BYTES) throw fail('payload shorter than its state length');
    const stateLength = payload.readUInt32LE(0);
    if (stateLength !== metadata.stateBytes || STATE_LENGTH_BYTES + stateLength > payload.length) {
      throw fail(`state length ${stateLength} does not fit the payload`);
    }
    const stateEnd = STATE_LENGTH_BYTES + stateLength;
    let state: State;
    let messages: Message[];
    try {
      state = this.options.deserialize(payload.subarray(STATE_LENGTH_BYTES, stateEnd));
      messages = this.codec.decode(payload.subarray(stateEnd));
    } catch (error) {
      throw fail(`decoding failed: ${(error as Error).message}`);
    }
    if (messages.length !== metadata.messageCount) {
      throw fail(`${messages.length} messages decoded, ${String(metadata.messageCount)} saved`);
    }
    return {
      state,
      messages,
      sequence,
      skipped: loaded.skipped,
      metadata: {
        savedAtMs: Number(metadata.savedAtMs),
        messageCount: messages.length,
        stateBytes: stateLength,
        user: (metadata.user ?? {}) as CheckpointMetadata,
      },
    };
  }
}
