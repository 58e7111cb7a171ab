/**
 * Time for the whole runtime comes through a `Clock`, so that restart windows, timeouts and
 * backoff can be tested on a `SimulatedClock` without sleeping.
 *
 * Timers live in one binary heap per clock; a `RealClock` arms a single host timer for the
 * earliest deadline, which keeps `call` timeouts and `sendAfter` cheap (a heap push, not a
 * `setTimeout` each).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { SimulatedClock } from 'zbmd';
 *
 * const clock = new SimulatedClock();
 * let fired = false;
 * clock.setTimer(100, () => { fired = true; });
 * clock.advance(99);
 * assert.equal(fired, false);
 * clock.advance(1);
 * assert.equal(fired, true);
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; monotonic. */
  now(): number;
  /** Runs `callback` once, `delayMs` from now. Returns a handle for `cancelTimer`. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
  /** Cancels a pending timer; returns false when it already fired or was cancelled. */
  cancelTimer(handle: TimerHandle): boolean;
}

/** An opaque timer handle: when it is due, and whether it is still pending. */
export interface TimerHandle {
  readonly dueAt: number;
  readonly active: boolean;
}

class Timer implements TimerHandle {
  active = true;
  constructor(
    readonly dueAt: number,
    readonly sequence: number,
    readonly callback: () => void,
  ) {}
}

/** A min-heap of timers ordered by due time, then by creation order (so ties fire FIFO). */
class TimerHeap {
  private items: Timer[] = [];
  private sequence = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  push(dueAt: number, callback: () => void): Timer {
    const timer = new Timer(dueAt, this.sequence++, callback);
    const items = this.items;
    items.push(timer);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(timer, items[parent])) break;
      items[index] = items[parent];
      index = parent;
    }
    items[index] = timer;
    this.live++;
    return timer;
  }

  cancel(timer: Timer): boolean {
    if (!timer.active) return false;
    timer.active = false;
    this.live--;
    // Cancelled timers stay in the heap and are skipped when they reach the top; compact when
    // they dominate, so a flood of cancelled call timeouts cannot grow the heap without bound.
    if (this.items.length > 1024 && this.live * 4 < this.items.length) this.compact();
    return true;
  }

  /** The earliest live timer, dropping cancelled ones from the top. */
  peek(): Timer | undefined {
    const items = this.items;
    while (items.length > 0 && !items[0].active) this.popTop();
    return items[0];
  }

  /** Removes and returns the earliest live timer if it is due at or before `time`. */
  popDue(time: number): Timer | undefined {
    const top = this.peek();
    if (top === undefined || top.dueAt > time) return undefined;
    this.popTop();
    top.active = false;
    this.live--;
    return top;
  }

  private popTop(): void {
    const items = this.items;
    const last = items.pop()!;
    if (items.length === 0) return;
    let index = 0;
    const length = items.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && before(items[right], items[left]) ? right : left;
      if (!before(items[child], last)) break;
      items[index] = items[child];
      index = child;
    }
    items[index] = last;
  }

  private compact(): void {
    const live = this.items.filter((timer) => timer.active);
    live.sort((a, b) => (before(a, b) ? -1 : 1));
    this.items = live; // a sorted array is a valid heap
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.sequence < b.sequence);
}

function checkDelay(delayMs: number): void {
  if (typeof delayMs !== 'number' || Number.isNaN(delayMs) || delayMs < 0) {
    throw new RangeError(`timer delay must be a number >= 0 (milliseconds), got ${String(delayMs)}`);
  }
}

/** Wall-clock time from `performance.now()`, one host timer for the earliest deadline. */
export class RealClock implements Clock {
  private readonly heap = new TimerHeap();
  private hostTimer: ReturnType<typeof setTimeout> | undefined;
  private hostDueAt = Number.POSITIVE_INFINITY;

  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    checkDelay(delayMs);
    const timer = this.heap.push(this.now() + delayMs, callback);
    if (timer.dueAt < this.hostDueAt) this.arm(timer.dueAt);
    else if (this.heap.size === 1) this.hostTimer?.ref();
    return timer;
  }

  cancelTimer(handle: TimerHandle): boolean {
    // The host timer stays armed: re-arming it on every call timeout that is set and cancelled
    // would cost a setTimeout/clearTimeout pair each time; a host timer that finds nothing due
    // just re-arms for the next live one. With no live timer left it stops holding the process.
    const cancelled = this.heap.cancel(handle as Timer);
    if (cancelled && this.heap.size === 0) this.hostTimer?.unref();
    return cancelled;
  }

  private arm(dueAt: number): void {
    this.disarm();
    this.hostDueAt = dueAt;
    const delay = Math.max(0, dueAt - this.now());
    // Infinity-sized delays are clamped by Node to 1 ms; TIMEOUT_MAX keeps them far away.
    // A pending timer keeps the process alive (so `await system.call(...)` times out rather than
    // the program ending under it); cancelled ones do not.
    this.hostTimer = setTimeout(() => this.fire(), Math.min(delay, 2_147_483_647));
  }

  private disarm(): void {
    if (this.hostTimer !== undefined) clearTimeout(this.hostTimer);
    this.hostTimer = undefined;
    this.hostDueAt = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.hostTimer = undefined;
    this.hostDueAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    for (let timer = this.heap.popDue(now); timer !== undefined; timer = this.heap.popDue(now)) {
      try {
        timer.callback();
      } catch (error) {
        // one failing callback must not stop the others: report it as uncaught, asynchronously
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    const next = this.heap.peek();
    if (next !== undefined) this.arm(next.dueAt);
  }
}

/**
 * A clock that moves only when told to. `advance(ms)` fires every timer due in the window in
 * order of due time, setting `now()` to each timer's due time as it fires, so a timer set by a
 * firing callback inside the window fires too.
 */
export class SimulatedClock implements Clock {
  private readonly heap = new TimerHeap();
  private time: number;

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    checkDelay(delayMs);
    return this.heap.push(this.time + delayMs, callback);
  }

  cancelTimer(handle: TimerHandle): boolean {
    return this.heap.cancel(handle as Timer);
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextTimerAt(): number | undefined {
    return this.heap.peek()?.dueAt;
  }

  /** Number of pending timers. */
  get pendingTimers(): number {
    return this.heap.size;
  }

  /** Fires the earliest timer due at or before `untilMs`, moving time to it. Returns false if none. */
  step(untilMs: number = Number.POSITIVE_INFINITY): boolean {
    const timer = this.heap.popDue(untilMs);
    if (timer === undefined) return false;
    if (timer.dueAt > this.time) this.time = timer.dueAt;
    timer.callback();
    return true;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    checkDelay(ms);
    const target = this.time + ms;
    while (this.step(target)) {
      // fire one timer at a time: callbacks may add timers inside the window
    }
    this.time = target;
  }
}
