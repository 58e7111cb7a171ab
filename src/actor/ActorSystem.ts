import type { TransferListItem } from 'node:worker_threads';
import type { CallFrom } from './Call.js';
import { type Clock, SimulatedClock, type TimerHandle } from './Clock.js';
import { DownMessage, type ExitReason } from './ExitReason.js';
import { AlreadyRegistered, BadArgument, OnAnotherThread } from './errors.js';
import { callFrom, isCallHandle } from './internal/calls.js';
import { checkName, checkPid, checkTimeout, isCodeRef } from './internal/checks.js';
import { CodeUpgrade, deliverSignalMessage, sendFrom } from './internal/delivery.js';
import { migrateLocal } from './internal/migration.js';
import { RemoteMonitor } from './internal/Remote.js';
import { Runtime } from './internal/Runtime.js';
import { exitSignal, Monitor, monitor, terminate, unwatch, watch } from './internal/signals.js';
import { askAgent } from './internal/ThreadAgent.js';
import { attachWorker, ThreadPool, threadCount } from './internal/ThreadPool.js';
import { DEFAULT_CALL_TIMEOUT_MS, type OverflowPolicy } from './Limits.js';
import type { Pid, Ref } from './Pid.js';

export { type CallFrom, CallRequest } from './Call.js';
export {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_MAILBOX_CAPACITY,
  DEFAULT_REDUCTION_BUDGET,
  DEFAULT_TIME_SLICE_MS,
  type OverflowPolicy,
} from './Limits.js';

/** A handler actor: one message at a time; returning a promise suspends only this actor. */
export interface Handler<M = any> {
  /** Runs once, before the first message (may be async: messages wait in the mailbox). */
  init?(context: Context<M>): void | Promise<void>;
  handle(message: M, context: Context<M>): void | Promise<void>;
}

/** A process function: runs once; uses `context.receive` for selective receive. Returning exits `normal`. */
export type ProcessBody<M = any> = (context: Context<M>) => unknown;

export type Behavior<M = any> = Handler<M> | ProcessBody<M>;

export interface MailboxOptions {
  /** Most messages queued at once (default 100,000). Signals (EXIT, DOWN) are admitted beyond it. */
  readonly capacity?: number;
  /** What a send to a full mailbox does: throw `MailboxFull` to the sender (default), or drop. */
  readonly overflow?: OverflowPolicy;
}

export interface SpawnOptions {
  /** Registers the new process under this name. */
  readonly name?: string;
  /** Starts the process trapping exits. */
  readonly trapExit?: boolean;
  readonly mailbox?: MailboxOptions;
}

/**
 * Code named so that another thread can load it (Erlang's spawn(Module, Function, Args)): the
 * module's URL (`import.meta.url`) and an export. A class export is constructed with the spawn's
 * args, a function export called with them; either must give a handler `{ init?, handle }`.
 */
export interface CodeRef {
  readonly module: string | URL;
  readonly export: string;
}

export interface ThreadSpawnOptions extends SpawnOptions {
  /** Where the process runs: a thread index, `'any'` (the least loaded), or this thread (default). */
  readonly thread?: number | 'any';
}

/** A process registered under `name` on the cluster node `node` (Erlang's `{Name, Node} ! Msg`). */
export interface NodeName {
  readonly name: string;
  readonly node: string;
}

export interface SendOptions {
  /**
   * ArrayBuffers moved (not copied) to a process on another thread: the sender's buffers are
   * detached. Ignored for a process on the same thread (messages are never copied there).
   */
  readonly transfer?: readonly TransferListItem[];
}

/** Where processes can be spawned from: the system (outside any actor) or a process's context. */
export interface Spawner {
  spawn<M = any>(behavior: Behavior<M>, options?: SpawnOptions): Pid;
  spawn(code: CodeRef, args?: readonly unknown[], options?: ThreadSpawnOptions): Pid;
}

