import type { TransferListItem } from 'node:worker_threads';
import { DownMessage, ExitMessage } from '../ExitReason.js';
import { BadArgument, MailboxFull, NotRegistered } from '../errors.js';
import { Pid } from '../Pid.js';
import { checkTimeout, describe } from './checks.js';
import { DEAD, mailboxFor, type ProcessRecord, RUNNABLE, WAITING, type Waiter } from './Process.js';
import type { Runtime } from './Runtime.js';

/**
 * Message delivery: every message a process gets passes through `deliver` (user messages, with
 * the mailbox limit) or `deliverSignalMessage` (EXIT, DOWN, timers, code upgrades: never
 * dropped). A tracing hook belongs in those two functions.
 */

/**
 * A message for the runtime rather than the process: the scheduler acts on it when it reaches it
 * in the mailbox (between two messages, never inside a handler), and it is never dropped.
 */
export class ControlMessage {
  /** Acts on `record` (the scheduler's turn, in message order). */
  apply(_runtime: Runtime, _record: ProcessRecord): void {}
}

/** A code swap travelling through the mailbox, so it takes effect in message order. */
export class CodeUpgrade extends ControlMessage {
  constructor(readonly upgrade: (behavior: any) => any) {
    super();
  }
}

export function sendFrom(
  runtime: Runtime,
  sender: ProcessRecord | undefined,
  to: Pid | string | { readonly name: string; readonly node: string },
  message: unknown,
  transfer?: readonly TransferListItem[],
): void {
  let target: ProcessRecord | undefined;
  if (typeof to === 'object' && to !== null && !(to instanceof Pid)) {
    const { name, node } = to as { name?: unknown; node?: unknown };
    if (typeof name !== 'string' || typeof node !== 'string')
      throw new BadArgument(`send: expected a Pid, a registered name or { name, node }, got ${describe(to)}`);
    if (node !== runtime.nodeName) {
      if (runtime.nodes === undefined)
        throw new BadArgument(
          `send to { name: '${name}', node: '${node}' }: this system is not attached to a cluster node (ClusterNode.attach)`,
        );
      if (message === undefined)
        throw new BadArgument('send: the message is undefined; send null or a value');
      if (sender !== undefined) sender.reductions++;
      runtime.nodes.sendNamed(node, name, message);
      runtime.counters.messagesSent++;
      return;
    }
    to = name;
  }
  if (to instanceof Pid) {
    target = to.process as ProcessRecord | undefined;
  } else if (typeof to === 'string') {
    target = runtime.registry.holder(to);
    if (target === undefined) {
      const pid = runtime.remote?.remoteNames.get(to);
      if (pid === undefined) throw new NotRegistered(to);
      to = pid;
    }
  } else {
    throw new BadArgument(`send: expected a Pid or a registered name, got ${describe(to)}`);
  }
  if (message === undefined)
    throw new BadArgument(
      'send: the message is undefined (receive uses undefined for a timeout); send null or a value',
    );
  if (target === undefined && runtime.nodes?.owns(to as Pid) === true) {
    if (sender !== undefined) sender.reductions++;
    runtime.nodes.send(to as Pid, message);
    runtime.counters.messagesSent++;
    return;
  }
  if (target === undefined) {
    // another thread's process, or a dead one (sending to a dead process is not an error, as in Erlang)
    if (runtime.remote !== undefined && (to as Pid).thread !== runtime.remote.thread) {
      if (sender !== undefined) sender.reductions++;
      runtime.remote.send(to as Pid, message, transfer);
    }
    runtime.counters.messagesSent++;
    return;
  }
  runtime.counters.messagesSent++;
  if (runtime.faults?.onSend !== undefined && !injectSendFault(runtime, target, message)) return;
  if (sender !== undefined) sender.reductions++;
  if (runtime.tracer !== undefined) runtime.tracer.delivered(target.pid, message, sender?.pid);
  deliver(runtime, target, message);
}

/** Asks the fault hook about a message; false when it is dropped or delayed (not delivered now). */
export function injectSendFault(runtime: Runtime, target: ProcessRecord, message: unknown): boolean {
  const decision = runtime.faults!.onSend!(target.pid, message);
  if (decision === 'deliver') return true;
  if (decision === 'drop') runtime.counters.messagesDropped++;
  if (typeof decision === 'number') {
    runtime.clock.setTimer(decision, () => {
      if (target.state === DEAD) return;
      try {
        deliver(runtime, target, message);
      } catch {
        runtime.counters.messagesDropped++; // the delayed message met a full mailbox
      }
    });
  }
  return false;
}

