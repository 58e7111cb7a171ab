import type { ExitReason, Pid } from '../../actor/index.js';

/** A start that failed: what `start` threw, rejected with, or wrongly returned. */
export class StartFailure {
  constructor(readonly reason: ExitReason) {}
}

/** What starting a child came to: its pid, `ignore`, or a failure. */
export type StartOutcome = Pid | 'ignore' | StartFailure;
