/**
 * One node's scheduler threads simulated in one JS thread, for `zbmd simulate threads`
 * (src/fault/threadScenarios.ts). Each simulated thread is a real `ActorSystem` whose real
 * `Remote` (src/actor/internal/Remote.ts) encodes, posts, applies and loses cross-thread
 * operations exactly as on a worker thread; only the transport between them and the clock are
 * simulated:
 *
 * - `SimulatedNetwork` stands for the rings and MessagePorts of ThreadPool.ts: one channel per
 *   pair of thread incarnations, a FIFO per direction (the order of one sender to one receiver is
 *   the order of posts, as the real transports guarantee), every batch structured-cloned, its
 *   delivery time chosen by the seed (one delay per direction and instant, so every batch posted
 *   on a direction in the same instant shares it). A batch reaches a receiving end only once that
 *   end is connected (a booting thread, a peer not yet told of a replacement: they wait, as on a
 *   MessagePort nobody listens to yet), never after the receiver died, and never after the
 *   receiver learned that its sender was lost (what it had not read is gone, as `RingHub.drop`).
 * - A thread dies (`kill`): its code stops at once (its clock drops its timers, nothing it posts
 *   leaves); thread 0 learns it after a seeded delay and does what `ThreadPool.exited` does: its
 *   loads word to 0, `remote.lost(thread)`, a fresh thread with a channel to every live thread,
 *   thread 0 connected at once and every other thread told by `remote.announce` (lost, then the
 *   replacement's endpoint), the replacement booting after a seeded delay.
 *
 * Everything the network did is kept in `wire` (every batch: where, when posted, when delivered
 * or why dropped, the tagged payloads in it) and `losses` (when each thread ran `lost(peer)`),
 * with a creation order for ties: the reference model of the scenario reads these, never the
 * runtime's state.
 */
import { ActorSystem } from '../../actor/ActorSystem.js';
import type { Clock, SimulatedClock, TimerHandle } from '../../actor/Clock.js';
import { Remote, type SharedCounters } from '../../actor/internal/Remote.js';
import { type Runtime, runtimes } from '../../actor/internal/Runtime.js';
import { nameTableMemory } from '../../actor/internal/SharedNames.js';
import { attachRemote } from '../../actor/internal/ThreadPool.js';
import type { PeerTransport } from '../../actor/internal/Transport.js';
import type { Random } from '../../actor/Random.js';

/** Longest real time a simulated thread may take to load the scenario's module at boot. */
export const BOOT_LIMIT_MS = 10_000;

/** A point in the simulated run: the time, then the creation order of the timer that caused it. */
export interface Moment {
  readonly at: number;
  readonly seq: number;
}

/** True when `a` happened before `b` (timers fire by due time, ties by creation order). */
export function before(a: Moment, b: Moment): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * A batch's fate: on its way, applied by its receiver, lost with its receiver, or dropped when
 * its receiver learned that its sender was lost.
 */
export type BatchFate = 'in-flight' | 'delivered' | 'receiver-dead' | 'sender-lost';

/** One batch on the wire, as the scenario's model reads it. */
export interface WireBatch {
  readonly from: number;
  readonly fromIncarnation: number;
  readonly to: number;
  readonly toIncarnation: number;
  readonly postedAt: number;
  readonly dueAt: number;
  /** Creation order of its delivery timer. */
  readonly seq: number;
  fate: BatchFate;
  /** When it was applied by the receiver (its timer, or the receiver's connection). */
  delivered: Moment | undefined;
  /** Top-level slots that are objects with a string `tap` field (the scenario's payloads). */
  readonly payloads: readonly Record<string, unknown>[];
}

/** One scheduler thread's incarnation. */
export class SimulatedThread {
  alive = true;
  /** Its boot finished: its own ends are connected. */
  booted = false;
  diedAt: number | undefined = undefined;
  /** Per peer: the end it posts on (as its `remote.setPeer`). */
  readonly ends: (Direction | undefined)[];

  constructor(
    readonly index: number,
    readonly incarnation: number,
    readonly system: ActorSystem,
    readonly runtime: Runtime,
    readonly remote: Remote,
    readonly clock: ThreadClock,
    threads: number,
  ) {
    this.ends = new Array(threads).fill(undefined);
  }

  get name(): string {
    return `thread ${this.index}#${this.incarnation}`;
  }
}

/**
 * The clock of one simulated thread: the shared simulated clock, except that a dead thread's
 * timers never fire (its code has stopped).
 */
export class ThreadClock implements Clock {
  dead = false;

  constructor(private readonly base: SimulatedClock) {}

  now(): number {
    return this.base.now();
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    return this.base.setTimer(delayMs, () => {
      if (!this.dead) callback();
    });
  }

  cancelTimer(handle: TimerHandle): boolean {
    return this.base.cancelTimer(handle);
  }
}

