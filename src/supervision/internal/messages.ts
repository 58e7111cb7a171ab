import { crossThreadClasses, type ExitReason, type Pid } from '../../actor/index.js';
import type { ChildRecord } from './ChildRecord.js';

/** Sent by a child to its supervisor (`heartbeat(ctx)`): "I am not hung". */
export class HeartbeatSignal {
  constructor(readonly pid: Pid) {}
}

// a child on another thread beats to its supervisor as well
crossThreadClasses('supervision', [HeartbeatSignal]);

/** A timer the supervisor sets for itself: is the child still sending heartbeats? */
export class HeartbeatCheck {
  constructor(
    readonly child: ChildRecord,
    readonly pid: Pid,
  ) {}
}

/** A timer the supervisor sets for itself: the backoff of a restart is over. */
export class RestartDue {
  constructor(
    readonly child: ChildRecord,
    readonly token: number,
  ) {}
}

/** OTP's try_again_restart: a restart failed; try again (it counts against the intensity). */
export class TryAgainRestart {
  constructor(readonly child: ChildRecord) {}
}

// Calls to the supervisor (the request inside a CallRequest).

export class StartChildRequest {
  constructor(readonly specOrArgs: unknown) {}
}
export class TerminateChildRequest {
  constructor(readonly target: string | Pid) {}
}
export class RestartChildRequest {
  constructor(readonly id: string) {}
}
export class DeleteChildRequest {
  constructor(readonly id: string) {}
}
export class WhichChildrenRequest {}
export class CountChildrenRequest {}
export class GetChildSpecRequest {
  constructor(readonly target: string | Pid) {}
}
export class StopRequest {
  constructor(readonly reason: ExitReason) {}
}
