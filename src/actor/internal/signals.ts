import { DownMessage, ExitMessage, type ExitReason } from '../ExitReason.js';
import { BadArgument, NoProc, ProcessExited } from '../errors.js';
import { type Pid, Ref } from '../Pid.js';
import { checkName, checkPid, describe } from './checks.js';
import { deliverSignalMessage } from './delivery.js';
import { DEAD, EMPTY_MAILBOX, type ExitObserver, extraOf, ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';

/** Exit signals, links, monitors and exit observers (Erlang semantics). */

/** A thrown value ends the process with that value as its reason (ProcessExited: already dead). */
export function crash(runtime: Runtime, record: ProcessRecord, error: unknown): void {
  if (record.state === DEAD || error instanceof ProcessExited) return;
  // reported once, by the process that threw: those dying of it through links are not crashes
  runtime.reportCrash(record.pid, error as ExitReason);
  terminate(runtime, record, error as ExitReason);
}

/**
 * Delivers an exit signal to `target`:
 * - `kill` sent directly cannot be trapped: the target dies as `killed`;
 * - a process that traps exits gets an EXIT message instead (at the end of its mailbox);
 * - `normal` is ignored, unless the process sent it to itself;
 * - any other reason kills the target with that reason (`kill` through a link included).
 */
export function signal(
  runtime: Runtime,
  target: ProcessRecord,
  from: Pid,
  reason: ExitReason,
  viaLink: boolean,
): void {
  if (target.state === DEAD) return;
  if (!viaLink && reason === 'kill') terminate(runtime, target, 'killed');
  else if (target.extra?.trapping === true)
    deliverSignalMessage(runtime, target, new ExitMessage(from, reason));
  else if (reason !== 'normal') terminate(runtime, target, reason);
  else if (!viaLink && from === target.pid) terminate(runtime, target, 'normal');
}

/** Sends an exit signal from `from` to `pid` (Erlang's exit/2), on this thread or another. */
export function exitSignal(runtime: Runtime, from: Pid, pid: Pid, reason: ExitReason): void {
  const target = runtime.lookup(pid);
  if (target !== undefined) signal(runtime, target, from, reason, false);
  else if (runtime.nodes?.owns(pid) === true) runtime.nodes.exit(from, pid, reason);
  else if (runtime.remote?.isRemote(pid)) runtime.remote.exit(from, pid, reason);
}

/** Ends a process: its links get exit signals, its monitors DOWN messages. */
export function terminate(runtime: Runtime, record: ProcessRecord, reason: ExitReason): void {
  if (record.state === DEAD) return;
  record.state = DEAD;
  record.exitReason = reason;
  if (record.waiter !== undefined) {
    if (record.waiter.timer !== undefined) runtime.clock.cancelTimer(record.waiter.timer);
    record.waiter = undefined; // the body never resumes: a killed process runs no more code
  }
  runtime.live.remove(record);
  // the record is the pid, which may be held long after: keep none of the process's code or messages
  record.process = undefined;
  record.mailbox = EMPTY_MAILBOX;
  record.behavior = undefined;
  record.body = undefined;
  runtime.counters.exited++;
  if (record.extra !== undefined) releaseExtra(runtime, record, record.extra, reason);
  if (runtime.remote !== undefined) runtime.remote.exited(record, reason);
  if (runtime.exitListeners.size > 0)
    for (const listener of runtime.exitListeners) listener(record.pid, reason);
  if (runtime.signalQueue.length > 0) drainSignals(runtime);
}

/** Name, abort signal, monitors, links and watchers of a process that just exited. */
function releaseExtra(
  runtime: Runtime,
  record: ProcessRecord,
  extra: NonNullable<ProcessRecord['extra']>,
  reason: ExitReason,
): void {
  if (extra.name !== undefined) runtime.registry.release(extra.name, record);
  if (extra.abortController !== undefined) extra.abortController.abort(new ProcessExited(record.pid, reason));
  if (extra.monitors !== undefined) {
    for (const [id, target] of extra.monitors) target.extra?.watchers?.delete(id);
  }
  // Signals go through a queue, so a long chain of links dies without deep recursion.
  if (extra.links !== undefined) {
    for (const linked of extra.links) {
      linked.extra!.links!.delete(record);
      runtime.signalQueue.push(linked, record.pid, reason);
    }
  }
  if (extra.watchers !== undefined) {
    for (const observer of extra.watchers.values()) runtime.signalQueue.push(observer, record.pid, reason);
  }
}

function drainSignals(runtime: Runtime): void {
  if (runtime.drainingSignals) return;
  runtime.drainingSignals = true;
  const queue = runtime.signalQueue;
  try {
    for (let index = 0; index < queue.length; index += 3) {
      const target = queue[index];
      const from = queue[index + 1] as Pid;
      const reason = queue[index + 2] as ExitReason;
      if (target instanceof ProcessRecord) signal(runtime, target, from, reason, true);
      else (target as ExitObserver).exited(from, reason);
    }
  } finally {
    queue.length = 0;
    runtime.drainingSignals = false;
  }
}

export function linkRecords(a: ProcessRecord, b: ProcessRecord): void {
  if (a === b) return;
  (extraOf(a).links ??= new Set()).add(b);
  (extraOf(b).links ??= new Set()).add(a);
}

export function link(runtime: Runtime, record: ProcessRecord, pid: Pid): void {
  const target = runtime.lookup(checkPid(pid, 'link'));
  if (target === undefined && runtime.nodes?.owns(pid) === true) {
    runtime.nodes.link(record, pid);
  } else if (target === undefined && runtime.remote?.isRemote(pid)) {
    runtime.remote.link(record, pid);
  } else if (target !== undefined) {
    linkRecords(record, target);
  } else if (record.extra?.trapping === true) {
    // Erlang: a trapping caller gets {'EXIT', Pid, noproc}; otherwise link raises noproc.
    deliverSignalMessage(runtime, record, new ExitMessage(pid, 'noproc'));
  } else {
    throw new NoProc(pid);
  }
}

export function unlink(runtime: Runtime, record: ProcessRecord, pid: Pid): void {
  const target = runtime.lookup(checkPid(pid, 'unlink'));
  if (target === undefined) {
    if (runtime.nodes?.owns(pid) === true) runtime.nodes.unlink(record, pid);
    else if (runtime.remote?.isRemote(pid)) runtime.remote.unlink(record, pid);
    return;
  }
  record.extra?.links?.delete(target);
  target.extra?.links?.delete(record);
}

/** A monitor: tells its watcher with a DOWN message when the watched process exits. */
export class Monitor implements ExitObserver {
  constructor(
    private readonly runtime: Runtime,
    readonly ref: Ref,
    readonly watcher: ProcessRecord,
  ) {}

  exited(pid: Pid, reason: ExitReason): void {
    const watcher = this.watcher;
    if (watcher.state === DEAD) return;
    watcher.extra?.monitors?.delete(this.ref.id);
    deliverSignalMessage(this.runtime, watcher, new DownMessage(this.ref, pid, reason));
  }
}

export function monitor(runtime: Runtime, record: ProcessRecord, target: Pid | string): Ref {
  const pid =
    typeof target === 'string' ? runtime.registry.whereis(checkName(target)) : checkPid(target, 'monitor');
  const watched = pid === undefined ? undefined : runtime.lookup(pid);
  if (watched === undefined && pid !== undefined && runtime.nodes?.owns(pid) === true)
    return runtime.nodes.monitor(record, pid);
  if (watched === undefined && pid !== undefined && runtime.remote?.isRemote(pid))
    return runtime.remote.monitor(record, pid);
  const ref = new Ref(runtime.nodeName, runtime.nextRefId());
  if (watched === undefined) {
    // monitoring a dead or unknown process: DOWN noproc at once
    deliverSignalMessage(runtime, record, new DownMessage(ref, pid ?? runtime.rootPid, 'noproc'));
    return ref;
  }
  const monitor = new Monitor(runtime, ref, record);
  (extraOf(watched).watchers ??= new Map()).set(ref.id, monitor);
  (extraOf(record).monitors ??= new Map()).set(ref.id, watched);
  return ref;
}

export function demonitor(runtime: Runtime, record: ProcessRecord, ref: Ref, flush: boolean): boolean {
  if (!(ref instanceof Ref)) throw new BadArgument(`demonitor: expected a monitor Ref, got ${describe(ref)}`);
  runtime.nodes?.demonitor(record, ref);
  runtime.remote?.demonitor(record, ref);
  const watched = record.extra?.monitors?.get(ref.id);
  if (watched !== undefined) {
    record.extra!.monitors!.delete(ref.id);
    watched.extra?.watchers?.delete(ref.id);
  }
  if (flush) {
    const index = record.mailbox.findIndex(
      (message) => message instanceof DownMessage && message.ref === ref,
    );
    if (index >= 0) record.mailbox.removeAt(index);
  }
  return true;
}

/** Registers an internal exit observer on a live process; returns its id. */
export function watch(runtime: Runtime, target: ProcessRecord, observer: ExitObserver): number {
  const id = runtime.nextRefId();
  (extraOf(target).watchers ??= new Map()).set(id, observer);
  return id;
}

export function unwatch(target: ProcessRecord, id: number): void {
  target.extra?.watchers?.delete(id);
}
