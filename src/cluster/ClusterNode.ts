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
import type { ActorSystem } from '../actor/ActorSystem.js';
import { type Clock, RealClock } from '../actor/Clock.js';
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

  registerGlobal(name: string, process: string): Promise<void> {
    return this.#registry.register(name, process);
  }

  whereisGlobal(name: string): Promise<GlobalHolder | undefined> {
    return this.#registry.whereis(name);
  }

  unregisterGlobal(name: string): Promise<boolean> {
    return this.#registry.unregister(name);
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
      onNameLost: this.options.onNameLost,
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
    if (event.kind === 'nodedown') void this.#registry.purgeNode(event.node).catch(() => undefined);
    if (event.kind === 'quarantined')
      this.#rejoining ??= this.#rejoin().finally(() => (this.#rejoining = undefined));
    for (const listener of [...this.#listeners]) listener(event);
  }

  /** Declared down by the others: come back as a new incarnation, keeping nothing stale. */
  async #rejoin(): Promise<void> {
    if (this.#closed) return;
    const previous = this.self;
    await this.#election?.stop();
    this.#membership.stop({ leave: false });
    const incarnation = await nextIncarnation(this.buckets.nodes, previous.name);
    if (this.#closed) return;
    this.#membership = this.#makeMembership({ name: previous.name, incarnation });
    this.#membership.start();
    // the names held move to the new incarnation where the cluster still records them for us
    this.#registry.useMembership(this.#membership);
    await this.#registry.revalidate(previous);
    this.#election = this.#makeElection();
    this.#election?.start();
  }
}
