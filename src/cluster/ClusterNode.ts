/**
 * One zbmd node in a cluster: its identity (a name and an incarnation number allocated in the
 * cluster's KV, so each life of a name gets a larger one), membership with phi-accrual failure
 * detection, global names and leader election, over one transport (NATS, or the simulated
 * network).
 *
 * A node that learns it was declared down (it was paused or cut off past the detection time)
 * rejoins as a new incarnation: it stops acting as leader (its lease has ended anyway), keeps
 * only the global names the cluster still records for it, and reports the rest as lost.
 */

import { Packr } from 'msgpackr';
import type { ActorSystem } from '../actor/ActorSystem.js';
import { type Clock, RealClock, type TimerHandle } from '../actor/Clock.js';
import { ClusterError } from './errors.js';
import { type GlobalHolder, GlobalRegistry } from './GlobalRegistry.js';
import { LeaderElection } from './LeaderElection.js';
import {
  checkName,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  Membership,
  type NodeEvent,
  type NodeId,
} from './Membership.js';
import { NatsTransport } from './NatsTransport.js';
import { type AttachOptions, RemoteProcesses } from './RemoteProcesses.js';
import { type Bucket, type ClusterTransport, isBucketConflict } from './Transport.js';

/** Default lease of the leader: a new leader exists within about this long after one dies. */
export const DEFAULT_LEASE_MS = 2_000;

/** A rejoin whose bucket operations fail (the store side unreachable) retries after 50 ms, doubling up to this. */
export const REJOIN_RETRY_MAX_MS = 400;

/**
 * How often a node reads its own down mark in the nodes bucket (and at each nodeup): a node
 * declared down whose deciders all died before telling it still learns it, within about this long.
 */
export const SELF_CHECK_MS = 1_000;

const packer = new Packr({ useRecords: false });

/** The key of a name's down mark in the nodes bucket (node names have no '.'). */
const downKey = (name: string): string => `d.${name}`;

/** The highest incarnation of `name` declared down, and by whom; undefined when none. */
function decodeMark(data: Uint8Array): { i: number; by: NodeId } | undefined {
  try {
    const value = packer.unpack(data) as { i?: unknown; n?: unknown; c?: unknown } | null;
    if (
      value !== null &&
      typeof value === 'object' &&
      Number.isSafeInteger(value.i) &&
      typeof value.n === 'string' &&
      Number.isSafeInteger(value.c)
    )
      return { i: value.i as number, by: { name: value.n, incarnation: value.c as number } };
  } catch {
    // unreadable: no mark
  }
  return undefined;
}

export interface ClusterNodeOptions {
  /** This node's name: letters, digits, '-', '_' (a NATS subject token). */
  readonly name: string;
  /** The cluster's name (subjects and buckets are scoped by it). Default 'zbmd'. */
  readonly cluster?: string;
  /** NATS server URL(s); or give `transport`. */
  readonly nats?: string | readonly string[];
  readonly credentials?: { readonly user: string; readonly password: string };
  /** Bucket replicas (3 on a 3-server JetStream cluster). Default 1. */
  readonly replicas?: number;
  readonly transport?: ClusterTransport;
  readonly clock?: Clock;
  readonly heartbeatIntervalMs?: number;
  readonly leaseMs?: number;
  /** Take part in leader election. Default true. */
  readonly election?: boolean;
  /** Malformed messages on zbmd subjects are dropped; this hears about them (default: stderr). */
  readonly onMalformed?: (subject: string, detail: string) => void;
  /** A global name this node held was lost in a partition (see GlobalRegistry). */
  readonly onNameLost?: (name: string, process: string) => void;
}

export interface ClusterStatus {
  readonly self: NodeId;
  readonly nodes: readonly { readonly node: NodeId; readonly phi: number }[];
  readonly leader: string | undefined;
  readonly isLeader: boolean;
  readonly names: readonly { readonly name: string; readonly holder: GlobalHolder }[];
}

const MAX_INCARNATION_ATTEMPTS = 20;

