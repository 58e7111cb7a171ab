import type { Pid, Ref } from './Pid.js';

/**
 * Why a process ended. As in Erlang, any value can be a reason; these have fixed meanings:
 * - `'normal'`: the process finished its work. Ignored by linked processes that do not trap exits.
 * - `'shutdown'` and `{ shutdown: detail }`: asked to stop (by a supervisor). A transient child
 *   is not restarted for them.
 * - `'kill'`: sent with `exit(pid, 'kill')` it cannot be trapped and the target dies as `'killed'`.
 *   A process that itself exits with `'kill'` sends `'kill'` through its links, which is NOT
 *   converted and can be trapped like any other reason.
 * - `'killed'`: the process was killed by an untrappable `'kill'`.
 * - `'noproc'`: the process did not exist (monitor, link, call).
 * - `'noconnection'`: the node of the process could not be reached.
 * - An `Error`: the process crashed with this error (a thrown exception).
 */
export type ExitReason =
  | 'normal'
  | 'shutdown'
  | 'kill'
  | 'killed'
  | 'noproc'
  | 'noconnection'
  | { readonly shutdown: unknown }
  | Error
  | string
  | object
  | number
  | boolean
  | null;

/** `'normal'`. */
export function isNormal(reason: unknown): boolean {
  return reason === 'normal';
}

/** `'shutdown'` or `{ shutdown: detail }`. */
export function isShutdown(reason: unknown): boolean {
  return (
    reason === 'shutdown' ||
    (typeof reason === 'object' && reason !== null && !(reason instanceof Error) && 'shutdown' in reason)
  );
}

/** The reasons for which OTP does not restart a transient child: normal, shutdown, {shutdown, _}. */
export function isNormalOrShutdown(reason: unknown): boolean {
  return reason === 'normal' || isShutdown(reason);
}

/** Renders a reason the way a log line wants it. */
export function formatReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  if (typeof reason === 'string') return reason;
  try {
    return JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}

/**
 * The message a process that traps exits receives instead of dying: Erlang's
 * `{'EXIT', From, Reason}`.
 */
export class ExitMessage {
  readonly type = 'EXIT' as const;
  constructor(
    readonly from: Pid,
    readonly reason: ExitReason,
  ) {}
}

/** The message a monitor delivers: Erlang's `{'DOWN', Ref, process, Pid, Reason}`. */
export class DownMessage {
  readonly type = 'DOWN' as const;
  constructor(
    readonly ref: Ref,
    readonly pid: Pid,
    readonly reason: ExitReason,
  ) {}
}

export function isExitMessage(message: unknown): message is ExitMessage {
  return message instanceof ExitMessage;
}

export function isDownMessage(message: unknown): message is DownMessage {
  return message instanceof DownMessage;
}
