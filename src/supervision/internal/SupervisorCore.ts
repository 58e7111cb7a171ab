import {
  CallRequest,
  type Context,
  ExitMessage,
  type ExitReason,
  isNormalOrShutdown,
  isStartError,
  Pid,
  ProcessExited,
  type TimerHandle,
} from '../../actor/index.js';
import type { ResolvedChildSpec, StartResult } from '../ChildSpec.js';
import { BadStartReturn, HeartbeatMissed, SupervisorStartFailed } from '../errors.js';
import { RestartIntensity } from '../RestartIntensity.js';
import {
  listenersOf,
  type SupervisionEvent,
  type SupervisionEventKind,
  type SupervisionListener,
} from '../SupervisionEvent.js';
import type { ChildInfo, Strategy } from '../SupervisorResults.js';
import { ChildRecord } from './ChildRecord.js';
import type { SupervisorConfig } from './config.js';
import { HeartbeatCheck, HeartbeatSignal, RestartDue, TryAgainRestart } from './messages.js';
import {
  clearParent,
  registerSupervisor,
  type SupervisorView,
  setParent,
  unregisterSupervisor,
} from './registry.js';
import { handleRequest } from './requests.js';
import { StartFailure, type StartOutcome } from './StartOutcome.js';
import { sendToSelf, sendToSelfAfter } from './selfDelivery.js';
import { shutdownChild } from './shutdownChild.js';

/**
 * The state and the rules of one supervisor. It lives inside the supervisor's process and is
 * only touched by that process, one message at a time (`handle`); async steps (a child's async
 * start, waiting for a child to stop) suspend the whole supervisor, as OTP's do.
 */
export class SupervisorCore implements SupervisorView {
  /** Children in start order (a Set keeps insertion order and deletes in O(1)). */
  readonly records = new Set<ChildRecord>();
  readonly byId = new Map<string, ChildRecord>();
  readonly byPid = new Map<Pid, ChildRecord>();
  private readonly restarts: RestartIntensity;
  private readonly listeners: Set<SupervisionListener>;
  private nextToken = 1;

  constructor(
    readonly context: Context,
    readonly config: SupervisorConfig,
    /** The process whose EXIT stops the supervisor (its starter, or the system's root pid). */
    readonly parent: Pid,
  ) {
    this.restarts = new RestartIntensity(config.intensity, config.periodMs);
    this.listeners = listenersOf(context.system);
    registerSupervisor(context.self, this);
  }

  get strategy(): Strategy {
    return this.config.strategy;
  }

  get dynamic(): boolean {
    return this.config.strategy === 'simple_one_for_one';
  }

  /** The template of a simple_one_for_one supervisor. */
  get template(): ResolvedChildSpec {
    return this.config.specs[0];
  }

  private now(): number {
    return this.context.system.clock.now();
  }

  private sendToSelfAfter(delayMs: number, message: unknown): TimerHandle {
    return sendToSelfAfter(this.context.system, this.context.self, delayMs, message);
  }

  // -------------------------------------------------------------------------------------------
  // Init