/** Allocates the next incarnation of `name`: compare-and-set on the cluster's nodes bucket. */
async function nextIncarnation(bucket: Bucket, name: string): Promise<number> {
  for (let attempt = 0; attempt < MAX_INCARNATION_ATTEMPTS; attempt++) {
    const entry = await bucket.get(name);
    const current = entry === undefined ? 0 : Number(new TextDecoder().decode(entry.value));
    const next = (Number.isSafeInteger(current) && current > 0 ? current : 0) + 1;
    const value = new TextEncoder().encode(String(next));
    try {
      if (entry === undefined) await bucket.create(name, value);
      else await bucket.update(name, value, entry.revision);
      return next;
    } catch (error) {
      if (!isBucketConflict(error)) throw error;
    }
  }
  throw new ClusterError(
    'invalid_option',
    `could not allocate an incarnation for ${name}: too many nodes starting with that name at once`,
  );
}

export class ClusterNode {
  #membership: Membership;
  #election: LeaderElection | undefined;
  #registry: GlobalRegistry;
  readonly #listeners = new Set<(event: NodeEvent) => void>();
  readonly #leaderListeners = new Set<(term: number) => void>();
  readonly #followerListeners = new Set<(leader: string | undefined) => void>();
  #closed = false;
  readonly #attached = new Set<RemoteProcesses>();
  #rejoining: Promise<void> | undefined;
  readonly #nameLostListeners = new Set<(name: string, process: string) => void>();
  readonly #rejoinListeners = new Set<(self: NodeId, previous: NodeId) => void>();
  #selfCheckTimer: TimerHandle | undefined;
  #selfChecking = false;

  private constructor(
    private readonly options: ClusterNodeOptions,
    private readonly transport: ClusterTransport,
    private readonly ownsTransport: boolean,
    private readonly buckets: { nodes: Bucket; names: Bucket; leader: Bucket | undefined },
    private readonly clock: Clock,
    self: NodeId,
  ) {
    this.#membership = this.#makeMembership(self);
    this.#registry = this.#makeRegistry();
    this.#election = this.#makeElection();
  }

  /** Connects, allocates this life's incarnation, and starts heartbeats (and the election). */
  static async start(options: ClusterNodeOptions): Promise<ClusterNode> {
    const name = checkName('node name', options.name);
    const cluster = checkName('cluster name', options.cluster ?? 'zbmd');
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    let transport = options.transport;
    const ownsTransport = transport === undefined;
    if (transport === undefined) {
      if (options.nats === undefined)
        throw new ClusterError('invalid_option', 'give `nats` (server URLs) or `transport`');
      transport = await NatsTransport.connect({
        servers: options.nats,
        credentials: options.credentials,
        replicas: options.replicas,
        name: `zbmd ${name}`,
      });
    }
    try {
      const nodes = await transport.openBucket(`zbmd_${cluster}_nodes`);
      const names = await transport.openBucket(`zbmd_${cluster}_names`);
      const leader =
        options.election === false
          ? undefined
          : await transport.openBucket(`zbmd_${cluster}_leader`, { ttlMs: leaseMs });
      const incarnation = await nextIncarnation(nodes, name);
      const node = new ClusterNode(
        { ...options, cluster, leaseMs },
        transport,
        ownsTransport,
        { nodes, names, leader },
        options.clock ?? new RealClock(),
        { name, incarnation },
      );
      node.#membership.start();
      node.#election?.start();
      node.#scheduleSelfCheck();
      return node;
    } catch (error) {
      if (ownsTransport) await transport.close();
      throw error;
    }
  }

  get self(): NodeId {
    return this.#membership.self;
  }

  /** The other nodes up now. */
  nodes(): NodeId[] {
    return this.#membership.nodes();
  }

  isUp(node: NodeId): boolean {
    return this.#membership.isUp(node);
  }

