import { type MessagePort, receiveMessageOnPort, type TransferListItem } from 'node:worker_threads';
import type { PeerTransport, TransportSink } from './Transport.js';

/**
 * The cross-thread transport of one node's scheduler threads: per ordered pair of threads a
 * single-producer single-consumer ring of Float64 slots in a SharedArrayBuffer, plus the pair's
 * MessagePort beside it.
 *
 * A batch of operations (Remote.ts) whose slots are all numbers (sends of numbers, most exit
 * signals, links, monitors, DOWNs) is written into the ring as `[seq, length, ...slots]`; any
 * other batch (objects to structured-clone, strings, transfer lists, a batch larger than the
 * free space) is posted on the port as the batch with `seq` pushed at its end. The receiver
 * applies batches in `seq` order, merging the two streams: when the ring's next entry is not the
 * expected one, the expected one was posted on the port before it and is taken at once with
 * `receiveMessageOnPort`. So the order of one sender to one receiver holds, and nothing ever
 * blocks: a full ring only sends the batch the slower way.
 *
 * Waking: each thread has, on its own cache line, a doorbell word that producers increment after
 * writing into a ring or posting on a port, a state word saying how the thread waits (spinning:
 * nobody needs notifying; blocked in `Atomics.wait` on the doorbell; or on the event loop, with
 * `Atomics.waitAsync` on a third word, which does not keep the event loop alive: a worker is kept
 * alive by its ports, thread 0 is not), and that third word. See `RingHub`.
 */

/** Ring slots: at most this many per ring (2 MiB), at least `MIN_RING_SLOTS`; see `ringSlots`. */
export const MAX_RING_SLOTS = 1 << 18;
export const MIN_RING_SLOTS = 1 << 12;
/** All the rings of one node together use at most this many slots (32 MiB). */
export const RING_SLOT_BUDGET = 1 << 22;

const HEAD = 0; // Int32 index of the producer's counter
const TAIL = 16; // the consumer's counter, on its own cache line
const DATA_OFFSET = 128; // bytes

/** The ring size for a node of `threads` threads: a power of two within the budget. */
export function ringSlots(threads: number): number {
  const rings = Math.max(1, threads * (threads - 1));
  let slots = MAX_RING_SLOTS;
  while (slots > MIN_RING_SLOTS && slots * rings > RING_SLOT_BUDGET) slots >>= 1;
  return slots;
}

/** Int32 words per thread in `wakeWords` (64 bytes: threads' doorbells do not share a cache line). */
const WAKE_STRIDE = 16;
const DOORBELL = 0; // bumped by every producer, after it wrote
const STATE = 1; // how the thread waits: SPINNING, ON_LOOP or BLOCKED
const LOOP_BELL = 2; // what the thread's Atomics.waitAsync waits on
/** Producers need not notify: the thread is looking at its doorbell (or running, about to). */
const SPINNING = 0;
/** The thread may be on its event loop: bump and notify `LOOP_BELL`. */
const ON_LOOP = 1;
/** The thread blocks in `Atomics.wait` on its doorbell: notify `DOORBELL`. */
const BLOCKED = 2;

/** The shared words of a node: a doorbell, a state and a loop bell per thread. */
export function wakeWords(threads: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * WAKE_STRIDE * threads));
}

/** What each end of a pair finds first on its port: its ring to write and its ring to read. */
interface RingSetup {
  readonly zbmdRings: true;
  readonly out: SharedArrayBuffer;
  readonly in: SharedArrayBuffer;
}

/**
 * Makes the rings of a new pair and queues each end's setup on its port (the ports may then be
 * transferred: queued messages travel with them).
 */
export function pairRings(port1: MessagePort, port2: MessagePort, slots: number): void {
  const a = new SharedArrayBuffer(DATA_OFFSET + 8 * slots);
  const b = new SharedArrayBuffer(DATA_OFFSET + 8 * slots);
  const toPort1: RingSetup = { zbmdRings: true, out: a, in: b };
  const toPort2: RingSetup = { zbmdRings: true, out: b, in: a };
  port2.postMessage(toPort1); // arrives at port1
  port1.postMessage(toPort2);
}

class RingView {
  readonly index: Int32Array;
  readonly slots: Float64Array;
  readonly mask: number;
  /** This end's copy of its own counter (head for a producer, tail for a consumer). */
  cursor: number;

