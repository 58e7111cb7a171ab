import { guardOf, TaggedError } from '../internal/errors.js';
import type { ExitReason } from './ExitReason.js';
import { formatReason } from './ExitReason.js';
import { crossThreadClasses } from './internal/classCatalog.js';
import type { Pid } from './Pid.js';

export type { CrossThreadClass } from './internal/classCatalog.js';
/**
 * Lists classes whose instances cross scheduler threads as themselves: a listed instance sent to
 * another thread (in a message, a call's reply, an exit reason) arrives as an instance of its
 * class with its own enumerable fields (each copied like a message; an Error keeps its message
 * and stack), so `instanceof` and the `isX` guards still match. Unlisted errors arrive as
 * structured clone leaves them (a plain `Error` with its message); other unlisted class
 * instances are refused at the sender (`NotCloneable`). List only classes whose state is their
 * own enumerable fields (no `#private` fields, no closures): the constructor does not run again.
 * Each key `layer.ClassName` must name one class. Call it at the top level of the module that
 * declares the classes (every thread that loads the module then knows them).
 */
export { crossThreadClasses };

/**
 * Errors of the actor layer. Each is a tagged class with typed fields and an `isX` guard, so
 * callers can match on them. Expected outcomes (a full mailbox, a call that timed out) are
 * these errors; a failed assertion inside the runtime is a plain `Error` and means a bug.
 */

/** An argument was not what the call needs (not a pid, a negative timeout, not a function...). */
export class BadArgument extends TaggedError('BadArgument') {
  constructor(message: string) {
    super(message);
  }
}

/** The receiver's mailbox is full and its overflow policy is `reject`. */
export class MailboxFull extends TaggedError('MailboxFull') {
  constructor(
    readonly pid: Pid,
    readonly capacity: number,
  ) {
    super(
      `mailbox of ${pid} is full (${capacity} messages); the message was not delivered. ` +
        'Slow the sender down, or spawn the receiver with a larger mailbox.capacity or another overflow policy',
    );
  }
}

/** A `call` got no reply within its timeout. A late reply is dropped. */
export class CallTimeout extends TaggedError('CallTimeout') {
  constructor(
    readonly server: Pid | string,
    readonly timeoutMs: number,
  ) {
    super(`call to ${String(server)} got no reply within ${timeoutMs} ms`);
  }
}

/** A `call` failed because the server was not alive (`noproc`) or died before replying. */
export class CallExit extends TaggedError('CallExit') {
  constructor(
    readonly server: Pid | string,
    readonly reason: ExitReason,
  ) {
    super(
      reason === 'noproc'
        ? `call to ${String(server)} failed: no such process (noproc)`
        : `call to ${String(server)} failed: the server exited with ${formatReason(reason)}`,
    );
  }
}

/** A name is already registered (to another or the same process), or the process already has a name. */
export class AlreadyRegistered extends TaggedError('AlreadyRegistered') {
  constructor(
    readonly registeredName: string,
    readonly holder: Pid,
  ) {
    super(
      `name '${registeredName}' is already registered to ${holder}; unregister it first or pick another name`,
    );
  }
}

/** A message was sent to a name nobody has registered. */
export class NotRegistered extends TaggedError('NotRegistered') {
  constructor(readonly registeredName: string) {
    super(`no process is registered as '${registeredName}'`);
  }
}

/** `link` to a process that does not exist, from a process that does not trap exits (Erlang's noproc). */
export class NoProc extends TaggedError('NoProc') {
  constructor(readonly pid: Pid) {
    super(`process ${pid} does not exist (noproc)`);
  }
}

/**
 * Thrown from a context's methods once its process has exited (killed while awaiting, or after
 * `exit` inside a handler): a dead process cannot act. The runtime swallows it.
 */
export class ProcessExited extends TaggedError('ProcessExited') {
  constructor(
    readonly pid: Pid,
    readonly reason: ExitReason,
  ) {
    super(`process ${pid} has exited (${formatReason(reason)}) and can no longer act`);
  }
}

/** A state machine got an event its current state does not accept. */
export class InvalidTransition extends TaggedError('InvalidTransition') {
  constructor(
    readonly state: string,
    readonly event: unknown,
  ) {
    super(`state '${state}' does not accept event ${formatReason(event)}`);
  }
}

export const isBadArgument = guardOf(BadArgument);
export const isMailboxFull = guardOf(MailboxFull);
export const isCallTimeout = guardOf(CallTimeout);
export const isCallExit = guardOf(CallExit);
export const isAlreadyRegistered = guardOf(AlreadyRegistered);
export const isNotRegistered = guardOf(NotRegistered);
export const isNoProc = guardOf(NoProc);
export const isProcessExited = guardOf(ProcessExited);
export const isInvalidTransition = guardOf(InvalidTransition);

/** The crash reason of an injected fault (RuntimeFaults.crashBeforeHandle). */
export class InjectedCrash extends TaggedError('InjectedCrash') {
  constructor(readonly pid: Pid) {
    super(`injected crash of ${pid}`);
  }
}

/**
 * A message (or exit reason, or spawn argument) cannot travel to another thread: it holds a
 * function, a symbol, a class instance (its class would be lost) or a value structured clone
 * rejects. Thrown at the sender; nothing was sent.
 */
export class NotCloneable extends TaggedError('NotCloneable') {
  constructor(
    /** Where in the message the value sits, for example `message.handler` or `args[1]`. */
    readonly path: string,
    readonly detail: string,
  ) {
    super(
      `cannot send ${path} to another thread: ${detail}. Send plain data (objects, arrays, numbers, strings, typed arrays, Maps, Sets, Errors, pids)`,
    );
  }
}

export const isNotCloneable = guardOf(NotCloneable);

/**
 * An operation that works only on the process's own thread was given a pid of another one (a
 * code swap is a function, and a function cannot cross threads). `advice` says what to do.
 */
export class OnAnotherThread extends TaggedError('OnAnotherThread') {
  constructor(
    readonly operation: string,
    readonly pid: Pid,
    readonly advice: string,
  ) {
    super(`${operation}: ${pid} runs on scheduler thread ${pid.thread}, not this one; ${advice}`);
  }
}

export const isOnAnotherThread = guardOf(OnAnotherThread);

/** Why `migrate` cannot move a process (see README "Actors on every core"). */
export type NotMovableKind =
  /** Its state is a suspended async function's stack, which cannot be copied. */
  | 'process-function'
  /** Its behaviour was made here (not by module URL), or by a function export whose closures hold its state. */
  | 'closure-handler'
  /** Its class declares `#private` members: an instance made on the target would not have them. */
  | 'private-fields'
  /** It has own properties other than enumerable fields (non-enumerable or symbol-keyed). */
  | 'hidden-fields'
  /** It has moved already: its pid forwards to the new one. */
  | 'moved';

/** `migrate` refused to move `pid`: `kind` says why, `advice` what to do instead. The process goes on where it is. */
export class NotMovable extends TaggedError('NotMovable') {
  constructor(
    readonly pid: Pid,
    readonly kind: NotMovableKind,
    readonly advice: string,
  ) {
    super(`migrate: cannot move ${pid} (${kind}): ${advice}`);
  }
}

export const isNotMovable = guardOf(NotMovable);

crossThreadClasses('actor', [
  BadArgument,
  MailboxFull,
  CallTimeout,
  CallExit,
  AlreadyRegistered,
  NotRegistered,
  NoProc,
  ProcessExited,
  InvalidTransition,
  InjectedCrash,
  NotCloneable,
  OnAnotherThread,
  NotMovable,
]);