/** What a process sees of the runtime. Every call acts on behalf of `self`. */
export interface Context<M = any> extends Spawner {
  readonly self: Pid;
  readonly system: ActorSystem;
  /** Fires when the process exits (killed while awaiting, for example): pass it to awaited work. */
  readonly signal: AbortSignal;
  send(to: Pid | string | NodeName, message: unknown, options?: SendOptions): void;
  /** Takes the oldest message `match` accepts if one is queued now, without waiting (process functions). */
  tryReceive<T = M>(match?: (message: unknown) => boolean): T | undefined;
  /** Receives the oldest message (or the oldest that `match` accepts); `undefined` after `timeoutMs`. */
  receive<T = M>(match?: (message: unknown) => boolean, timeoutMs?: number): Promise<T | undefined>;
  /** Exits this process now with `reason` (Erlang's exit/1); throws to unwind the caller. */
  exit(reason: ExitReason): never;
  /** Sends an exit signal to `pid` (Erlang's exit/2). */
  exit(pid: Pid, reason: ExitReason): void;
  /**
   * Ends this process now with `reason` (default `normal`) without throwing: for a handler that
   * finished its work. Its context can do nothing afterwards (calls throw `ProcessExited`).
   */
  stop(reason?: ExitReason): void;
  link(pid: Pid): void;
  unlink(pid: Pid): void;
  monitor(pid: Pid | string): Ref;
  /** Removes a monitor; with `flush`, also removes its DOWN message if already queued. */
  demonitor(ref: Ref, options?: { flush?: boolean }): boolean;
  /** Sets trap_exit; returns the previous value. */
  trapExit(enabled: boolean): boolean;
  spawnLink<T = any>(behavior: Behavior<T>, options?: SpawnOptions): Pid;
  spawnLink(code: CodeRef, args?: readonly unknown[], options?: ThreadSpawnOptions): Pid;
  spawnMonitor<T = any>(behavior: Behavior<T>, options?: SpawnOptions): [Pid, Ref];
  spawnMonitor(code: CodeRef, args?: readonly unknown[], options?: ThreadSpawnOptions): [Pid, Ref];
  register(name: string): void;
  sendAfter(delayMs: number, to: Pid | string, message: unknown): TimerHandle;
  cancelTimer(timer: TimerHandle): number | false;
  call<R = unknown>(server: Pid | string, request: unknown, timeoutMs?: number): Promise<R>;
}

export interface ActorSystemOptions {
  /** Name of this node; pids carry it. Default `zbmd@local`. */
  readonly nodeName?: string;
  /**
   * Scheduler threads: each runs its own run queue on its own worker thread, the calling thread
   * being thread 0. `'auto'` = the available cores. Default 1 (everything on the calling thread).
   * With more than one, call `close()` when done: worker threads keep the process alive.
   */
  readonly threads?: number | 'auto';
  /**
   * How batches of operations cross between scheduler threads: `'ring'` (default) a
   * SharedArrayBuffer ring per pair of threads, woken with Atomics, the MessagePort beside it
   * for what is not all numbers; `'port'` every batch posted on the MessagePort. Both keep the
   * order per sender-receiver pair; `bench actors` measures both.
   */
  readonly threadTransport?: 'ring' | 'port';
  /**
   * With several threads: how long a thread that ran out of work busy-spins on its
   * doorbell for more, in microseconds (like Erlang's `+sbwt`). Default 50; 0 never spins; at
   * most 100,000. The spin adapts below it (halves after a miss, pauses when it reaches nothing),
   * and costs up to this much CPU per burst of work a thread finishes. README "Actors on every
   * core" has the figures.
   */
  readonly idleSpinUs?: number;
  /**
   * With several threads: after the spin, how long a thread blocks in `Atomics.wait` for more
   * (no CPU; a futex wake-up instead of an event-loop one) before it sleeps on the event loop,
   * in microseconds. Default 0 (never blocks: on the 2-core development machine it did not beat
   * the event-loop wake-up; README "Actors on every core"); at most 100,000. Taken only when
   * nothing but the thread's own ports, timers and stdout/stderr could bring work; a timer due
   * meanwhile fires up to this much late.
   */
  readonly idleWaitUs?: number;
  /** Told when a scheduler thread dies (and is replaced). Default: one line on stderr. */
  readonly onThreadExit?: (thread: number, cause: unknown) => void;
  /** Time source. Default: a `RealClock`; pass a `SimulatedClock` for deterministic tests. */
  readonly clock?: Clock;
  /**
   * Deterministic scheduling: turns never depend on wall time (no time slice), so a run with a
   * simulated clock replays exactly. Use `settle()` and `advance()` to drive it. Default: true
   * when the clock is a `SimulatedClock`.
   */
  readonly deterministic?: boolean;
  readonly reductionBudget?: number;
  readonly timeSliceMs?: number;
  readonly mailboxCapacity?: number;
  /**
   * Told about every process that crashed (its code threw). Default: one line on stderr.
   * An error nobody handles is reported, never swallowed.
   */
  readonly onCrash?: (pid: Pid, reason: ExitReason) => void;
  /** Runtime fault hooks (message drops and delays, injected crashes). */
  readonly faults?: RuntimeFaults;
}