  /** Starts the children in order; on a failure, stops those started (reverse order). */
  async startInitialChildren(): Promise<SupervisorStartFailed | undefined> {
    if (this.dynamic) return undefined;
    for (const spec of this.config.specs) {
      const child = new ChildRecord(spec, []);
      let outcome = this.startProcess(child);
      if (outcome instanceof Promise) outcome = await outcome;
      if (outcome instanceof StartFailure) {
        this.emit('child_start_failed', child, undefined, outcome.reason);
        await this.stopAll();
        return new SupervisorStartFailed(spec.id, outcome.reason);
      }
      if (outcome === 'ignore' && spec.restart === 'temporary') continue;
      this.add(child);
      if (outcome !== 'ignore') this.emit('child_started', child, outcome, undefined);
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // The main loop's dispatch

  handle(message: unknown): void | Promise<void> {
    if (message instanceof ExitMessage) return this.onExit(message);
    if (message instanceof HeartbeatSignal) return this.onHeartbeat(message);
    if (message instanceof CallRequest) return handleRequest(this, message);
    if (message instanceof RestartDue) return this.onRestartDue(message);
    if (message instanceof TryAgainRestart) return this.onTryAgain(message);
    if (message instanceof HeartbeatCheck) return this.onHeartbeatCheck(message);
    // Anything else (a stray DOWN, a message sent by mistake) is dropped, as OTP's supervisor does.
  }

  private onExit(message: ExitMessage): void | Promise<void> {
    if (message.from.equals(this.parent)) return this.shutdown(message.reason);
    const child = this.childOf(message.from);
    // Not a current child: one already stopped or replaced, or a start that failed.
    if (child === undefined) return;
    return this.childExited(child, message.reason);
  }

  /**
   * The child whose pid this is. A pid that comes back from another scheduler thread (in an
   * EXIT, say) is an equal Pid object, not the same one: those are found by `equals`.
   */
  childOf(pid: Pid): ChildRecord | undefined {
    const child = this.byPid.get(pid);
    if (child !== undefined || pid.thread === this.context.self.thread) return child;
    for (const record of this.records) if (record.pid?.equals(pid) === true) return record;
    return undefined;
  }

  private onHeartbeat(message: HeartbeatSignal): void {
    const child = this.childOf(message.pid);
    if (child !== undefined) child.lastHeartbeatAtMs = this.now();
  }

  // -------------------------------------------------------------------------------------------
  // Starting children

  /** Runs a child's start function; on success the pid is linked and recorded. */
  startProcess(child: ChildRecord): StartOutcome | Promise<StartOutcome> {
    let result: StartResult | Promise<StartResult>;
    try {
      result = child.spec.start(this.context, ...child.extraArgs);
    } catch (error) {
      return startFailure(error);
    }
    if (isThenable(result)) {
      // any thenable: start functions may return promises from other libraries
      return Promise.resolve(result).then(
        (settled) => this.afterStart(child, settled),
        (error: unknown) => this.afterStart(child, startFailure(error)),
      );
    }
    return this.afterStart(child, result);
  }

  private afterStart(child: ChildRecord, result: StartResult | StartFailure): StartOutcome {
    const self = this.context.self;
    // The supervisor may have been killed while an async start ran: it must not act any more.
    if (!this.context.system.isAlive(self)) throw new ProcessExited(self, 'killed');
    if (result instanceof StartFailure || result === 'ignore') return result;
    if (!(result instanceof Pid)) return new StartFailure(new BadStartReturn(result));
    this.attach(child, result);
    return result;
  }

  private attach(child: ChildRecord, pid: Pid): void {
    const now = this.now();
    child.pid = pid;
    child.restarting = false;
    child.startedAtMs = now;
    this.byPid.set(pid, child);
    // Idempotent: a start that forgot to link still has its child's exits reach us (a child
    // already dead gives an EXIT noproc, since we trap exits).
    this.context.link(pid);
    setParent(pid, this.context.self);
    const heartbeatMs = child.spec.heartbeatMs;
    if (heartbeatMs !== undefined) {
      child.lastHeartbeatAtMs = now;
      child.heartbeatTimer = this.sendToSelfAfter(heartbeatMs, new HeartbeatCheck(child, pid));
    }
  }

  private detach(child: ChildRecord): void {
    const pid = child.pid;
    if (pid === undefined) return;
    this.byPid.delete(pid);
    clearParent(pid);
    child.pid = undefined;
    if (child.heartbeatTimer !== undefined) {
      this.context.system.clock.cancelTimer(child.heartbeatTimer);
      child.heartbeatTimer = undefined;
    }
  }

  add(child: ChildRecord): void {
    this.records.add(child);
    if (!this.dynamic) this.byId.set(child.id, child);
  }

  remove(child: ChildRecord): void {
    this.cancelRestart(child);
    this.detach(child);
    this.records.delete(child);
    if (this.byId.get(child.id) === child) this.byId.delete(child.id);
  }

  cancelRestart(child: ChildRecord): void {
    child.restarting = false;
    child.restartToken = 0;
    if (child.restartTimer !== undefined) {
      this.context.system.clock.cancelTimer(child.restartTimer);
      child.restartTimer = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // A child exited: OTP's restart rules

  childExited(child: ChildRecord, reason: ExitReason): void | Promise<void> {
    const pid = child.pid;
    this.detach(child);
    this.emit('child_exited', child, pid, reason);
    if (this.now() - child.startedAtMs >= this.config.backoff.resetAfterMs) child.backoffAttempt = 0;
    const restart = child.spec.restart;
    if (restart === 'temporary' || (restart === 'transient' && isNormalOrShutdown(reason))) {
      // The spec of a transient child is kept (restartChild can start it again); a temporary
      // child, or any child of a simple_one_for_one supervisor, is forgotten.
      if (restart === 'temporary' || this.dynamic) this.remove(child);
      return this.autoShutdownAfter(child);
    }
    return this.restartAfterFailure(child);
  }

  /** OTP 24's auto_shutdown: a significant child's exit may stop the supervisor. */
  private autoShutdownAfter(child: ChildRecord): void | Promise<void> {
    const mode = this.config.autoShutdown;
    if (mode === 'never' || !child.spec.significant) return;
    if (mode === 'all_significant') {
      for (const other of this.records) if (other.spec.significant && other.pid !== undefined) return;
    }
    this.emit('auto_shutdown', child, undefined, 'shutdown');
    return this.shutdown('shutdown');
  }

  /** Counts the restart against the intensity, then restarts by the strategy (or gives up). */
  private restartAfterFailure(child: ChildRecord): void | Promise<void> {
    if (!this.restarts.record(this.now())) {
      this.emit('restart_intensity_reached', child, undefined, 'shutdown');
      return this.shutdown('shutdown');
    }
    return this.restartByStrategy(child);
  }

  /** The children that restart with `child`: itself, those after it, or all of them. */
  private groupOf(child: ChildRecord): ChildRecord[] {
    if (this.strategy === 'one_for_all') return [...this.records];
    if (this.strategy !== 'rest_for_one') return [child];
    const group: ChildRecord[] = [];
    let found = false;
    for (const member of this.records) {
      if (member === child) found = true;
      if (found) group.push(member);
    }
    return group;
  }

  private restartByStrategy(child: ChildRecord): void | Promise<void> {
    const group = this.groupOf(child);
    if (group.length === 1) return this.scheduleOrStart(child);
    return this.stopGroup(child, group).then(() => this.scheduleOrStart(child));
  }

  /**
   * Stops the other members of the group, in reverse start order. A temporary child stopped this
   * way is removed, never restarted (OTP); the others will start again with the failed child.
   */
  private async stopGroup(failed: ChildRecord, group: ChildRecord[]): Promise<void> {
    for (let index = group.length - 1; index >= 0; index--) {
      const member = group[index];
      if (member === failed) continue;
      this.cancelRestart(member);
      if (member.pid !== undefined) await this.stopChild(member);
      if (member.spec.restart === 'temporary') this.remove(member);
      else member.restarting = true;
    }
  }

  private scheduleOrStart(child: ChildRecord): void | Promise<void> {
    child.restarting = true;
    const backoff = this.config.backoff;
    if (!backoff.delays) return this.startGroup(child);
    const delayMs = backoff.delayMs(child.backoffAttempt++);
    const token = this.nextToken++;
    child.restartToken = token;
    child.restartTimer = this.sendToSelfAfter(delayMs, new RestartDue(child, token));
    this.emit('child_restart_scheduled', child, undefined, undefined, delayMs);
  }

  private onRestartDue(message: RestartDue): void | Promise<void> {
    const child = message.child;
    if (child.restartToken !== message.token || !child.restarting || !this.records.has(child)) return;
    child.restartTimer = undefined;
    child.restartToken = 0;
    return this.startGroup(child);
  }

  private onTryAgain(message: TryAgainRestart): void | Promise<void> {
    const child = message.child;
    // Terminated, deleted or started by hand meanwhile: nothing to try again.
    if (!child.restarting || child.pid !== undefined || !this.records.has(child)) return;
    return this.restartAfterFailure(child);
  }

  /** Starts the members of `child`'s group that are not running, in start order. */
  private startGroup(child: ChildRecord): void | Promise<void> {
    const members = this.groupOf(child).filter((member) => member.pid === undefined);
    return this.startMembers(members, 0);
  }

  private startMembers(members: ChildRecord[], from: number): void | Promise<void> {
    for (let index = from; index < members.length; index++) {
      const outcome = this.startProcess(members[index]);
      if (outcome instanceof Promise) {
        return outcome.then((settled) => {
          if (this.restarted(members, index, settled)) return this.startMembers(members, index + 1);
        });
      }
      if (!this.restarted(members, index, outcome)) return;
    }
  }

  /** Records one restart's outcome; false when it failed (the rest wait for the retry). */
  private restarted(members: ChildRecord[], index: number, outcome: StartOutcome): boolean {
    const member = members[index];
    if (outcome instanceof StartFailure) {
      this.emit('child_start_failed', member, undefined, outcome.reason);
      for (let rest = index; rest < members.length; rest++) members[rest].restarting = true;
      // OTP's try_again_restart: through the mailbox, so calls are answered in between.
      sendToSelf(this.context.system, this.context.self, new TryAgainRestart(member));
      return false;
    }
    member.restarting = false;
    if (outcome !== 'ignore') this.emit('child_restarted', member, outcome, undefined);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Stopping children and the supervisor

  /** Stops a running child (its shutdown spec) and reports it. */
  async stopChild(child: ChildRecord): Promise<void> {
    const pid = child.pid!;
    this.detach(child);
    const reason = await shutdownChild(this.context, pid, child.spec.shutdown);
    this.emit('child_terminated', child, pid, reason);
  }

  /** Stops every child, in reverse start order. */
  async stopAll(): Promise<void> {
    const children = [...this.records];
    for (let index = children.length - 1; index >= 0; index--) {
      const child = children[index];
      this.cancelRestart(child);
      if (child.pid !== undefined) await this.stopChild(child);
    }
  }

  /** Stops every child, then exits with `reason`; `beforeExit` runs last (a stop call's reply). */
  async shutdown(reason: ExitReason, beforeExit?: () => void): Promise<void> {
    await this.stopAll();
    this.emit('supervisor_shutdown', undefined, undefined, reason);
    unregisterSupervisor(this.context.self);
    beforeExit?.();
    this.context.exit(reason);
  }

  // -------------------------------------------------------------------------------------------
  // Heartbeats (seed 002's check_heartbeats)

  private onHeartbeatCheck(check: HeartbeatCheck): void | Promise<void> {
    const child = check.child;
    const pid = check.pid;
    if (child.pid !== pid) return; // stale: stopped or replaced since
    const heartbeatMs = child.spec.heartbeatMs!;
    const silentMs = this.now() - child.lastHeartbeatAtMs;
    if (silentMs < heartbeatMs) {
      child.heartbeatTimer = this.sendToSelfAfter(heartbeatMs - silentMs, check);
      return;
    }
    child.heartbeatTimer = undefined;
    const hung = new HeartbeatMissed(child.id, pid, heartbeatMs, silentMs);
    const isExit = (message: unknown): boolean => message instanceof ExitMessage && message.from.equals(pid);
    if (pid.thread !== this.context.self.thread) {
      // On another thread the kill takes effect there: wait for the EXIT (the link brings it) before
      // restarting, as for any shutdown. A child that died before the kill reached it exits with
      // its own reason, and that is what it is restarted for.
      this.context.exit(pid, 'kill');
      return this.context.receive<ExitMessage>(isExit).then((exit) => {
        if (exit?.reason !== 'killed') return this.childExited(child, exit?.reason ?? 'noproc');
        this.emit('child_hung', child, pid, hung);
        return this.childExited(child, hung);
      });
    }
    if (!this.context.system.isAlive(pid)) return; // it died already: its EXIT is on the way
    this.emit('child_hung', child, pid, hung);
    this.context.exit(pid, 'kill');
    // the kill is synchronous: its EXIT is queued now; consume it and report the hang instead
    return this.context.receive<ExitMessage>(isExit, 0).then(() => this.childExited(child, hung));
  }

  // -------------------------------------------------------------------------------------------
  // Introspection and events

  childInfo(child: ChildRecord): ChildInfo {
    const pid = child.pid ?? (child.restarting ? 'restarting' : undefined);
    return { id: child.id, pid, type: child.spec.type, restart: child.spec.restart };
  }

  children(): ChildInfo[] {
    return [...this.records].map((child) => this.childInfo(child));
  }

  emit(
    kind: SupervisionEventKind,
    child: ChildRecord | undefined,
    pid: Pid | undefined,
    reason: ExitReason | undefined,
    delayMs?: number,
  ): void {
    const onEvent = this.config.onEvent;
    if (onEvent === undefined && this.listeners.size === 0) return;
    const timeMs = this.now();
    const supervisor = this.context.self;
    const childId = child?.id;
    const event: SupervisionEvent =
      delayMs === undefined
        ? { kind, supervisor, childId, pid, reason, timeMs }
        : { kind, supervisor, childId, pid, reason, timeMs, delayMs };
    if (onEvent !== undefined) deliverEvent(onEvent, event);
    for (const listener of this.listeners) deliverEvent(listener, event);
  }
}

function isThenable(value: unknown): value is PromiseLike<StartResult> {
  return (
    typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

function startFailure(error: unknown): StartFailure {
  // startGenServer rejects with StartError(reason): report the server's own reason, as OTP's {error, Reason}
  return new StartFailure(isStartError(error) ? error.reason : (error as ExitReason));
}

function deliverEvent(listener: SupervisionListener, event: SupervisionEvent): void {
  try {
    listener(event);
  } catch (error) {
    // a broken listener must not break supervision; it is reported, not swallowed
    process.stderr.write(
      `zbmd: a supervision event listener threw: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
  }
}
