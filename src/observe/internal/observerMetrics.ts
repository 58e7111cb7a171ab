/**
 * The metrics an observer feeds into the shared registry, computed at scrape time (prom-client
 * `collect`), so they cost nothing between scrapes. Every series carries the node's name, so
 * the metrics of several systems (and, later, cluster nodes) sit side by side.
 */
import type { Counter, Gauge } from 'prom-client';
import { counter, gauge } from '../registry.js';
import type { ProcessRow } from '../Snapshot.js';
import type { SystemObserver } from '../SystemObserver.js';

/** Processes listed in the longest-mailbox and busiest-process gauges. */
export const TOP_PROCESSES_IN_METRICS = 10;

const observers = new Set<SystemObserver>();

type Labels = Record<string, string>;
type Reading = Array<[Labels, number]>;

/** A metric whose value is read from every observer at scrape time. */
function define(
  kind: 'counter' | 'gauge',
  name: string,
  help: string,
  labelNames: readonly string[],
  read: (observer: SystemObserver, node: string) => Reading,
): void {
  const collect = (metric: Counter | Gauge): void => {
    metric.reset();
    for (const observer of observers) {
      for (const [labels, value] of read(observer, observer.system.nodeName)) {
        if (kind === 'gauge') (metric as Gauge).set(labels, value);
        else (metric as Counter).inc(labels, value);
      }
    }
  };
  if (kind === 'counter') counter(name, help, ['node', ...labelNames], collect);
  else gauge(name, help, ['node', ...labelNames], collect);
}

function busiest(observer: SystemObserver, order: (row: ProcessRow) => number): ProcessRow[] {
  return observer
    .processRows(Number.POSITIVE_INFINITY)
    .sort((a, b) => order(b) - order(a))
    .slice(0, TOP_PROCESSES_IN_METRICS);
}

const processLabels = (node: string, row: ProcessRow): Labels => ({
  node,
  pid: row.pid,
  name: row.name ?? '',
});

function defineRuntime(): void {
  const stat = (name: string, help: string, key: keyof ReturnType<SystemObserver['system']['stats']>): void =>
    define(name.endsWith('_total') ? 'counter' : 'gauge', name, help, [], (observer, node) => [
      [{ node }, observer.system.stats()[key]],
    ]);
  stat('zbmd_processes', 'Live processes', 'alive');
  stat('zbmd_processes_spawned_total', 'Processes spawned', 'spawned');
  stat('zbmd_messages_sent_total', 'Messages sent between processes', 'messagesSent');
  stat('zbmd_messages_dropped_total', 'Messages dropped by full mailboxes', 'messagesDropped');
  stat('zbmd_process_crashes_total', 'Processes whose code threw', 'crashes');
  define(
    'counter',
    'zbmd_supervisor_restarts_total',
    'Child restarts per supervisor',
    ['supervisor'],
    (observer, node) =>
      [...observer.restartsBySupervisor()].map(([supervisor, count]) => [{ node, supervisor }, count]),
  );
  define(
    'gauge',
    'zbmd_mailbox_length',
    `Queued messages of the ${TOP_PROCESSES_IN_METRICS} longest mailboxes`,
    ['pid', 'name'],
    (observer, node) =>
      busiest(observer, (row) => row.mailboxLength).map((row) => [
        processLabels(node, row),
        row.mailboxLength,
      ]),
  );
  define(
    'gauge',
    'zbmd_process_reductions',
    `Reductions of the ${TOP_PROCESSES_IN_METRICS} busiest processes`,
    ['pid', 'name'],
    (observer, node) =>
      busiest(observer, (row) => row.reductions).map((row) => [processLabels(node, row), row.reductions]),
  );
  define('gauge', 'zbmd_reductions', 'Reductions of all live processes', [], (observer, node) => [
    [{ node }, observer.processRows(Number.POSITIVE_INFINITY).reduce((sum, row) => sum + row.reductions, 0)],
  ]);
}