/** Hooks through which fault injection reaches the runtime. */
export interface RuntimeFaults {
  /** Called for every user message; `'drop'` loses it, a number delays it by that many ms. */
  onSend?(to: Pid, message: unknown): 'deliver' | 'drop' | number;
  /**
   * Called before a handler runs; true crashes the process with an injected fault. Process
   * functions (supervisors among them) are not struck: injected crashes target the workers,
   * not the infrastructure that repairs them.
   */
  crashBeforeHandle?(pid: Pid): boolean;
}

/**
 * The observability hook (src/observe installs one through `trace`): told of each user message
 * as it is delivered and of each message a handler actor is about to handle. Unset, it costs
 * one check per message. It sees this thread's deliveries only.
 */
export interface ActorTracer {
  delivered(to: Pid, message: unknown, from: Pid | undefined): void;
  handling(pid: Pid, message: unknown): void;
}

export interface ProcessInfo {
  readonly pid: Pid;
  readonly name: string | undefined;
  readonly status: 'waiting' | 'runnable' | 'running' | 'suspended';
  readonly mailboxLength: number;
  readonly links: Pid[];
  readonly monitors: Pid[];
  readonly monitoredBy: Pid[];
  readonly reductions: number;
  readonly trapExit: boolean;
  readonly kind: 'handler' | 'process';
  /** The scheduler thread the process runs on. */
  readonly thread: number;
}

export interface SystemStats {
  readonly spawned: number;
  readonly exited: number;
  readonly alive: number;
  readonly messagesSent: number;
  readonly messagesDropped: number;
  readonly crashes: number;
}

/** Where an operation runs from: the system (outside any process) or a process's context. */
export type Where = ActorSystem | Context;

/** The system behind a `Where`. */
export function systemOf(where: Where): ActorSystem {
  return where instanceof ActorSystem ? where : where.system;
}

/** By process state (internal/Process.ts): a NEW process is runnable (queued for its first turn). */
const STATUS = ['waiting', 'runnable', 'running', 'suspended', 'dead', 'runnable'] as const;

/**
 * One node's runtime: processes, their mailboxes, signals, the scheduler and the registry. This
 * class is the public API; the work is done under `internal/` (Runtime, Scheduler, delivery,
 * signals, calls, Registry, ProcessContext), whose state stays private.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, type Pid } from 'zbmd';
 *
 * const system = new ActorSystem();
 * const seen: string[] = [];
 * const printer = system.spawn({ handle: (line: string) => void seen.push(line) });
 * const echo = system.spawn({ handle: (message: { to: Pid; text: string }, ctx) => ctx.send(message.to, message.text) });
 * system.send(echo, { to: printer, text: 'hello' });
 * await system.settle(); // runs until no process has work
 * assert.deepEqual(seen, ['hello']);
 * system.shutdown();
 * ```
 */
export class ActorSystem implements Spawner {
  readonly #runtime: Runtime;

