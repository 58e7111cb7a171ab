/**
 * Process identifiers and references. A pid names its node, so the same calls can later reach
 * processes on other worker threads and machines; it prints as Erlang does: `<0.42.0>`
 * (node index, process number, serial).
 */
export class Pid {
  /** @internal The live process record; cleared when the process exits (fast path for send). */
  process: unknown;
  /** Process number, unique on its node. */
  readonly id: number;
  /** @internal What this pid shares with the other pids of its node and thread (see `PidHome`). */
  readonly home: PidHome;

  constructor(
    /** Name of the node that owns the process (for example `zbmd@host`). */
    node: string,
    /** Index of the node as the printing system sees it: 0 is the local node. */
    nodeIndex: number,
    /** Process number, unique on its node. */
    id: number,
    /** Bumped when process numbers wrap; 0 on a fresh node. */
    serial: number,
    /** The scheduler thread of the node the process lives on: 0 is the thread that made the system. */
    thread = 0,
    /**
     * The incarnation (Erlang's creation) of the owning node for a pid of another node; 0 for
     * this node's own pids. A pid of an earlier life never reaches the new one.
     */
    creation = 0,
  ) {
    this.process = undefined;
    this.id = id;
    this.home = homeOf(node, nodeIndex, serial, thread, creation);
  }

  /** Name of the node that owns the process (for example `zbmd@host`). */
  get node(): string {
    return this.home.node;
  }

  /** Index of the node as the printing system sees it: 0 is the local node. */
  get nodeIndex(): number {
    return this.home.nodeIndex;
  }

  /** Bumped when process numbers wrap; 0 on a fresh node. */
  get serial(): number {
    return this.home.serial;
  }

  /** The scheduler thread of the node the process lives on: 0 is the thread that made the system. */
  get thread(): number {
    return this.home.thread;
  }

  /**
   * The incarnation (Erlang's creation) of the owning node for a pid of another node; 0 for
   * this node's own pids. A pid of an earlier life never reaches the new one.
   */
  get creation(): number {
    return this.home.creation;
  }

  /** `<0.42.0>` on thread 0; a process on another thread adds it: `<0.42.0@t1>`. */
  toString(): string {
    const thread = this.thread === 0 ? '' : `@t${this.thread}`;
    return `<${this.nodeIndex}.${this.id}.${this.serial}${thread}>`;
  }

  /** Pids are equal when they name the same process on the same node. */
  equals(other: unknown): boolean {
    if (!(other instanceof Pid) || other.id !== this.id) return false;
    const home = this.home;
    const otherHome = other.home;
    return (
      otherHome === home ||
      (otherHome.thread === home.thread &&
        otherHome.node === home.node &&
        otherHome.serial === home.serial &&
        otherHome.creation === home.creation)
    );
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Pid${this.toString()}`;
  }
}

/**
 * @internal
 * The parts of a pid that all pids of one node, thread and incarnation share, so a pid is three
 * fields (its process, its number, this): a node with a million live processes has a million
 * pids. Interned by `homeOf`; one is made per distinct (node, index, serial, thread, creation)
 * ever seen and kept for the life of the module (a few dozen bytes each).
 */
export class PidHome {
  constructor(
    readonly node: string,
    readonly nodeIndex: number,
    readonly serial: number,
    readonly thread: number,
    readonly creation: number,
  ) {}

  matches(node: string, nodeIndex: number, serial: number, thread: number, creation: number): boolean {
    return (
      this.thread === thread &&
      this.nodeIndex === nodeIndex &&
      this.serial === serial &&
      this.creation === creation &&
      this.node === node
    );
  }
}

/** Homes by node name; `lastHome` is the one found last (a spawn finds its runtime's at once). */
const homes = new Map<string, PidHome[]>();
let lastHome = new PidHome('', -1, 0, 0, 0);

function homeOf(node: string, nodeIndex: number, serial: number, thread: number, creation: number): PidHome {
  if (lastHome.matches(node, nodeIndex, serial, thread, creation)) return lastHome;
  let list = homes.get(node);
  if (list === undefined) {
    list = [];
    homes.set(node, list);
  }
  for (const home of list)
    if (home.matches(node, nodeIndex, serial, thread, creation)) return (lastHome = home);
  const home = new PidHome(node, nodeIndex, serial, thread, creation);
  list.push(home);
  lastHome = home;
  return home;
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