/** Delivers a user message: to a waiting receive, or into the mailbox within its capacity. */
export function deliver(runtime: Runtime, target: ProcessRecord, message: unknown): void {
  if (target.waiter !== undefined && offerToWaiter(runtime, target, message)) return;
  if (
    target.mailbox.length >= (target.extra?.policy ?? runtime.defaultPolicy).capacity &&
    !makeRoom(runtime, target)
  )
    return;
  queueMessage(runtime, target, message);
}

/** Queues a signal-born message (EXIT, DOWN, timers): never dropped, whatever the capacity. */
export function deliverSignalMessage(runtime: Runtime, target: ProcessRecord, message: unknown): void {
  if (target.waiter !== undefined && offerToWaiter(runtime, target, message)) return;
  queueMessage(runtime, target, message);
}

function queueMessage(runtime: Runtime, target: ProcessRecord, message: unknown): void {
  mailboxFor(target).push(message);
  if (target.state === WAITING && target.behavior !== undefined) {
    target.state = RUNNABLE;
    runtime.scheduler.enqueue(target);
  }
}

/** A body blocked in receive takes a matching message directly (older ones did not match). */
function offerToWaiter(runtime: Runtime, target: ProcessRecord, message: unknown): boolean {
  const waiter = target.waiter!;
  if (waiter.done || (waiter.match !== undefined && !waiter.match(message))) return false;
  wake(runtime, target, waiter, message);
  return true;
}

/** Applies the overflow policy of a full mailbox; false means the new message is not queued. */
function makeRoom(runtime: Runtime, target: ProcessRecord): boolean {
  const policy = target.extra?.policy ?? runtime.defaultPolicy;
  if (policy.overflow === 'reject') throw new MailboxFull(target.pid, policy.capacity);
  runtime.counters.messagesDropped++;
  if (policy.overflow === 'drop-newest') return false;
  // drop-oldest: the oldest ordinary message; EXIT and DOWN signals are never dropped
  const index = target.mailbox.findIndex((message) => !isSignalMessage(message));
  if (index < 0) return true;
  target.mailbox.removeAt(index);
  return true;
}

function isSignalMessage(message: unknown): boolean {
  return (
    message instanceof ExitMessage || message instanceof DownMessage || message instanceof ControlMessage
  );
}

/** A body's receive matched (or timed out): it resumes on its next turn, through the run queue. */
function wake(runtime: Runtime, target: ProcessRecord, waiter: Waiter, message: unknown): void {
  waiter.done = true;
  waiter.message = message;
  if (waiter.timer !== undefined) runtime.clock.cancelTimer(waiter.timer);
  target.state = RUNNABLE;
  runtime.scheduler.enqueue(target);
}

// -----------------------------------------------------------------------------------------------
// Receive (process functions)

/** The oldest queued message `match` accepts, removed; undefined if none. */
export function takeNow(
  record: ProcessRecord,
  match: ((message: unknown) => boolean) | undefined,
  operation: string,
): unknown {
  if (match !== undefined && typeof match !== 'function') {
    throw new BadArgument(`${operation}: match must be a function, got ${describe(match)}`);
  }
  if (record.behavior !== undefined) {
    throw new BadArgument(
      `${operation} is for process functions; a handler actor gets its messages through handle()`,
    );
  }
  const mailbox = record.mailbox;
  const index = match === undefined ? (mailbox.length > 0 ? 0 : -1) : mailbox.findIndex(match);
  if (index < 0) return undefined;
  record.reductions++;
  return mailbox.removeAt(index);
}

export function receiveFor(
  runtime: Runtime,
  record: ProcessRecord,
  match: ((message: unknown) => boolean) | undefined,
  timeoutMs: number,
): Promise<unknown> {
  checkTimeout(timeoutMs, 'receive timeout');
  if (record.waiter !== undefined)
    throw new BadArgument(`receive: ${record.pid} is already waiting in receive`);
  const found = takeNow(record, match, 'receive');
  if (found !== undefined) return Promise.resolve(found);
  if (timeoutMs === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const waiter: Waiter = { match, resolve, timer: undefined, done: false, message: undefined };
    record.waiter = waiter;
    record.state = WAITING;
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      waiter.timer = runtime.clock.setTimer(timeoutMs, () => {
        if (!waiter.done && record.waiter === waiter) wake(runtime, record, waiter, undefined);
      });
    }
  });
}