  readonly #pool: ThreadPool | undefined;

  constructor(options: ActorSystemOptions = {}) {
    const runtime = new Runtime(this, options);
    this.#runtime = runtime;
    const threads = threadCount(options.threads);
    this.#pool = attachWorker(runtime)
      ? undefined
      : threads > 1
        ? new ThreadPool(runtime, threads, options)
        : undefined;
  }

  /** The observability hook (see `ActorTracer`); undefined when nothing traces this system. */
  get tracer(): ActorTracer | undefined {
    return this.#runtime.tracer;
  }

  set tracer(tracer: ActorTracer | undefined) {
    this.#runtime.tracer = tracer;
  }

  /** The scheduler thread this system object runs on (0: the thread that created the system). */
  get thread(): number {
    return this.#runtime.thread;
  }

  /** How many scheduler threads this node runs. */
  get threads(): number {
    return this.#runtime.remote?.threads ?? 1;
  }

  /** Name of this node; pids carry it. */
  get nodeName(): string {
    return this.#runtime.nodeName;
  }

  get clock(): Clock {
    return this.#runtime.clock;
  }

  get deterministic(): boolean {
    return this.#runtime.deterministic;
  }

  /** The pid that stands for code outside any process (the sender of `system.exit`). */
  get rootPid(): Pid {
    return this.#runtime.rootPid;
  }

  // ---------------------------------------------------------------------------------------------
  // Processes

  /**
   * Spawns a process from a behaviour (on this thread), or from code named by module URL and
   * export, with `args`, on any thread (`options.thread`).
   */
  spawn<M = any>(behavior: Behavior<M>, options?: SpawnOptions): Pid;
  spawn(code: CodeRef, args?: readonly unknown[], options?: ThreadSpawnOptions): Pid;
  spawn(behavior: Behavior | CodeRef, second?: unknown, third?: ThreadSpawnOptions): Pid {
    if (isCodeRef(behavior))
      return this.#runtime.spawnByCode(behavior, second as readonly unknown[] | undefined, third, undefined);
    return this.#runtime.spawnProcess(behavior, second as SpawnOptions | undefined).pid;
  }

