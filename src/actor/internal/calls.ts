import { type CallFrom, CallRequest } from '../Call.js';
import type { TimerHandle } from '../Clock.js';
import type { ExitReason } from '../ExitReason.js';
import { CallExit, CallTimeout } from '../errors.js';
import type { Pid } from '../Pid.js';
import { checkName, checkPid, checkTimeout } from './checks.js';
import { deliver, injectSendFault } from './delivery.js';
import type { ExitObserver, ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';
import { unwatch, watch } from './signals.js';

/** gen:call: a request in a `CallRequest` envelope, settled by the reply, the server's exit or the timeout. */

export function callFrom<R>(
  runtime: Runtime,
  caller: ProcessRecord | undefined,
  server: Pid | string,
  request: unknown,
  timeoutMs: number,
): Promise<R> {
  checkTimeout(timeoutMs, 'call timeout');
  let target: ProcessRecord | undefined;
  let pid: Pid | undefined;
  if (typeof server === 'string') {
    target = runtime.registry.holder(checkName(server));
    if (target === undefined) pid = runtime.remote?.remoteNames.get(server);
  } else {
    target = runtime.lookup(checkPid(server, 'call'));
    if (target === undefined && runtime.nodes?.owns(server) === true)
      return runtime.nodes.call(caller, server, request, timeoutMs) as Promise<R>;
    if (target === undefined && runtime.remote?.isRemote(server)) pid = server;
  }
  if (pid !== undefined) return runtime.remote!.call(caller, pid, request, timeoutMs) as Promise<R>;
  if (target === undefined) return Promise.reject(new CallExit(server, 'noproc'));
  return new Promise<R>((resolve, reject) => {
    const pending = new PendingCall(
      runtime,
      caller?.pid,
      server,
      target,
      resolve as (value: unknown) => void,
      reject,
    );
    pending.watchId = watch(runtime, target, pending);
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      pending.timer = runtime.clock.setTimer(timeoutMs, () =>
        pending.settle(undefined, new CallTimeout(server, timeoutMs)),
      );
    }
    try {
      const envelope = new CallRequest(request, pending);
      if (runtime.tracer !== undefined) runtime.tracer.delivered(target.pid, envelope, caller?.pid);
      if (runtime.faults?.onSend === undefined || injectSendFault(runtime, target, envelope))
        deliver(runtime, target, envelope);
    } catch (error) {
      pending.settle(undefined, error);
    }
  });
}

/** What a server replies to: a call made on this thread (PendingCall) or on another (RemoteCallFrom). */
export abstract class CallHandle implements CallFrom {
  abstract readonly caller: Pid | undefined;
  /** Settles the call with a reply (`error` undefined) or a failure; false if already settled. */
  abstract settle(value: unknown, error: unknown): boolean;
}

/**
 * The `from` of a call that came from elsewhere (another thread, another node): the reply or
 * the failure travels back through `reply` / `fail`; the server's exit (it is watched through
 * `watchId` on `target`) fails the call with its reason. One class for both seams.
 */
export class ForwardedCallFrom extends CallHandle implements ExitObserver {
  settled = false;
  watchId = 0;
  target: ProcessRecord | undefined = undefined;

  constructor(
    private readonly reply: (value: unknown) => void,
    private readonly fail: (reason: ExitReason) => void,
    readonly caller: Pid | undefined,
  ) {
    super();
  }

  exited(_pid: Pid, reason: ExitReason): void {
    if (this.settled) return;
    this.settled = true;
    this.fail(reason);
  }

  settle(value: unknown, error: unknown): boolean {
    if (this.settled) return false;
    if (error !== undefined) {
      this.settled = true;
      this.fail(error as ExitReason);
    } else {
      this.reply(value); // may throw (a value that cannot travel), at the replier: still unsettled
      this.settled = true;
    }
    if (this.target !== undefined) unwatch(this.target, this.watchId);
    return true;
  }
}

/** True when `from` is the handle of a call. */
export function isCallHandle(from: CallFrom): from is CallHandle {
  return from instanceof CallHandle;
}

/** A call in flight: the server's death, the reply or the timeout settles it, whichever is first. */
export class PendingCall extends CallHandle implements ExitObserver {
  settled = false;
  watchId = 0;
  timer: TimerHandle | undefined = undefined;

  constructor(
    private readonly runtime: Runtime,
    readonly caller: Pid | undefined,
    private readonly server: Pid | string,
    private readonly target: ProcessRecord,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    super();
  }

  exited(_pid: Pid, reason: ExitReason): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) this.runtime.clock.cancelTimer(this.timer);
    this.reject(new CallExit(this.server, reason));
  }

  settle(value: unknown, error: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer !== undefined) this.runtime.clock.cancelTimer(this.timer);
    unwatch(this.target, this.watchId);
    if (error !== undefined) this.reject(error);
    else this.resolve(value);
    return true;
  }
}
