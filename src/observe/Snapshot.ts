/**
 * What an observer shows, as plain JSON: the same object goes over the control socket to
 * `zbmd top`, over SSE to the web view, and into `zbmd plot`. Types only.
 */

export interface ProcessRow {
  readonly pid: string;
  readonly name: string | undefined;
  readonly status: string;
  readonly mailboxLength: number;
  readonly reductions: number;
  readonly kind: 'handler' | 'process';
}

export interface TreeNode {
  /** Child id (the root: its registered name or 'root'). */
  readonly id: string;
  /** Pid, or 'restarting' / 'stopped'. */
  readonly pid: string;
  readonly type: 'supervisor' | 'worker';
  readonly strategy: string | undefined;
  readonly restart: string | undefined;
  /** Restarts of this child seen by the observer. */
  readonly restarts: number;
  readonly children: TreeNode[];
}

/** A node of the cluster (`SystemObserver.watchCluster`): this node first, then the peers up. */
export interface NodeRow {
  /** `name#incarnation`. */
  readonly name: string;
  /** 'self' for the watched node, 'up' for a peer it sees up. */
  readonly status: string;
  /** The peer's phi-accrual suspicion as the watched node computes it (none for itself). */
  readonly phi: number | undefined;
  /** Whether the watched node sees this one as the leader. */
  readonly leader?: boolean;
}

export interface DeviceRow {
  readonly id: string;
  readonly memoryBytes: number;
  readonly health: string;
  readonly errorCount: number;
  readonly lastError: string | undefined;
  /** True for the device training runs on now. */
  readonly current: boolean;
}

export interface EventRow {
  readonly timeMs: number;
  readonly kind: string;
  readonly supervisor: string;
  readonly childId: string | undefined;
  readonly pid: string | undefined;
  readonly reason: string | undefined;
}

export interface RecoveryMark {
  readonly step: number;
  readonly cause: string;
}

export interface TrainingView {
  /** [step, loss] pairs, step order (thinned to at most `MAX_SERIES_POINTS`). */
  readonly loss: Array<[number, number]>;
  /** [step, test accuracy] at the end of each epoch. */
  readonly accuracy: Array<[number, number]>;
  readonly recoveries: RecoveryMark[];
  readonly steps: number;
  readonly stepsPerSec: number;
  readonly lastLoss: number | undefined;
}

export interface ObserverSnapshot {
  readonly node: string;
  /** Wall-clock time of the snapshot (ms since the epoch). */
  readonly timeMs: number;
  readonly stats: {
    readonly alive: number;
    readonly spawned: number;
    readonly exited: number;
    readonly messagesSent: number;
    readonly messagesDropped: number;
    readonly crashes: number;
  };
  readonly restartsTotal: number;
  /** Live processes, the `PROCESS_ROWS_MAX` busiest by reductions. */
  readonly processes: ProcessRow[];
  readonly tree: TreeNode[];
  readonly nodes: NodeRow[];
  readonly devices: DeviceRow[];
  /** The last supervision events, newest last. */
  readonly events: EventRow[];
  readonly training: TrainingView | undefined;
}
