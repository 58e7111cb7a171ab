import { type ActorSystem, isMailboxFull, type Pid, type TimerHandle } from '../../actor/index.js';

/** How long a message to the supervisor itself waits before it is offered again to a full mailbox. */
export const MAILBOX_RETRY_MS = 10;

/**
 * Sends the supervisor one of its own bookkeeping messages (a retry, a timer). These must never
 * be lost: a restart waiting for one would wait forever. A full mailbox (the actor default,
 * 100,000 messages, reached only under a flood of calls) defers the message by
 * `MAILBOX_RETRY_MS` and tries again, for as long as the supervisor lives.
 */
export function sendToSelf(system: ActorSystem, self: Pid, message: unknown): void {
  try {
    system.send(self, message);
  } catch (error) {
    if (!isMailboxFull(error)) throw error;
    system.clock.setTimer(MAILBOX_RETRY_MS, () => {
      if (system.isAlive(self)) sendToSelf(system, self, message);
    });
  }
}

/** `sendToSelf` after `delayMs`, on the system's clock; cancel with `system.clock.cancelTimer`. */
export function sendToSelfAfter(
  system: ActorSystem,
  self: Pid,
  delayMs: number,
  message: unknown,
): TimerHandle {
  return system.clock.setTimer(delayMs, () => {
    if (system.isAlive(self)) sendToSelf(system, self, message);
  });
}
