/**
 * The dynamic batcher: one actor per model version, with Triton's semantics. Requests queue in
 * arrival order; a batch is sent to a free replica as soon as it holds `maxBatchSize` rows, or
 * once its oldest request has waited `maxQueueDelayMs`, whichever comes first. Only requests
 * whose inputs agree after the batch dimension are batched together. The replica's outputs are
 * split back by rows, in order, one reply per request.
 *
 * Limits: at most `maxQueueSize` requests wait; one more is answered at once with 429 and a
 * Retry-After. A request still queued at its deadline is answered 504 and never run.
 *
 * Failures: a batch whose replica crashed, timed out or was not there is requeued at the front
 * and its requests run once more, on another replica when there is one (a request that fails
 * twice is answered 500). Each replica has a circuit breaker: after `failureThreshold` failures
 * in a row it gets no batches until its reset timeout passes and a trial batch succeeds. Every
 * accepted request is answered exactly once: by the split of the batch that ran it, by a
 * rejection, or by the caller's own timeout (a late reply is dropped by the actor runtime).
 *
 * The batcher runs under a supervisor of its own (`internal/ModelVersion.ts`). When it crashes,
 * its queue dies with it and its callers' calls fail with `CallExit`; `ModelVersion.infer`
 * sends each such request again to the restarted batcher (a model run is free of side
 * effects, and the caller answers its HTTP request once, whichever try answers).
 */
import type { CallFrom, Context } from '../actor/ActorSystem.js';
import type { TimerHandle } from '../actor/Clock.js';
import { CallExit } from '../actor/errors.js';
import { type CallResult, type GenServer, noreply, reply } from '../actor/GenServer.js';
import type { Pid } from '../actor/Pid.js';
import { type CircuitBreaker, isCircuitOpen } from '../fault/CircuitBreaker.js';
import { concatData, sliceRows } from './datatypes.js';
import { RequestRejected } from './errors.js';
import type { HostTensor, TensorMap } from './ModelSource.js';
import type { ServeMetrics } from './metrics.js';
import type { InferRequest } from './protocol.js';
import { RunBatch } from './Replica.js';

export interface ReplicaSlot {
  readonly index: number;
  /** The registered name of the slot's replica (the restarted one takes it over). */
  readonly name: string;
  readonly breaker: CircuitBreaker;
  busy: boolean;
  /** Being taken out (rolling upgrade): gets no more batches, and leaves `slots` once idle. */
  retiring?: boolean;
}

export interface BatcherConfig {
  readonly model: string;
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSize: number;
  /** How long a replica may take for one batch before the batch counts as failed. */
  readonly replicaCallTimeoutMs: number;
  readonly slots: readonly ReplicaSlot[];
  readonly metrics?: ServeMetrics;
  /** Told the rows of every batch formed (for the bench's ceiling). */
  readonly onBatch?: (rows: number) => void;
  /** True once the replicas' supervisor has given up (a restarted batcher starts `gone`). */
  readonly replicasGone?: () => boolean;
  /** Told each time a batcher of this version has started (the first start and every restart). */
  readonly onStart?: () => void;
}

/** A request for the batcher: answered with an `InferOutcome`. */
export class BatchCall {
  constructor(
    readonly request: InferRequest,
    readonly key: string,
    /** Clock time after which the request is answered 504 instead of run. */
    readonly deadlineMs: number,
  ) {}
}

export interface InferResult {
  readonly outputs: Map<string, HostTensor>;
  /** Rows in the batch the request ran in. */
  readonly batchRows: number;
  /** 1, or 2 when its first replica failed. */
  readonly attempts: number;
}

export type InferOutcome = InferResult | RequestRejected;

/** Answers once the queue is empty and no batch is running (the queue delay no longer applies). */
export class DrainCall {}

/** Answers once `slot` (already marked retiring) runs no batch; the slot then leaves the batcher. */
export class RetireSlot {
  constructor(readonly slot: ReplicaSlot) {}
}

class Wake {}

/** Sent by the replicas' owner when a replica (re)started: queued requests may run now. */
export class ReplicaStarted {}

/** Sent when the replicas' supervisor gave up: queued and later requests are answered 503. */
export class ReplicasGone {}

