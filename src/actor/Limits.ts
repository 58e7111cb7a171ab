/** The runtime's limits and defaults, each overridable per system or per process. */

/** Default mailbox capacity: messages beyond it follow the overflow policy (signals never do). */
export const DEFAULT_MAILBOX_CAPACITY = 100_000;
/** Messages an actor may handle in one turn before the scheduler moves to the next actor. */
export const DEFAULT_REDUCTION_BUDGET = 2000;
/** Longest run of the scheduler before it yields to the event loop (I/O, host timers). */
export const DEFAULT_TIME_SLICE_MS = 2;
/** Default `call` timeout, as gen_server's. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000;

/** What a send to a full mailbox does: throw `MailboxFull` to the sender, or drop a message. */
export type OverflowPolicy = 'reject' | 'drop-oldest' | 'drop-newest';
