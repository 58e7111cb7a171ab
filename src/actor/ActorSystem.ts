import { type Clock, RealClock, SimulatedClock, type TimerHandle } from './Clock.js';
import { DownMessage, ExitMessage, type ExitReason, formatReason } from './ExitReason.js';
import {
  AlreadyRegistered,
  BadArgument,
  CallExit,
  CallTimeout,
  MailboxFull,
  NoProc,
  NotRegistered,
  ProcessExited,
} from './errors.js';
import {
  DEAD,
  type ExitObserver,
  extraOf,
  type MailboxPolicy,
  mailboxFor,
  type OverflowPolicy,
  ProcessRecord,
  RUNNABLE,
  RUNNING,
  SUSPENDED,
  WAITING,
  type Waiter,
} from './internal/Process.js';
import { Queue } from './internal/Queue.js';
import { Pid, Ref } from './Pid.js';

export type { OverflowPolicy } from './internal/Process.js';

/** Default mailbox capacity: messages beyond it follow the overflow policy (signals never do). */
export const DEFAULT_MAILBOX_CAPACITY = 100_000;
/** Messages an actor may handle in one turn before the scheduler moves to the next actor. */
export const DEFAULT_REDUCTION_BUDGET = 2000;
/** Longest run of the scheduler before it yields to the event loop (I/O, host timers). */
export const DEFAULT_TIME_SLICE_MS = 2;
/** Default `call` timeout, as gen_server's. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

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

/** Where processes can be spawned from: the system (outside any actor) or a process's context. */
export interface Spawner {
  spawn<M = any>(behavior: Behavior<M>, options?: SpawnOptions): Pid;
}

/** What a process sees of the runtime. Every call acts on behalf of `self`. */
export interface Context<M = any> extends Spawner {
  readonly self: Pid;
  readonly system: ActorSystem;
  /** Fires when the process exits (killed while awaiting, for example): pass it to awaited work. */
  readonly signal: AbortSignal;
  send(to: Pid | string, message: unknown): void;
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
  spawnMonitor<T = any>(behavior: Behavior<T>, options?: SpawnOptions): [Pid, Ref];
  register(name: string): void;
  sendAfter(delayMs: number, to: Pid | string, message: unknown): TimerHandle;
  cancelTimer(timer: TimerHandle): number | false;
  call<R = unknown>(server: Pid | string, request: unknown, timeoutMs?: number): Promise<R>;
}

export interface ActorSystemOptions {
  /** Name of this node; pids carry it. Default `zbmd@local`. */
  readonly nodeName?: string;
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
 * one check per message.
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

/** The opaque handle a server replies to (`reply(from, value)`). */
export interface CallFrom {
  readonly caller: Pid | undefined;
}

/** The envelope a `call` puts in the server's mailbox. GenServer unwraps it. */
export class CallRequest {
  constructor(
    readonly request: unknown,
    readonly from: CallFrom,
  ) {}
}

const STATUS = ['waiting', 'runnable', 'running', 'suspended'] as const;
const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['reject', 'drop-oldest', 'drop-newest'];

/**
 * One node's runtime: processes, their mailboxes, signals, the scheduler and the registry.
 *
 * @example
 * ```ts
 * const system = new ActorSystem();
 * const echo = system.spawn({ handle: (message: { from: Pid; text: string }, ctx) => ctx.send(message.from, message.text) });
 * ```
 */
export class ActorSystem implements Spawner {
  readonly nodeName: string;
  readonly clock: Clock;
  readonly deterministic: boolean;
  /** The pid that stands for code outside any process (the sender of `system.exit`). */
  readonly rootPid: Pid;

  /** Live processes in spawn order, as an intrusive list (no hashing on spawn and exit). */
  private readonly live = new ProcessList();
  private readonly names = new Map<string, ProcessRecord>();
  private readonly runQueue = new Queue<ProcessRecord>();
  private readonly signalQueue: unknown[] = [];
  private drainingSignals = false;
  private loopArmed = false;
  private sliceStart = 0;
  private nextId = 1;
  private nextRefId = 1;
  private readonly budget: number;
  private readonly timeSliceMs: number;
  private readonly defaultPolicy: MailboxPolicy;
  private readonly onCrash: (pid: Pid, reason: ExitReason) => void;
  private readonly faults: RuntimeFaults | undefined;
  private readonly exitListeners = new Set<(pid: Pid, reason: ExitReason) => void>();
  private counters = { spawned: 0, exited: 0, messagesSent: 0, messagesDropped: 0, crashes: 0 };
  /** The observability hook; undefined when nothing traces this system. */
  tracer: ActorTracer | undefined = undefined;

