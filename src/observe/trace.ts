/**
 * Tracing, as OTP's sys:trace: `trace(system, pid, { messages, calls, exits })` records what a
 * process receives, sends, is called with and exits with, into a bounded buffer. It goes
 * through the runtime's one tracer hook (`ActorSystem.tracer`) and `onExit`; the types below
 * are structural, so this recording side imports no other layer.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { trace } from 'zbmd/observe';
 *
 * const system = new ActorSystem();
 * const pid = system.spawn({ handle: () => {} });
 * const tracing = trace(system, pid, { messages: true, exits: true });
 * system.send(pid, 'ping');
 * await system.settle();
 * assert.ok(tracing.events().some((event) => event.kind === 'in' && event.data === 'ping')); // { kind: 'in', data: 'ping', ... }
 * tracing.stop();
 * system.shutdown();
 * ```
 */
import { DEFAULT_TRACE_CAPACITY, TraceBuffer } from './TraceBuffer.js';

/** What the runtime's hook is told (the shape of the actor layer's `ActorTracer`). */
export interface TracerHook<P extends object> {
  delivered(to: P, message: unknown, from: P | undefined): void;
  handling(pid: P, message: unknown): void;
}

/** The parts of an ActorSystem tracing uses. */
export interface TraceableSystem<P extends object> {
  tracer: TracerHook<P> | undefined;
  onExit(listener: (pid: P, reason: unknown) => void): () => void;
  readonly clock: { now(): number };
}

export interface TraceOptions {
  /** Messages in (delivered to the process) and out (sent by it). Default true. */
  readonly messages?: boolean;
  /** Calls made to the process (GenServer requests that expect a reply). Default true. */
  readonly calls?: boolean;
  /** The process's exit and its reason. Default true. */
  readonly exits?: boolean;
  /** Events kept; older ones are dropped (counted). Default 1000. */
  readonly capacity?: number;
}

export type TraceEventKind = 'in' | 'out' | 'call' | 'exit';

export interface TraceEvent {
  readonly kind: TraceEventKind;
  /** `clock.now()` of the system when it happened. */
  readonly timeMs: number;
  /** The traced process. */
  readonly pid: string;
  /** The other side: the sender of an `in` or `call`, the receiver of an `out`. */
  readonly peer: string | undefined;
  /** The message (`in`, `out`), the request (`call`) or the exit reason (`exit`). */
  readonly data: unknown;
}

/** A running trace. */
export interface Trace {
  events(): TraceEvent[];
  /** Events that fell out of the buffer. */
  readonly dropped: number;
  stop(): void;
}

/** Calls arrive as an envelope with the request and the caller's reply handle. */
function callRequest(message: unknown): { request: unknown } | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const envelope = message as { request?: unknown; from?: { caller?: unknown } };
  return 'request' in envelope && typeof envelope.from === 'object' && envelope.from !== null
    ? (envelope as { request: unknown })
    : undefined;
}

class TracedProcess {
  readonly buffer: TraceBuffer<TraceEvent>;
  constructor(
    readonly name: string,
    readonly options: Required<Omit<TraceOptions, 'capacity'>>,
    capacity: number,
  ) {
    this.buffer = new TraceBuffer(capacity);
  }
}

/** One per system: fans the runtime's single hook out to the traces and the last-message table. */
class TraceHub<P extends object> implements TracerHook<P> {
  readonly traced = new Map<P, TracedProcess>();
  /** Crash reports want the last message: kept only while `trackLastMessages` is on. */
  trackingLast = false;
  /** The message a handler took last and whose it was: two stores per message, no table. */
  private currentPid: P | undefined = undefined;
  private currentMessage: unknown = undefined;
  /** The message each process was handling when it exited (the last `EXIT_MESSAGES_KEPT`). */
  private readonly exitMessages = new Map<P, unknown>();
  private readonly removeExitListener: () => void;

  constructor(readonly system: TraceableSystem<P>) {
    this.removeExitListener = system.onExit((pid, reason) => this.exited(pid, reason));
  }

