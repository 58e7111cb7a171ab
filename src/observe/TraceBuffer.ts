/**
 * A bounded ring buffer of trace events (Tiger Style: a limit on everything). At the limit
 * the oldest event goes; `dropped` counts how many went.
 */

/** Events one trace keeps by default. */
export const DEFAULT_TRACE_CAPACITY = 1000;
/** The most events one trace may keep. */
export const MAX_TRACE_CAPACITY = 1_000_000;

export class TraceBuffer<T> {
  private readonly items: T[] = [];
  private start = 0;
  /** Events that fell out of the buffer (the oldest go first). */
  dropped = 0;

  constructor(readonly capacity: number = DEFAULT_TRACE_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_TRACE_CAPACITY) {
      throw new RangeError(
        `trace capacity must be an integer in [1, ${MAX_TRACE_CAPACITY}], got ${capacity}`,
      );
    }
  }

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return;
    }
    this.items[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
    this.dropped++;
  }

  /** The events kept, oldest first (a copy). */
  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }

  clear(): void {
    this.items.length = 0;
    this.start = 0;
  }
}