  constructor(buffer: SharedArrayBuffer, producer: boolean) {
    this.index = new Int32Array(buffer, 0, DATA_OFFSET / 4);
    this.slots = new Float64Array(buffer, DATA_OFFSET);
    this.mask = this.slots.length - 1;
    this.cursor = Atomics.load(this.index, producer ? HEAD : TAIL);
  }
}

/** One inbound stream: a peer's ring and port, merged in sequence order. */
class Inbound {
  ring: RingView | undefined = undefined;
  /** Port batches that arrived as 'message' events before their turn. */
  readonly queued: unknown[][] = [];
  expected = 0;
  dropped = false;

  constructor(
    readonly peer: number,
    readonly port: MessagePort,
  ) {}

  /** True when the ring holds an entry not yet read. */
  ready(): boolean {
    const ring = this.ring;
    return ring !== undefined && Atomics.load(ring.index, HEAD) !== ring.cursor;
  }

  /** The next batch in order, or undefined when none has arrived yet. */
  next(): unknown[] | undefined {
    const queued = this.queued;
    if (queued.length > 0 && queued[0][queued[0].length - 1] === this.expected)
      return this.take(queued.shift()!);
    const ring = this.ring;
    if (ring === undefined || Atomics.load(ring.index, HEAD) === ring.cursor) {
      if (queued.length > 0) throw outOfOrder(this.peer);
      return undefined;
    }
    const tail = ring.cursor;
    const slots = ring.slots;
    const mask = ring.mask;
    if (slots[tail & mask] === this.expected) {
      const length = slots[(tail + 1) & mask];
      const batch = new Array<unknown>(length);
      for (let i = 0, at = tail + 2; i < length; i++, at++) {
        // integers come back as small integers (not boxed doubles): what the port would give
        const value = slots[at & mask];
        const integer = value | 0;
        batch[i] = integer === value && (integer !== 0 || 1 / value > 0) ? integer : value;
      }
      ring.cursor = (tail + 2 + length) | 0;
      Atomics.store(ring.index, TAIL, ring.cursor);
      this.expected++;
      return batch;
    }
    // the expected batch went by the port before the ring's next one was written: it is there now
    if (queued.length > 0) throw outOfOrder(this.peer);
    for (;;) {
      const pulled = receiveMessageOnPort(this.port);
      if (pulled === undefined) throw outOfOrder(this.peer);
      const batch = this.accept(pulled.message);
      if (batch !== undefined) return this.take(batch);
    }
  }

  private take(batch: unknown[]): unknown[] {
    const seq = batch.pop();
    if (seq !== this.expected) throw outOfOrder(this.peer);
    this.expected++;
    return batch;
  }

  /** A port message: a batch (returned) or this end's ring setup (taken, undefined returned). */
  accept(message: unknown): unknown[] | undefined {
    if (Array.isArray(message)) return message;
    const setup = message as RingSetup;
    if (setup?.zbmdRings === true) this.ring = new RingView(setup.in, false);
    return undefined;
  }
}

/** Posts batches to one peer: into the ring when they fit and are all numbers, else on the port. */
export class RingTransport implements PeerTransport {
  private ring: RingView | undefined = undefined;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly hub: RingHub,
    readonly peer: number,
    readonly port: MessagePort,
  ) {}

  setRing(buffer: SharedArrayBuffer): void {
    this.ring = new RingView(buffer, true);
  }

  post(batch: unknown[], transfer: readonly TransferListItem[]): void {
    if (this.closed) return;
    const seq = this.seq++;
    const ring = this.ring;
    const length = batch.length;
    if (ring !== undefined && transfer.length === 0 && allNumbers(batch)) {
      const head = ring.cursor;
      const used = (head - Atomics.load(ring.index, TAIL)) | 0;
      if (used + length + 2 <= ring.slots.length) {
        const slots = ring.slots;
        const mask = ring.mask;
        slots[head & mask] = seq;
        slots[(head + 1) & mask] = length;
        for (let i = 0, at = head + 2; i < length; i++, at++) slots[at & mask] = batch[i] as number;
        ring.cursor = (head + 2 + length) | 0;
        Atomics.store(ring.index, HEAD, ring.cursor);
        this.hub.ring(this.peer);
        return;
      }
    }
    batch.push(seq);
    this.port.postMessage(batch, transfer as never);
    this.hub.ring(this.peer); // a peer blocked in Atomics.wait takes it off the port at once
  }

  close(): void {
    this.closed = true;
    this.port.close();
  }
}

