/**
 * Process identifiers and references. A pid names its node, so the same calls can later reach
 * processes on other worker threads and machines; it prints as Erlang does: `<0.42.0>`
 * (node index, process number, serial).
 */
export class Pid {
  /** @internal The live process record; cleared when the process exits (fast path for send). */
  process: unknown;

  constructor(
    /** Name of the node that owns the process (for example `zbmd@host`). */
    readonly node: string,
    /** Index of the node as the printing system sees it: 0 is the local node. */
    readonly nodeIndex: number,
    /** Process number, unique on its node. */
    readonly id: number,
    /** Bumped when process numbers wrap; 0 on a fresh node. */
    readonly serial: number,
    /** The scheduler thread of the node the process lives on: 0 is the thread that made the system. */
    readonly thread = 0,
    /**
     * The incarnation (Erlang's creation) of the owning node for a pid of another node; 0 for
     * this node's own pids. A pid of an earlier life never reaches the new one.
     */
    readonly creation = 0,
  ) {
    this.process = undefined;
  }

  /** `<0.42.0>` on thread 0; a process on another thread adds it: `<0.42.0@t1>`. */
  toString(): string {
    const thread = this.thread === 0 ? '' : `@t${this.thread}`;
    return `<${this.nodeIndex}.${this.id}.${this.serial}${thread}>`;
  }

  /** Pids are equal when they name the same process on the same node. */
  equals(other: unknown): boolean {
    return (
      other instanceof Pid &&
      other.id === this.id &&
      other.thread === this.thread &&
      other.node === this.node &&
      other.serial === this.serial &&
      other.creation === this.creation
    );
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Pid${this.toString()}`;
  }
}

/** True when `value` is a `Pid`. */
export function isPid(value: unknown): value is Pid {
  return value instanceof Pid;
}

/** A unique reference (monitor references, call tags); prints as `#Ref<0.17>`. */
export class Ref {
  constructor(
    readonly node: string,
    readonly id: number,
  ) {}

  toString(): string {
    return `#Ref<0.${this.id}>`;
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export function isRef(value: unknown): value is Ref {
  return value instanceof Ref;
}
