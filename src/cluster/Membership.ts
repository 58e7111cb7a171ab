/**
 * Membership: every node publishes a heartbeat on `zbmd.<cluster>.heartbeat` every
 * `heartbeatIntervalMs`, and keeps one phi-accrual detector (the fault layer's, Akka's
 * defaults) per peer incarnation. A peer is up from its first heartbeat and down when its phi
 * crosses the threshold, when it says it leaves, or when a newer incarnation of the same name
 * appears. Like net_kernel, a node's `nodedown` is reported after every signal already received
 * from it, and a down incarnation stays down: its later heartbeats (a paused process that
 * resumed) are answered with a quarantine notice on its own subject, so it learns it was
 * declared down and must rejoin as a new incarnation.
 *
 * With the default 100 ms heartbeat, min std-dev 100 ms and threshold 8, a silent peer is
 * declared down about 0.7 s after its last heartbeat.
 */
import { Packr } from 'msgpackr';
import { type Clock, RealClock, type TimerHandle } from '../actor/Clock.js';
import { PhiAccrualDetector } from '../fault/PhiAccrualDetector.js';
import { ClusterError } from './errors.js';
import type { ClusterTransport } from './Transport.js';

/** A node's name and incarnation (Erlang's "creation"): a restarted node is a new incarnation. */
export interface NodeId {
  readonly name: string;
  readonly incarnation: number;
}

export type NodeEvent =
  | { readonly kind: 'nodeup'; readonly node: NodeId }
  | { readonly kind: 'nodedown'; readonly node: NodeId; readonly reason: NodeDownReason }
  /** This node was declared down by `by` (it was silent too long): rejoin as a new incarnation. */
  | { readonly kind: 'quarantined'; readonly by: NodeId };

export type NodeDownReason = 'heartbeat_timeout' | 'left' | 'restarted';

