/**
 * The show side's view of one running system: it listens to the supervisors, keeps restart
 * counts, writes OTP-style crash reports to the logger, feeds the shared metrics registry at
 * scrape time, holds the training curves, and answers `snapshot()` for `zbmd top`, the web view
 * and the control socket. It reads the layers' public APIs only.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { createLogger, SystemObserver } from 'zbmd/observe';
 * import { startSupervisor } from 'zbmd/supervision';
 *
 * const system = new ActorSystem();
 * await startSupervisor(system, { children: [{ id: 'worker', start: (ctx) => ctx.spawnLink({ handle: () => {} }) }] });
 * const observer = new SystemObserver(system, { logger: createLogger({ level: 'silent' }), metrics: false });
 * const { tree } = observer.snapshot(); // the supervision trees, with restart counts
 * assert.equal(tree.length, 1);
 * observer.stop();
 * system.shutdown();
 * ```
 */
import {
  type ActorSystem,
  CallRequest,
  CastRequest,
  formatReason,
  isNormalOrShutdown,
  isPid,
  type Pid,
} from '../actor/index.js';
import {
  isSupervisor,
  onSupervisionEvent,
  type SupervisionEvent,
  supervisorChildren,
  supervisorOf,
} from '../supervision/index.js';
import { type CrashReport, crashReportLines, type SupervisorAction } from './CrashReport.js';
import { ClusterWatch, type ObservedCluster, type WatchClusterOptions } from './internal/ClusterWatch.js';
import { registerObserverMetrics } from './internal/observerMetrics.js';
import type { Logger } from './logger.js';
import type { DeviceRow, EventRow, ObserverSnapshot, ProcessRow, TreeNode } from './Snapshot.js';
import { TrainingSeries } from './TrainingSeries.js';
import { trackLastMessages } from './trace.js';

/** Process rows in a snapshot (the busiest by reductions). */
export const PROCESS_ROWS_MAX = 200;
/** Supervision events kept for the snapshot. */
export const EVENTS_KEPT = 50;
/** Deepest supervision tree drawn. */
export const TREE_DEPTH_MAX = 32;
/** A crash report waits this long for its supervisor's action before it is written without one. */
export const CRASH_REPORT_WAIT_MS = 5000;

export interface SystemObserverOptions {
  /** Crash reports and supervision actions go here; none: not logged. */
  readonly logger?: Logger;
  /** Feed the shared prom-client registry (`metricsRegistry`). Default true. */
  readonly metrics?: boolean;
}

interface PendingCrash {
  readonly report: Omit<CrashReport, 'action' | 'actionDetail'>;
  readonly timer: ReturnType<typeof setTimeout>;
}

export class SystemObserver {
  readonly training = new TrainingSeries();
  private readonly restarts = new Map<string, number>();
  private restartsTotal = 0;
  private readonly events: EventRow[] = [];
  private readonly pending = new Map<string, PendingCrash>();
  private readonly listeners = new Set<() => void>();
  private devices: () => DeviceRow[] = () => [];
  private clusterWatch: ClusterWatch | undefined;
  private readonly unsubscribe: () => void;
  private readonly lastMessages: { lastMessage(pid: Pid): unknown; stop(): void };
  private readonly unregisterMetrics: () => void;
  private readonly logger: Logger | undefined;

  constructor(
    readonly system: ActorSystem,
    options: SystemObserverOptions = {},
  ) {
    this.logger = options.logger;
    this.lastMessages = trackLastMessages(system);
    this.unsubscribe = onSupervisionEvent(system, (event) => this.onEvent(event));
    this.unregisterMetrics = options.metrics === false ? () => {} : registerObserverMetrics(this);
  }

  /** Where device rows come from (training sets it: its devices and their health). */
  watchDevices(provider: () => DeviceRow[]): void {
    this.devices = provider;
  }

  /**
   * Watches a cluster node (a `ClusterNode` of src/cluster): the snapshot's `nodes` (this node,
   * then the peers up with their phi and the leader), the `zbmd_cluster_*` metrics, a change
   * on each nodeup / nodedown. The peers' phi is read every `phiRefreshMs` (500 ms) and after
   * each node event. One node per observer (a second call replaces the first); returns the
   * function that stops watching.
   */
  watchCluster(node: ObservedCluster, options: WatchClusterOptions = {}): () => void {
    this.clusterWatch?.stop();
    const watch = new ClusterWatch(node, options, () => this.changed());
    this.clusterWatch = watch;
    return () => {
      watch.stop();
      if (this.clusterWatch === watch) this.clusterWatch = undefined;
    };
  }

