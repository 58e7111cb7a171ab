import { crossThreadClasses, type ExitReason, formatReason, type Pid } from '../actor/index.js';
import { guardOf, TaggedError } from '../internal/errors.js';

/**
 * Errors of the supervision layer. Each is a tagged class with typed fields and an `isX` guard.
 * Bad input (a malformed child spec, bad supervisor options) is one of these, thrown or
 * rejected at the edge; expected outcomes of supervisor calls are values (`{ error: ... }`).
 */

/** Why a child spec was refused: one tag per field, as OTP's `{invalid_restart_type, Value}`. */
export type ChildSpecProblem =
  | 'invalid_child_spec'
  | 'invalid_child_id'
  | 'invalid_start'
  | 'invalid_restart_type'
  | 'invalid_shutdown'
  | 'invalid_child_type'
  | 'invalid_significant'
  | 'invalid_heartbeat'
  | 'bad_combination'
  | 'duplicate_child_id';

/** A child spec with a bad field. `problem` names the field, `value` is what was given. */
export class InvalidChildSpec extends TaggedError('InvalidChildSpec') {
  constructor(
    readonly problem: ChildSpecProblem,
    readonly childId: string | undefined,
    readonly value: unknown,
    detail: string,
  ) {
    super(`invalid child spec${childId === undefined ? '' : ` '${childId}'`}: ${problem}: ${detail}`);
  }
}

/** Why supervisor options were refused. */
export type SupervisorOptionProblem =
  | 'invalid_options'
  | 'invalid_strategy'
  | 'invalid_intensity'
  | 'invalid_period'
  | 'invalid_auto_shutdown'
  | 'invalid_max_children'
  | 'invalid_children'
  | 'invalid_backoff'
  | 'invalid_name'
  | 'invalid_on_event'
  | 'too_many_children';

/** Supervisor options with a bad field. */
export class InvalidSupervisorOptions extends TaggedError('InvalidSupervisorOptions') {
  constructor(
    readonly problem: SupervisorOptionProblem,
    readonly value: unknown,
    detail: string,
  ) {
    super(`invalid supervisor options: ${problem}: ${detail}`);
  }
}

/**
 * A supervisor could not start: a child failed to start during init (the children already
 * started were stopped, in reverse order), or the supervisor died before it finished init.
 * As OTP's `{shutdown, {failed_to_start_child, Id, Reason}}`.
 */
export class SupervisorStartFailed extends TaggedError('SupervisorStartFailed') {
  constructor(
    /** The child that failed, or undefined when the supervisor itself died during init. */
    readonly childId: string | undefined,
    readonly reason: ExitReason,
  ) {
    super(
      childId === undefined
        ? `supervisor died while starting: ${formatReason(reason)}`
        : `supervisor failed to start child '${childId}': ${formatReason(reason)}`,
    );
  }
}

/** A child's start failed (threw, rejected, or returned something that is not a pid or `'ignore'`). */
export class ChildStartFailed extends TaggedError('ChildStartFailed') {
  constructor(
    readonly childId: string,
    readonly reason: ExitReason,
  ) {
    super(`child '${childId}' failed to start: ${formatReason(reason)}`);
  }
}

/** A start function returned a value that is neither a Pid nor `'ignore'`. */
export class BadStartReturn extends TaggedError('BadStartReturn') {
  constructor(readonly value: unknown) {
    super(
      `a child's start function must return a Pid (linked to the supervisor) or 'ignore', got ${formatReason(value)}`,
    );
  }
}

/** The supervisor already has `limit` children (DynamicSupervisor's `max_children`). */
export class MaxChildrenReached extends TaggedError('MaxChildrenReached') {
  constructor(
    readonly supervisor: Pid,
    readonly limit: number,
  ) {
    super(`supervisor ${supervisor} already has its maximum of ${limit} children`);
  }
}

/**
 * The exit reason the supervisor gives a child that missed its heartbeat deadline: the child is
 * killed and handled as a failure (restarted as permanent and transient children are).
 */
export class HeartbeatMissed extends TaggedError('HeartbeatMissed') {
  constructor(
    readonly childId: string,
    readonly pid: Pid,
    readonly heartbeatMs: number,
    readonly silentForMs: number,
  ) {
    super(
      `child '${childId}' (${pid}) sent no heartbeat for ${silentForMs} ms (deadline ${heartbeatMs} ms): hung, killed`,
    );
  }
}

export const isInvalidChildSpec = guardOf(InvalidChildSpec);
export const isInvalidSupervisorOptions = guardOf(InvalidSupervisorOptions);
export const isSupervisorStartFailed = guardOf(SupervisorStartFailed);
export const isChildStartFailed = guardOf(ChildStartFailed);
export const isBadStartReturn = guardOf(BadStartReturn);
export const isMaxChildrenReached = guardOf(MaxChildrenReached);
export const isHeartbeatMissed = guardOf(HeartbeatMissed);

crossThreadClasses('supervision', [
  InvalidChildSpec,
  InvalidSupervisorOptions,
  SupervisorStartFailed,
  ChildStartFailed,
  BadStartReturn,
  MaxChildrenReached,
  HeartbeatMissed,
]);