/** One direction of a channel: batches from `sender` to `receiver`, in order. */
class Direction implements PeerTransport {
  readonly queue: WireBatch[] = [];
  /** Batches that arrived before the receiving end was connected. */
  readonly waiting: { batch: WireBatch; slots: unknown[] }[] = [];
  private readonly slotsOf = new Map<WireBatch, unknown[]>();
  connected = false;
  closed = false;
  private lastDue = 0;
  private instant = Number.NaN;
  private instantDue = 0;
  /** The other direction of the channel (set once both exist). */
  reverse: Direction = this;

  constructor(
    readonly network: SimulatedNetwork,
    /** The channel's number: what an endpoint handed to another thread names. */
    readonly channel: number,
    readonly sender: SimulatedThread,
    readonly receiver: SimulatedThread,
  ) {}

  post(batch: unknown[]): void {
    const network = this.network;
    if (this.closed || !this.sender.alive) return;
    const now = network.clock.now();
    if (now !== this.instant) {
      this.instant = now;
      this.instantDue = Math.max(
        this.lastDue,
        now + network.drawDelay(this.sender.index, this.receiver.index),
      );
    }
    // what a MessagePort does: a copy; the ring copies numbers (transfer lists are only copied here)
    const slots = structuredClone(batch);
    const dueAt = this.instantDue;
    this.lastDue = dueAt;
    const entry: WireBatch = {
      from: this.sender.index,
      fromIncarnation: this.sender.incarnation,
      to: this.receiver.index,
      toIncarnation: this.receiver.incarnation,
      postedAt: now,
      dueAt,
      seq: network.nextSeq(),
      fate: 'in-flight',
      delivered: undefined,
      payloads: slots.filter(
        (slot): slot is Record<string, unknown> =>
          typeof slot === 'object' && slot !== null && typeof (slot as { tap?: unknown }).tap === 'string',
      ),
    };
    network.wire.push(entry);
    this.queue.push(entry);
    this.slotsOf.set(entry, slots);
    network.clock.setTimer(dueAt - now, () => network.fire(entry.seq, () => this.arrive(entry)));
  }

  close(): void {
    this.closed = true;
  }

  private arrive(entry: WireBatch): void {
    if (entry.fate !== 'in-flight') return; // dropped meanwhile
    if (this.queue[0] !== entry)
      throw new Error(`simulated network: a batch ${this.describe()} overtook another (a simulator bug)`);
    this.queue.shift();
    const slots = this.slotsOf.get(entry)!;
    this.slotsOf.delete(entry);
    if (!this.receiver.alive) {
      entry.fate = 'receiver-dead';
      return;
    }
    if (!this.connected) {
      this.waiting.push({ batch: entry, slots });
      return;
    }
    this.apply(entry, slots);
  }

  /** The receiving end starts listening: what waited is applied, in order. */
  connect(): void {
    this.connected = true;
    while (this.waiting.length > 0 && this.receiver.alive) {
      const { batch, slots } = this.waiting.shift()!;
      if (batch.fate !== 'in-flight') continue;
      this.network.waited++;
      this.apply(batch, slots);
    }
  }

  private apply(entry: WireBatch, slots: unknown[]): void {
    entry.fate = 'delivered';
    entry.delivered = this.network.moment();
    this.network.deliveries++;
    this.receiver.remote.receive(this.sender.index, slots);
  }

  /** The receiver learned that the sender is lost: nothing more from it is read. */
  dropInFlight(): void {
    for (const entry of this.queue) entry.fate = 'sender-lost';
    for (const { batch } of this.waiting) if (batch.fate === 'in-flight') batch.fate = 'sender-lost';
    this.queue.length = 0;
    this.waiting.length = 0;
    this.slotsOf.clear();
    this.closed = true;
  }

  get busy(): boolean {
    return this.queue.length > 0;
  }

  private describe(): string {
    return `from ${this.sender.name} to ${this.receiver.name}`;
  }
}

/** Seeded settings of one simulated node. */
export interface SimulatedNodeOptions {
  readonly threads: number;
  readonly clock: SimulatedClock;
  readonly random: Random;
  /** Longest delay of a batch, in ms (each direction and instant draws 0..maxDelayMs). */
  readonly maxDelayMs: number;
  /** ms between a thread's death and thread 0 learning it. */
  readonly detectDelayMs: () => number;
  /** ms a replacement thread takes to boot. */
  readonly bootDelayMs: () => number;
  /** Module whose `Idle` export each thread spawns at boot (so spawns by URL need no load). */
  readonly warmModule: string;
  readonly nodeName?: string;
}

/** A `lost(peer)` a thread ran. */
export interface Loss extends Moment {
  readonly thread: number;
  readonly incarnation: number;
  readonly peer: number;
}

