import type { TimerHandle } from '../Clock.js';
import type { ExitReason } from '../ExitReason.js';
import type { OverflowPolicy } from '../Limits.js';
import { Pid, type Ref } from '../Pid.js';
import { Queue } from './Queue.js';

/**
 * Process states. A handler actor moves NEW -> RUNNING -> WAITING -> RUNNABLE -> RUNNING
 * (-> SUSPENDED) -> ... A process is in the run queue exactly from each move into NEW or
 * RUNNABLE until its next turn (or, if it dies meanwhile, as DEAD until the queue reaches it),
 * so the state alone says whether to queue it: no separate flag.
 */
export const WAITING = 0; // nothing to do until a message arrives
export const RUNNABLE = 1; // in the run queue
export const RUNNING = 2; // its code is on the stack right now (or a body between awaits)
export const SUSPENDED = 3; // a handler awaiting a promise: takes no message until it settles
export const DEAD = 4;
export const NEW = 5; // in the run queue for its first turn: init (or the body) has not run yet

/** Something told when a process exits: a monitor, a pending call, a `whenExited` promise. */
export interface ExitObserver {
  exited(pid: Pid, reason: ExitReason): void;
}

/** A pending selective receive of a process body. */
export interface Waiter {
  match: ((message: unknown) => boolean) | undefined;
  resolve: (message: unknown) => void;
  timer: TimerHandle | undefined;
  /** Set once a message matched or the timeout fired; the body resumes on its next turn. */
  done: boolean;
  message: unknown;
}

/** Capacity and overflow policy of a mailbox; one shared object for the system default. */
export interface MailboxPolicy {
  readonly capacity: number;
  readonly overflow: OverflowPolicy;
}

/** The export a movable process was made from; `args` for a function export (a factory). */
export interface MovableCode {
  readonly module: string;
  readonly export: string;
  readonly args?: readonly unknown[];
}

/** The parts of a process that most processes never use, allocated on first use. */
export class ProcessExtra {
  trapping = false;
  links: Set<ProcessRecord> | undefined = undefined;
  /** Monitors this process holds on others: monitor id -> target. */
  monitors: Map<number, ProcessRecord> | undefined = undefined;
  /** Who watches this process: monitor id -> observer. */
  watchers: Map<number, ExitObserver> | undefined = undefined;
  name: string | undefined = undefined;
  abortController: AbortController | undefined = undefined;
  /** Increments each time the process suspends, so a stale promise cannot resume it. */
  suspension = 0;
  /** Its pid has left the thread: it resolves by number in `Remote.exported`. */
  exported = false;
  /** A mailbox limit other than the system's default (spawn option `mailbox`). */
  policy: MailboxPolicy | undefined = undefined;
  /** Links to processes on other threads: `${thread}:${id}` -> pid. */
  remoteLinks: Map<string, Pid> | undefined = undefined;
  /**
   * The export it was made from (spawn by module URL), when `migrate` can re-make it from that:
   * a class export, or a function export (called with `args`) whose behaviour carries its state
   * explicitly (movable.ts).
   */
  code: MovableCode | undefined = undefined;
  /** Monitors this process holds on processes on other threads: ref id -> ref and target. */
  remoteMonitors: Map<number, { ref: Ref; pid: Pid }> | undefined = undefined;
  /** The process on another thread that spawned it with a link (a supervisor starting a child there). */
  linkedSpawner: Pid | undefined = undefined;
}

/**
 * The runtime's record of one process, which is also its pid: a process is one object (record,
 * pid and, as ProcessContext, the context its code gets), since skynet-like workloads keep a
 * million processes alive at once and every object that survives a scavenge is copied. Kept lean
 * (an idle actor is this object and nothing else: the mailbox is the shared empty queue until
 * its first message); links, monitors, names, trap_exit and the abort controller live in
 * `extra`, created on first use. When the process exits, `process` (the pid's fast path to its
 * record) is cleared and the code and mailbox are dropped, so a pid held after the exit keeps
 * only this small record.
 */
export class ProcessRecord extends Pid {
  state = NEW;
  /** Starts as the shared empty queue; `mailboxFor` gives the process its own on first push. */
  mailbox: Queue<unknown> = EMPTY_MAILBOX;
  /** Handler actors: the behavior object. Bodies: undefined. */
  behavior: { handle(message: unknown, context: any): unknown; init?(context: any): unknown } | undefined =
    undefined;
  body: ((context: any) => unknown) | undefined = undefined;
  waiter: Waiter | undefined = undefined;
  reductions = 0;
  exitReason: ExitReason = undefined as unknown as ExitReason;
  extra: ProcessExtra | undefined = undefined;
  /** Neighbours in the system's list of live processes. */
  previous: ProcessRecord | undefined = undefined;
  next: ProcessRecord | undefined = undefined;

  constructor(
    /** The runtime the process lives in (internal/Runtime.ts; typed loosely to keep this module a leaf). */
    readonly runtime: unknown,
    node: string,
    id: number,
    thread: number,
  ) {
    super(node, 0, id, 0, thread);
  }

  /** The process's pid: the record itself. */
  get pid(): Pid {
    return this;
  }
}

/**
 * The mailbox every process starts with: empty, shared, never written to. Reads (length, scans)
 * work on it; the first message gives the process a queue of its own, so a process that never
 * receives costs no queue.
 */
export const EMPTY_MAILBOX: Queue<unknown> = new Queue<unknown>();

/** The process's own mailbox, created on first use. */
export function mailboxFor(record: ProcessRecord): Queue<unknown> {
  if (record.mailbox === EMPTY_MAILBOX) record.mailbox = new Queue<unknown>();
  return record.mailbox;
}

/** The extra part of a record, created if needed. */
export function extraOf(record: ProcessRecord): ProcessExtra {
  if (record.extra === undefined) record.extra = new ProcessExtra();
  return record.extra;
}

/**
 * The process on another thread that spawned the process of `context` with a link, if one did:
 * how a child started on another thread finds its supervisor (the supervision layer's own table
 * of parents lives on the supervisor's thread).
 */
export function linkedSpawnerOf(context: unknown): Pid | undefined {
  return (context as ProcessRecord).extra?.linkedSpawner;
}
