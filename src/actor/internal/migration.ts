import { CallRequest } from '../Call.js';
import { ExitMessage, type ExitReason } from '../ExitReason.js';
import { BadArgument, crossThreadClasses, NoProc, NotCloneable } from '../errors.js';
import type { Pid } from '../Pid.js';
import { isCallHandle } from './calls.js';
import { describe } from './checks.js';
import { ControlMessage, deliverSignalMessage, sendFrom } from './delivery.js';
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
    const code = record.extra?.code;
    const behavior = record.behavior;
    if (code === undefined || behavior === undefined || behavior instanceof Forwarder) {
      this.done(undefined, notMovable(record.pid));
      return;
    }
    const state: Record<string, unknown> = { ...behavior };
    let pid: Pid;
    try {
      pid = runtime.remote!.spawn(
        this.thread,
        {
          module: MIGRATION_MODULE,
          export: 'restore',
          args: [code.module, code.export, state],
          trapExit: record.extra?.trapping === true,
          name: undefined,
          mailbox: { capacity: record.policy.capacity, overflow: record.policy.overflow },
          link: 0,
        },
        record,
      );
    } catch (error) {
      // nothing was sent: the actor goes on where it is
      this.done(undefined, error instanceof NotCloneable ? stateError(error) : error);
      return;
    }
    record.behavior = new Forwarder(pid);
    extraOf(record).trapping = true;
    this.done(pid, undefined);
  }
}

function stateError(error: NotCloneable): NotCloneable {
  return new NotCloneable(error.path.replace(/^args\[2\]/, 'state'), error.detail);
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
  if (record.behavior instanceof Forwarder)
    return Promise.reject(
      new BadArgument(`migrate: ${pid} has already moved to ${record.behavior.to}; migrate that pid`),
    );
  // (whether it was made from a class export is known once its module loaded: checked at the move)
  if (record.behavior === undefined) return Promise.reject(notMovable(pid));
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

function notMovable(pid: Pid): BadArgument {
  return new BadArgument(
    `migrate: ${pid} was not spawned from a class export by module URL; only such handler actors can move`,
  );
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