export interface MembershipOptions {
  readonly transport: ClusterTransport;
  readonly cluster: string;
  readonly self: NodeId;
  readonly clock?: Clock;
  /** Default 100 ms. */
  readonly heartbeatIntervalMs?: number;
  /** Phi threshold (default 8) and the detector's floor under the std deviation (default 100 ms). */
  readonly phiThreshold?: number;
  readonly minStdDeviationMs?: number;
  /** Told of messages that are not zbmd heartbeats (dropped, never fatal). */
  readonly onMalformed?: (subject: string, detail: string) => void;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 100;

/** Node and cluster names: NATS subject tokens, so letters, digits, '-' and '_'. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

interface Peer {
  readonly id: NodeId;
  detector: PhiAccrualDetector;
}

/**
 * A heartbeat timer that fires this many intervals late means this node itself was not running
 * (SIGSTOP, a long GC or event-loop stall): the silence it saw is its own, so it does not judge
 * its peers on it (their heartbeats are still queued) and starts their detectors afresh.
 */
export const OWN_PAUSE_INTERVALS = 5;

const packer = new Packr({ useRecords: false });

function key(node: NodeId): string {
  return `${node.name}#${node.incarnation}`;
}

export function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new ClusterError(
      'invalid_option',
      `${what} must be 1 to 64 letters, digits, '-' or '_', not ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** Decodes a heartbeat or leave body: `{ n: name, i: incarnation }`; undefined when malformed. */
function decodeNode(data: Uint8Array): NodeId | undefined {
  let body: unknown;
  try {
    body = packer.unpack(data);
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const { n, i } = body as { n?: unknown; i?: unknown };
  if (typeof n !== 'string' || !NAME_PATTERN.test(n) || !Number.isSafeInteger(i) || (i as number) < 1)
    return undefined;
  return { name: n, incarnation: i as number };
}

export class Membership {
  readonly self: NodeId;
  readonly #transport: ClusterTransport;
  readonly #clock: Clock;
  readonly #subjects: { heartbeat: string; leave: string; quarantine: (name: string) => string };
  readonly #intervalMs: number;
  readonly #peers = new Map<string, Peer>();
  /** Down incarnations: their later signals are ignored (and answered with a quarantine notice). */
  readonly #down = new Set<string>();
  readonly #listeners = new Set<(event: NodeEvent) => void>();
  readonly #unsubscribes: (() => void)[] = [];
  #timer: TimerHandle | undefined;
  #running = false;
  #lastBeatAt: number | undefined;

  constructor(private readonly options: MembershipOptions) {
    checkName('cluster name', options.cluster);
    checkName('node name', options.self.name);
    this.self = options.self;
    this.#transport = options.transport;
    this.#clock = options.clock ?? new RealClock();
    this.#intervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    if (!(this.#intervalMs >= 10 && this.#intervalMs <= 60_000)) {
      throw new ClusterError(
        'invalid_option',
        `heartbeatIntervalMs must be 10 to 60,000, not ${this.#intervalMs}`,
      );
    }
    const prefix = `zbmd.${options.cluster}`;
    this.#subjects = {
      heartbeat: `${prefix}.heartbeat`,
      leave: `${prefix}.leave`,
      quarantine: (name) => `${prefix}.quarantine.${name}`,
    };
  }

  /** Nodes up now (not this one), sorted by name. */
  nodes(): NodeId[] {
    return [...this.#peers.values()].map((peer) => peer.id).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The phi of each peer, for `zbmd cluster status`. */
  phis(): { readonly node: NodeId; readonly phi: number }[] {
    return [...this.#peers.values()].map((peer) => ({ node: peer.id, phi: peer.detector.phi() }));
  }

  isUp(node: NodeId): boolean {
    return (
      this.#peers.has(key(node)) ||
      (node.name === this.self.name && node.incarnation === this.self.incarnation)
    );
  }

  /** True when this node declared `node` (that incarnation) down. */
  isDown(node: NodeId): boolean {
    return this.#down.has(key(node));
  }

  /** Listens to nodeup / nodedown / quarantined events; returns the unsubscribe. */
  monitor(listener: (event: NodeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#unsubscribes.push(
      this.#transport.subscribe(this.#subjects.heartbeat, (data, subject) =>
        this.#onHeartbeat(data, subject),
      ),
      this.#transport.subscribe(this.#subjects.leave, (data, subject) => this.#onLeave(data, subject)),
      this.#transport.subscribe(this.#subjects.quarantine(this.self.name), (data, subject) =>
        this.#onQuarantine(data, subject),
      ),
    );
    this.#beat();
  }

  /** Stops; with `leave` (default) the others see nodedown 'left' at once instead of after a timeout. */
  stop(options: { leave?: boolean } = {}): void {
    if (!this.#running) return;
    this.#running = false;
    this.#lastBeatAt = undefined;
    if (this.#timer !== undefined) this.#clock.cancelTimer(this.#timer);
    if (options.leave ?? true) this.#transport.publish(this.#subjects.leave, this.#selfBody());
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    this.#peers.clear();
  }

  /** Ends a peer at once (the transport lost it, or a caller knows better); no-op if not up. */
  declareDown(node: NodeId, reason: NodeDownReason): void {
    const peer = this.#peers.get(key(node));
    if (peer === undefined) return;
    this.#peers.delete(key(node));
    this.#down.add(key(node));
    this.#emit({ kind: 'nodedown', node: peer.id, reason });
  }

  #selfBody(): Uint8Array {
    return packer.pack({ n: this.self.name, i: this.self.incarnation });
  }

  #beat(): void {
    if (!this.#running) return;
    this.#transport.publish(this.#subjects.heartbeat, this.#selfBody());
    const now = this.#clock.now();
    const paused =
      this.#lastBeatAt !== undefined && now - this.#lastBeatAt > OWN_PAUSE_INTERVALS * this.#intervalMs;
    this.#lastBeatAt = now;
    if (paused) for (const peer of this.#peers.values()) peer.detector = this.#newDetector();
    else this.#check();
    this.#timer = this.#clock.setTimer(this.#intervalMs, () => this.#beat());
  }

  #check(): void {
    for (const peer of [...this.#peers.values()]) {
      if (!peer.detector.isAvailable()) this.declareDown(peer.id, 'heartbeat_timeout');
    }
  }

  #onHeartbeat(data: Uint8Array, subject: string): void {
    const node = decodeNode(data);
    if (node === undefined) {
      this.options.onMalformed?.(subject, 'not a zbmd heartbeat');
      return;
    }
    if (node.name === this.self.name) return; // our own, or an older life of ours
    const id = key(node);
    if (this.#down.has(id)) {
      this.#transport.publish(
        this.#subjects.quarantine(node.name),
        packer.pack({ n: this.self.name, i: this.self.incarnation, q: node.incarnation }),
      );
      return;
    }
    let peer = this.#peers.get(id);
    if (peer === undefined) {
      for (const other of [...this.#peers.values()]) {
        if (other.id.name !== node.name) continue;
        if (other.id.incarnation > node.incarnation) return; // a stale heartbeat of an older life
        this.declareDown(other.id, 'restarted');
      }
      peer = {
        id: node,
        detector: this.#newDetector(),
      };
      this.#peers.set(id, peer);
      this.#emit({ kind: 'nodeup', node });
      return;
    }
    peer.detector.heartbeat();
  }

  #newDetector(): PhiAccrualDetector {
    const detector = new PhiAccrualDetector({
      clock: this.#clock,
      threshold: this.options.phiThreshold ?? 8,
      minStdDeviationMs: this.options.minStdDeviationMs ?? 100,
      firstHeartbeatEstimateMs: this.#intervalMs,
    });
    detector.heartbeat();
    return detector;
  }

  #onLeave(data: Uint8Array, subject: string): void {
    const node = decodeNode(data);
    if (node === undefined) {
      this.options.onMalformed?.(subject, 'not a zbmd leave notice');
      return;
    }
    this.declareDown(node, 'left');
  }

  #onQuarantine(data: Uint8Array, subject: string): void {
    const by = decodeNode(data);
    let about: unknown;
    try {
      about = (packer.unpack(data) as { q?: unknown }).q;
    } catch {
      about = undefined;
    }
    if (by === undefined || about !== this.self.incarnation) {
      if (by === undefined) this.options.onMalformed?.(subject, 'not a zbmd quarantine notice');
      return;
    }
    this.#emit({ kind: 'quarantined', by });
  }

  /** @internal Reports an event this node learnt otherwise (ClusterNode: its own down mark). */
  emit(event: NodeEvent): void {
    this.#emit(event);
  }

  #emit(event: NodeEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        // a listener's bug must not stop membership; report it where it can be seen
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
