import type {
  ActorSystem,
  Behavior,
  CodeRef,
  Context,
  NodeName,
  SendOptions,
  SpawnOptions,
  ThreadSpawnOptions,
} from '../ActorSystem.js';
import type { TimerHandle } from '../Clock.js';
import type { ExitReason } from '../ExitReason.js';
import { BadArgument, ProcessExited } from '../errors.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../Limits.js';
import type { Pid, Ref } from '../Pid.js';
import { callFrom } from './calls.js';
import { checkPid, describe, isCodeRef } from './checks.js';
import { receiveFor, sendFrom, takeNow } from './delivery.js';
import { DEAD, extraOf, ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';
import { demonitor, exitSignal, link, monitor, terminate, unlink } from './signals.js';

/**
 * A process record is also the context handed to its code (one object per process, not two):
 * every method acts as that process.
 */
export class ProcessContext extends ProcessRecord implements Context {
  declare readonly runtime: Runtime;

  get system(): ActorSystem {
    return this.runtime.system;
  }

  get self(): Pid {
    return this;
  }

  get signal(): AbortSignal {
    const extra = extraOf(this);
    if (extra.abortController === undefined) {
      extra.abortController = new AbortController();
      if (this.state === DEAD) extra.abortController.abort(new ProcessExited(this.pid, this.exitReason));
    }
    return extra.abortController.signal;
  }

  private alive(): ProcessRecord {
    const record = this as ProcessRecord;
    if (record.state === DEAD) throw new ProcessExited(record.pid, record.exitReason);
    return record;
  }

  spawn(behavior: Behavior | CodeRef, second?: unknown, third?: ThreadSpawnOptions): Pid {
    this.alive();
    return this.spawnFrom(behavior, second, third, undefined);
  }

  spawnLink(behavior: Behavior | CodeRef, second?: unknown, third?: ThreadSpawnOptions): Pid {
    return this.spawnFrom(behavior, second, third, this.alive());
  }

  spawnMonitor(behavior: Behavior | CodeRef, second?: unknown, third?: ThreadSpawnOptions): [Pid, Ref] {
    const record = this.alive();
    const pid = this.spawnFrom(behavior, second, third, undefined);
    return [pid, monitor(this.runtime, record, pid)];
  }

  private spawnFrom(
    behavior: Behavior | CodeRef,
    second: unknown,
    third: ThreadSpawnOptions | undefined,
    parent: ProcessRecord | undefined,
  ): Pid {
    if (isCodeRef(behavior))
      return this.runtime.spawnByCode(behavior, second as readonly unknown[] | undefined, third, parent);
    return this.runtime.spawnProcess(behavior, second as SpawnOptions | undefined, parent).pid;
  }

  send(to: Pid | string | NodeName, message: unknown, options?: SendOptions): void {
    sendFrom(this.runtime, this.alive(), to, message, options?.transfer);
  }

  tryReceive<T>(match?: (message: unknown) => boolean): T | undefined {
    return takeNow(this.alive(), match, 'tryReceive') as T | undefined;
  }

  receive<T>(
    match?: (message: unknown) => boolean,
    timeoutMs = Number.POSITIVE_INFINITY,
  ): Promise<T | undefined> {
    return receiveFor(this.runtime, this.alive(), match, timeoutMs) as Promise<T | undefined>;
  }

  exit(...args: [reason: ExitReason] | [pid: Pid, reason: ExitReason]): never {
    const record = this.alive();
    if (args.length === 2) {
      exitSignal(this.runtime, record.pid, checkPid(args[0], 'exit'), args[1]);
      return undefined as never;
    }
    terminate(this.runtime, record, args[0]);
    throw new ProcessExited(record.pid, args[0]);
  }

  stop(reason: ExitReason = 'normal'): void {
    terminate(this.runtime, this.alive(), reason);
  }

  link(pid: Pid): void {
    link(this.runtime, this.alive(), pid);
  }

  unlink(pid: Pid): void {
    unlink(this.runtime, this.alive(), pid);
  }

  monitor(pid: Pid | string): Ref {
    return monitor(this.runtime, this.alive(), pid);
  }

  demonitor(ref: Ref, options?: { flush?: boolean }): boolean {
    return demonitor(this.runtime, this.alive(), ref, options?.flush === true);
  }

  trapExit(enabled: boolean): boolean {
    if (typeof enabled !== 'boolean')
      throw new BadArgument(`trapExit: expected a boolean, got ${describe(enabled)}`);
    const extra = extraOf(this.alive());
    const previous = extra.trapping;
    extra.trapping = enabled;
    return previous;
  }

  register(name: string): void {
    this.system.register(name, this.alive().pid);
  }

  sendAfter(delayMs: number, to: Pid | string, message: unknown): TimerHandle {
    this.alive();
    return this.system.sendAfter(delayMs, to, message);
  }

  cancelTimer(timer: TimerHandle): number | false {
    return this.system.cancelTimer(timer);
  }

  call<R = unknown>(server: Pid | string, request: unknown, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<R> {
    return callFrom(this.runtime, this.alive(), server, request, timeoutMs);
  }
}