  /** nodeup / nodedown / quarantined events (net_kernel's monitor_nodes); returns the unsubscribe. */
  monitorNodes(listener: (event: NodeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get isLeader(): boolean {
    return this.#election?.isLeader ?? false;
  }

  /** The leader as this node last saw it (`name#incarnation`). */
  get leader(): string | undefined {
    return this.#election?.leader;
  }

  onLeader(listener: (term: number) => void): () => void {
    this.#leaderListeners.add(listener);
    if (this.isLeader) listener(this.#election!.term);
    return () => this.#leaderListeners.delete(listener);
  }

  onFollower(listener: (leader: string | undefined) => void): () => void {
    this.#followerListeners.add(listener);
    return () => this.#followerListeners.delete(listener);
  }

  /** Registers a global name; during a rejoin, once the node is its new incarnation. */
  async registerGlobal(name: string, process: string): Promise<void> {
    while (this.#rejoining !== undefined) await this.#rejoining;
    return this.#registry.register(name, process);
  }

  whereisGlobal(name: string): Promise<GlobalHolder | undefined> {
    return this.#registry.whereis(name);
  }

  unregisterGlobal(name: string): Promise<boolean> {
    return this.#registry.unregister(name);
  }

  /**
   * Hears of each global name this node held and lost after a partition (the cluster records
   * another holder, or none), besides the `onNameLost` option; returns the unsubscribe.
   */
  onNameLost(listener: (name: string, process: string) => void): () => void {
    this.#nameLostListeners.add(listener);
    return () => this.#nameLostListeners.delete(listener);
  }

  /** Hears of each rejoin: this node is now incarnation `self` (it was `previous`); returns the unsubscribe. */
  onRejoined(listener: (self: NodeId, previous: NodeId) => void): () => void {
    this.#rejoinListeners.add(listener);
    return () => this.#rejoinListeners.delete(listener);
  }

  /** A process of this node exited: its global names go. */
  releaseProcess(process: string): Promise<void> {
    return this.#registry.releaseProcess(process);
  }

  async status(): Promise<ClusterStatus> {
    return {
      self: this.self,
      nodes: this.#membership.phis(),
      leader: this.leader,
      isLeader: this.isLeader,
      names: await this.#registry.registered(),
    };
  }

  /**
   * Lets the processes of `system` (a one-thread system whose `nodeName` is this node's name)
   * reach processes of the other nodes' attached systems, and be reached by them: send, exit,
   * link, unlink, monitor, demonitor and call, on `zbmd.<cluster>.node.<name>.<incarnation>`.
   */
  attach(system: ActorSystem, options: AttachOptions = {}): RemoteProcesses {
    const remote = new RemoteProcesses(system, this, this.transport, this.options.cluster!, {
      ...options,
      onMalformed: options.onMalformed ?? this.options.onMalformed,
    });
    this.#attached.add(remote);
    return remote;
  }

  /** Leaves the cluster: gives up the lease and the names, says goodbye, closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#selfCheckTimer !== undefined) this.clock.cancelTimer(this.#selfCheckTimer);
    for (const remote of this.#attached) remote.detach();
    this.#attached.clear();
    await this.#election?.stop();
    for (const name of this.#registry.heldHere().keys())
      await this.#registry.unregister(name).catch(() => false);
    this.#membership.stop({ leave: true });
    await this.transport.flush().catch(() => undefined);
    if (this.ownsTransport) await this.transport.close();
  }

  #makeMembership(self: NodeId): Membership {
    const membership = new Membership({
      transport: this.transport,
      cluster: this.options.cluster!,
      self,
      clock: this.clock,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      onMalformed:
        this.options.onMalformed ??
        ((subject, detail) =>
          process.stderr.write(`zbmd cluster: dropped a malformed message on ${subject}: ${detail}\n`)),
    });
    membership.monitor((event) => this.#onEvent(event));
    return membership;
  }

  #makeRegistry(): GlobalRegistry {
    return new GlobalRegistry({
      bucket: this.buckets.names,
      membership: this.#membership,
      onNameLost: (name, process) => {
        this.options.onNameLost?.(name, process);
        for (const listener of [...this.#nameLostListeners]) listener(name, process);
      },
      isDown: (node) => this.#isDown(node),
    });
  }

  #makeElection(): LeaderElection | undefined {
    if (this.buckets.leader === undefined) return undefined;
    return new LeaderElection({
      bucket: this.buckets.leader,
      candidate: `${this.self.name}#${this.self.incarnation}`,
      leaseMs: this.options.leaseMs!,
      clock: this.clock,
      onLeader: (term) => {
        for (const listener of [...this.#leaderListeners]) listener(term);
      },
      onFollower: (leader) => {
        for (const listener of [...this.#followerListeners]) listener(leader);
      },
    });
  }

  #onEvent(event: NodeEvent): void {
    if (event.kind === 'nodedown') {
      // a node declared down by silence may still be alive: mark it down in the nodes bucket
      // before its names go, so it learns it even if no decider lives to tell it
      const node = event.node;
      const marked = event.reason === 'heartbeat_timeout' ? this.#markDown(node) : Promise.resolve();
      void marked.then(() => this.#registry.purgeNode(node)).catch(() => undefined);
    }
    if (event.kind === 'nodeup') this.#selfCheck();
    if (event.kind === 'quarantined' && this.#rejoining === undefined) {
      this.#rejoining = this.#rejoin().finally(() => {
        this.#rejoining = undefined;
      });
    }
    for (const listener of [...this.#listeners]) listener(event);
  }

  /** Writes (raises) the down mark of `node`'s name to its incarnation. */
  async #markDown(node: NodeId): Promise<void> {
    const key = downKey(node.name);
    const value = packer.pack({ i: node.incarnation, n: this.self.name, c: this.self.incarnation });
    for (let attempt = 0; attempt < MAX_INCARNATION_ATTEMPTS; attempt++) {
      const entry = await this.buckets.nodes.get(key);
      const mark = entry === undefined ? undefined : decodeMark(entry.value);
      if (mark !== undefined && mark.i >= node.incarnation) return;
      try {
        if (entry === undefined) await this.buckets.nodes.create(key, value);
        else await this.buckets.nodes.update(key, value, entry.revision);
        return;
      } catch (error) {
        if (!isBucketConflict(error)) throw error;
      }
    }
  }

  /**
   * Whether `node` is down as far as the cluster knows: a later incarnation of its name exists,
   * or it was marked down; or this node declared it down (then it marks it first, so the node
   * learns it before its names are taken).
   */
  async #isDown(node: NodeId): Promise<boolean> {
    const current = await this.buckets.nodes.get(node.name);
    const incarnation = current === undefined ? 0 : Number(new TextDecoder().decode(current.value));
    if (incarnation > node.incarnation) return true;
    const entry = await this.buckets.nodes.get(downKey(node.name));
    const mark = entry === undefined ? undefined : decodeMark(entry.value);
    if (mark !== undefined && mark.i >= node.incarnation) return true;
    if (!this.#membership.isDown(node)) return false;
    await this.#markDown(node);
    return true;
  }

  #scheduleSelfCheck(): void {
    if (this.#closed) return;
    this.#selfCheckTimer = this.clock.setTimer(SELF_CHECK_MS, () => {
      this.#selfCheck();
      this.#scheduleSelfCheck();
    });
  }

  /** Reads this node's down mark: marked down (by deciders that may be gone) means quarantined. */
  #selfCheck(): void {
    if (this.#selfChecking || this.#rejoining !== undefined || this.#closed) return;
    this.#selfChecking = true;
    const self = this.self;
    void this.buckets.nodes
      .get(downKey(self.name))
      .then((entry) => {
        const mark = entry === undefined ? undefined : decodeMark(entry.value);
        if (mark === undefined || mark.i < self.incarnation) return;
        if (this.#closed || this.#rejoining !== undefined || this.self.incarnation !== self.incarnation)
          return;
        this.#membership.emit({ kind: 'quarantined', by: mark.by });
      })
      .catch(() => undefined) // the store is unreachable: the next check tries again
      .finally(() => {
        this.#selfChecking = false;
      });
  }

  /**
   * Declared down by the others: come back as a new incarnation, keeping nothing stale. Bucket
   * operations that fail (the store side unreachable) are retried, after 50 ms doubling up to
   * REJOIN_RETRY_MAX_MS, until they succeed or the node closes.
   */
  async #rejoin(): Promise<void> {
    if (this.#closed) return;
    const previous = this.self;
    await this.#election?.stop();
    this.#membership.stop({ leave: false });
    const incarnation = await this.#retrying(() => nextIncarnation(this.buckets.nodes, previous.name));
    if (incarnation === undefined || this.#closed) return;
    this.#membership = this.#makeMembership({ name: previous.name, incarnation });
    this.#membership.start();
    for (const listener of [...this.#rejoinListeners]) listener(this.self, previous);
    // the names held move to the new incarnation where the cluster still records them for us
    this.#registry.useMembership(this.#membership);
    await this.#retrying(() => this.#registry.revalidate(previous));
    if (this.#closed) return;
    this.#election = this.#makeElection();
    this.#election?.start();
  }

  /** Runs `work` until it succeeds (undefined if the node closed first), backing off between tries. */
  async #retrying<T>(work: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch {
        if (this.#closed) return undefined;
        const pauseMs = Math.min(REJOIN_RETRY_MAX_MS, 50 * 2 ** attempt);
        await new Promise<void>((resolve) => this.clock.setTimer(pauseMs, resolve));
        if (this.#closed) return undefined;
      }
    }
  }
}
