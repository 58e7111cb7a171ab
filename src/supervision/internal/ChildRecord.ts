import type { Pid, TimerHandle } from '../../actor/index.js';
import type { ResolvedChildSpec } from '../ChildSpec.js';

/** The supervisor's record of one child: its spec and where it stands. */
export class ChildRecord {
  /** The running process; undefined while stopped, ignored or waiting to restart. */
  pid: Pid | undefined = undefined;
  /** Waiting to be started again (backoff, or a failed restart to be tried again). */
  restarting = false;
  /** Restarts since the child last ran for `resetAfterMs`: the backoff attempt number. */
  backoffAttempt = 0;
  /** Identifies the pending restart timer, so a stale one is ignored. */
  restartToken = 0;
  restartTimer: TimerHandle | undefined = undefined;
  heartbeatTimer: TimerHandle | undefined = undefined;
  lastHeartbeatAtMs = 0;
  startedAtMs = 0;

  constructor(
    readonly spec: ResolvedChildSpec,
    /** Arguments given to `startChild` of a simple_one_for_one supervisor, passed to `start`. */
    readonly extraArgs: readonly unknown[],
  ) {}

  get id(): string {
    return this.spec.id;
  }
}