class BatchDone {
  constructor(
    readonly slot: ReplicaSlot,
    readonly batch: Pending[],
    readonly outputs: Map<string, HostTensor> | undefined,
    readonly error: unknown,
  ) {}
}

interface Pending {
  readonly from: CallFrom;
  readonly call: BatchCall;
  readonly enqueuedMs: number;
  attempts: number;
  failedSlot: number | undefined;
}

interface BatcherState {
  readonly config: BatcherConfig;
  readonly queue: Pending[];
  timer: TimerHandle | undefined;
  draining: boolean;
  /** The supervisor of the replicas has exited: nothing can run any more. */
  gone: boolean;
  readonly drainWaiters: CallFrom[];
  /** Callers waiting for a retiring slot to finish its batch. */
  readonly retireWaiters: Map<ReplicaSlot, CallFrom[]>;
  /** The slots whose breakers this batcher listens to (a slot added later joins at its ReplicaStarted). */
  readonly listening: Set<ReplicaSlot>;
  readonly unsubscribe: Array<() => void>;
}

export const Batcher: GenServer<BatcherState, BatcherConfig> = {
  init(config: BatcherConfig, context: Context): BatcherState {
    const self = context.self;
    // A restarted batcher owns the slots afresh: a batch its crashed predecessor sent is
    // abandoned (its callers resend), and the replica runs the next batch once that one is done.
    for (const slot of config.slots) slot.busy = false;
    const unsubscribe: Array<() => void> = [];
    // However the batcher exits (killed, crashed, stopped), it stops listening to the breakers.
    context.signal.addEventListener('abort', () => {
      for (const stop of unsubscribe) stop();
    });
    config.onStart?.();
    const state: BatcherState = {
      config,
      queue: [],
      timer: undefined,
      draining: false,
      gone: config.replicasGone?.() ?? false,
      drainWaiters: [],
      retireWaiters: new Map(),
      listening: new Set(),
      unsubscribe,
    };
    listen(state, self, context);
    return state;
  },

  handleCall(
    request: unknown,
    from: CallFrom,
    state: BatcherState,
    context: Context,
  ): CallResult<BatcherState> {
    if (request instanceof BatchCall) {
      const { config } = state;
      if (state.gone) return reply(goneRejection(config), state);
      if (state.queue.length >= config.maxQueueSize) {
        const message = `the queue of model '${config.model}' is full (${config.maxQueueSize} requests); retry later`;
        return reply(new RequestRejected(429, message, 1), state);
      }
      state.queue.push({
        from,
        call: request,
        enqueuedMs: context.system.clock.now(),
        attempts: 0,
        failedSlot: undefined,
      });
      dispatch(state, context);
      return noreply(state);
    }
    if (request instanceof RetireSlot) {
      const slot = request.slot;
      slot.retiring = true;
      if (!slot.busy) return reply(true, state);
      state.retireWaiters.set(slot, [...(state.retireWaiters.get(slot) ?? []), from]);
      return noreply(state);
    }
    if (request instanceof DrainCall) {
      state.draining = true;
      state.drainWaiters.push(from);
      dispatch(state, context);
      settleDrain(state, context);
      return noreply(state);
    }
    return reply(undefined, state);
  },

  handleInfo(message: unknown, state: BatcherState, context: Context): BatcherState {
    if (message instanceof Wake) {
      state.timer = undefined;
    } else if (message instanceof ReplicaStarted) {
      listen(state, context.self, context);
    } else if (message instanceof ReplicasGone) {
      state.gone = true;
      rejectAll(state.queue.splice(0), goneRejection(state.config), context);
    } else if (message instanceof BatchDone) {
      message.slot.busy = false;
      const retired = state.retireWaiters.get(message.slot);
      state.retireWaiters.delete(message.slot);
      for (const from of retired ?? []) context.system.reply(from, true);
      if (message.error === undefined) answerBatch(message.batch, message.outputs!, context);
      else retryBatch(state, message, context);
    }
    dispatch(state, context);
    settleDrain(state, context);
    return state;
  },

  terminate(_reason, state: BatcherState): void {
    for (const unsubscribe of state.unsubscribe) unsubscribe();
  },
};

