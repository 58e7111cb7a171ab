import type {
  ActorSystem,
  ActorSystemOptions,
  ActorTracer,
  Behavior,
  CodeRef,
  Handler,
  MailboxOptions,
  ProcessBody,
  RuntimeFaults,
  SpawnOptions,
  ThreadSpawnOptions,
} from '../ActorSystem.js';
import { type Clock, RealClock, SimulatedClock } from '../Clock.js';
import { type ExitReason, formatReason } from '../ExitReason.js';
import { BadArgument } from '../errors.js';
import {
  DEFAULT_MAILBOX_CAPACITY,
  DEFAULT_REDUCTION_BUDGET,
  DEFAULT_TIME_SLICE_MS,
  type OverflowPolicy,
} from '../Limits.js';
import { Pid } from '../Pid.js';
import { checkName, describe, positiveInteger } from './checks.js';
import { explicitStateOf } from './movable.js';
import { DEAD, extraOf, type MailboxPolicy, type MovableCode, type ProcessRecord } from './Process.js';
import { ProcessContext } from './ProcessContext.js';
import { Registry } from './Registry.js';
import type { Remote } from './Remote.js';
import { Scheduler } from './Scheduler.js';
import { linkRecords } from './signals.js';
import type { NodeRouter } from './Transport.js';

const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['reject', 'drop-oldest', 'drop-newest'];

/**
 * The state of one node's runtime, shared by the modules beside this one: the scheduler
 * (Scheduler.ts), message delivery (delivery.ts), exit signals, links and monitors (signals.ts),
 * calls (calls.ts) and the registry (Registry.ts). `ActorSystem` is the public face over it.
 */
/** The runtime of each system (the cluster layer attaches a `NodeRouter` through it). */
export const runtimes = new WeakMap<object, Runtime>();

export class Runtime {
  readonly nodeName: string;
  readonly clock: Clock;
  readonly deterministic: boolean;
  readonly rootPid: Pid;
  readonly budget: number;
  readonly timeSliceMs: number;
  readonly defaultPolicy: MailboxPolicy;
  onCrash: (pid: Pid, reason: ExitReason) => void;
  readonly faults: RuntimeFaults | undefined;
  /** Live processes in spawn order, as an intrusive list (no hashing on spawn and exit). */
  readonly live = new ProcessList();
  readonly registry = new Registry();
  readonly scheduler: Scheduler;
  /** Pending exit signals as (target, from, reason) triples: a long chain of links dies without deep recursion. */
  readonly signalQueue: unknown[] = [];
  drainingSignals = false;
  readonly exitListeners = new Set<(pid: Pid, reason: ExitReason) => void>();
  readonly counters = { spawned: 0, exited: 0, messagesSent: 0, messagesDropped: 0, crashes: 0 };
  /** The observability hook (`ActorSystem.tracer`); undefined when nothing traces this system. */
  tracer: ActorTracer | undefined = undefined;
  private nextId = 1;
  private nextRefIdValue = 1;
  /** This runtime's scheduler thread (0 unless it runs in a worker of a multi-thread system). */
  thread = 0;
  /** Reaches processes on the other threads; undefined with one thread. */
  remote: Remote | undefined = undefined;
  /** Reaches processes on other nodes (a cluster attached the system); undefined otherwise. */
  nodes: NodeRouter | undefined = undefined;
  /** Modules loaded for spawns by module URL, by URL. */
  private readonly modules = new Map<string, Record<string, unknown>>();
  private readonly loading = new Map<string, Promise<Record<string, unknown>>>();

  constructor(
    readonly system: ActorSystem,
    options: ActorSystemOptions,
  ) {
    runtimes.set(system, this);
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
    this.scheduler = new Scheduler(this);
  }

  nextRefId(): number {
    return this.nextRefIdValue++;
  }

  /**
   * Pids resolve by identity: the Pid object a spawn returned points at its process until it
   * exits. A pid rebuilt from text resolves through `pidOf` (a debugging aid, like Erlang's
   * list_to_pid).
   */
  lookup(pid: Pid): ProcessRecord | undefined {
    return pid.process as ProcessRecord | undefined;
  }

