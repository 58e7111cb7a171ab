/**
 * The real transport: a NATS connection (`@nats-io/transport-node`) and JetStream KV buckets
 * (`@nats-io/kv`). Bucket TTLs are the stream's max_age (nats-server 2.9 has no per-key TTL).
 */
import { jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterError } from './errors.js';
import {
  type Bucket,
  BucketConflict,
  type BucketEntry,
  type ClusterTransport,
  type MessageHandler,
} from './Transport.js';

export interface NatsTransportOptions {
  /** One server URL or several (`nats://127.0.0.1:4222`). */
  readonly servers: string | readonly string[];
  /** nats-server user/password authentication. */
  readonly credentials?: { readonly user: string; readonly password: string };
  /** Replicas of the buckets this transport creates (1, or 3 on a 3-server cluster). Default 1. */
  readonly replicas?: number;
  /** How long to wait for the first connection. Default 5,000 ms. */
  readonly connectTimeoutMs?: number;
  /** Name shown in the server's connection list. */
  readonly name?: string;
}

/** How long a bucket operation may take, retries included, before it fails (a server failover in progress). */
export const BUCKET_OPERATION_TIMEOUT_MS = 5_000;
/** How long opening a bucket may take: a new JetStream cluster elects its meta leader first. */
export const BUCKET_OPEN_TIMEOUT_MS = 30_000;
const RETRY_PAUSE_MS = 100;
/** One JetStream request's timeout inside the retry budget. */
const JETSTREAM_ATTEMPT_TIMEOUT_MS = 1_500;

/** JetStream errors that a retry can outlive: timeouts, no responders, no leader yet, a reconnect. */
function isTransient(error: unknown): boolean {
  const text = `${(error as Error)?.name ?? ''} ${(error as Error)?.message ?? ''} ${(error as { code?: unknown })?.code ?? ''}`;
  return /timeout|no responders|503|not ready|not enabled|leader|unavailable|disconnect|reconnect|CONNECTION|10008|insufficient resources/i.test(
    text,
  );
}

/**
 * A bucket's stream still being added when another create for it arrives (a create retried
 * after its attempt timed out on a loaded server, or two nodes starting at once): nats-server
 * 2.9 can answer "subjects overlap with an existing stream". Seen once, in a full local test
 * run, as a node of tests/cluster/remoteProcesses.test.ts failing to start; 8 connections
 * creating one bucket at once on an idle server (30 rounds) never met it. Retried, the create
 * finds the stream and opens it.
 */
function isCreateRace(error: unknown): boolean {
  return /subjects overlap/i.test((error as Error)?.message ?? '');
}

/** Runs `operation`, retrying transient failures until `budgetMs` is spent; then a typed error. */
async function withRetries<T>(
  what: string,
  budgetMs: number,
  operation: () => Promise<T>,
  retryable: (error: unknown) => boolean = isTransient,
): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      return await operation();
    } catch (error) {
      if (!retryable(error)) throw error;
      if (Date.now() + RETRY_PAUSE_MS >= deadline) {
        throw new ClusterError(
          'not_connected',
          `${what} failed for ${budgetMs} ms: ${(error as Error).message}`,
          { cause: error },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
    }
  }
}

export class NatsTransport implements ClusterTransport {
  readonly #interruptListeners = new Set<() => void>();

