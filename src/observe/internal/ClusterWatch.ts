/**
 * What an observer keeps of a cluster node it watches: the peers' phi (read from the node's
 * `status()` in the background, since a snapshot is synchronous), nodeup / nodedown /
 * quarantined counts, and the rows of the snapshot's `nodes`. Structurally typed against
 * `ClusterNode`'s public API, so observe imports nothing of the cluster layer.
 */
import type { NodeRow } from '../Snapshot.js';

export interface ObservedNodeId {
  readonly name: string;
  readonly incarnation: number;
}

/** The part of `ClusterNode` (src/cluster) an observer reads. */
export interface ObservedCluster {
  readonly self: ObservedNodeId;
  nodes(): readonly ObservedNodeId[];
  monitorNodes(listener: (event: { readonly kind: string }) => void): () => void;
  readonly isLeader: boolean;
  /** `name#incarnation` of the leader as the node last saw it. */
  readonly leader: string | undefined;
  status(): Promise<{ readonly nodes: readonly { readonly node: ObservedNodeId; readonly phi: number }[] }>;
}

export interface WatchClusterOptions {
  /** How often the peers' phi is read (ms); default 500, at least 50. */
  readonly phiRefreshMs?: number;
}

export const DEFAULT_PHI_REFRESH_MS = 500;
export const MIN_PHI_REFRESH_MS = 50;

const key = (node: ObservedNodeId): string => `${node.name}#${node.incarnation}`;

export class ClusterWatch {
  /** nodeup / nodedown / quarantined events seen since the watch began. */
  readonly eventCounts = new Map<string, number>();
  private phis = new Map<string, number>();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly unsubscribe: () => void;
  private refreshing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly node: ObservedCluster,
    options: WatchClusterOptions,
    private readonly changed: () => void,
  ) {
    const every = options.phiRefreshMs ?? DEFAULT_PHI_REFRESH_MS;
    if (!Number.isFinite(every) || every < MIN_PHI_REFRESH_MS)
      throw new RangeError(
        `watchCluster: phiRefreshMs must be a number of milliseconds >= ${MIN_PHI_REFRESH_MS}, got ${every}`,
      );
    this.unsubscribe = node.monitorNodes((event) => {
      this.eventCounts.set(event.kind, (this.eventCounts.get(event.kind) ?? 0) + 1);
      void this.refresh();
      this.changed();
    });
    this.timer = setInterval(() => void this.refresh(), every);
    this.timer.unref?.();
    void this.refresh();
  }

  get selfKey(): string {
    return key(this.node.self);
  }

  /** Reads the peers' phi now (one `status()` at a time; a failed read keeps the last values). */
  refresh(): Promise<void> {
    this.refreshing ??= this.node
      .status()
      .then(
        (status) => {
          if (!this.stopped) this.phis = new Map(status.nodes.map((row) => [key(row.node), row.phi]));
        },
        () => {}, // not connected for a moment: the next refresh tries again
      )
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** The peers up now, with their last phi. */
  peers(): Array<{ readonly key: string; readonly phi: number | undefined }> {
    return this.node.nodes().map((peer) => ({ key: key(peer), phi: this.phis.get(key(peer)) }));
  }

  rows(): NodeRow[] {
    const leader = this.node.leader;
    const self = this.selfKey;
    return [
      { name: self, status: 'self', phi: undefined, leader: leader === self },
      ...this.peers().map((peer) => ({
        name: peer.key,
        status: 'up',
        phi: peer.phi,
        leader: leader === peer.key,
      })),
    ];
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