/** A breaker closing or going half-open may free a replica for the waiting requests. */
function listen(state: BatcherState, self: Pid, context: Context): void {
  for (const slot of state.config.slots) {
    if (state.listening.has(slot)) continue;
    state.listening.add(slot);
    state.unsubscribe.push(slot.breaker.onStateChange(() => context.system.send(self, new Wake())));
  }
}

function goneRejection(config: BatcherConfig): RequestRejected {
  return new RequestRejected(
    503,
    `the replicas of model '${config.model}' failed too often and were stopped`,
  );
}

function rejectAll(items: readonly Pending[], rejection: RequestRejected, context: Context): void {
  for (const item of items) context.system.reply(item.from, rejection);
}

/** Sends every batch that is due to a free replica; arms the delay timer for the next one. */
function dispatch(state: BatcherState, context: Context): void {
  const { config, queue } = state;
  const now = context.system.clock.now();
  dropExpired(state, now, context);
  if (queue.length > 0 && config.slots.every((slot) => slot.breaker.state === 'open')) {
    const message = `every replica of model '${config.model}' is failing (circuit breakers open); retry later`;
    rejectAll(queue.splice(0), new RequestRejected(503, message), context);
  }
  let wakeAtMs = Number.POSITIVE_INFINITY;
  while (queue.length > 0) {
    const head = queue[0];
    const slot = pickSlot(config.slots, head, context);
    if (slot === undefined) break;
    const dueMs = head.enqueuedMs + config.maxQueueDelayMs;
    if (
      dueMs > now &&
      head.attempts === 0 &&
      !state.draining &&
      rowsWaiting(state, head.call.key) < config.maxBatchSize
    ) {
      wakeAtMs = dueMs;
      break;
    }
    send(state, slot, takeBatch(state, head.call.key, slot), context);
  }
  // Wake for the head's queue delay, or for the first deadline of a request still waiting.
  for (const item of queue) wakeAtMs = Math.min(wakeAtMs, item.call.deadlineMs);
  if (wakeAtMs < Number.POSITIVE_INFINITY) armTimer(state, context, wakeAtMs - now);
  config.metrics?.queueDepth.set({ model: config.model }, queue.length);
}

function dropExpired(state: BatcherState, now: number, context: Context): void {
  const expired = state.queue.filter((item) => item.call.deadlineMs <= now);
  if (expired.length === 0) return;
  for (const item of expired) state.queue.splice(state.queue.indexOf(item), 1);
  rejectAll(expired, new RequestRejected(504, 'the request timed out in the queue'), context);
}

/** Another usable replica than the one `item` failed on exists. */
function hasAlternative(slots: readonly ReplicaSlot[], item: Pending): boolean {
  return slots.some(
    (slot) => slot.index !== item.failedSlot && !slot.retiring && slot.breaker.state !== 'open',
  );
}

function allowed(slots: readonly ReplicaSlot[], slot: ReplicaSlot, item: Pending): boolean {
  return item.failedSlot !== slot.index || !hasAlternative(slots, item);
}

/** A free replica that is running now (one being restarted gets nothing) and that `head` may use. */
function pickSlot(slots: readonly ReplicaSlot[], head: Pending, context: Context): ReplicaSlot | undefined {
  return slots.find(
    (slot) =>
      !slot.busy &&
      !slot.retiring &&
      slot.breaker.state !== 'open' &&
      allowed(slots, slot, head) &&
      context.system.whereis(slot.name) !== undefined,
  );
}

function rowsWaiting(state: BatcherState, key: string): number {
  let rows = 0;
  for (const item of state.queue) {
    if (item.call.key !== key) continue;
    rows += item.call.request.rows;
    if (rows >= state.config.maxBatchSize) break;
  }
  return rows;
}

function takeBatch(state: BatcherState, key: string, slot: ReplicaSlot): Pending[] {
  const { queue, config } = state;
  const batch: Pending[] = [];
  let rows = 0;
  for (let index = 0; index < queue.length && rows < config.maxBatchSize; ) {
    const item = queue[index];
    const fits = rows + item.call.request.rows <= config.maxBatchSize;
    if (item.call.key === key && fits && allowed(config.slots, slot, item)) {
      batch.push(item);
      rows += item.call.request.rows;
      queue.splice(index, 1);
    } else index++;
  }
  return batch;
}

