import type { ExitReason } from './ExitReason.js';
import { formatReason } from './ExitReason.js';
import type { Pid } from './Pid.js';

/**
 * Errors of the actor layer. Each is a tagged class with typed fields and an `isX` guard, so
 * callers can match on them. Expected outcomes (a full mailbox, a call that timed out) are
 * these errors; a failed assertion inside the runtime is a plain `Error` and means a bug.
 */
export abstract class ActorError extends Error {
  abstract readonly code: string;
}

/** An argument was not what the call needs (not a pid, a negative timeout, not a function...). */
export class BadArgument extends ActorError {
  readonly code = 'badarg' as const;
  constructor(message: string) {
    super(message);
    this.name = 'BadArgument';
  }
}

/** The receiver's mailbox is full and its overflow policy is `reject`. */
export class MailboxFull extends ActorError {
  readonly code = 'mailbox_full' as const;
  constructor(
    readonly pid: Pid,
    readonly capacity: number,
  ) {
    super(
      `mailbox of ${pid} is full (${capacity} messages); the message was not delivered. ` +
        'Slow the sender down, or spawn the receiver with a larger mailbox.capacity or another overflow policy',
    );
    this.name = 'MailboxFull';
  }
}

/** A `call` got no reply within its timeout. A late reply is dropped. */
export class CallTimeout extends ActorError {
  readonly code = 'timeout' as const;
  constructor(
    readonly server: Pid | string,
    readonly timeoutMs: number,
  ) {
    super(`call to ${String(server)} got no reply within ${timeoutMs} ms`);
    this.name = 'CallTimeout';
  }
}

/** A `call` failed because the server was not alive (`noproc`) or died before replying. */
export class CallExit extends ActorError {
  readonly code = 'exit' as const;
  constructor(
    readonly server: Pid | string,
    readonly reason: ExitReason,
  ) {
    super(
      reason === 'noproc'
        ? `call to ${String(server)} failed: no such process (noproc)`
        : `call to ${String(server)} failed: the server exited with ${formatReason(reason)}`,
    );
    this.name = 'CallExit';
  }
}

/** A name is already registered (to another or the same process), or the process already has a name. */
export class AlreadyRegistered extends ActorError {
  readonly code = 'already_registered' as const;
  constructor(
    readonly registeredName: string,
    readonly holder: Pid,
  ) {
    super(
      `name '${registeredName}' is already registered to ${holder}; unregister it first or pick another name`,
    );
    this.name = 'AlreadyRegistered';
  }
}

/** A message was sent to a name nobody has registered. */
export class NotRegistered extends ActorError {
  readonly code = 'not_registered' as const;
  constructor(readonly registeredName: string) {
    super(`no process is registered as '${registeredName}'`);
    this.name = 'NotRegistered';
  }
}

/** `link` to a process that does not exist, from a process that does not trap exits (Erlang's noproc). */
export class NoProc extends ActorError {
  readonly code = 'noproc' as const;
  constructor(readonly pid: Pid) {
    super(`process ${pid} does not exist (noproc)`);
    this.name = 'NoProc';
  }
}

/**
 * Thrown from a context's methods once its process has exited (killed while awaiting, or after
 * `exit` inside a handler): a dead process cannot act. The runtime swallows it.
 */
export class ProcessExited extends ActorError {
  readonly code = 'exited' as const;
  constructor(
    readonly pid: Pid,
    readonly reason: ExitReason,
  ) {
    super(`process ${pid} has exited (${formatReason(reason)}) and can no longer act`);
    this.name = 'ProcessExited';
  }
}

/** A state machine got an event its current state does not accept. */
export class InvalidTransition extends ActorError {
  readonly code = 'invalid_transition' as const;
  constructor(
    readonly state: string,
    readonly event: unknown,
  ) {
    super(`state '${state}' does not accept event ${formatReason(event)}`);
    this.name = 'InvalidTransition';
  }
}

export const isBadArgument = (error: unknown): error is BadArgument => error instanceof BadArgument;
export const isMailboxFull = (error: unknown): error is MailboxFull => error instanceof MailboxFull;
export const isCallTimeout = (error: unknown): error is CallTimeout => error instanceof CallTimeout;
export const isCallExit = (error: unknown): error is CallExit => error instanceof CallExit;
export const isAlreadyRegistered = (error: unknown): error is AlreadyRegistered =>
  error instanceof AlreadyRegistered;
export const isNotRegistered = (error: unknown): error is NotRegistered => error instanceof NotRegistered;
export const isNoProc = (error: unknown): error is NoProc => error instanceof NoProc;
export const isProcessExited = (error: unknown): error is ProcessExited => error instanceof ProcessExited;
export const isInvalidTransition = (error: unknown): error is InvalidTransition =>
  error instanceof InvalidTransition;

/** The crash reason of an injected fault (RuntimeFaults.crashBeforeHandle). */
export class InjectedCrash extends Error {
  constructor(readonly pid: Pid) {
    super(`injected crash of ${pid}`);
    this.name = 'InjectedCrash';
  }
}

/**
 * A message (or exit reason, or spawn argument) cannot travel to another thread: it holds a
 * function, a symbol, a class instance (its class would be lost) or a value structured clone
 * rejects. Thrown at the sender; nothing was sent.
 */
export class NotCloneable extends ActorError {
  readonly code = 'not_cloneable' as const;
  constructor(
    /** Where in the message the value sits, for example `message.handler` or `args[1]`. */
    readonly path: string,
    readonly detail: string,
  ) {
    super(
      `cannot send ${path} to another thread: ${detail}. Send plain data (objects, arrays, numbers, strings, typed arrays, Maps, Sets, Errors, pids)`,
    );
    this.name = 'NotCloneable';
  }
}

export const isNotCloneable = (error: unknown): error is NotCloneable => error instanceof NotCloneable;