  private constructor(
    private readonly connection: NatsConnection,
    private readonly replicas: number,
  ) {
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type !== 'disconnect') continue;
        for (const listener of [...this.#interruptListeners]) listener();
      }
    })().catch(() => undefined);
  }

  onInterrupted(listener: () => void): () => void {
    this.#interruptListeners.add(listener);
    return () => this.#interruptListeners.delete(listener);
  }

  static async connect(options: NatsTransportOptions): Promise<NatsTransport> {
    const replicas = options.replicas ?? 1;
    if (![1, 3, 5].includes(replicas)) {
      throw new ClusterError('invalid_option', `replicas must be 1, 3 or 5, not ${replicas}`);
    }
    const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
    try {
      const connection = await connect({
        servers,
        name: options.name,
        user: options.credentials?.user,
        pass: options.credentials?.password,
        timeout: options.connectTimeoutMs ?? 5_000,
        // loopback clusters: never follow gossiped addresses (see README, cluster)
        ignoreClusterUpdates: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 100,
      });
      return new NatsTransport(connection, replicas);
    } catch (error) {
      const text = String((error as Error).message ?? error);
      const refused = /authoriz|authent/i.test(text);
      throw new ClusterError(
        refused ? 'connection_refused' : 'not_connected',
        refused
          ? `the NATS server at ${servers.join(', ')} refused the credentials: ${text}`
          : `cannot connect to NATS at ${servers.join(', ')}: ${text} (is nats-server running?)`,
        { cause: error },
      );
    }
  }

  get maxPayloadBytes(): number {
    return this.connection.info?.max_payload ?? 1024 * 1024;
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.connection.isClosed()) return; // as Erlang: a send to a lost node is dropped
    this.connection.publish(subject, data);
  }

  subscribe(subject: string, handler: MessageHandler): () => void {
    const subscription = this.connection.subscribe(subject, {
      callback: (error, message) => {
        if (error === null) handler(message.data, message.subject);
      },
    });
    return () => subscription.unsubscribe();
  }

  async openBucket(name: string, options: { readonly ttlMs?: number } = {}): Promise<Bucket> {
    // short attempts, retried: one attempt must not eat the whole budget during a failover
    const kvm = new Kvm(jetstream(this.connection, { timeout: JETSTREAM_ATTEMPT_TIMEOUT_MS }));
    const kv = await withRetries(
      `opening bucket ${name}`,
      BUCKET_OPEN_TIMEOUT_MS,
      () => kvm.create(name, { history: 1, replicas: this.replicas, ttl: options.ttlMs ?? 0 }),
      (error) => isTransient(error) || isCreateRace(error),
    );
    return new NatsBucket(name, kv);
  }

  flush(): Promise<void> {
    return this.connection.flush();
  }

  async close(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.close();
  }
}

/** JetStream's answer when a compare-and-set loses. */
function isWrongSequence(error: unknown): boolean {
  const text = String((error as Error)?.message ?? '');
  return /wrong last sequence|key exists/i.test(text) || (error as { code?: unknown })?.code === 10071;
}

class NatsBucket implements Bucket {
  constructor(
    private readonly name: string,
    private readonly kv: KV,
  ) {}

  async get(key: string): Promise<BucketEntry | undefined> {
    const entry = await withRetries(`reading ${this.name}/${key}`, BUCKET_OPERATION_TIMEOUT_MS, () =>
      this.kv.get(key),
    );
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return { value: entry.value, revision: entry.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    try {
      return await withRetries(`creating ${this.name}/${key}`, BUCKET_OPERATION_TIMEOUT_MS, () =>
        this.kv.create(key, value),
      );
    } catch (error) {
      if (isWrongSequence(error)) throw new BucketConflict(this.name, key, 'already present');
      throw error;
    }
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    try {
      return await withRetries(`updating ${this.name}/${key}`, BUCKET_OPERATION_TIMEOUT_MS, () =>
        this.kv.update(key, value, revision),
      );
    } catch (error) {
      if (isWrongSequence(error)) throw new BucketConflict(this.name, key, `not at revision ${revision}`);
      throw error;
    }
  }

  async delete(key: string, revision?: number): Promise<void> {
    try {
      await withRetries(`deleting ${this.name}/${key}`, BUCKET_OPERATION_TIMEOUT_MS, () =>
        this.kv.delete(key, revision === undefined ? undefined : { previousSeq: revision }),
      );
    } catch (error) {
      if (isWrongSequence(error)) throw new BucketConflict(this.name, key, `not at revision ${revision}`);
      throw error;
    }
  }

  async keys(): Promise<string[]> {
    return withRetries(`listing ${this.name}`, BUCKET_OPERATION_TIMEOUT_MS, async () => {
      const keys: string[] = [];
      for await (const key of await this.kv.keys()) keys.push(key);
      return keys;
    });
  }
}