  spawnProcess(
    behavior: Behavior,
    options: SpawnOptions | undefined,
    parent?: ProcessRecord,
    presetId?: number,
  ): ProcessRecord {
    const isBody = typeof behavior === 'function';
    if (
      !isBody &&
      (typeof behavior !== 'object' || behavior === null || typeof behavior.handle !== 'function')
    ) {
      throw new BadArgument(
        `spawn: expected a process function (ctx) => ... or a handler { handle(message, ctx) }, got ${describe(behavior)}`,
      );
    }
    const policy = options?.mailbox === undefined ? undefined : this.policyFor(options.mailbox);
    if (options !== undefined) checkSpawnOptions(options);
    const remote = this.remote;
    let id: number;
    if (remote === undefined) id = this.nextId++;
    else if (presetId !== undefined)
      id = presetId; // reserved (and counted) by the spawning thread
    else {
      id = remote.allocateId(this.thread);
      Atomics.add(remote.counters.loads, this.thread, 1);
      remote.created(id);
    }
    const record = new ProcessContext(this, this.nodeName, id, this.thread);
    if (policy !== undefined) extraOf(record).policy = policy;
    if (isBody) record.body = behavior as ProcessBody;
    else record.behavior = behavior as Handler as ProcessRecord['behavior'];
    record.process = record;
    this.live.add(record);
    this.counters.spawned++;
    if (options?.trapExit) extraOf(record).trapping = true;
    if (options?.name !== undefined)
      this.registerAtSpawn(options.name, record, remote !== undefined && presetId === undefined);
    if (parent !== undefined) linkRecords(parent, record);
    this.scheduler.enqueue(record);
    return record;
  }

  /**
   * Spawns the behaviour that export `exportName` of module `url` makes from `args` (Erlang's
   * spawn(M, F, A)): a class is constructed, a function called; the result must be a handler.
   * The process exists at once; if the module is not loaded yet, its messages wait while it loads.
   */
  spawnCode(
    url: string,
    exportName: string,
    args: readonly unknown[],
    options: SpawnOptions | undefined,
    parent: ProcessRecord | undefined,
    presetId?: number,
  ): ProcessRecord {
    const loaded = this.modules.get(url);
    if (loaded !== undefined) {
      const behavior = instantiate(loaded, url, exportName, args);
      const record = this.spawnProcess(behavior, options, parent, presetId);
      const code = movableCode(loaded, url, exportName, args, behavior);
      if (code !== undefined) extraOf(record).code = code;
      return record;
    }
    const placeholder: Handler = {
      init: async (context) => {
        const module = await this.load(url);
        const behavior = instantiate(module, url, exportName, args);
        if (typeof behavior === 'function')
          throw new BadArgument(
            `spawn: export '${exportName}' of ${url} made a process function; spawn by module URL needs a handler`,
          );
        (context as unknown as ProcessRecord).behavior = behavior as ProcessRecord['behavior'];
        extraOf(context as unknown as ProcessRecord).code = movableCode(
          module,
          url,
          exportName,
          args,
          behavior,
        );
        if (behavior.init !== undefined) await behavior.init(context);
      },
      handle: () => {
        throw new Error(
          'zbmd: a message reached a module-spawned process before its code loaded (a runtime bug)',
        );
      },
    };
    const record = this.spawnProcess(placeholder, options, parent, presetId);
    // whether it can move (migrate) is known once its module has loaded (movableCode)
    extraOf(record).code = { module: url, export: exportName };
    return record;
  }

  private load(url: string): Promise<Record<string, unknown>> {
    let pending = this.loading.get(url);
    if (pending === undefined) {
      pending = import(url).then((module: Record<string, unknown>) => {
        this.modules.set(url, module);
        return module;
      });
      pending.catch(() => this.loading.delete(url));
      this.loading.set(url, pending);
    }
    return pending;
  }

  /** Spawns by module URL on the thread `options.thread` names (this one by default). */
  spawnByCode(
    code: CodeRef,
    args: readonly unknown[] | undefined,
    options: ThreadSpawnOptions | undefined,
    parent: ProcessRecord | undefined,
  ): Pid {
    if (typeof code.export !== 'string' || code.export.length === 0)
      throw new BadArgument(
        `spawn: code.export must name an export (a non-empty string), got ${describe(code.export)}`,
      );
    const url = code.module instanceof URL ? code.module.href : code.module;
    if (typeof url !== 'string' || url.length === 0)
      throw new BadArgument(
        `spawn: code.module must be a module URL (import.meta.url), got ${describe(code.module)}`,
      );
    const list = args ?? [];
    if (!Array.isArray(list)) throw new BadArgument(`spawn: args must be an array, got ${describe(args)}`);
    const thread = this.placement(options?.thread);
    if (thread === this.thread) return this.spawnCode(url, code.export, list, options, parent).pid;
    const spec = {
      module: url,
      export: code.export,
      args: list,
      trapExit: options?.trapExit === true,
      name: options?.name,
      mailbox: options?.mailbox,
      link: 0,
    };
    return this.remote!.spawn(thread, spec, parent);
  }

