import type { Pid } from '../actor/index.js';
import type { ChildType, ResolvedChildSpec, RestartType } from './ChildSpec.js';
import type { ChildStartFailed, InvalidChildSpec, MaxChildrenReached } from './errors.js';

/**
 * How a supervisor reacts to a child's failure:
 * - `one_for_one`: only that child is restarted;
 * - `one_for_all`: all the other children are stopped (reverse start order), then all started again;
 * - `rest_for_one`: the children started after it are stopped, then it and they are started again;
 * - `simple_one_for_one`: one_for_one over children all made from one template at run time
 *   (`startChild(where, supervisor, extraArgs)`); see `DynamicSupervisor`.
 */
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one' | 'simple_one_for_one';

/**
 * When a significant child's exit stops the supervisor (OTP 24+):
 * `never` (default), `any_significant`, `all_significant` (when no significant child is left running).
 */
export type AutoShutdown = 'never' | 'any_significant' | 'all_significant';

/** One child as `whichChildren` reports it. */
export interface ChildInfo {
  readonly id: string;
  /** The running pid, `'restarting'` while it waits to come back, undefined when stopped or ignored. */
  readonly pid: Pid | 'restarting' | undefined;
  readonly type: ChildType;
  readonly restart: RestartType;
}

/** `countChildren`: OTP's specs, active, supervisors, workers. */
export interface ChildCounts {
  /** Children known to the supervisor, running or not. */
  readonly specs: number;
  /** Children with a running process. */
  readonly active: number;
  readonly supervisors: number;
  readonly workers: number;
}

/** `startChild`: the new pid (undefined when its start returned `'ignore'`), or why not. */
export type StartChildResult =
  | { readonly pid: Pid | undefined }
  | { readonly error: 'already_present' }
  | { readonly error: 'already_started'; readonly pid: Pid }
  | { readonly error: 'expected_extra_args' }
  | { readonly error: MaxChildrenReached | ChildStartFailed | InvalidChildSpec };

/** `terminateChild`. */
export type TerminateChildResult = 'ok' | { readonly error: 'not_found' };

/** `restartChild`: the new pid (undefined when ignored), or why not. */
export type RestartChildResult =
  | { readonly pid: Pid | undefined }
  | { readonly error: 'running' | 'restarting' | 'not_found' | 'simple_one_for_one' | ChildStartFailed };

/** `deleteChild`. */
export type DeleteChildResult =
  | 'ok'
  | { readonly error: 'running' | 'restarting' | 'not_found' | 'simple_one_for_one' };

/** `getChildSpec`. */
export type GetChildSpecResult = { readonly spec: ResolvedChildSpec } | { readonly error: 'not_found' };