function defineTraining(): void {
  const training = (observer: SystemObserver) =>
    observer.training.stepCount > 0 || observer.training.recoveriesByCause.size > 0
      ? observer.training
      : undefined;
  const one = (value: number | undefined, node: string): Reading =>
    value === undefined ? [] : [[{ node }, value]];
  define('gauge', 'zbmd_training_loss', 'Loss of the last committed step', [], (o, node) =>
    one(training(o)?.latestLoss, node),
  );
  define('gauge', 'zbmd_training_accuracy', 'Test accuracy at the end of the last epoch', [], (o, node) =>
    one(training(o)?.lastAccuracy, node),
  );
  define('counter', 'zbmd_training_steps_total', 'Committed training steps', [], (o, node) =>
    one(training(o)?.stepCount, node),
  );
  define(
    'gauge',
    'zbmd_training_steps_per_second',
    'Training steps per second since the first step seen',
    [],
    (o, node) => one(training(o)?.stepsPerSec(), node),
  );
  define('counter', 'zbmd_training_recoveries_total', 'Training recoveries by cause', ['cause'], (o, node) =>
    [...o.training.recoveriesByCause].map(([cause, count]) => [{ node, cause }, count]),
  );
}

const HEALTH_SEVERITY: Readonly<Record<string, number>> = {
  healthy: 0,
  warning: 1,
  degraded: 2,
  critical: 3,
};

function defineDevices(): void {
  define(
    'gauge',
    'zbmd_device_memory_bytes',
    'Device memory as its backend reports it (0: not reported)',
    ['device'],
    (o, node) => o.deviceRows().map((device) => [{ node, device: device.id }, device.memoryBytes]),
  );
  define(
    'gauge',
    'zbmd_device_health',
    'Device health: 0 healthy, 1 warning, 2 degraded, 3 critical',
    ['device'],
    (o, node) =>
      o.deviceRows().map((device) => [{ node, device: device.id }, HEALTH_SEVERITY[device.health] ?? -1]),
  );
  define('gauge', 'zbmd_device_errors', 'Device errors within the health window', ['device'], (o, node) =>
    o.deviceRows().map((device) => [{ node, device: device.id }, device.errorCount]),
  );
}

function defineCluster(): void {
  define(
    'gauge',
    'zbmd_cluster_nodes_up',
    'Cluster nodes up as the watched node sees them, itself included',
    [],
    (o, node) => (o.cluster === undefined ? [] : [[{ node }, o.cluster.node.nodes().length + 1]]),
  );
  define(
    'gauge',
    'zbmd_cluster_phi',
    'Phi-accrual suspicion of each peer up, as the watched node computes it (declared down at 8)',
    ['peer'],
    (o, node) =>
      (o.cluster?.peers() ?? []).flatMap(
        (peer): Reading => (peer.phi === undefined ? [] : [[{ node, peer: peer.key }, peer.phi]]),
      ),
  );
  define('gauge', 'zbmd_cluster_leader', '1 while the watched node is the leader, else 0', [], (o, node) =>
    o.cluster === undefined ? [] : [[{ node }, o.cluster.node.isLeader ? 1 : 0]],
  );
  define(
    'counter',
    'zbmd_cluster_node_events_total',
    'nodeup, nodedown and quarantined events the watched node reported',
    ['kind'],
    (o, node) => [...(o.cluster?.eventCounts ?? [])].map(([kind, count]) => [{ node, kind }, count]),
  );
}

let defined = false;

/** Adds `observer` to the metrics; returns the function that takes it out. */
export function registerObserverMetrics(observer: SystemObserver): () => void {
  if (!defined) {
    defineRuntime();
    defineTraining();
    defineDevices();
    defineCluster();
    defined = true;
  }
  observers.add(observer);
  return () => {
    observers.delete(observer);
  };
}
