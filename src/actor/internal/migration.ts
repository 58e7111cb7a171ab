import { CallRequest } from '../Call.js';
import { ExitMessage, type ExitReason } from '../ExitReason.js';
import { BadArgument, crossThreadClasses, NoProc, NotCloneable, NotMovable } from '../errors.js';
import type { Pid } from '../Pid.js';
import { isCallHandle } from './calls.js';
import { describe } from './checks.js';
import { ControlMessage, deliverSignalMessage, sendFrom } from './delivery.js';
import { explicitStateOf, hiddenStateOf } from './movable.js';
import { DEAD, type ExitObserver, extraOf, type ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';
import { signal, terminate, unwatch, watch } from './signals.js';

/**
 * Moving a running handler actor to another scheduler thread (`ActorSystem.migrate`).
 *
 * The move is a control message queued behind the messages already in the mailbox, so it
 * happens between two messages, never inside a handler. At that point the behaviour's own
 * enumerable fields (its state) are checked and copied like a message (a field that cannot cross
 * threads refuses the move with `NotCloneable`, and the actor goes on where it is), a process is
 * spawned on the target thread from the same class export with that state (its constructor and
 * `init` do not run again), and the old process becomes a forwarder linked to the new one:
 *
 * - the old pid keeps working: every message, call and cast to it is passed on to the new
 *   process in the order it arrived, so nothing is lost or reordered per sender; holders need
 *   not learn the new pid (migrate returns it; messages sent to it directly may overtake ones
 *   still passing through the old pid);
 * - links and monitors stay on the old pid: when the new process exits, the forwarder exits with
 *   the same reason, so linked and monitoring processes see the old pid exit as before; an exit
 *   signal to the old pid reaches the new process (trapped there if it traps exits, fatal if
 *   not; `kill` kills both); DOWN and EXIT messages for monitors and links the actor made before
 *   the move are passed on like any message.
 */

/** A control message that acts on the process when the scheduler reaches it in the mailbox. */
export class Migration extends ControlMessage {
  constructor(
    readonly thread: number,
    readonly done: (pid: Pid | undefined, error: unknown) => void,
  ) {
    super();
  }

  override apply(runtime: Runtime, record: ProcessRecord): void {
    const refused = refusal(record);
    if (refused !== undefined) {
      this.done(undefined, refused);
      return;
    }
    const code = record.extra!.code!;
    const explicit = code.args === undefined ? undefined : explicitStateOf(record.behavior);
    // a class instance: its fields; a factory's behaviour: the args to make it again, and its state
    const args =
      explicit === undefined
        ? [code.module, code.export, { ...record.behavior }]
        : [code.module, code.export, code.args, explicit.checkpoint()];
    let pid: Pid;
    try {
      pid = runtime.remote!.spawn(
        this.thread,
        {
          module: MIGRATION_MODULE,
          export: explicit === undefined ? 'restore' : 'restoreExplicit',
          args,
          trapExit: record.extra?.trapping === true,
          name: undefined,
          mailbox: { ...(record.extra?.policy ?? runtime.defaultPolicy) },
          link: 0,
        },
        record,
      );
    } catch (error) {
      // nothing was sent: the actor goes on where it is
      this.done(undefined, error instanceof NotCloneable ? stateError(error, explicit !== undefined) : error);
      return;
    }
    record.behavior = new Forwarder(pid);
    extraOf(record).trapping = true;
    this.done(pid, undefined);
  }
}

/** Why the process of `record` cannot move now, as a NotMovable; undefined if it can. */
function refusal(record: ProcessRecord): NotMovable | undefined {
  const behavior = record.behavior;
  const pid = record.pid;
  if (behavior === undefined) return new NotMovable(pid, 'process-function', PROCESS_FUNCTION_ADVICE);
  if (behavior instanceof Forwarder)
    return new NotMovable(
      pid,
      'moved',
      `it has moved to ${behavior.to} already (this pid forwards there): migrate ${behavior.to}`,
    );
  const code = record.extra?.code;
  if (code === undefined) return new NotMovable(pid, 'closure-handler', CLOSURE_ADVICE);
  if (code.args !== undefined) return undefined; // a factory's behaviour with explicit state
  const hidden = hiddenStateOf(behavior);
  if (hidden?.kind === 'private-fields')
    return new NotMovable(
      pid,
      'private-fields',
      `${hidden.detail}, which an instance made on the target without its constructor would not have: make them ordinary fields, or write it as a GenServer spawned from a genServerHandler factory (its state is explicit)`,
    );
  if (hidden !== undefined)
    return new NotMovable(
      pid,
      'hidden-fields',
      `${hidden.detail}, which would be left behind: make them enumerable fields`,
    );
  return undefined;
}

const PROCESS_FUNCTION_ADVICE =
  'a process function keeps its state in a suspended async function, which cannot be copied: write it as a handler spawned by module URL (a class export, or a function export that returns genServerHandler(...)), or start a fresh process on that thread';

const CLOSURE_ADVICE =
  'only a behaviour spawned by module URL can be made again on another thread: a class export (its fields are its state), or a function export that returns genServerHandler(Behaviour, args) (the server state is carried); a behaviour object made here, or a factory whose closures hold the state, cannot move';

/** Names the part of the process that could not cross: its state (fields, or a server's state) or its spawn args. */
function stateError(error: NotCloneable, explicit: boolean): NotCloneable {
  const path = explicit
    ? error.path
        .replace(/^args\[3\]\.state/, 'state')
        .replace(/^args\[3\]/, 'state')
        .replace(/^args\[2\]/, 'spawn args')
    : error.path.replace(/^args\[2\]/, 'state');
  return new NotCloneable(path, error.detail);
}

/** An exit signal that reached the old pid of a moved process, passed on to the new one. */
export class ForwardedSignal extends ControlMessage {
  constructor(
    readonly from: Pid,
    readonly reason: ExitReason,
  ) {
    super();
  }

  override apply(runtime: Runtime, record: ProcessRecord): void {
    signal(runtime, record, this.from, this.reason, true);
  }
}

/** What the old process of a moved actor becomes: passes everything on to the new one. */
export class Forwarder {
  constructor(readonly to: Pid) {}

  handle(message: unknown, context: unknown): void {
    const record = context as ProcessRecord;
    const runtime = record.runtime as Runtime;
    if (message instanceof ExitMessage) {
      if (message.from.equals(this.to)) terminate(runtime, record, message.reason);
      else sendFrom(runtime, record, this.to, new ForwardedSignal(message.from, message.reason));
      return;
    }
    if (message instanceof CallRequest && isCallHandle(message.from)) {
      const from = message.from;
      // a failure needs nothing here: the new process's exit ends this one, which fails the call
      runtime.remote!.call(record, this.to, message.request, Number.POSITIVE_INFINITY).then(
        (value) => from.settle(value, undefined),
        () => {},
      );
      return;
    }
    try {
      sendFrom(runtime, record, this.to, message);
    } catch (error) {
      if (!(error instanceof NotCloneable)) throw error;
      runtime.counters.messagesDropped++; // a message only this thread could hold
    }
  }
}

/** The export a moved actor is spawned from on its new thread (args: module, export, state). */
export function restore(module: string, exportName: string, state: Record<string, unknown>) {
  return {
    init: async (context: unknown): Promise<void> => {
      const loaded = (await import(module)) as Record<string, unknown>;
      const Class = loaded[exportName] as { prototype: object };
      const behavior = Object.assign(Object.create(Class.prototype), state);
      const record = context as ProcessRecord;
      record.behavior = behavior;
      extraOf(record).code = { module, export: exportName };
    },
    handle: (): void => {
      throw new Error('zbmd: a moved process got a message before its state was restored (a runtime bug)');
    },
  };
}

/**
 * The export a moved server is spawned from on its new thread (args: module, export, the
 * factory's spawn args, the checkpoint): the factory makes the behaviour again (it must only make
 * it: no side effects), which takes over the state; its `init` does not run again.
 */
export function restoreExplicit(module: string, exportName: string, args: unknown[], saved: unknown) {
  return {
    init: async (context: unknown): Promise<void> => {
      const loaded = (await import(module)) as Record<string, unknown>;
      const behavior = (loaded[exportName] as (...factoryArgs: unknown[]) => unknown)(...args);
      const explicit = explicitStateOf(behavior);
      if (explicit === undefined)
        throw new Error(
          `zbmd: export '${exportName}' of ${module} made a behaviour without explicit state on the target`,
        );
      explicit.restore(saved);
      const record = context as ProcessRecord;
      record.behavior = behavior as ProcessRecord['behavior'];
      extraOf(record).code = { module, export: exportName, args };
    },
    handle: (): void => {
      throw new Error('zbmd: a moved process got a message before its state was restored (a runtime bug)');
    },
  };
}

const MIGRATION_MODULE = import.meta.url;

/** Starts moving `pid` (a process of this thread) to `thread`; resolves with its new pid. */
export function migrateLocal(runtime: Runtime, pid: Pid, thread: number): Promise<Pid> {
  const remote = runtime.remote;
  if (remote === undefined)
    return Promise.reject(new BadArgument('migrate: this system has one thread (pass threads: n > 1)'));
  if (!Number.isInteger(thread) || thread < 0 || thread >= remote.threads)
    return Promise.reject(
      new BadArgument(
        `migrate: thread must be an integer in [0, ${remote.threads - 1}], got ${describe(thread)}`,
      ),
    );
  const record = runtime.lookup(pid);
  if (record === undefined || record.state === DEAD) return Promise.reject(new NoProc(pid));
  if (thread === runtime.thread) return Promise.resolve(pid);
  // (whether it was made from a movable export is known once its module loaded: checked at the move)
  const refused =
    record.behavior === undefined || record.behavior instanceof Forwarder ? refusal(record) : undefined;
  if (refused !== undefined) return Promise.reject(refused);
  return new Promise<Pid>((resolve, reject) => {
    let watchId = 0;
    const observer: ExitObserver = { exited: (_pid, reason) => reject(new NoProcDuringMove(pid, reason)) };
    watchId = watch(runtime, record, observer);
    deliverSignalMessage(
      runtime,
      record,
      new Migration(thread, (moved, error) => {
        unwatch(record, watchId);
        if (moved !== undefined) resolve(moved);
        else reject(error);
      }),
    );
  });
}

/** The process exited before its move happened. */
export class NoProcDuringMove extends NoProc {
  constructor(
    pid: Pid,
    readonly reason: ExitReason,
  ) {
    super(pid);
    this.message = `process ${pid} exited before it could move (noproc)`;
  }
}

crossThreadClasses('actor', [NoProcDuringMove]);