/** The network and the threads of one simulated node. */
export class SimulatedNetwork {
  readonly clock: SimulatedClock;
  readonly wire: WireBatch[] = [];
  readonly losses: Loss[] = [];
  /** Current incarnation of each thread. */
  readonly threads: SimulatedThread[] = [];
  /** Every incarnation ever started, oldest first. */
  readonly incarnations: SimulatedThread[] = [];
  readonly counters: SharedCounters;
  /** Thread 0's view (as `ThreadPool.workers`): false once it learned a worker died, until it starts the next. */
  private readonly known: boolean[];
  private readonly channels = new Map<number, [Direction, Direction]>();
  private nextChannel = 1;
  private seqCounter = 0;
  private firing: Moment = { at: 0, seq: -1 };
  private readonly booting: Promise<void>[] = [];
  deliveries = 0;
  /** Batches that waited for their receiving end to connect. */
  waited = 0;
  replacements = 0;

  constructor(readonly options: SimulatedNodeOptions) {
    this.clock = options.clock;
    const threads = options.threads;
    this.counters = {
      ids: new Int32Array(new SharedArrayBuffer(4 * threads)).fill(1),
      loads: new Int32Array(new SharedArrayBuffer(4 * threads)),
      names: nameTableMemory(),
      epochs: new Int32Array(new SharedArrayBuffer(4 * threads)),
    };
    this.known = new Array(threads).fill(true);
  }

  /** Starts every thread, connected to every other, and waits for their boot. */
  async start(): Promise<void> {
    for (let index = 0; index < this.options.threads; index++) this.threads.push(this.create(index, 0));
    for (let a = 0; a < this.threads.length; a++)
      for (let b = a + 1; b < this.threads.length; b++) {
        const [ab, ba] = this.channel(this.threads[a], this.threads[b]);
        this.setEnd(this.threads[a], b, ab);
        this.setEnd(this.threads[b], a, ba);
      }
    await Promise.all(this.threads.map((thread) => this.boot(thread)));
  }

  get system0(): ActorSystem {
    return this.threads[0].system;
  }

  nextSeq(): number {
    return this.seqCounter++;
  }

  /** The moment of the event running now (the timer that fired, or the driver's own step). */
  moment(): Moment {
    return this.firing.at === this.clock.now() ? this.firing : { at: this.clock.now(), seq: this.seqCounter };
  }

  /** Runs a timer callback of the simulation, remembering its moment. */
  fire(seq: number, callback: () => void): void {
    this.firing = { at: this.clock.now(), seq };
    callback();
  }

  /** A timer of the simulation itself (a death, a detection, the driver's steps). */
  schedule(delayMs: number, callback: () => void): Moment {
    const seq = this.nextSeq();
    this.clock.setTimer(delayMs, () => this.fire(seq, callback));
    return { at: this.clock.now() + delayMs, seq };
  }

  /** The delay of the batches one direction posts in one instant (tests may replace it). */
  drawDelay(_from: number, _to: number): number {
    return this.options.random.nextInt(this.options.maxDelayMs + 1);
  }

  /** Thread `index` dies now (a worker; thread 0 is the node itself). */
  kill(index: number): void {
    const thread = this.threads[index];
    if (index === 0 || !thread.alive) throw new Error(`simulated node: cannot kill ${thread.name}`);
    thread.alive = false;
    thread.diedAt = this.clock.now();
    thread.clock.dead = true;
    for (const end of thread.ends) end?.close();
    this.schedule(this.options.detectDelayMs(), () => this.detected(index, thread));
  }

  /** Thread 0 learns that `dead` exited: `ThreadPool.exited`. */
  private detected(index: number, dead: SimulatedThread): void {
    if (this.threads[index] !== dead) return;
    this.known[index] = false;
    Atomics.store(this.counters.loads, index, 0);
    const zero = this.threads[0];
    zero.remote.lost(index);
    // `ThreadPool.start(thread, lost)`: a channel to every live thread, thread 0 connected at once
    const fresh = this.create(index, dead.incarnation + 1);
    this.threads[index] = fresh;
    this.replacements++;
    for (let peer = 0; peer < this.threads.length; peer++) {
      if (peer === index || (peer !== 0 && !this.known[peer])) continue;
      const other = this.threads[peer];
      const [toPeer, fromPeer] = this.channel(fresh, other);
      this.setEnd(fresh, peer, toPeer); // its end listens once it booted
      if (peer === 0) this.setEnd(zero, index, fromPeer);
      else zero.remote.announce(peer, index, index, { simulatedEndpoint: fromPeer.channel } as never);
    }
    this.known[index] = true;
    this.schedule(this.options.bootDelayMs(), () => {
      if (fresh.alive) this.booting.push(this.boot(fresh));
    });
  }