  /** The thread a spawn goes to: this one, a given one, or the least loaded (`'any'`). */
  private placement(thread: number | 'any' | undefined): number {
    if (thread === undefined) return this.thread;
    const threads = this.remote?.threads ?? 1;
    if (thread === 'any') return this.remote?.leastLoaded() ?? 0;
    if (!Number.isInteger(thread) || thread < 0 || thread >= threads)
      throw new BadArgument(
        `spawn: thread must be 'any' or an integer in [0, ${threads - 1}], got ${describe(thread)}`,
      );
    return thread;
  }

  /** `counted`: this spawn added itself to this thread's load (a spawn asked for by another thread was counted there, and is uncounted by Remote on failure). */
  private registerAtSpawn(name: string, record: ProcessRecord, counted: boolean): void {
    try {
      this.registry.add(name, record); // (with several threads: one atomic claim, node-wide)
    } catch (error) {
      // undo the spawn: the caller gets an error, not a half-made process
      this.live.remove(record);
      record.pid.process = undefined;
      record.state = DEAD;
      // the spawn counted toward this thread's load (placement of 'any'): uncount it
      if (counted) Atomics.sub(this.remote!.counters.loads, this.thread, 1);
      throw error;
    }
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

  reportCrash(pid: Pid, reason: ExitReason): void {
    this.counters.crashes++;
    this.onCrash(pid, reason);
  }
}

/** Live process records in spawn order: O(1) add and remove through links in the records. */
export class ProcessList {
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

/**
 * What `migrate` re-makes a process from: a class export, or a function export whose behaviour
 * carries its state explicitly (then with the args, to call it again on the target).
 */
function movableCode(
  module: Record<string, unknown>,
  url: string,
  exportName: string,
  args: readonly unknown[],
  behavior: Behavior,
): MovableCode | undefined {
  if (isClass(module[exportName])) return { module: url, export: exportName };
  if (explicitStateOf(behavior) !== undefined) return { module: url, export: exportName, args };
  return undefined;
}

/** A class export makes handler instances (its prototype has `handle`). */
function isClass(value: unknown): boolean {
  return (
    typeof value === 'function' &&
    typeof (value as { prototype?: { handle?: unknown } }).prototype?.handle === 'function'
  );
}

function instantiate(
  module: Record<string, unknown>,
  url: string,
  exportName: string,
  args: readonly unknown[],
): Behavior {
  const value = module[exportName];
  if (value === undefined) throw new BadArgument(`spawn: module ${url} has no export '${exportName}'`);
  let behavior: unknown = value;
  if (typeof value === 'function') {
    const prototype = (value as { prototype?: { handle?: unknown } }).prototype;
    behavior =
      prototype !== undefined && typeof prototype.handle === 'function'
        ? new (value as new (...args: unknown[]) => unknown)(...args)
        : (value as (...args: unknown[]) => unknown)(...args);
  } else if (args.length > 0) {
    throw new BadArgument(
      `spawn: export '${exportName}' of ${url} is not a function or class, so it takes no args`,
    );
  }
  if (typeof behavior === 'function') return behavior as Behavior;
  if (typeof behavior !== 'object' || behavior === null || typeof (behavior as Handler).handle !== 'function')
    throw new BadArgument(
      `spawn: export '${exportName}' of ${url} did not make a handler { handle(message, ctx) } (got ${describe(behavior)})`,
    );
  return behavior as Behavior;
}

function checkSpawnOptions(options: SpawnOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new BadArgument(`spawn: options must be an object, got ${describe(options)}`);
  if (options.name !== undefined) checkName(options.name);
  if (options.trapExit !== undefined && typeof options.trapExit !== 'boolean') {
    throw new BadArgument(`trapExit must be a boolean, got ${describe(options.trapExit)}`);
  }
}

function defaultCrashReport(pid: Pid, reason: ExitReason): void {
  const detail = reason instanceof Error && reason.stack ? reason.stack : formatReason(reason);
  process.stderr.write(`zbmd: process ${pid} crashed: ${detail}\n`);
}
