import type { Handler } from '../ActorSystem.js';
import { BadArgument, InjectedCrash } from '../errors.js';
import { describe } from './checks.js';
import { CodeUpgrade, ControlMessage } from './delivery.js';
import { DEAD, extraOf, NEW, type ProcessRecord, RUNNABLE, RUNNING, SUSPENDED, WAITING } from './Process.js';
import { Queue } from './Queue.js';
import type { Runtime } from './Runtime.js';
import { crash, terminate } from './signals.js';

/**
 * One run queue and the loop that drains it: a process gets a turn of up to `budget` messages
 * (handlers) or runs until its next receive (bodies). The loop runs in microtasks and yields to
 * the event loop once its time slice is spent, so I/O and host timers are never starved.
 */
export class Scheduler {
  private readonly runQueue = new Queue<ProcessRecord>();
  private loopArmed = false;
  private sliceStart = 0;
  /** Told each time the run queue empties (a thread of several then waits for batches: Ring.ts). */
  onIdle: (() => void) | undefined = undefined;

  constructor(private readonly runtime: Runtime) {}

  /** True when no turn is queued or running. */
  get idle(): boolean {
    return this.runQueue.length === 0 && !this.loopArmed;
  }

  /** Queues a process that just became NEW or RUNNABLE (it is not in the queue: see Process.ts). */
  enqueue(record: ProcessRecord): void {
    this.runQueue.push(record);
    if (!this.loopArmed) this.arm();
  }

  private arm(): void {
    this.loopArmed = true;
    // Microtasks keep latency low, but a chain of them would starve I/O: once the current
    // slice is spent, the next run waits for the event loop.
    if (!this.runtime.deterministic && performance.now() - this.sliceStart > this.runtime.timeSliceMs) {
      setImmediate(this.runFromEventLoop);
    } else {
      queueMicrotask(this.runLoop);
    }
  }

  private readonly runFromEventLoop = (): void => {
    this.sliceStart = performance.now();
    this.runLoop();
  };

  /** Runs turns until the queue is empty or the slice is spent. `loopArmed` stays true meanwhile. */
  private readonly runLoop = (): void => {
    const queue = this.runQueue;
    let turns = 0;
    try {
      while (queue.length > 0) {
        const record = queue.shift()!;
        const state = record.state;
        if (state === RUNNABLE || state === NEW) this.runTurn(record);
        if ((++turns & 63) === 0 && queue.length > 0 && this.sliceSpent(turns)) {
          setImmediate(this.runFromEventLoop);
          return;
        }
      }
      this.loopArmed = false;
      if (this.onIdle !== undefined) this.onIdle();
    } catch (error) {
      // only a runtime bug gets here (user code is caught per turn): keep scheduling, then report
      this.loopArmed = false;
      if (queue.length > 0) this.arm();
      throw error;
    }
  };

  private sliceSpent(turns: number): boolean {
    if (this.runtime.deterministic) return turns >= 4096;
    return performance.now() - this.sliceStart > this.runtime.timeSliceMs;
  }

  private runTurn(record: ProcessRecord): void {
    if (record.behavior !== undefined) this.runHandler(record);
    else this.runBody(record);
  }

  private runHandler(record: ProcessRecord): void {
    const runtime = this.runtime;
    const fresh = record.state === NEW;
    record.state = RUNNING;
    const context = record;
    if (fresh && record.behavior!.init !== undefined && !this.runInit(record)) return;
    const mailbox = record.mailbox;
    const tracer = runtime.tracer;
    for (let budget = runtime.budget; budget > 0 && mailbox.length > 0; budget--) {
      const message = mailbox.shift();
      record.reductions++;
      if (message instanceof ControlMessage) {
        if (message instanceof CodeUpgrade) this.applyUpgrade(record, message.upgrade);
        else message.apply(runtime, record);
        if (record.state === DEAD) return;
        continue;
      }
      if (runtime.faults?.crashBeforeHandle?.(record.pid)) {
        crash(runtime, record, new InjectedCrash(record.pid));
        return;
      }
      if (tracer !== undefined) tracer.handling(record.pid, message);
      let result: unknown;
      try {
        result = record.behavior!.handle(message, context);
      } catch (error) {
        crash(runtime, record, error);
        return;
      }
      if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
        this.suspend(record, result as Promise<unknown>);
        return;
      }
      if (record.state === DEAD) return;
    }
    this.endTurn(record);
  }

  /** Runs `init`; false when the process is now dead or suspended on it. */
  private runInit(record: ProcessRecord): boolean {
    let result: unknown;
    try {
      result = record.behavior!.init!(record);
    } catch (error) {
      crash(this.runtime, record, error);
      return false;
    }
    if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
      this.suspend(record, result as Promise<unknown>);
      return false;
    }
    return record.state !== DEAD;
  }

  private endTurn(record: ProcessRecord): void {
    if (record.mailbox.length > 0) {
      record.state = RUNNABLE;
      this.enqueue(record);
    } else {
      record.state = WAITING;
    }
  }

  /** The process waits for `promise`; if it already died, the promise is only kept from going unhandled. */
  private suspend(record: ProcessRecord, promise: Promise<unknown>): void {
    if (record.state === DEAD) {
      promise.then(undefined, () => {});
      return;
    }
    record.state = SUSPENDED;
    const extra = extraOf(record);
    const suspension = ++extra.suspension;
    promise.then(
      () => {
        if (record.state !== SUSPENDED || extra.suspension !== suspension) return;
        this.endTurn(record);
      },
      (error: unknown) => {
        if (record.state !== SUSPENDED || extra.suspension !== suspension) return;
        crash(this.runtime, record, error);
      },
    );
  }

  private runBody(record: ProcessRecord): void {
    const runtime = this.runtime;
    if (record.state !== NEW) {
      const waiter = record.waiter!;
      record.waiter = undefined;
      record.state = RUNNING;
      if (waiter.message !== undefined) record.reductions++;
      waiter.resolve(waiter.message);
      return;
    }
    record.state = RUNNING;
    let result: unknown;
    try {
      result = record.body!(record);
    } catch (error) {
      crash(runtime, record, error);
      return;
    }
    if (result !== undefined && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        () => terminate(runtime, record, 'normal'),
        (error: unknown) => crash(runtime, record, error),
      );
    } else {
      terminate(runtime, record, 'normal');
    }
  }

  private applyUpgrade(record: ProcessRecord, upgrade: (behavior: any) => any): void {
    let next: unknown;
    try {
      next = upgrade(record.behavior);
    } catch (error) {
      crash(this.runtime, record, error);
      return;
    }
    if (typeof next !== 'object' || next === null || typeof (next as Handler).handle !== 'function') {
      crash(
        this.runtime,
        record,
        new BadArgument(`upgrade of ${record.pid} returned ${describe(next)}, not a handler`),
      );
      return;
    }
    record.behavior = next as ProcessRecord['behavior'];
  }
}