function outOfOrder(peer: number): Error {
  return new Error(`zbmd: batches from thread ${peer} arrived out of order (a runtime bug)`);
}

function allNumbers(batch: unknown[]): boolean {
  for (let i = 0; i < batch.length; i++) if (typeof batch[i] !== 'number') return false;
  return true;
}

/** How a scheduler thread that ran out of work waits for the next batch (see `RingHub`). */
export interface IdleSettings {
  /** Longest busy spin on the doorbell, in microseconds (adapts below it; 0: never spin). */
  readonly spinUs: number;
  /** Longest blocking wait (`Atomics.wait`) after the spin, in microseconds (0: never block). */
  readonly waitUs: number;
}

/** Defaults of `ActorSystemOptions.idleSpinUs` / `idleWaitUs` (see README "Actors on every core"). */
export const DEFAULT_IDLE_SPIN_US = 50;
export const DEFAULT_IDLE_WAIT_US = 0;
/** The most either setting may be: 100 ms. */
export const MAX_IDLE_US = 100_000;
/** Bursts without a spin after the spin adapted down to nothing (then the full spin is tried). */
const SPIN_PAUSE_BURSTS = 16;
/** Bursts without a blocking wait after one timed out. */
const WAIT_PAUSE_BURSTS = 64;

/**
 * One thread's end of every pair: its inbound streams, its doorbell, and how it waits.
 *
 * A thread that runs out of work (its run queue just emptied, or it just posted to a peer) goes
 * through three stages, each bounded, the way Erlang's schedulers busy-wait before they sleep
 * (`+sbwt`):
 * 1. a busy spin on its doorbell of up to `spinUs` (in a microtask, after flushing its own
 *    outboxes): an answer within it costs no wake-up at all. It adapts: it halves after a spin
 *    that found nothing and doubles back after one that did, so a thread whose peers answer
 *    slowly stops burning CPU; once it is below 2 us the next 16 bursts do not spin, then the
 *    full spin is tried again;
 * 2. a blocking `Atomics.wait` of up to `waitUs` (from the event loop, after every microtask
 *    ran), taken only when nothing but this thread's own ports, timers and stdout/stderr could
 *    bring work (`process.getActiveResourcesInfo()`): no CPU, and a futex wake-up instead of an event-loop
 *    one. A timer due meanwhile runs up to `waitUs` late. A wait that times out cost a wake-up
 *    for nothing: the next 64 bursts skip this stage, then it is tried again;
 * 3. `Atomics.waitAsync` (always armed underneath): the thread is quiet, its event loop free.
 * Every producer bumps the doorbell after writing into a ring or posting on a port, and notifies
 * it unless the consumer is spinning.
 */
export class RingHub {
  private readonly inbound: (Inbound | undefined)[];
  private waiting = false;
  private spinArmed = false;
  private waitArmed = false;
  private drainArmed = false;
  /** Current spin, in microseconds (adapts between 0 and `settings.spinUs`). */
  private spinUs: number;
  /** Bursts to skip spinning for, after the spin dropped to nothing. */
  private spinCooldown = 0;
  /** Current blocking wait, in microseconds: `settings.waitUs`, or 0 after one timed out. */
  private waitUs: number;
  /** Bursts to skip blocking for, after the wait dropped to nothing. */
  private waitCooldown = 0;
  /** Ports that keep this thread's event loop alive (they show in the active resources). */
  private refPorts = 0;
  /** This thread's words in `wake`. */
  private readonly base: number;

  constructor(
    thread: number,
    private readonly wake: Int32Array,
    private readonly sink: TransportSink,
    /** True when this thread has no turn queued or running. */
    private readonly idle: () => boolean,
    private readonly settings: IdleSettings = { spinUs: DEFAULT_IDLE_SPIN_US, waitUs: DEFAULT_IDLE_WAIT_US },
    /** Posts what this thread's outboxes hold (before it spins for an answer to them). */
    private readonly flush: () => void = () => {},
  ) {
    this.inbound = new Array(wake.length / WAKE_STRIDE).fill(undefined);
    this.base = thread * WAKE_STRIDE;
    this.spinUs = settings.spinUs;
    this.waitUs = settings.waitUs;
  }

