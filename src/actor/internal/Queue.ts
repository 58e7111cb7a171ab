/**
 * A growable ring buffer: O(1) push and shift, removal at an index for selective receive.
 * Storage starts empty and doubles on demand, so an idle actor costs no array.
 */
export class Queue<T> {
  private items: (T | undefined)[] = EMPTY as (T | undefined)[];
  private head = 0;
  length = 0;

  push(item: T): void {
    if (this.length === this.items.length) this.grow();
    this.items[(this.head + this.length) & (this.items.length - 1)] = item;
    this.length++;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const items = this.items;
    const item = items[this.head];
    items[this.head] = undefined;
    this.head = (this.head + 1) & (items.length - 1);
    this.length--;
    return item;
  }

  /** The item at position `index` from the oldest (0). */
  at(index: number): T {
    return this.items[(this.head + index) & (this.items.length - 1)] as T;
  }

  /** Removes and returns the item at `index`, keeping the order of the others. */
  removeAt(index: number): T {
    const items = this.items;
    const mask = items.length - 1;
    const item = items[(this.head + index) & mask] as T;
    // shift the shorter side toward the hole
    if (index < this.length / 2) {
      for (let i = index; i > 0; i--) items[(this.head + i) & mask] = items[(this.head + i - 1) & mask];
      items[this.head] = undefined;
      this.head = (this.head + 1) & mask;
    } else {
      for (let i = index; i < this.length - 1; i++)
        items[(this.head + i) & mask] = items[(this.head + i + 1) & mask];
      items[(this.head + this.length - 1) & mask] = undefined;
    }
    this.length--;
    return item;
  }

  /** Index of the oldest item satisfying `predicate`, or -1. */
  findIndex(predicate: (item: T) => boolean): number {
    for (let i = 0; i < this.length; i++) if (predicate(this.at(i))) return i;
    return -1;
  }

  clear(): void {
    this.items = EMPTY as (T | undefined)[];
    this.head = 0;
    this.length = 0;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.length; i++) out.push(this.at(i));
    return out;
  }

  private grow(): void {
    const old = this.items;
    const capacity = old.length === 0 ? 4 : old.length * 2;
    const items = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.length; i++) items[i] = old[(this.head + i) & (old.length - 1)];
    this.items = items;
    this.head = 0;
  }
}

const EMPTY: unknown[] = [];