  send(to: Pid | string | NodeName, message: unknown, options?: SendOptions): void {
    sendFrom(this.#runtime, undefined, to, message, options?.transfer);
  }

  /** Sends an exit signal to `pid` from outside any process (Erlang's exit/2). */
  exit(pid: Pid, reason: ExitReason): void {
    exitSignal(this.#runtime, this.#runtime.rootPid, checkPid(pid, 'exit'), reason);
  }

  /** Whether `pid` is alive; for a pid on another thread, whether its thread is up (the process may have exited). */
  isAlive(pid: Pid): boolean {
    const runtime = this.#runtime;
    if (runtime.lookup(checkPid(pid, 'isAlive')) !== undefined) return true;
    return runtime.remote?.isRemote(pid) === true && runtime.remote.peerUp(pid.thread);
  }

  /**
   * Resolves with the exit reason of `pid` (`'noproc'` at once if it is not alive). Aborting
   * `signal` stops the watch and rejects with the signal's reason.
   */
  whenExited(pid: Pid, options: { signal?: AbortSignal } = {}): Promise<ExitReason> {
    const runtime = this.#runtime;
    const target = runtime.lookup(checkPid(pid, 'whenExited'));
    const abort = options.signal;
    if (target === undefined && runtime.remote?.isRemote(pid)) return this.#whenRemoteExited(pid, abort);
    if (target === undefined) return Promise.resolve('noproc');
    if (abort?.aborted) return Promise.reject(abort.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        unwatch(target, id);
        reject(abort!.reason);
      };
      const id = watch(runtime, target, {
        exited: (_pid, reason) => {
          abort?.removeEventListener('abort', onAbort);
          resolve(reason);
        },
      });
      abort?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A process on another thread: a local watcher process monitors it. */
  #whenRemoteExited(pid: Pid, abort: AbortSignal | undefined): Promise<ExitReason> {
    if (abort?.aborted) return Promise.reject(abort.reason);
    const runtime = this.#runtime;
    return new Promise((resolve, reject) => {
      const watcher = runtime.spawnProcess(
        {
          handle: (message: unknown, ctx: Context) => {
            if (!(message instanceof DownMessage)) return;
            abort?.removeEventListener('abort', onAbort);
            resolve(message.reason);
            ctx.stop();
          },
        },
        undefined,
      );
      monitor(runtime, watcher, pid); // now, so that a signal sent after this call is seen
      const onAbort = (): void => {
        terminate(runtime, watcher, 'killed');
        reject(abort!.reason);
      };
      abort?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Listens to every process exit (for metrics and tools). Returns a function that removes it. */
  onExit(listener: (pid: Pid, reason: ExitReason) => void): () => void {
    const listeners = this.#runtime.exitListeners;
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  // ---------------------------------------------------------------------------------------------
  // Registry

  /**
   * Registers `pid` as `name` (erlang:register/2). Names are node-wide: `whereis` and sends by
   * name work from every thread, and a name goes when its process exits. Refused (OTP's badarg)
   * with `AlreadyRegistered` when the name is taken, `BadArgument` when the process is not alive
   * or already has a name.
   *
   * A process of this thread is registered at once (an error is thrown). A process on another
   * scheduler thread is registered by that thread, where it is known whether it is alive and
   * named: the result is then a promise (await it: it rejects with the same errors) that resolves
   * once the name is registered and known to this thread.
   */
  register(name: string, pid: Pid): void | Promise<void> {
    checkName(name);
    const runtime = this.#runtime;
    const target = runtime.lookup(checkPid(pid, 'register'));
    const remote = runtime.remote;
    if (target === undefined && remote?.isRemote(pid) === true) {
      remote.checkThread(pid, 'register');
      const holder = runtime.registry.whereis(name); // as this thread knows; that thread checks too
      if (holder !== undefined) return Promise.reject(new AlreadyRegistered(name, holder));
      return askAgent<void>(runtime, this.#agents, pid.thread, { op: 'register', name, pid });
    }
    if (target === undefined) throw new BadArgument(`cannot register '${name}': process ${pid} is not alive`);
    runtime.registry.add(name, target);
  }

  /**
   * Removes a name (erlang:unregister/1); false if it was not registered. A name held by a process
   * on another thread is removed by that thread: the result is then a promise of the answer.
   */
  unregister(name: string): boolean | Promise<boolean> {
    const runtime = this.#runtime;
    if (runtime.registry.remove(checkName(name))) return true;
    const holder = runtime.remote?.remoteNames.get(name);
    if (holder === undefined) return false;
    return askAgent<boolean>(runtime, this.#agents, holder.thread, { op: 'unregister', name });
  }

  whereis(name: string): Pid | undefined {
    return this.#runtime.registry.whereis(checkName(name));
  }

  registered(): string[] {
    return this.#runtime.registry.list();
  }

  // ---------------------------------------------------------------------------------------------
  // Timers and calls

  /**
   * Sends `message` to `to` after `delayMs` (nothing happens if the receiver is gone by then).
   * A timer message is never dropped by a full mailbox: like a signal it gets in beyond the
   * capacity, because a lost timer (a restart, a timeout) would leave its process stuck.
   */
  sendAfter(delayMs: number, to: Pid | string, message: unknown): TimerHandle {
    checkTimeout(delayMs, 'sendAfter delay');
    if (typeof to !== 'string') checkPid(to, 'sendAfter');
    if (message === undefined)
      throw new BadArgument('sendAfter: the message is undefined; send null or a value');
    const runtime = this.#runtime;
    return runtime.clock.setTimer(delayMs, () => {
      const target = typeof to === 'string' ? runtime.registry.holder(to) : runtime.lookup(to);
      if (target === undefined) {
        const pid = typeof to === 'string' ? runtime.remote?.remoteNames.get(to) : to;
        if (pid !== undefined && runtime.remote?.isRemote(pid)) runtime.remote.send(pid, message, undefined);
        return;
      }
      runtime.counters.messagesSent++;
      deliverSignalMessage(runtime, target, message);
    });
  }

  /** Cancels a `sendAfter`; returns the milliseconds it had left, or false if it already fired. */
  cancelTimer(timer: TimerHandle): number | false {
    const clock = this.#runtime.clock;
    const remaining = timer.dueAt - clock.now();
    return clock.cancelTimer(timer) ? Math.max(0, remaining) : false;
  }

  /**
   * Sends `request` to a server and waits for its reply. Fails with `CallTimeout` after
   * `timeoutMs` (a late reply is then dropped), with `CallExit('noproc')` if the server is not
   * alive, and with `CallExit(reason)` if it dies before replying.
   */
  call<R = unknown>(server: Pid | string, request: unknown, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<R> {
    return callFrom(this.#runtime, undefined, server, request, timeoutMs);
  }

  /** Answers a call; a reply to a call that already timed out or was answered is dropped. */
  reply(from: CallFrom, value: unknown): boolean {
    if (!isCallHandle(from)) throw new BadArgument('reply: `from` must be the CallFrom of a call');
    return from.settle(value, undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Code upgrade and introspection

  /**
   * Swaps the code of a running handler actor. `upgrade` receives the current behavior object
   * and returns the new one (migrating any state it holds). The swap is queued behind the
   * messages already in the mailbox (they run on the old code) and ahead of later ones, so no
   * message is lost or reordered. Returns false if the process is not alive. A process on another
   * scheduler thread is refused with `OnAnotherThread` (the swap is a function, which cannot cross
   * threads): call `upgrade` on that thread (from a process there), or `migrate` it here first.
   */
  upgrade<M>(pid: Pid, upgrade: (current: Handler<M>) => Handler<M>): boolean {
    const runtime = this.#runtime;
    const target = runtime.lookup(checkPid(pid, 'upgrade'));
    if (target === undefined && runtime.remote?.isRemote(pid) === true)
      throw new OnAnotherThread(
        'upgrade',
        pid,
        'a code swap is a function, which cannot cross threads: call upgrade from a process on that thread, or migrate the process to this thread first',
      );
    if (target === undefined) return false;
    if (target.behavior === undefined)
      throw new BadArgument(`upgrade: ${pid} is a process function, not a handler`);
    if (typeof upgrade !== 'function')
      throw new BadArgument('upgrade: expected a function (current) => next');
    // In band, like OTP's system messages: what was queued before runs on the old code.
    deliverSignalMessage(this.#runtime, target, new CodeUpgrade(upgrade));
    return true;
  }

  processInfo(pid: Pid): ProcessInfo | undefined {
    const record = this.#runtime.lookup(checkPid(pid, 'processInfo'));
    if (record === undefined) return undefined;
    return {
      pid: record.pid,
      name: record.extra?.name,
      status: STATUS[record.state as 0 | 1 | 2 | 3 | 5],
      mailboxLength: record.mailbox.length,
      links: [
        ...[...(record.extra?.links ?? [])].map((other) => other.pid),
        ...(record.extra?.remoteLinks?.values() ?? []),
      ],
      monitors: [
        ...[...(record.extra?.monitors?.values() ?? [])].map((other) => other.pid),
        ...[...(record.extra?.remoteMonitors?.values() ?? [])].map((entry) => entry.pid),
      ],
      monitoredBy: [...(record.extra?.watchers?.values() ?? [])].flatMap((observer) =>
        observer instanceof Monitor
          ? [observer.watcher.pid]
          : observer instanceof RemoteMonitor
            ? [observer.watcherPid]
            : [],
      ),
      reductions: record.reductions,
      trapExit: record.extra?.trapping === true,
      kind: record.behavior === undefined ? 'process' : 'handler',
      thread: record.pid.thread,
    };
  }

  /** The pids of all live processes, in spawn order. */
  processes(): Pid[] {
    const pids: Pid[] = [];
    for (const record of this.#runtime.live) pids.push(record.pid);
    return pids;
  }

  /** The live pid printed as `text` (`<0.42.0>`), for shells and debugging: a linear scan. */
  pidOf(text: string): Pid | undefined {
    for (const record of this.#runtime.live) if (record.pid.toString() === text) return record.pid;
    return undefined;
  }

  /** The queued messages of a process (a copy), oldest first. */
  mailboxOf(pid: Pid): unknown[] {
    return this.#runtime.lookup(checkPid(pid, 'mailboxOf'))?.mailbox.toArray() ?? [];
  }

  stats(): SystemStats {
    const runtime = this.#runtime;
    return { ...runtime.counters, alive: runtime.live.size };
  }

  // ---------------------------------------------------------------------------------------------
  // Driving the scheduler in tests

  /**
   * Resolves once no process can make progress: the run queue is empty and every pending
   * microtask has run. Processes waiting for a message or a timer do not count as progress.
   */
  async settle(maxRounds = 100_000): Promise<void> {
    const scheduler = this.#runtime.scheduler;
    for (let round = 0; round < maxRounds; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (scheduler.idle) {
        // one more macrotask: promise chains started by the last turn may still be queued
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (scheduler.idle) return;
      }
    }
    throw new Error(
      `settle: the system was still busy after ${maxRounds} rounds (a message loop that never ends?)`,
    );
  }

  /**
   * With a `SimulatedClock`: moves time forward by `ms`, firing timers one at a time in order
   * and letting the system settle after each, so a timer set while handling another fires too.
   */
  async advance(ms: number): Promise<void> {
    const clock = this.#runtime.clock;
    if (!(clock instanceof SimulatedClock)) throw new BadArgument('advance needs a SimulatedClock');
    checkTimeout(ms, 'advance');
    const target = clock.now() + ms;
    await this.settle();
    while (clock.step(target)) await this.settle();
    clock.advance(target - clock.now());
    await this.settle();
  }

  /**
   * Kills every process on this thread (brutally, as `'killed'`). The system can still be used
   * afterwards. Processes on other threads are stopped by `close()`.
   */
  shutdown(): void {
    const runtime = this.#runtime;
    for (const record of [...runtime.live].reverse()) terminate(runtime, record, 'killed');
  }

  /**
   * Stops the other scheduler threads (their processes end without running more code) and then
   * this thread's processes. Needed with `threads > 1`: worker threads keep the process alive.
   */
  async close(): Promise<void> {
    if (this.#pool !== undefined) await this.#pool.close();
    this.shutdown();
  }

  /**
   * Moves a running handler actor to scheduler thread `thread` and resolves with its new pid.
   * The actor must have been spawned by module URL from a class export, and its state (the
   * behaviour's own enumerable fields) must survive structured clone (else `NotCloneable`, and
   * it stays where it is). The move happens between two messages, behind those already queued.
   * The old pid keeps working by forwarding (holders need not learn the new pid): messages and
   * calls to it reach the new process in order, its links and monitors stay on the old pid and
   * fire when the new process exits, with its reason. See README "Actors on every core".
   */
  async migrate(pid: Pid, thread: number): Promise<Pid> {
    const runtime = this.#runtime;
    checkPid(pid, 'migrate');
    if (pid.thread === runtime.thread || runtime.remote === undefined)
      return migrateLocal(runtime, pid, thread);
    // a process on another thread: that thread's agent moves it
    return askAgent<Pid>(runtime, this.#agents, pid.thread, { op: 'migrate', pid, thread });
  }

  /** The agent process of each other thread this system asked something (internal/ThreadAgent.ts). */
  readonly #agents = new Map<number, Pid>();

  /** Test aid: ends scheduler thread `thread` abruptly, as a crash of that thread would. */
  async killThread(thread: number): Promise<void> {
    if (this.#pool === undefined)
      throw new BadArgument('killThread: call it on thread 0 of a system with threads > 1');
    await this.#pool.kill(thread);
  }
}