  /**
   * Connects peer `peer` over `port` (whose setup message is queued on it): returns the
   * transport to post to it. `keepAlive`: the port keeps this thread's event loop alive.
   */
  connect(peer: number, port: MessagePort, keepAlive: boolean): RingTransport {
    const inbound = new Inbound(peer, port);
    const transport = new RingTransport(this, peer, port);
    const first = receiveMessageOnPort(port)?.message as RingSetup | undefined;
    if (first?.zbmdRings === true) {
      inbound.ring = new RingView(first.in, false);
      transport.setRing(first.out);
    } else if (first !== undefined) {
      const batch = inbound.accept(first);
      if (batch !== undefined) {
        inbound.queued.push(batch);
        this.armDrain();
      }
    }
    this.inbound[peer] = inbound;
    port.on('message', (message: unknown) => {
      if (inbound.dropped) return;
      const batch = inbound.accept(message);
      if (batch !== undefined) inbound.queued.push(batch);
      this.armDrain();
    });
    if (keepAlive) this.refPorts++;
    else port.unref();
    this.sleep();
    return transport;
  }

  /** Forgets peer `peer`'s inbound stream (the peer is lost: what it sent and we did not read is gone). */
  drop(peer: number): void {
    const inbound = this.inbound[peer];
    if (inbound === undefined) return;
    inbound.dropped = true;
    this.inbound[peer] = undefined;
  }

  /** We wrote into our ring to `peer` or posted on its port: ring its doorbell, then wait for an answer. */
  ring(peer: number): void {
    const wake = this.wake;
    const base = peer * WAKE_STRIDE;
    Atomics.add(wake, base + DOORBELL, 1);
    const state = Atomics.load(wake, base + STATE);
    if (state === ON_LOOP) {
      Atomics.add(wake, base + LOOP_BELL, 1);
      Atomics.notify(wake, base + LOOP_BELL);
    } else if (state === BLOCKED) Atomics.notify(wake, base + DOORBELL);
    this.idleSoon();
  }

  /** This thread ran out of work (the scheduler's run queue emptied): start waiting for more. */
  readonly idleSoon = (): void => {
    if (this.spinArmed) return;
    this.spinArmed = true;
    queueMicrotask(this.spin);
  };

  /** Applies every batch that has arrived, one batch per stream per pass (turns run between passes). */
  private readonly drainAll = (): void => {
    this.drainArmed = false;
    let more = false;
    for (const inbound of this.inbound) {
      if (inbound === undefined) continue;
      const batch = inbound.next();
      if (batch === undefined) continue;
      more = true;
      this.sink.receive(inbound.peer, batch);
    }
    if (more) this.armDrain();
  };

  private armDrain(): void {
    if (this.drainArmed) return;
    this.drainArmed = true;
    // after the turns the last batch made runnable (they were queued as microtasks before this)
    queueMicrotask(this.drainAll);
  }

  private anyReady(): boolean {
    for (const inbound of this.inbound) if (inbound?.ready()) return true;
    return false;
  }

  /** Takes what the peers posted on the ports now, rather than when the event loop gets to it. */
  private pullPorts(): void {
    for (const inbound of this.inbound) {
      if (inbound === undefined) continue;
      for (;;) {
        const pulled = receiveMessageOnPort(inbound.port);
        if (pulled === undefined) break;
        const batch = inbound.accept(pulled.message);
        if (batch !== undefined) inbound.queued.push(batch);
      }
    }
  }

  /** Waits (without blocking) on the loop bell; applies what arrived; waits again. */
  private sleep(): void {
    if (this.waiting) return;
    const wake = this.wake;
    const bell = this.base + LOOP_BELL;
    for (;;) {
      // from here on every producer rings the loop bell; what came before, we look at now
      Atomics.store(wake, this.base + STATE, ON_LOOP);
      const seen = Atomics.load(wake, bell);
      if (this.anyReady()) this.armDrain();
      const result = waitAsync(wake, bell, seen);
      if (result.async) {
        this.waiting = true;
        (result.value as Promise<unknown>).then(this.woken);
        return;
      }
      this.armDrain();
    }
  }