  /** A channel between two incarnations: [a to b, b to a]. */
  private channel(a: SimulatedThread, b: SimulatedThread): [Direction, Direction] {
    const id = this.nextChannel++;
    const pair: [Direction, Direction] = [new Direction(this, id, a, b), new Direction(this, id, b, a)];
    pair[0].reverse = pair[1];
    pair[1].reverse = pair[0];
    this.channels.set(id, pair);
    return pair;
  }

  /** `thread` posts to `peer` on `end`, and listens to the other direction once booted. */
  private setEnd(thread: SimulatedThread, peer: number, end: Direction): void {
    thread.ends[peer] = end;
    thread.remote.setPeer(peer, end);
    if (thread.booted) end.reverse.connect();
  }

  /** A real ActorSystem made thread `index` of this node (what `attachWorker` does on a worker). */
  private create(index: number, incarnation: number): SimulatedThread {
    const clock = new ThreadClock(this.clock);
    const system = new ActorSystem({
      clock,
      deterministic: true,
      nodeName: this.options.nodeName ?? 'zbmd@sim',
      onCrash: () => {},
    });
    const runtime = runtimes.get(system)!;
    const remote = new Remote(runtime, index, this.options.threads, this.counters);
    attachRemote(runtime, remote);
    const thread = new SimulatedThread(
      index,
      incarnation,
      system,
      runtime,
      remote,
      clock,
      this.options.threads,
    );
    if (index === 0) remote.onRemoteCrash = (pid, reason) => runtime.reportCrash(pid, reason);
    else runtime.onCrash = (pid, reason) => remote.reportCrash(pid, reason);
    remote.onLost = (peer) => {
      const end = thread.ends[peer];
      if (end !== undefined) end.reverse.dropInFlight();
      thread.ends[peer] = undefined;
      const now = this.moment();
      this.losses.push({ thread: index, incarnation, peer, at: now.at, seq: now.seq });
    };
    remote.onPeer = (peer, endpoint) => {
      const id = (endpoint as { simulatedEndpoint?: number })?.simulatedEndpoint;
      const pair = id === undefined ? undefined : this.channels.get(id);
      if (pair === undefined) throw new Error('simulated network: a peer endpoint that was never made');
      const end = pair[0].sender === thread ? pair[0] : pair[1];
      this.setEnd(thread, peer, end);
    };
    this.incarnations.push(thread);
    return thread;
  }

  /**
   * Boots `thread`: loads the scenario's module on it (a spawn by URL is then synchronous, so
   * real module loading never races simulated time), then connects its ends.
   */
  private async boot(thread: SimulatedThread): Promise<void> {
    const pid = thread.system.spawn({ module: this.options.warmModule, export: 'Idle' });
    // real time bounds only this wait (a module that never loads), never what the run does
    const started = performance.now();
    while (thread.system.processInfo(pid)?.status !== 'waiting') {
      if (performance.now() - started > BOOT_LIMIT_MS || thread.system.processInfo(pid) === undefined)
        throw new Error(`simulated node: ${thread.name} could not load ${this.options.warmModule}`);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    thread.system.exit(pid, 'kill');
    if (!thread.alive) return;
    thread.booted = true;
    for (const end of thread.ends) if (end !== undefined) end.reverse.connect();
    thread.remote.settleBoot(); // as attachWorker does once a worker's ports are connected
  }

  /** Lets every thread run until none has work at this instant (boots included). */
  async settle(): Promise<void> {
    for (let round = 0; round < 100_000; round++) {
      while (this.booting.length > 0) await this.booting.shift();
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.booting.length === 0 && this.threads.every((thread) => thread.runtime.scheduler.idle)) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.booting.length === 0 && this.threads.every((thread) => thread.runtime.scheduler.idle))
          return;
      }
    }
    throw new Error('simulated node: the threads were still busy after 100000 rounds');
  }

  /** Moves the clock timer by timer up to `untilMs`, settling after each. */
  async runUntil(untilMs: number): Promise<void> {
    await this.settle();
    while (this.clock.step(untilMs)) await this.settle();
    if (this.clock.now() < untilMs) this.clock.advance(untilMs - this.clock.now());
    await this.settle();
  }

  /** True while a batch is on its way. */
  get inFlight(): boolean {
    for (const pair of this.channels.values()) if (pair[0].busy || pair[1].busy) return true;
    return false;
  }

  /** The `lost(peer)` that `thread` (its current or given incarnation) ran, if any. */
  lossAt(thread: number, incarnation: number, peer: number): Loss | undefined {
    return this.losses.find(
      (loss) => loss.thread === thread && loss.incarnation === incarnation && loss.peer === peer,
    );
  }

  /** Ends every thread (after a run). */
  close(): void {
    for (const thread of this.incarnations) {
      thread.clock.dead = true;
      if (thread.alive) thread.system.shutdown();
      thread.alive = false;
    }
  }
}