  constructor(options: ActorSystemOptions = {}) {
    this.nodeName = options.nodeName ?? 'zbmd@local';
    this.clock = options.clock ?? new RealClock();
    this.deterministic = options.deterministic ?? this.clock instanceof SimulatedClock;
    this.budget = positiveInteger(options.reductionBudget ?? DEFAULT_REDUCTION_BUDGET, 'reductionBudget');
    this.timeSliceMs = options.timeSliceMs ?? DEFAULT_TIME_SLICE_MS;
    this.defaultPolicy = {
      capacity: positiveInteger(options.mailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY, 'mailboxCapacity'),
      overflow: 'reject',
    };
    this.onCrash = options.onCrash ?? defaultCrashReport;
    this.faults = options.faults;
    this.rootPid = new Pid(this.nodeName, 0, 0, 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: processes

  spawn<M = any>(behavior: Behavior<M>, options?: SpawnOptions): Pid {
    return this.spawnProcess(behavior, options).pid;
  }

  send(to: Pid | string, message: unknown): void {
    this.sendFrom(undefined, to, message);
  }

  /** Sends an exit signal to `pid` from outside any process (Erlang's exit/2). */
  exit(pid: Pid, reason: ExitReason): void {
    const target = this.lookup(checkPid(pid, 'exit'));
    if (target !== undefined) this.signal(target, this.rootPid, reason, false);
  }

  isAlive(pid: Pid): boolean {
    return this.lookup(checkPid(pid, 'isAlive')) !== undefined;
  }

  /**
   * Resolves with the exit reason of `pid` (`'noproc'` at once if it is not alive). Aborting
   * `signal` stops the watch and rejects with the signal's reason.
   */
  whenExited(pid: Pid, options: { signal?: AbortSignal } = {}): Promise<ExitReason> {
    const target = this.lookup(checkPid(pid, 'whenExited'));
    if (target === undefined) return Promise.resolve('noproc');
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.unwatch(target, id);
        reject(signal!.reason);
      };
      const id = this.watch(target, {
        exited: (_pid, reason) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(reason);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Listens to every process exit (for metrics and tools). Returns a function that removes it. */
  onExit(listener: (pid: Pid, reason: ExitReason) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: registry

  register(name: string, pid: Pid): void {
    checkName(name);
    const target = this.lookup(checkPid(pid, 'register'));
    if (target === undefined) throw new BadArgument(`cannot register '${name}': process ${pid} is not alive`);
    const holder = this.names.get(name);
    if (holder !== undefined) throw new AlreadyRegistered(name, holder.pid);
    if (target.extra?.name !== undefined) {
      throw new BadArgument(
        `cannot register '${name}': ${pid} is already registered as '${target.extra.name}'`,
      );
    }
    extraOf(target).name = name;
    this.names.set(name, target);
  }

  /** Removes a name; returns false if it was not registered. */
  unregister(name: string): boolean {
    checkName(name);
    const holder = this.names.get(name);
    if (holder === undefined) return false;
    holder.extra!.name = undefined;
    this.names.delete(name);
    return true;
  }

  whereis(name: string): Pid | undefined {
    checkName(name);
    return this.names.get(name)?.pid;
  }

  registered(): string[] {
    return [...this.names.keys()];
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: timers and calls

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
    return this.clock.setTimer(delayMs, () => {
      const target = typeof to === 'string' ? this.names.get(to) : this.lookup(to);
      if (target === undefined) return;
      this.counters.messagesSent++;
      this.deliverSignalMessage(target, message);
    });
  }

  /** Cancels a `sendAfter`; returns the milliseconds it had left, or false if it already fired. */
  cancelTimer(timer: TimerHandle): number | false {
    const remaining = timer.dueAt - this.clock.now();
    return this.clock.cancelTimer(timer) ? Math.max(0, remaining) : false;
  }

  /**
   * Sends `request` to a server and waits for its reply. Fails with `CallTimeout` after
   * `timeoutMs` (a late reply is then dropped), with `CallExit('noproc')` if the server is not
   * alive, and with `CallExit(reason)` if it dies before replying.
   */
  call<R = unknown>(server: Pid | string, request: unknown, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<R> {
    return this.callFrom(undefined, server, request, timeoutMs);
  }

  /** Answers a call; a reply to a call that already timed out or was answered is dropped. */
  reply(from: CallFrom, value: unknown): boolean {
    if (!(from instanceof PendingCall)) throw new BadArgument('reply: `from` must be the CallFrom of a call');
    return from.settle(this, value, undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: code upgrade and introspection

  /**
   * Swaps the code of a running handler actor. `upgrade` receives the current behavior object
   * and returns the new one (migrating any state it holds). The swap is queued behind the
   * messages already in the mailbox (they run on the old code) and ahead of later ones, so no
   * message is lost or reordered. Returns false if the process is not alive.
   */
  upgrade<M>(pid: Pid, upgrade: (current: Handler<M>) => Handler<M>): boolean {
    const target = this.lookup(checkPid(pid, 'upgrade'));
    if (target === undefined) return false;
    if (target.behavior === undefined)
      throw new BadArgument(`upgrade: ${pid} is a process function, not a handler`);
    if (typeof upgrade !== 'function')
      throw new BadArgument('upgrade: expected a function (current) => next');
    // In band, like OTP's system messages: what was queued before runs on the old code.
    this.deliverSignalMessage(target, new CodeUpgrade(upgrade));
    return true;
  }

  processInfo(pid: Pid): ProcessInfo | undefined {
    const record = this.lookup(checkPid(pid, 'processInfo'));
    if (record === undefined) return undefined;
    return {
      pid: record.pid,
      name: record.extra?.name,
      status: STATUS[record.state as 0 | 1 | 2 | 3],
      mailboxLength: record.mailbox.length,
      links: [...(record.extra?.links ?? [])].map((other) => other.pid),
      monitors: [...(record.extra?.monitors?.values() ?? [])].map((other) => other.pid),
      monitoredBy: [...(record.extra?.watchers?.values() ?? [])]
        .filter((observer): observer is Monitor => observer instanceof Monitor)
        .map((monitor) => monitor.watcher.pid),
      reductions: record.reductions,
      trapExit: record.extra?.trapping === true,
      kind: record.behavior === undefined ? 'process' : 'handler',
    };
  }

  /** The pids of all live processes, in spawn order. */
  processes(): Pid[] {
    const pids: Pid[] = [];
    for (const record of this.live) pids.push(record.pid);
    return pids;
  }

  /** The queued messages of a process (a copy), oldest first. */
  mailboxOf(pid: Pid): unknown[] {
    return this.lookup(checkPid(pid, 'mailboxOf'))?.mailbox.toArray() ?? [];
  }

  stats(): SystemStats {
    return { ...this.counters, alive: this.live.size };
  }

  // ---------------------------------------------------------------------------------------------
  // Public API: driving the scheduler in tests

  /**
   * Resolves once no process can make progress: the run queue is empty and every pending
   * microtask has run. Processes waiting for a message or a timer do not count as progress.
   */
  async settle(maxRounds = 100_000): Promise<void> {
    for (let round = 0; round < maxRounds; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.runQueue.length === 0 && !this.loopArmed) {
        // one more macrotask: promise chains started by the last turn may still be queued
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.runQueue.length === 0 && !this.loopArmed) return;
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
    const clock = this.clock;
    if (!(clock instanceof SimulatedClock)) throw new BadArgument('advance needs a SimulatedClock');
    checkTimeout(ms, 'advance');
    const target = clock.now() + ms;
    await this.settle();
    while (clock.step(target)) await this.settle();
    clock.advance(target - clock.now());
    await this.settle();
  }

  /** Kills every process (brutally, as `'killed'`). The system can still be used afterwards. */
  shutdown(): void {
    for (const record of [...this.live].reverse()) this.terminate(record, 'killed');
  }

  // ---------------------------------------------------------------------------------------------
  // Internal: spawning

  /** @internal */
  spawnProcess(behavior: Behavior, options: SpawnOptions | undefined, parent?: ProcessRecord): ProcessRecord {
    const isBody = typeof behavior === 'function';
    if (
      !isBody &&
      (typeof behavior !== 'object' || behavior === null || typeof behavior.handle !== 'function')
    ) {
      throw new BadArgument(
        `spawn: expected a process function (ctx) => ... or a handler { handle(message, ctx) }, got ${describe(behavior)}`,
      );
    }
    const policy = options?.mailbox === undefined ? this.defaultPolicy : this.policyFor(options.mailbox);
    if (options !== undefined) checkSpawnOptions(options);
    const id = this.nextId++;
    const pid = new Pid(this.nodeName, 0, id, 0);
    const record = new ProcessContext(this, pid, policy);
    if (isBody) record.body = behavior as ProcessBody;
    else record.behavior = behavior as Handler as ProcessRecord['behavior'];
    pid.process = record;
    this.live.add(record);
    this.counters.spawned++;
    if (options?.trapExit) extraOf(record).trapping = true;
    if (options?.name !== undefined) this.registerRecord(options.name, record);
    if (parent !== undefined) this.linkRecords(parent, record);
    this.enqueue(record);
    return record;
  }

  private registerRecord(name: string, record: ProcessRecord): void {
    const holder = this.names.get(name);
    if (holder !== undefined) {
      // undo the spawn: the caller gets an error, not a half-made process
      this.live.remove(record);
      record.pid.process = undefined;
      record.state = DEAD;
      throw new AlreadyRegistered(name, holder.pid);
    }
    extraOf(record).name = name;
    this.names.set(name, record);
  }

  private policyFor(mailbox: MailboxOptions): MailboxPolicy {
    if (typeof mailbox !== 'object' || mailbox === null)
      throw new BadArgument(`spawn: mailbox must be an object, got ${describe(mailbox)}`);
    const capacity = positiveInteger(mailbox.capacity ?? this.defaultPolicy.capacity, 'mailbox.capacity');
    const overflow = mailbox.overflow ?? 'reject';
    if (!OVERFLOW_POLICIES.includes(overflow)) {
      throw new BadArgument(
        `mailbox.overflow must be one of ${OVERFLOW_POLICIES.join(', ')}, got ${describe(overflow)}`,
      );
    }
    return { capacity, overflow };
  }

  // ---------------------------------------------------------------------------------------------
  // Internal: messages

  /**
   * @internal Pids resolve by identity: the Pid object a spawn returned points at its process
   * until it exits. A pid rebuilt from text resolves through `pidOf` (a debugging aid, like
   * Erlang's list_to_pid); pids that travel between nodes will resolve through an export table.
   */
  lookup(pid: Pid): ProcessRecord | undefined {
    return pid.process as ProcessRecord | undefined;
  }

  /** The live pid printed as `text` (`<0.42.0>`), for shells and debugging: a linear scan. */
  pidOf(text: string): Pid | undefined {
    for (const record of this.live) if (record.pid.toString() === text) return record.pid;
    return undefined;
  }

  /** @internal */
  sendFrom(sender: ProcessRecord | undefined, to: Pid | string, message: unknown): void {
    let target: ProcessRecord | undefined;
    if (to instanceof Pid) {
      target = to.process as ProcessRecord | undefined;
    } else if (typeof to === 'string') {
      target = this.names.get(to);
      if (target === undefined) throw new NotRegistered(to);
    } else {
      throw new BadArgument(`send: expected a Pid or a registered name, got ${describe(to)}`);
    }
    if (message === undefined)
      throw new BadArgument(
        'send: the message is undefined (receive uses undefined for a timeout); send null or a value',
      );
    this.counters.messagesSent++;
    if (target === undefined) return; // sending to a dead process is not an error (as in Erlang)
    if (this.faults?.onSend !== undefined && !this.injectSendFault(target, message)) return;
    if (sender !== undefined) sender.reductions++;
    if (this.tracer !== undefined) this.tracer.delivered(target.pid, message, sender?.pid);
    this.deliver(target, message);
  }

  private injectSendFault(target: ProcessRecord, message: unknown): boolean {
    const decision = this.faults!.onSend!(target.pid, message);
    if (decision === 'deliver') return true;
    if (decision === 'drop') this.counters.messagesDropped++;
    if (typeof decision === 'number') {
      this.clock.setTimer(decision, () => {
        if (target.state === DEAD) return;
        try {
          this.deliver(target, message);
        } catch {
          this.counters.messagesDropped++; // the delayed message met a full mailbox
        }
      });
    }
    return false;
  }

  private deliver(target: ProcessRecord, message: unknown): void {
    if (target.waiter !== undefined && this.offerToWaiter(target, message)) return;
    if (target.mailbox.length >= target.policy.capacity && !this.makeRoom(target)) return;
    this.queueMessage(target, message);
  }

  private queueMessage(target: ProcessRecord, message: unknown): void {
    mailboxFor(target).push(message);
    if (target.state === WAITING && target.behavior !== undefined) {
      target.state = RUNNABLE;
      this.enqueue(target);
    }
  }

  /** A body blocked in receive takes a matching message directly (older ones did not match). */
  private offerToWaiter(target: ProcessRecord, message: unknown): boolean {
    const waiter = target.waiter!;
    if (waiter.done || (waiter.match !== undefined && !waiter.match(message))) return false;
    this.wake(target, waiter, message);
    return true;
  }

  /** Applies the overflow policy of a full mailbox; false means the new message is not queued. */
  private makeRoom(target: ProcessRecord): boolean {
    const policy = target.policy;
    if (policy.overflow === 'reject') throw new MailboxFull(target.pid, policy.capacity);
    this.counters.messagesDropped++;
    if (policy.overflow === 'drop-newest') return false;
    // drop-oldest: the oldest ordinary message; EXIT and DOWN signals are never dropped
    const index = target.mailbox.findIndex((message) => !isSignalMessage(message));
    if (index < 0) return true;
    target.mailbox.removeAt(index);
    return true;
  }

  /** Queues a signal-born message (EXIT, DOWN): never dropped, whatever the capacity. */
  private deliverSignalMessage(target: ProcessRecord, message: unknown): void {
    if (target.waiter !== undefined && this.offerToWaiter(target, message)) return;
    this.queueMessage(target, message);
  }

  /** A body's receive matched (or timed out): it resumes on its next turn, through the run queue. */
  private wake(target: ProcessRecord, waiter: Waiter, message: unknown): void {
    waiter.done = true;
    waiter.message = message;
    if (waiter.timer !== undefined) this.clock.cancelTimer(waiter.timer);
    target.state = RUNNABLE;
    this.enqueue(target);
  }

  // ---------------------------------------------------------------------------------------------
  // Internal: receive (process functions)

  /** @internal The oldest queued message `match` accepts, removed; undefined if none. */
  takeNow(
    record: ProcessRecord,
    match: ((message: unknown) => boolean) | undefined,
    operation: string,
  ): unknown {
    if (match !== undefined && typeof match !== 'function') {
      throw new BadArgument(`${operation}: match must be a function, got ${describe(match)}`);
    }
    if (record.behavior !== undefined) {
      throw new BadArgument(
        `${operation} is for process functions; a handler actor gets its messages through handle()`,
      );
    }
    const mailbox = record.mailbox;
    const index = match === undefined ? (mailbox.length > 0 ? 0 : -1) : mailbox.findIndex(match);
    if (index < 0) return undefined;
    record.reductions++;
    return mailbox.removeAt(index);
  }

  /** @internal */
  receiveFor(
    record: ProcessRecord,
    match: ((message: unknown) => boolean) | undefined,
    timeoutMs: number,
  ): Promise<unknown> {
    checkTimeout(timeoutMs, 'receive timeout');
    if (record.waiter !== undefined)
      throw new BadArgument(`receive: ${record.pid} is already waiting in receive`);
    const found = this.takeNow(record, match, 'receive');
    if (found !== undefined) return Promise.resolve(found);
    if (timeoutMs === 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = { match, resolve, timer: undefined, done: false, message: undefined };
      record.waiter = waiter;
      record.state = WAITING;
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = this.clock.setTimer(timeoutMs, () => {
          if (!waiter.done && record.waiter === waiter) this.wake(record, waiter, undefined);
        });
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Internal: the scheduler

  private enqueue(record: ProcessRecord): void {
    if (record.scheduled) return;
    record.scheduled = true;
    this.runQueue.push(record);
    if (!this.loopArmed) this.arm();
  }

  private arm(): void {
    this.loopArmed = true;
    // Microtasks keep latency low, but a chain of them would starve I/O: once the current
    // slice is spent, the next run waits for the event loop.
    if (!this.deterministic && performance.now() - this.sliceStart > this.timeSliceMs) {
      setImmediate(this.runFromEventLoop);
    } else {
      queueMicrotask(this.runLoop);
    }
  }

  private readonly runFromEventLoop = (): void => {
    this.sliceStart = performance.now();
    this.runLoop();
  };

  /** Runs turns until the queue is empty or the slice is spent. `loopArmed` stays true meanwhile. */
  private readonly runLoop = (): void => {
    const queue = this.runQueue;
    let turns = 0;
    try {
      while (queue.length > 0) {
        const record = queue.shift()!;
        record.scheduled = false;
        if (record.state === RUNNABLE) this.runTurn(record);
        if ((++turns & 63) === 0 && queue.length > 0 && this.sliceSpent(turns)) {
          setImmediate(this.runFromEventLoop);
          return;
        }
      }
      this.loopArmed = false;
    } catch (error) {
      // only a runtime bug gets here (user code is caught per turn): keep scheduling, then report
      this.loopArmed = false;
      if (queue.length > 0) this.arm();
      throw error;
    }
  };

  private sliceSpent(turns: number): boolean {
    if (this.deterministic) return turns >= 4096;
    return performance.now() - this.sliceStart > this.timeSliceMs;
  }

  private runTurn(record: ProcessRecord): void {
    if (record.behavior !== undefined) this.runHandler(record);
    else this.runBody(record);
  }

  private runHandler(record: ProcessRecord): void {
    record.state = RUNNING;
    const context = record;
    if (!record.started) {
      record.started = true;
      if (record.behavior!.init !== undefined && !this.runInit(record)) return;
    }
    const mailbox = record.mailbox;
    const tracer = this.tracer;
    for (let budget = this.budget; budget > 0 && mailbox.length > 0; budget--) {
      const message = mailbox.shift();
      record.reductions++;
      if (message instanceof CodeUpgrade) {
        this.applyUpgrade(record, message.upgrade);
        if (record.state === DEAD) return;
        continue;
      }
      if (this.faults?.crashBeforeHandle?.(record.pid)) {
        this.crash(record, new InjectedCrash(record.pid));
        return;
      }
      if (tracer !== undefined) tracer.handling(record.pid, message);
      let result: unknown;
      try {
        result = record.behavior!.handle(message, context);
      } catch (error) {
        this.crash(record, error);
        return;
      }
      if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
        this.suspend(record, result as Promise<unknown>);
        return;
      }
      if (record.state === DEAD) return;
    }
    this.endTurn(record);
  }

  /** Runs `init`; false when the process is now dead or suspended on it. */
  private runInit(record: ProcessRecord): boolean {
    let result: unknown;
    try {
      result = record.behavior!.init!(record);
    } catch (error) {
      this.crash(record, error);
      return false;
    }
    if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
      this.suspend(record, result as Promise<unknown>);
      return false;
    }
    return record.state !== DEAD;
  }

  private endTurn(record: ProcessRecord): void {
    if (record.mailbox.length > 0) {
      record.state = RUNNABLE;
      this.enqueue(record);
    } else {
      record.state = WAITING;
    }
  }

  /** The process waits for `promise`; if it already died, the promise is only kept from going unhandled. */
  private suspend(record: ProcessRecord, promise: Promise<unknown>): void {
    if (record.state === DEAD) {
      promise.then(undefined, () => {});
      return;
    }
    record.state = SUSPENDED;
    const extra = extraOf(record);
    const suspension = ++extra.suspension;
    promise.then(
      () => {
        if (record.state !== SUSPENDED || extra.suspension !== suspension) return;
        this.endTurn(record);
      },
      (error: unknown) => {
        if (record.state !== SUSPENDED || extra.suspension !== suspension) return;
        this.crash(record, error);
      },
    );
  }

  private runBody(record: ProcessRecord): void {
    if (record.started) {
      const waiter = record.waiter!;
      record.waiter = undefined;
      record.state = RUNNING;
      if (waiter.message !== undefined) record.reductions++;
      waiter.resolve(waiter.message);
      return;
    }
    record.started = true;
    record.state = RUNNING;
    let result: unknown;
    try {
      result = record.body!(record);
    } catch (error) {
      this.crash(record, error);
      return;
    }
    if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        () => this.terminate(record, 'normal'),
        (error: unknown) => this.crash(record, error),
      );
    } else {
      this.terminate(record, 'normal');
    }
  }

  private applyUpgrade(record: ProcessRecord, upgrade: (behavior: any) => any): void {
    let next: unknown;
    try {
      next = upgrade(record.behavior);
    } catch (error) {
      this.crash(record, error);
      return;
    }
    if (typeof next !== 'object' || next === null || typeof (next as Handler).handle !== 'function') {
      this.crash(
        record,
        new BadArgument(`upgrade of ${record.pid} returned ${describe(next)}, not a handler`),
      );
      return;
    }
    record.behavior = next as ProcessRecord['behavior'];
  }

  // ---------------------------------------------------------------------------------------------
  // Internal: exits, links, monitors

  /** A thrown value ends the process with that value as its reason (ProcessExited: already dead). */
  private crash(record: ProcessRecord, error: unknown): void {
    if (record.state === DEAD || error instanceof ProcessExited) return;
    // reported once, by the process that threw: those dying of it through links are not crashes
    this.reportCrash(record.pid, error as ExitReason);
    this.terminate(record, error as ExitReason);
  }

  /**
   * Delivers an exit signal to `target` (Erlang semantics):
   * - `kill` sent directly cannot be trapped: the target dies as `killed`;
   * - a process that traps exits gets an EXIT message instead (at the end of its mailbox);
   * - `normal` is ignored, unless the process sent it to itself;
   * - any other reason kills the target with that reason (`kill` through a link included).
   */
  /** @internal */
  signal(target: ProcessRecord, from: Pid, reason: ExitReason, viaLink: boolean): void {
    if (target.state === DEAD) return;
    if (!viaLink && reason === 'kill') this.terminate(target, 'killed');
    else if (target.extra?.trapping === true)
      this.deliverSignalMessage(target, new ExitMessage(from, reason));
    else if (reason !== 'normal') this.terminate(target, reason);
    else if (!viaLink && from === target.pid) this.terminate(target, 'normal');
  }

  /** @internal Ends a process: its links get exit signals, its monitors DOWN messages. */
  terminate(record: ProcessRecord, reason: ExitReason): void {
    if (record.state === DEAD) return;
    record.state = DEAD;
    record.exitReason = reason;
    if (record.waiter !== undefined) {
      if (record.waiter.timer !== undefined) this.clock.cancelTimer(record.waiter.timer);
      record.waiter = undefined; // the body never resumes: a killed process runs no more code
    }
    this.live.remove(record);
    record.pid.process = undefined;
    if (record.mailbox.length > 0) record.mailbox.clear();
    this.counters.exited++;
    if (record.extra !== undefined) this.releaseExtra(record, record.extra, reason);
    if (this.exitListeners.size > 0) for (const listener of this.exitListeners) listener(record.pid, reason);
    if (this.signalQueue.length > 0) this.drainSignals();
  }

  /** Name, abort signal, monitors, links and watchers of a process that just exited. */
  private releaseExtra(
    record: ProcessRecord,
    extra: NonNullable<ProcessRecord['extra']>,
    reason: ExitReason,
  ): void {
    if (extra.name !== undefined) this.names.delete(extra.name);
    if (extra.abortController !== undefined)
      extra.abortController.abort(new ProcessExited(record.pid, reason));
    if (extra.monitors !== undefined) {
      for (const [id, target] of extra.monitors) target.extra?.watchers?.delete(id);
    }
    // Signals go through a queue, so a long chain of links dies without deep recursion.
    if (extra.links !== undefined) {
      for (const linked of extra.links) {
        linked.extra!.links!.delete(record);
        this.signalQueue.push(linked, record.pid, reason);
      }
    }
    if (extra.watchers !== undefined) {
      for (const observer of extra.watchers.values()) this.signalQueue.push(observer, record.pid, reason);
    }
  }

  private reportCrash(pid: Pid, reason: ExitReason): void {
    this.counters.crashes++;
    this.onCrash(pid, reason);
  }

  private drainSignals(): void {
    if (this.drainingSignals) return;
    this.drainingSignals = true;
    const queue = this.signalQueue;
    try {
      for (let index = 0; index < queue.length; index += 3) {
        const target = queue[index];
        const from = queue[index + 1] as Pid;
        const reason = queue[index + 2] as ExitReason;
        if (target instanceof ProcessRecord) this.signal(target, from, reason, true);
        else (target as ExitObserver).exited(from, reason);
      }
    } finally {
      queue.length = 0;
      this.drainingSignals = false;
    }
  }

  /** @internal */
  linkRecords(a: ProcessRecord, b: ProcessRecord): void {
    if (a === b) return;
    (extraOf(a).links ??= new Set()).add(b);
    (extraOf(b).links ??= new Set()).add(a);
  }

  /** @internal */
  link(record: ProcessRecord, pid: Pid): void {
    const target = this.lookup(checkPid(pid, 'link'));
    if (target !== undefined) {
      this.linkRecords(record, target);
    } else if (record.extra?.trapping === true) {
      // Erlang: a trapping caller gets {'EXIT', Pid, noproc}; otherwise link raises noproc.
      this.deliverSignalMessage(record, new ExitMessage(pid, 'noproc'));
    } else {
      throw new NoProc(pid);
    }
  }

  /** @internal */
  unlink(record: ProcessRecord, pid: Pid): void {
    const target = this.lookup(checkPid(pid, 'unlink'));
    if (target === undefined) return;
    record.extra?.links?.delete(target);
    target.extra?.links?.delete(record);
  }

  /** @internal */
  monitor(record: ProcessRecord, target: Pid | string): Ref {
    const ref = new Ref(this.nodeName, this.nextRefId++);
    const pid =
      typeof target === 'string' ? this.names.get(checkName(target))?.pid : checkPid(target, 'monitor');
    const watched = pid === undefined ? undefined : this.lookup(pid);
    if (watched === undefined) {
      // monitoring a dead or unknown process: DOWN noproc at once
      this.deliverSignalMessage(record, new DownMessage(ref, pid ?? this.rootPid, 'noproc'));
      return ref;
    }
    const monitor = new Monitor(this, ref, record);
    (extraOf(watched).watchers ??= new Map()).set(ref.id, monitor);
    (extraOf(record).monitors ??= new Map()).set(ref.id, watched);
    return ref;
  }

  /** @internal */
  demonitor(record: ProcessRecord, ref: Ref, flush: boolean): boolean {
    if (!(ref instanceof Ref))
      throw new BadArgument(`demonitor: expected a monitor Ref, got ${describe(ref)}`);
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

  /** @internal Deliver a DOWN from a monitor. */
  deliverDown(watcher: ProcessRecord, monitor: Monitor, pid: Pid, reason: ExitReason): void {
    if (watcher.state === DEAD) return;
    watcher.extra?.monitors?.delete(monitor.ref.id);
    this.deliverSignalMessage(watcher, new DownMessage(monitor.ref, pid, reason));
  }

  /** @internal Registers an internal exit observer on a live process; returns its id. */
  watch(target: ProcessRecord, observer: ExitObserver): number {
    const id = this.nextRefId++;
    (extraOf(target).watchers ??= new Map()).set(id, observer);
    return id;
  }

  /** @internal */
  unwatch(target: ProcessRecord, id: number): void {
    target.extra?.watchers?.delete(id);
  }

  /** @internal */
  callFrom<R>(
    caller: ProcessRecord | undefined,
    server: Pid | string,
    request: unknown,
    timeoutMs: number,
  ): Promise<R> {
    checkTimeout(timeoutMs, 'call timeout');
    let target: ProcessRecord | undefined;
    if (typeof server === 'string') target = this.names.get(checkName(server));
    else target = this.lookup(checkPid(server, 'call'));
    if (target === undefined) return Promise.reject(new CallExit(server, 'noproc'));
    return new Promise<R>((resolve, reject) => {
      const pending = new PendingCall(
        caller?.pid,
        server,
        target,
        resolve as (value: unknown) => void,
        reject,
      );
      pending.watchId = this.watch(target, pending);
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        pending.timer = this.clock.setTimer(timeoutMs, () =>
          pending.settle(this, undefined, new CallTimeout(server, timeoutMs)),
        );
      }
      try {
        const envelope = new CallRequest(request, pending);
        if (this.tracer !== undefined) this.tracer.delivered(target.pid, envelope, caller?.pid);
        if (this.faults?.onSend === undefined || this.injectSendFault(target, envelope))
          this.deliver(target, envelope);
      } catch (error) {
        pending.settle(this, undefined, error);
      }
    });
  }
}

/** A code swap travelling through the mailbox, so it takes effect in message order. */
class CodeUpgrade {
  constructor(readonly upgrade: (behavior: any) => any) {}
}

/** The crash reason of an injected fault. */
export class InjectedCrash extends Error {
  constructor(readonly pid: Pid) {
    super(`injected crash of ${pid}`);
    this.name = 'InjectedCrash';
  }
}

/** Live process records in spawn order: O(1) add and remove through links in the records. */
class ProcessList {
  private head: ProcessRecord | undefined = undefined;
  private tail: ProcessRecord | undefined = undefined;
  size = 0;

  add(record: ProcessRecord): void {
    record.previous = this.tail;
    record.next = undefined;
    if (this.tail === undefined) this.head = record;
    else this.tail.next = record;
    this.tail = record;
    this.size++;
  }

  remove(record: ProcessRecord): void {
    if (record.previous === undefined && this.head !== record) return; // not in the list
    if (record.previous === undefined) this.head = record.next;
    else record.previous.next = record.next;
    if (record.next === undefined) this.tail = record.previous;
    else record.next.previous = record.previous;
    record.previous = undefined;
    record.next = undefined;
    this.size--;
  }

  *[Symbol.iterator](): IterableIterator<ProcessRecord> {
    for (let record = this.head; record !== undefined; record = record.next) yield record;
  }
}

class Monitor implements ExitObserver {
  constructor(
    private readonly system: ActorSystem,
    readonly ref: Ref,
    readonly watcher: ProcessRecord,
  ) {}

  exited(pid: Pid, reason: ExitReason): void {
    this.system.deliverDown(this.watcher, this, pid, reason);
  }
}

/** A call in flight: the server's death, the reply or the timeout settles it, whichever is first. */
class PendingCall implements CallFrom, ExitObserver {
  settled = false;
  watchId = 0;
  timer: TimerHandle | undefined = undefined;

  constructor(
    readonly caller: Pid | undefined,
    private readonly server: Pid | string,
    private readonly target: ProcessRecord,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  exited(_pid: Pid, reason: ExitReason): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) this.target.system.clock.cancelTimer(this.timer);
    this.reject(new CallExit(this.server, reason));
  }

  settle(system: ActorSystem, value: unknown, error: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.timer !== undefined) system.clock.cancelTimer(this.timer);
    system.unwatch(this.target, this.watchId);
    if (error !== undefined) this.reject(error);
    else this.resolve(value);
    return true;
  }
}

/**
 * A process record is also the context handed to its code (one object per process, not two):
 * every method acts as that process.
 */
class ProcessContext extends ProcessRecord implements Context {
  declare readonly system: ActorSystem;

  get self(): Pid {
    return this.pid;
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

  spawn<T = any>(behavior: Behavior<T>, options?: SpawnOptions): Pid {
    this.alive();
    return this.system.spawnProcess(behavior, options).pid;
  }

  spawnLink<T = any>(behavior: Behavior<T>, options?: SpawnOptions): Pid {
    return this.system.spawnProcess(behavior, options, this.alive()).pid;
  }

  spawnMonitor<T = any>(behavior: Behavior<T>, options?: SpawnOptions): [Pid, Ref] {
    const record = this.alive();
    const pid = this.system.spawnProcess(behavior, options).pid;
    return [pid, this.system.monitor(record, pid)];
  }

  send(to: Pid | string, message: unknown): void {
    this.system.sendFrom(this.alive(), to, message);
  }

  tryReceive<T>(match?: (message: unknown) => boolean): T | undefined {
    return this.system.takeNow(this.alive(), match, 'tryReceive') as T | undefined;
  }

  receive<T>(
    match?: (message: unknown) => boolean,
    timeoutMs = Number.POSITIVE_INFINITY,
  ): Promise<T | undefined> {
    return this.system.receiveFor(this.alive(), match, timeoutMs) as Promise<T | undefined>;
  }

  exit(...args: [reason: ExitReason] | [pid: Pid, reason: ExitReason]): never {
    const record = this.alive();
    if (args.length === 2) {
      const target = this.system.lookup(checkPid(args[0], 'exit'));
      if (target !== undefined) this.system.signal(target, record.pid, args[1], false);
      return undefined as never;
    }
    this.system.terminate(record, args[0]);
    throw new ProcessExited(record.pid, args[0]);
  }

  stop(reason: ExitReason = 'normal'): void {
    this.system.terminate(this.alive(), reason);
  }

  link(pid: Pid): void {
    this.system.link(this.alive(), pid);
  }

  unlink(pid: Pid): void {
    this.system.unlink(this.alive(), pid);
  }

  monitor(pid: Pid | string): Ref {
    return this.system.monitor(this.alive(), pid);
  }

  demonitor(ref: Ref, options?: { flush?: boolean }): boolean {
    return this.system.demonitor(this.alive(), ref, options?.flush === true);
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
    return this.system.callFrom(this.alive(), server, request, timeoutMs);
  }
}

function isSignalMessage(message: unknown): boolean {
  return message instanceof ExitMessage || message instanceof DownMessage || message instanceof CodeUpgrade;
}

function checkPid(pid: unknown, operation: string): Pid {
  if (!(pid instanceof Pid)) throw new BadArgument(`${operation}: expected a Pid, got ${describe(pid)}`);
  return pid;
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new BadArgument(`expected a registered name (a non-empty string), got ${describe(name)}`);
  }
  return name;
}

function checkTimeout(value: unknown, what: string): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new BadArgument(
      `${what} must be a number of milliseconds >= 0 (or Infinity), got ${describe(value)}`,
    );
  }
}

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new BadArgument(`${what} must be a positive integer, got ${describe(value)}`);
  return value;
}

function checkSpawnOptions(options: SpawnOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new BadArgument(`spawn: options must be an object, got ${describe(options)}`);
  if (options.name !== undefined) checkName(options.name);
  if (options.trapExit !== undefined && typeof options.trapExit !== 'boolean') {
    throw new BadArgument(`trapExit must be a boolean, got ${describe(options.trapExit)}`);
  }
}

/** @internal A short description of a bad value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object')
    return value instanceof Pid ? `pid ${value}` : `an object (${Object.prototype.toString.call(value)})`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

function defaultCrashReport(pid: Pid, reason: ExitReason): void {
  const detail = reason instanceof Error && reason.stack ? reason.stack : formatReason(reason);
  process.stderr.write(`zbmd: process ${pid} crashed: ${detail}\n`);
}