  private readonly woken = (): void => {
    this.waiting = false;
    this.armDrain();
    this.sleep();
  };

  /** Stage 1: flush, then poll the doorbell up to the current spin for an answer. */
  private readonly spin = (): void => {
    this.flush(); // its posts ring doorbells, which would arm this again: still armed now
    this.spinArmed = false;
    if (!this.idle()) return;
    const wake = this.wake;
    const word = this.base + DOORBELL;
    const seen = Atomics.load(wake, word);
    if (this.anyReady()) {
      this.drainAll();
      return;
    }
    let spinUs = this.spinUs;
    // after a pause, try the full spin again: the peers may answer quickly now
    if (spinUs === 0 && this.settings.spinUs > 0 && --this.spinCooldown <= 0) spinUs = this.settings.spinUs;
    if (spinUs > 0) {
      // While spinning, producers need not notify: we look ourselves.
      Atomics.store(wake, this.base + STATE, SPINNING);
      const limit = performance.now() + spinUs / 1000;
      let found = false;
      do {
        if (Atomics.load(wake, word) !== seen) {
          found = true;
          break;
        }
      } while (performance.now() < limit);
      Atomics.store(wake, this.base + STATE, ON_LOOP);
      // found only after the limit: this thread lost its core meanwhile (more threads than free
      // cores), and spinning only kept its peer from running: that counts as a miss
      if (found && performance.now() <= limit) this.spinUs = Math.min(this.settings.spinUs, spinUs * 2);
      else {
        this.spinUs = spinUs >> 1;
        if (this.spinUs < 2) {
          this.spinUs = 0;
          this.spinCooldown = SPIN_PAUSE_BURSTS;
        }
      }
      if (found) {
        this.arrived();
        return;
      }
    }
    // written after our last look, before the flag was back
    if (Atomics.load(wake, word) !== seen) this.arrived();
    else if (this.settings.waitUs > 0 && !this.waitArmed) {
      if (this.waitUs === 0) {
        if (--this.waitCooldown > 0) return;
        this.waitUs = this.settings.waitUs;
      }
      this.waitArmed = true;
      setImmediate(this.block);
    }
  };

  /** Stage 2: from the event loop, block on the doorbell up to `waitUs` if nothing else can bring work. */
  private readonly block = (): void => {
    this.waitArmed = false;
    if (!this.idle() || this.drainArmed || !this.onlyRingsCanWake()) return;
    const wake = this.wake;
    const word = this.base + DOORBELL;
    const seen = Atomics.load(wake, word);
    if (this.anyReady()) {
      this.drainAll();
      return;
    }
    // producers notify the doorbell itself while we block (not the loop bell: no second wake-up)
    Atomics.store(wake, this.base + STATE, BLOCKED);
    const result = Atomics.wait(wake, word, seen, this.waitUs / 1000);
    Atomics.store(wake, this.base + STATE, ON_LOOP);
    if (result !== 'timed-out' || Atomics.load(wake, word) !== seen) {
      this.arrived();
      return;
    }
    // a wait that timed out cost a wake-up for nothing: work comes slower than this, stop blocking
    this.waitUs = 0;
    this.waitCooldown = WAIT_PAUSE_BURSTS;
  };

  /** The doorbell rang: apply what came (from the ports too when the rings hold nothing). */
  private arrived(): void {
    if (!this.anyReady()) this.pullPorts();
    this.drainAll();
  }

  /**
   * True when the event loop holds nothing that could bring work but this thread's own ports,
   * timers and (at most two, stdout and stderr) pipes or terminals.
   */
  private onlyRingsCanWake(): boolean {
    let ports = 0;
    let stdio = 0;
    for (const resource of process.getActiveResourcesInfo()) {
      if (resource === 'MessagePort') ports++;
      else if (resource === 'PipeWrap' || resource === 'TTYWrap') stdio++;
      else if (resource !== 'Timeout') return false;
    }
    return ports <= this.refPorts && stdio <= 2;
  }
}

/** Atomics.waitAsync (Node >= 16; missing from the ES2023 lib types this project compiles against). */
export const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
    ): { async: boolean; value: Promise<unknown> | string };
  }
).waitAsync;