  delivered(to: P, message: unknown, from: P | undefined): void {
    if (this.traced.size === 0) return;
    const receiver = this.traced.get(to);
    if (receiver !== undefined) {
      const call = callRequest(message);
      if (call !== undefined) {
        if (receiver.options.calls) this.record(receiver, 'call', from, call.request);
      } else if (receiver.options.messages) this.record(receiver, 'in', from, message);
    }
    const sender = from === undefined ? undefined : this.traced.get(from);
    if (sender?.options.messages) this.record(sender, 'out', to, message);
  }

  handling(pid: P, message: unknown): void {
    this.currentPid = pid;
    this.currentMessage = message;
  }

  /** What `pid` was handling when it exited, or is handling now; undefined when not known. */
  lastMessage(pid: P): unknown {
    if (this.exitMessages.has(pid)) return this.exitMessages.get(pid);
    return this.currentPid === pid ? this.currentMessage : undefined;
  }

  private exited(pid: P, reason: unknown): void {
    // A handler that throws exits before the next one runs, so the current message is its own.
    if (this.trackingLast && this.currentPid === pid) {
      this.exitMessages.set(pid, this.currentMessage);
      if (this.exitMessages.size > EXIT_MESSAGES_KEPT)
        this.exitMessages.delete(this.exitMessages.keys().next().value as P);
      this.currentPid = undefined;
      this.currentMessage = undefined;
    }
    const traced = this.traced.get(pid);
    if (traced?.options.exits) this.record(traced, 'exit', undefined, reason);
  }

  private record(traced: TracedProcess, kind: TraceEventKind, peer: P | undefined, data: unknown): void {
    traced.buffer.push({
      kind,
      timeMs: this.system.clock.now(),
      pid: traced.name,
      peer: peer === undefined ? undefined : String(peer),
      data,
    });
  }

  /** Takes the hook off the system once nothing uses it. */
  release(): void {
    if (this.traced.size > 0 || this.trackingLast) return;
    this.removeExitListener();
    if (this.system.tracer === this) this.system.tracer = undefined;
    hubs.delete(this.system);
  }
}

const hubs = new WeakMap<object, TraceHub<object>>();
/** Exited processes whose last message is kept for their crash report. */
export const EXIT_MESSAGES_KEPT = 1000;

function hubOf<P extends object>(system: TraceableSystem<P>): TraceHub<P> {
  let hub = hubs.get(system) as TraceHub<P> | undefined;
  if (hub === undefined) {
    hub = new TraceHub(system);
    hubs.set(system, hub as unknown as TraceHub<object>);
  }
  if (system.tracer !== hub) system.tracer = hub;
  return hub;
}

/**
 * Starts tracing `pid` (sys:trace). Tracing the same pid again replaces its trace. Events are
 * kept by reference, as the process sent them; at most `capacity` (default 1000).
 */
export function trace<P extends object>(
  system: TraceableSystem<P>,
  pid: P,
  options: TraceOptions = {},
): Trace {
  const hub = hubOf(system);
  const traced = new TracedProcess(
    String(pid),
    { messages: options.messages ?? true, calls: options.calls ?? true, exits: options.exits ?? true },
    options.capacity ?? DEFAULT_TRACE_CAPACITY,
  );
  hub.traced.set(pid, traced);
  return {
    events: () => traced.buffer.toArray(),
    get dropped() {
      return traced.buffer.dropped;
    },
    stop: () => {
      if (hub.traced.get(pid) === traced) hub.traced.delete(pid);
      hub.release();
    },
  };
}

/**
 * Remembers the message a handler process was handling when it exited, so a crash report can
 * say it (OTP's "Last message in"). Known for a handler that throws while handling; for one
 * that crashes later, after awaiting a promise while others ran, it may be unknown (undefined).
 * Returns the lookup and a function to stop.
 */
export function trackLastMessages<P extends object>(
  system: TraceableSystem<P>,
): { lastMessage(pid: P): unknown; stop(): void } {
  const hub = hubOf(system);
  hub.trackingLast = true;
  return {
    lastMessage: (pid) => hub.lastMessage(pid),
    stop: () => {
      hub.trackingLast = false;
      hub.release();
    },
  };
}
