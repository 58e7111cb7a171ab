import type { ProcessInfo, SystemStats } from '../ActorSystem.js';
import type { Pid } from '../Pid.js';
import { DEAD, type ProcessRecord } from './Process.js';
import { RemoteMonitor } from './Remote.js';
import type { Runtime } from './Runtime.js';
import { Monitor } from './signals.js';

/**
 * erlang:process_info/1 and erlang:processes/0 for the processes of one scheduler thread: what
 * `ActorSystem.processInfo` returns for a process of the calling thread, and what a thread's
 * agent (ThreadAgent.ts) answers for one of its own when another thread asks.
 */

/** By process state (Process.ts): a NEW process is runnable (queued for its first turn). */
const STATUS = ['waiting', 'runnable', 'running', 'suspended', 'dead', 'runnable'] as const;

/** The info of `pid` if it is a live process of this thread; undefined otherwise. */
export function processInfoHere(runtime: Runtime, pid: Pid): ProcessInfo | undefined {
  const record = runtime.lookup(pid);
  if (record === undefined || record.state === DEAD) return undefined;
  return infoOf(record);
}

/** The pids of this thread's live processes, in spawn order. */
export function processesHere(runtime: Runtime): Pid[] {
  const pids: Pid[] = [];
  for (const record of runtime.live) pids.push(record.pid);
  return pids;
}

/** This thread's counters. */
export function statsHere(runtime: Runtime): SystemStats {
  return { ...runtime.counters, alive: runtime.live.size };
}

function infoOf(record: ProcessRecord): ProcessInfo {
  const extra = record.extra;
  return {
    pid: record.pid,
    name: extra?.name,
    status: STATUS[record.state as 0 | 1 | 2 | 3 | 5],
    mailboxLength: record.mailbox.length,
    links: [...[...(extra?.links ?? [])].map((other) => other.pid), ...(extra?.remoteLinks?.values() ?? [])],
    monitors: [
      ...[...(extra?.monitors?.values() ?? [])].map((other) => other.pid),
      ...[...(extra?.remoteMonitors?.values() ?? [])].map((entry) => entry.pid),
    ],
    monitoredBy: [...(extra?.watchers?.values() ?? [])].flatMap((observer) =>
      observer instanceof Monitor
        ? [observer.watcher.pid]
        : observer instanceof RemoteMonitor
          ? [observer.watcherPid]
          : [],
    ),
    reductions: record.reductions,
    trapExit: extra?.trapping === true,
    kind: record.behavior === undefined ? 'process' : 'handler',
    thread: record.pid.thread,
  };
}