function armTimer(state: BatcherState, context: Context, waitMs: number): void {
  const dueAt = context.system.clock.now() + waitMs;
  if (state.timer?.active && state.timer.dueAt <= dueAt) return;
  if (state.timer?.active) context.cancelTimer(state.timer);
  state.timer = context.sendAfter(waitMs, context.self, new Wake());
}

function batchInputs(batch: readonly Pending[]): Map<string, HostTensor> {
  const first = batch[0].call.request.inputs;
  const rows = batch.reduce((total, item) => total + item.call.request.rows, 0);
  const inputs = new Map<string, HostTensor>();
  for (const [name, tensor] of first) {
    const data = concatData(
      tensor.datatype,
      batch.map((item) => item.call.request.inputs.get(name)!.data),
    );
    inputs.set(name, {
      datatype: tensor.datatype,
      shape: batch.length === 1 ? tensor.shape : [rows, ...tensor.shape.slice(1)],
      data,
    });
  }
  return inputs;
}

function send(state: BatcherState, slot: ReplicaSlot, batch: Pending[], context: Context): void {
  const { config } = state;
  const { system, self } = context;
  slot.busy = true;
  const inputs: TensorMap = batchInputs(batch);
  const rows = batch.reduce((total, item) => total + item.call.request.rows, 0);
  config.metrics?.batchSize.observe({ model: config.model }, rows);
  config.onBatch?.(rows);
  slot.breaker
    .call(() =>
      system.call<Map<string, HostTensor>>(slot.name, new RunBatch(inputs), config.replicaCallTimeoutMs),
    )
    .then(
      (outputs) => system.send(self, new BatchDone(slot, batch, outputs, undefined)),
      (error: unknown) => system.send(self, new BatchDone(slot, batch, undefined, error)),
    );
}

/** Splits the batch's outputs by rows, in order: one reply per request. */
function answerBatch(batch: readonly Pending[], outputs: Map<string, HostTensor>, context: Context): void {
  const batchRows = batch.reduce((total, item) => total + item.call.request.rows, 0);
  let start = 0;
  for (const item of batch) {
    const { rows, outputs: names } = item.call.request;
    const mine = new Map<string, HostTensor>();
    for (const name of names) {
      const tensor = outputs.get(name)!;
      const rowSize = tensor.shape.slice(1).reduce((product, dimension) => product * dimension, 1);
      const data = batch.length === 1 ? tensor.data : sliceRows(tensor.data, start, start + rows, rowSize);
      mine.set(name, {
        datatype: tensor.datatype,
        shape: batch.length === 1 ? tensor.shape : [rows, ...tensor.shape.slice(1)],
        data,
      });
    }
    start += rows;
    context.system.reply(item.from, {
      outputs: mine,
      batchRows,
      attempts: item.attempts + 1,
    } satisfies InferResult);
  }
}

/** A failed batch: requeued at the front (in order) for one more try, or answered 500 on a second failure. */
function retryBatch(state: BatcherState, done: BatchDone, context: Context): void {
  const { config } = state;
  // A breaker that refused the call, or a replica gone before the call reached it, ran nothing:
  // the requests wait for a replica, no try spent.
  if (isCircuitOpen(done.error) || (done.error instanceof CallExit && done.error.reason === 'noproc')) {
    state.queue.unshift(...done.batch);
    return;
  }
  config.metrics?.retriedBatches.inc({ model: config.model });
  const again: Pending[] = [];
  const cause = done.error instanceof Error ? done.error.message : String(done.error);
  for (const item of done.batch) {
    if (item.attempts === 0) {
      item.attempts = 1;
      item.failedSlot = done.slot.index;
      again.push(item);
    } else {
      context.system.reply(item.from, new RequestRejected(500, `the model failed on two replicas: ${cause}`));
    }
  }
  state.queue.unshift(...again);
}

function settleDrain(state: BatcherState, context: Context): void {
  if (!state.draining || state.queue.length > 0 || state.config.slots.some((slot) => slot.busy)) return;
  for (const from of state.drainWaiters.splice(0)) context.system.reply(from, true);
}