  /** The cluster watch, if any (the metrics read it). */
  get cluster(): ClusterWatch | undefined {
    return this.clusterWatch;
  }

  /** Reads the watched node's peers' phi now (tests, and a caller that wants fresh values). */
  refreshCluster(): Promise<void> {
    return this.clusterWatch?.refresh() ?? Promise.resolve();
  }

  /** Called after each supervision event and training update (the web view pushes then). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells the change listeners (training calls this after a step batch, an epoch, a recovery). */
  changed(): void {
    for (const listener of this.listeners) listener();
  }

  restartsOf(supervisor: string, childId: string): number {
    return this.restarts.get(`${supervisor}/${childId}`) ?? 0;
  }

  /** Restarts per supervisor pid. */
  restartsBySupervisor(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const [key, count] of this.restarts) {
      const supervisor = key.slice(0, key.indexOf('/'));
      totals.set(supervisor, (totals.get(supervisor) ?? 0) + count);
    }
    return totals;
  }

  deviceRows(): DeviceRow[] {
    return this.devices();
  }

  stop(): void {
    for (const key of [...this.pending.keys()])
      this.flushCrash(key, 'not_restarted', `(no restart within ${CRASH_REPORT_WAIT_MS} ms)`);
    this.unsubscribe();
    this.clusterWatch?.stop();
    this.clusterWatch = undefined;
    this.lastMessages.stop();
    this.unregisterMetrics();
    this.listeners.clear();
  }

  snapshot(): ObserverSnapshot {
    const stats = this.system.stats();
    return {
      node: this.system.nodeName,
      timeMs: Date.now(),
      stats,
      restartsTotal: this.restartsTotal,
      processes: this.processRows(),
      tree: this.roots().map((root) => this.treeOf(root, 'root', undefined, undefined, 0)),
      nodes: this.clusterWatch?.rows() ?? [],
      devices: this.devices(),
      events: [...this.events],
      training:
        this.training.stepCount > 0 || this.training.view().recoveries.length > 0
          ? this.training.view()
          : undefined,
    };
  }

  /** Live processes, the busiest (by reductions) first, at most `limit`. */
  processRows(limit = PROCESS_ROWS_MAX): ProcessRow[] {
    const rows: ProcessRow[] = [];
    const pids = this.system.processes();
    const childIds = this.childIds(pids);
    for (const pid of pids) {
      const info = this.system.processInfo(pid);
      if (info === undefined) continue;
      rows.push({
        pid: String(pid),
        name: info.name ?? childIds.get(pid),
        status: info.status,
        mailboxLength: info.mailboxLength,
        reductions: info.reductions,
        kind: info.kind,
      });
    }
    rows.sort((a, b) => b.reductions - a.reductions);
    return rows.slice(0, limit);
  }

  /** The child id of each supervised process (the name `zbmd top` shows when it has no registered one). */
  private childIds(pids: readonly Pid[]): Map<Pid, string> {
    const ids = new Map<Pid, string>();
    for (const pid of pids) {
      const view = supervisorChildren(this.system, pid);
      if (view === undefined) continue;
      for (const child of view.children) if (isPid(child.pid)) ids.set(child.pid, child.id);
    }
    return ids;
  }

  /** Supervisors nobody supervises: the roots of the trees. */
  private roots(): Pid[] {
    return this.system
      .processes()
      .filter((pid) => isSupervisor(this.system, pid) && supervisorOf(this.system, pid) === undefined);
  }

  private treeOf(
    pid: Pid,
    id: string,
    restart: string | undefined,
    parent: string | undefined,
    level: number,
  ): TreeNode {
    const view = supervisorChildren(this.system, pid);
    const children =
      view === undefined || level >= TREE_DEPTH_MAX
        ? []
        : view.children.map((child) =>
            isPid(child.pid)
              ? this.treeOf(child.pid, child.id, child.restart, String(pid), level + 1)
              : {
                  id: child.id,
                  pid: child.pid ?? 'stopped',
                  type: child.type,
                  strategy: undefined,
                  restart: child.restart,
                  restarts: this.restartsOf(String(pid), child.id),
                  children: [],
                },
          );
    return {
      id:
        parent === undefined
          ? ((pid.thread === this.system.thread ? this.system.processInfo(pid)?.name : undefined) ?? 'root')
          : id,
      pid: String(pid),
      type: view === undefined ? 'worker' : 'supervisor',
      strategy: view?.strategy,
      restart,
      restarts: parent === undefined ? 0 : this.restartsOf(parent, id),
      children,
    };
  }

  private onEvent(event: SupervisionEvent): void {
    const supervisor = String(event.supervisor);
    const key = `${supervisor}/${event.childId ?? ''}`;
    this.events.push({
      timeMs: event.timeMs,
      kind: event.kind,
      supervisor,
      childId: event.childId,
      pid: event.pid === undefined ? undefined : String(event.pid),
      reason: event.reason === undefined ? undefined : formatReason(event.reason),
    });
    if (this.events.length > EVENTS_KEPT) this.events.shift();
    switch (event.kind) {
      case 'child_exited':
        if (!isNormalOrShutdown(event.reason)) this.openCrash(key, event);
        break;
      case 'child_restarted':
        this.restarts.set(key, (this.restarts.get(key) ?? 0) + 1);
        this.restartsTotal++;
        this.flushCrash(key, 'restarted', String(event.pid));
        break;
      case 'child_restart_scheduled':
        this.flushCrash(key, 'restart_scheduled', `${(event.delayMs ?? 0).toFixed(0)} ms`);
        break;
      case 'child_start_failed':
        this.flushCrash(
          key,
          'restart_failed',
          event.reason === undefined ? undefined : formatReason(event.reason),
        );
        break;
      case 'restart_intensity_reached':
      case 'supervisor_shutdown':
        for (const pendingKey of [...this.pending.keys()])
          if (pendingKey.startsWith(`${supervisor}/`)) this.flushCrash(pendingKey, 'gave_up', undefined);
        break;
      default:
        break;
    }
    this.changed();
  }

  private openCrash(key: string, event: SupervisionEvent): void {
    if (this.logger === undefined) return;
    this.flushCrash(key, 'not_restarted', undefined); // an older report of the same child
    const pid = event.pid;
    const report = {
      pid: String(pid),
      name: event.childId,
      supervisor: String(event.supervisor),
      reason: formatReason(event.reason),
      lastMessage: pid === undefined ? undefined : describeMessage(this.lastMessages.lastMessage(pid)),
    };
    const timer = setTimeout(
      () => this.flushCrash(key, 'not_restarted', `(no restart within ${CRASH_REPORT_WAIT_MS} ms)`),
      CRASH_REPORT_WAIT_MS,
    );
    timer.unref?.();
    this.pending.set(key, { report, timer });
  }

  private flushCrash(key: string, action: SupervisorAction, actionDetail: string | undefined): void {
    const pending = this.pending.get(key);
    if (pending === undefined || this.logger === undefined) return;
    this.pending.delete(key);
    clearTimeout(pending.timer);
    const report: CrashReport = { ...pending.report, action, actionDetail };
    const lines = crashReportLines(report);
    const level = action === 'restarted' || action === 'restart_scheduled' ? 'warn' : 'error';
    this.logger[level](
      { pid: report.pid, child: report.name, supervisor: report.supervisor, action, report: lines },
      `crash report: ${report.name ?? report.pid} crashed; supervisor ${action.replace('_', ' ')}`,
    );
  }
}

/** A message as a crash report shows it: the request inside a call or cast envelope. */
function describeMessage(message: unknown): string | undefined {
  if (message === undefined) return undefined;
  if (message instanceof CallRequest) return `call ${describeValue(message.request)}`;
  if (message instanceof CastRequest) return `cast ${describeValue(message.request)}`;
  return describeValue(message);
}

/** `StepRequest {"step":3}`: the class name says what a message is when it has one. */
function describeValue(value: unknown): string {
  const text = formatReason(value);
  if (typeof value !== 'object' || value === null || value instanceof Error) return text;
  const name = (value as object).constructor?.name;
  return name === undefined || name === 'Object' || name === 'Array' ? text : `${name} ${text}`;
}
