import type { TransferListItem } from 'node:worker_threads';
import { CallRequest } from '../Call.js';
import type { TimerHandle } from '../Clock.js';
import { DownMessage, type ExitReason } from '../ExitReason.js';
import { AlreadyRegistered, BadArgument, CallExit, CallTimeout, MailboxFull } from '../errors.js';
import { Pid, Ref } from '../Pid.js';
import { ForwardedCallFrom } from './calls.js';
import { describe } from './checks.js';
import { encode, encodeReason, type PidCodec, revive } from './codec.js';
import { deliver, deliverSignalMessage } from './delivery.js';
import { DEAD, type ExitObserver, extraOf, type ProcessRecord } from './Process.js';
import type { Runtime } from './Runtime.js';
import { ownerId, ownerThread, ownerWord, SharedNames } from './SharedNames.js';
import { signal, unwatch, watch } from './signals.js';
import type { PeerTransport, TransportSink } from './Transport.js';

/**
 * The part of a node's runtime that reaches pids living elsewhere (other scheduler threads).
 * Every remote operation is a few slots in the outbox of its peer; outboxes are flushed once per
 * microtask checkpoint (or when one grows past `FLUSH_AT` slots), so messages travel in batches.
 * Pids are resolved on arrival through `exported`: a local process whose pid has left the
 * thread, by process number.
 */

/** Operation codes; each operation is its code followed by a fixed number of slots. */
export enum Op {
  Send = 1, // target, message
  Exit = 2, // target, from, reason
  Link = 3, // target, from
  Unlink = 4, // target, from
  LinkExit = 5, // target, from, reason
  Monitor = 6, // target, watcher, refId
  Demonitor = 7, // target, refId
  Down = 8, // watcher, refId, target, reason
  Call = 9, // target, caller (0: none), callId, request
  Reply = 10, // callId, value
  CallExit = 11, // callId, reason
  CallFull = 12, // callId, capacity
  Spawn = 13, // id, spec (null: refused at the spawner, the id will never exist)
  Crash = 14, // pid, reason (to thread 0)
  NameAdd = 15, // name, id
  NameRemove = 16, // name, id
  Lost = 17, // thread (control, from thread 0)
  Peer = 18, // thread, transport, epoch (control, from thread 0)
  Sync = 19, // round: answer with SyncReply once every earlier operation to the asker is posted
  SyncReply = 20, // round
}

/** Operations addressed to a process of the receiving thread (their first slot is its id), besides Send. */
const TARGETED: ReadonlySet<Op> = new Set([Op.Exit, Op.Link, Op.Unlink, Op.Monitor, Op.Demonitor, Op.Call]);

/** Slots of an outbox after which it is posted at once rather than at the next checkpoint. */
export const FLUSH_AT = 16_384;

/** What a spawn on another thread sends: the code by module URL and export name. */
export interface SpawnSpec {
  readonly module: string;
  readonly export: string;
  readonly args: unknown[];
  readonly trapExit: boolean;
  readonly name: string | undefined;
  readonly mailbox: { capacity?: number; overflow?: string } | undefined;
  /** Process number (on the spawning thread) of the process to link to; 0 for none. */
  readonly link: number;
}

/**
 * Shared per-thread counters: next process number and live processes, indexed by thread; and the
 * memory of the node's name table (SharedNames.ts).
 */
export interface SharedCounters {
  readonly ids: Int32Array;
  readonly loads: Int32Array;
  readonly names: SharedArrayBuffer;
  /** Per thread, how many times it was replaced (thread 0 bumps it when it loses the thread). */
  readonly epochs: Int32Array;
}

interface RemoteCall {
  readonly server: Pid | string;
  readonly thread: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: TimerHandle | undefined;
}

export class Remote implements PidCodec, TransportSink {
  readonly exported = new Map<number, ProcessRecord>();
  /** Names registered on other threads (this thread's own are in the registry), for sends by name. */
  readonly remoteNames = new Map<string, Pid>();
  /** Who holds each name of the node: the one authority for register (SharedNames.ts). */
  readonly names: SharedNames;
  /**
   * Names this thread claimed for its spawns on other threads that have not been registered there
   * yet (`thread:id` -> name): freed here if that thread is lost with the spawn on its way.
   */
  private readonly namedSpawns = new Map<string, string>();
  /** Per peer, the epoch (incarnation) this thread's transport to it reaches. */
  private readonly epochs: number[];
  /**
   * Per peer, ids this thread allocated for it while it still took a lost incarnation for the
   * current one (its epoch had moved on): their spawns went to the dead thread, so the current one
   * is told, once this thread reaches it, that they will never come (Op.Spawn with no spec).
   */
  private readonly staleSpawns = new Map<number, number[]>();
  private readonly peers: (PeerTransport | undefined)[];
  private readonly outboxes: unknown[][];
  private readonly transfers: TransferListItem[][];
  private flushArmed = false;
  private readonly calls = new Map<number, RemoteCall>();
  private nextCallId = 1;
  /** Monitors other threads hold on local processes: `${thread}:${refId}` -> where it is watched. */
  private readonly monitorsIn = new Map<string, { record: ProcessRecord; key: number }>();
  /** Called when a peer is lost, after its processes' links and monitors fired (ThreadPool replaces it). */
  onLost: ((peer: number) => void) | undefined = undefined;
  /** A new peer's transport endpoint arrived from thread 0 (ThreadPool.ts wires it). */
  onPeer: ((peer: number, endpoint: unknown) => void) | undefined = undefined;
  /** Thread 0 only: crash reports from the other threads. */
  onRemoteCrash: ((pid: Pid, reason: ExitReason) => void) | undefined = undefined;
  /**
   * Ids are allocated per target thread (`counters.ids[thread]`), by this thread for its own
   * spawns and by a spawning thread for a spawn here, whose Op.Spawn then travels. Every id below
   * `createdBelow` has been created here; `createdAbove` holds the ones created above it, out of
   * allocation order. An id allocated but in neither is a spawn still on its way: operations for
   * it from a third thread (which got the pid from the spawner and can overtake its Op.Spawn) wait
   * in `parked` and run when it arrives, as in OTP, where a pid only exists once its process does.
   */
  private createdBelow: number;
  private readonly createdAbove = new Set<number>();
  private readonly parked = new Map<number, (() => void)[]>();
  /** Open rounds that settle, after a thread's loss, which awaited spawns will never come. */
  private readonly rounds: { id: number; limit: number; waiting: Set<number> }[] = [];
  private nextRound = 1;

  constructor(
    readonly runtime: Runtime,
    readonly thread: number,
    readonly threads: number,
    readonly counters: SharedCounters,
    settledBelow?: number,
    epochs?: readonly number[],
  ) {
    this.peers = new Array(threads).fill(undefined);
    this.outboxes = Array.from({ length: threads }, () => []);
    this.transfers = Array.from({ length: threads }, () => []);
    // Ids allocated before this incarnation was started are settled: their operations get noproc.
    // `settledBelow` is the counter when thread 0 started it (a worker boots later, and spawns
    // allocated for it meanwhile are still to come: `settleBoot` sorts them out).
    this.createdBelow = settledBelow ?? Atomics.load(counters.ids, thread);
    this.names = new SharedNames(counters.names);
    this.epochs = Array.from(
      { length: threads },
      (_, peer) => epochs?.[peer] ?? Atomics.load(counters.epochs, peer),
    );
  }

  setPeer(peer: number, transport: PeerTransport | undefined): void {
    this.peers[peer] = transport;
  }

  // ---------------------------------------------------------------------------------------------
  // Pids

  allocateId(thread: number): number {
    return Atomics.add(this.counters.ids, thread, 1);
  }

  /** Process `id` of this thread exists now (or its spawn failed): run what waited for it. */
  created(id: number): void {
    if (id === this.createdBelow) {
      let next = id + 1;
      while (this.createdAbove.delete(next)) next++;
      this.createdBelow = next;
    } else if (id > this.createdBelow) this.createdAbove.add(id);
    if (this.parked.size === 0) return; // the common case: nothing waits
    const waiting = this.parked.get(id);
    if (waiting === undefined) return;
    this.parked.delete(id);
    for (const operation of waiting) operation();
  }

  /** True if `id` was allocated to this thread and its process has not been created here yet (callers found no exported record). */
  private awaited(id: number): boolean {
    return (
      id >= this.createdBelow &&
      !this.createdAbove.has(id) &&
      id < Atomics.load(this.counters.ids, this.thread)
    );
  }

  /** Parks `operation` if it targets an awaited spawn; true if it did. */
  private parkFor(id: number, operation: () => void): boolean {
    if (!this.awaited(id)) return false;
    const waiting = this.parked.get(id);
    if (waiting === undefined) this.parked.set(id, [operation]);
    else waiting.push(operation);
    return true;
  }

  exportPid(pid: Pid): void {
    if (pid.thread !== this.thread) return;
    const record = pid.process as ProcessRecord | undefined;
    if (record !== undefined) this.exportRecord(record);
  }

  exportRecord(record: ProcessRecord): void {
    const extra = extraOf(record);
    if (extra.exported) return;
    extra.exported = true;
    this.exported.set(record.pid.id, record);
  }

  importPid(thread: number, id: number, serial: number, node: string): Pid {
    if (thread === this.thread) {
      if (id === 0) return this.runtime.rootPid;
      return this.exported.get(id)?.pid ?? new Pid(node, 0, id, serial, thread);
    }
    return new Pid(node, 0, id, serial, thread);
  }

  private pidOn(thread: number, id: number): Pid {
    return new Pid(this.runtime.nodeName, 0, id, 0, thread);
  }

  peerUp(thread: number): boolean {
    return this.peers[thread] !== undefined;
  }

  isRemote(pid: Pid): boolean {
    return pid.thread !== this.thread;
  }

  checkThread(pid: Pid, operation: string): void {
    if (pid.thread < 0 || pid.thread >= this.threads || !Number.isInteger(pid.thread))
      throw new BadArgument(`${operation}: ${pid} names thread ${pid.thread}; this node has ${this.threads}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Outgoing operations

  private post(thread: number, ...slots: unknown[]): void {
    const outbox = this.outboxes[thread];
    for (const slot of slots) outbox.push(slot);
    if (outbox.length >= FLUSH_AT) this.flushOne(thread);
    else if (!this.flushArmed) {
      this.flushArmed = true;
      queueMicrotask(this.flush);
    }
  }

  /** Posts every non-empty outbox: one batch per peer. */
  readonly flush = (): void => {
    this.flushArmed = false;
    for (let thread = 0; thread < this.threads; thread++)
      if (this.outboxes[thread].length > 0) this.flushOne(thread);
  };

  private flushOne(thread: number): void {
    const batch = this.outboxes[thread];
    const transfer = this.transfers[thread];
    this.outboxes[thread] = [];
    if (transfer.length > 0) this.transfers[thread] = [];
    const peer = this.peers[thread];
    if (peer === undefined) return; // the thread is gone: like messages to a lost node
    try {
      peer.post(batch, transfer);
    } catch (error) {
      // only a value the codec let through and the port refused gets here
      this.runtime.counters.messagesDropped += batch.length;
      process.stderr.write(`zbmd: a batch to thread ${thread} could not be posted: ${String(error)}\n`);
    }
  }

  send(to: Pid, message: unknown, transfer: readonly TransferListItem[] | undefined): void {
    this.checkThread(to, 'send');
    let encoded = encode(message, this);
    if (transfer !== undefined && transfer.length > 0) {
      this.checkTransfer(transfer);
      // Detach the sender's buffers now (a move within the thread costs no copy), so the sender
      // cannot write into memory that is on its way; the port moves them again at the flush.
      encoded = structuredClone(encoded, { transfer: transfer as ArrayBuffer[] });
      // Every buffer of the clone is private to this message now: all of them move with it.
      const buffers: ArrayBuffer[] = [];
      collectBuffers(encoded, buffers, 0);
      this.transfers[to.thread].push(...buffers);
    }
    // the hot path: three slots pushed straight into the outbox (no rest-argument array)
    const outbox = this.outboxes[to.thread];
    outbox.push(Op.Send, to.id, encoded);
    if (outbox.length >= FLUSH_AT) this.flushOne(to.thread);
    else if (!this.flushArmed) {
      this.flushArmed = true;
      queueMicrotask(this.flush);
    }
  }

  private checkTransfer(transfer: readonly TransferListItem[]): void {
    if (!Array.isArray(transfer))
      throw new BadArgument(`send: transfer must be an array, got ${describe(transfer)}`);
    for (const item of transfer) {
      if (!(item instanceof ArrayBuffer))
        throw new BadArgument(
          `send: transfer lists ArrayBuffers (typed array .buffer), got ${describe(item)}`,
        );
      if (item.byteLength === 0 && (item as ArrayBuffer & { detached?: boolean }).detached === true)
        throw new BadArgument('send: a buffer in transfer is already detached (moved before)');
    }
  }

  exit(from: Pid, to: Pid, reason: ExitReason): void {
    this.checkThread(to, 'exit');
    this.exportPid(from);
    this.post(to.thread, Op.Exit, to.id, from.id, encodeReason(reason, this));
  }

  link(record: ProcessRecord, to: Pid): void {
    this.checkThread(to, 'link');
    const links = (extraOf(record).remoteLinks ??= new Map());
    const key = linkKey(to.thread, to.id);
    if (links.has(key)) return;
    links.set(key, to);
    this.exportRecord(record);
    this.post(to.thread, Op.Link, to.id, record.pid.id);
  }

  unlink(record: ProcessRecord, to: Pid): void {
    if (record.extra?.remoteLinks?.delete(linkKey(to.thread, to.id)) !== true) return;
    this.post(to.thread, Op.Unlink, to.id, record.pid.id);
  }

  monitor(record: ProcessRecord, target: Pid): Ref {
    this.checkThread(target, 'monitor');
    const ref = new Ref(this.runtime.nodeName, this.runtime.nextRefId());
    (extraOf(record).remoteMonitors ??= new Map()).set(ref.id, { ref, pid: target });
    this.exportRecord(record);
    this.post(target.thread, Op.Monitor, target.id, record.pid.id, ref.id);
    return ref;
  }

  /** Removes a monitor held on another thread; false if `ref` is not one. */
  demonitor(record: ProcessRecord, ref: Ref): boolean {
    const entry = record.extra?.remoteMonitors?.get(ref.id);
    if (entry === undefined || entry.ref !== ref) return false;
    record.extra!.remoteMonitors!.delete(ref.id);
    this.post(entry.pid.thread, Op.Demonitor, entry.pid.id, ref.id);
    return true;
  }

  call(
    caller: ProcessRecord | undefined,
    server: Pid,
    request: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    this.checkThread(server, 'call');
    let encoded: unknown;
    try {
      encoded = encode(request, this, 'request');
    } catch (error) {
      return Promise.reject(error);
    }
    if (caller !== undefined) this.exportRecord(caller);
    const callId = this.nextCallId++;
    return new Promise((resolve, reject) => {
      const pending: RemoteCall = { server, thread: server.thread, resolve, reject, timer: undefined };
      this.calls.set(callId, pending);
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        pending.timer = this.runtime.clock.setTimer(timeoutMs, () => {
          if (this.calls.delete(callId)) reject(new CallTimeout(server, timeoutMs));
        });
      }
      this.post(server.thread, Op.Call, server.id, caller?.pid.id ?? 0, callId, encoded);
    });
  }

  /** Spawns `spec` on `thread` and returns the new pid at once (the process starts there). */
  spawn(thread: number, spec: SpawnSpec, linkTo: ProcessRecord | undefined): Pid {
    const args = encode(spec.args, this, 'args') as unknown[];
    const name = spec.name;
    if (name !== undefined) {
      const holder = this.nameHolder(name);
      if (holder !== undefined) throw new AlreadyRegistered(name, holder);
    }
    const id = this.allocateId(thread);
    const pid = this.pidOn(thread, id);
    // allocated after thread 0 replaced that thread, by a thread not yet told: this spawn goes to
    // the dead incarnation, and the current one must learn that this id will never exist
    const stale = Atomics.load(this.counters.epochs, thread) !== this.epochs[thread];
    if (name !== undefined) {
      // the spawner takes the name for the new pid, so that the spawn fails here, at once, if
      // another thread took it in the meantime; the target thread registers it under that claim
      const holder = this.names.claim(name, ownerWord(thread, id));
      if (holder !== undefined) {
        this.post(thread, Op.Spawn, id, null); // the id is settled there: it will never exist
        if (stale) this.staleSpawn(thread, -id); // (negative: not counted in the loads)
        throw new AlreadyRegistered(name, this.ownerPid(name, holder));
      }
      this.namedSpawns.set(linkKey(thread, id), name);
    }
    if (stale) this.staleSpawn(thread, id);
    Atomics.add(this.counters.loads, thread, 1);
    if (linkTo !== undefined) {
      (extraOf(linkTo).remoteLinks ??= new Map()).set(linkKey(thread, id), pid);
      this.exportRecord(linkTo);
    }
    this.post(thread, Op.Spawn, id, { ...spec, args, link: linkTo?.pid.id ?? 0 });
    if (name !== undefined) this.remoteNames.set(name, pid); // its thread tells the others
    return pid;
  }

  // ---------------------------------------------------------------------------------------------
  // Names (the registry asks; SharedNames decides)

  /** The holder of `name` anywhere on the node, as the shared table says now. */
  nameHolder(name: string): Pid | undefined {
    const owner = this.names.holder(name);
    return owner === undefined ? undefined : this.ownerPid(name, owner);
  }

  /** Takes `name` for the local process `record`; returns the holder if another process has it. */
  claimName(name: string, record: ProcessRecord): Pid | undefined {
    const owner = this.names.claim(name, ownerWord(this.thread, record.pid.id));
    return owner === undefined ? undefined : this.ownerPid(name, owner);
  }

  private ownerPid(name: string, owner: bigint): Pid {
    const thread = ownerThread(owner);
    const id = ownerId(owner);
    if (thread === this.thread) {
      const local = this.runtime.registry.holder(name)?.pid;
      if (local !== undefined && local.id === id) return local;
    }
    const known = this.remoteNames.get(name);
    return known !== undefined && known.thread === thread && known.id === id ? known : this.pidOn(thread, id);
  }

  /** The thread with the fewest live processes (ties: the lowest index). */
  leastLoaded(): number {
    const loads = this.counters.loads;
    let best = 0;
    for (let thread = 1; thread < this.threads; thread++)
      if (Atomics.load(loads, thread) < Atomics.load(loads, best)) best = thread;
    return best;
  }

  nameAdded(name: string, record: ProcessRecord): void {
    this.exportRecord(record);
    this.broadcast(Op.NameAdd, name, record.pid.id);
  }

  nameRemoved(name: string, record: ProcessRecord): void {
    // freed before the exit signals and DOWNs are posted: whoever learns of the exit can take it
    this.names.release(name, ownerWord(this.thread, record.pid.id));
    this.broadcast(Op.NameRemove, name, record.pid.id);
  }

  private broadcast(...slots: unknown[]): void {
    for (let thread = 0; thread < this.threads; thread++)
      if (thread !== this.thread) this.post(thread, ...slots);
  }

  /** Thread 0: tells thread `to` that thread `peer` is lost and gives it the replacement's endpoint. */
  announce(to: number, lost: number | undefined, peer: number, endpoint: TransferListItem): void {
    if (lost !== undefined) this.post(to, Op.Lost, lost);
    this.transfers[to].push(endpoint);
    this.post(to, Op.Peer, peer, endpoint, Atomics.load(this.counters.epochs, peer));
  }

  private staleSpawn(thread: number, id: number): void {
    const stale = this.staleSpawns.get(thread);
    if (stale === undefined) this.staleSpawns.set(thread, [id]);
    else stale.push(id);
  }

  /** Thread `peer`'s incarnation of epoch `epoch` is reachable now: tell it of the stale spawns. */
  private reached(peer: number, epoch: number): void {
    this.epochs[peer] = epoch;
    const stale = this.staleSpawns.get(peer);
    if (stale === undefined || epoch !== Atomics.load(this.counters.epochs, peer)) return;
    this.staleSpawns.delete(peer);
    for (const entry of stale) {
      const id = Math.abs(entry);
      this.post(peer, Op.Spawn, id, null);
      if (entry > 0) Atomics.sub(this.counters.loads, peer, 1); // it never runs there
      const key = linkKey(peer, id);
      const name = this.namedSpawns.get(key);
      if (name === undefined) continue;
      this.namedSpawns.delete(key);
      this.names.release(name, ownerWord(peer, id));
      if (this.remoteNames.get(name)?.id === id) this.remoteNames.delete(name);
    }
  }

  reportCrash(pid: Pid, reason: ExitReason): void {
    this.post(0, Op.Crash, pid.id, encodeReason(reason, this));
  }

  /** A local process that other threads know about exited: tell its remote links and monitors. */
  exited(record: ProcessRecord, reason: ExitReason): void {
    Atomics.sub(this.counters.loads, this.thread, 1);
    const extra = record.extra;
    if (extra === undefined) return;
    if (extra.exported) this.exported.delete(record.pid.id);
    if (extra.remoteLinks !== undefined && extra.remoteLinks.size > 0) {
      const encoded = encodeReason(reason, this);
      for (const pid of extra.remoteLinks.values())
        this.post(pid.thread, Op.LinkExit, pid.id, record.pid.id, encoded);
      extra.remoteLinks.clear();
    }
    if (extra.remoteMonitors !== undefined) {
      for (const [refId, { pid }] of extra.remoteMonitors) this.post(pid.thread, Op.Demonitor, pid.id, refId);
      extra.remoteMonitors.clear();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming operations

  receive(from: number, batch: unknown[]): void {
    const length = batch.length;
    let index = 0;
    while (index < length) {
      const op = batch[index] as Op;
      if (op === Op.Send) {
        this.receiveSend(batch[index + 1] as number, batch[index + 2]);
        index += 3;
      } else {
        index = this.receiveOther(from, op, batch, index);
      }
    }
  }

  private receiveSend(target: number, message: unknown): void {
    const record = this.exported.get(target);
    if (record === undefined && this.parkFor(target, () => this.receiveSend(target, message))) return;
    const runtime = this.runtime;
    runtime.counters.messagesSent++;
    if (record === undefined || record.state === DEAD) return;
    const value = typeof message === 'object' && message !== null ? revive(message, this) : message;
    try {
      deliver(runtime, record, value);
    } catch (error) {
      // a full `reject` mailbox: the sender is on another thread and cannot be told at once, so
      // it acts as drop-newest, counted here (README "Actors on every core", limits)
      if (!(error instanceof MailboxFull)) throw error;
      runtime.counters.messagesDropped++;
    }
  }

  private receiveOther(from: number, op: Op, batch: unknown[], index: number): number {
    const a = batch[index + 1];
    const b = batch[index + 2];
    const c = batch[index + 3];
    const d = batch[index + 4];
    // operations for a process whose spawn is still on its way wait for it (see `created`)
    if (TARGETED.has(op) && this.exported.get(a as number) === undefined) {
      const slots = batch.slice(
        index,
        index + (op === Op.Exit || op === Op.Monitor ? 4 : op === Op.Call ? 5 : 3),
      );
      if (this.parkFor(a as number, () => this.receiveOther(from, op, slots, 0))) return index + slots.length;
    }
    switch (op) {
      case Op.Exit:
        this.onExit(from, a as number, b as number, c);
        return index + 4;
      case Op.Link:
        this.onLink(from, a as number, b as number);
        return index + 3;
      case Op.Unlink:
        this.exported.get(a as number)?.extra?.remoteLinks?.delete(linkKey(from, b as number));
        return index + 3;
      case Op.LinkExit:
        this.onLinkExit(from, a as number, b as number, c);
        return index + 4;
      case Op.Monitor:
        this.onMonitor(from, a as number, b as number, c as number);
        return index + 4;
      case Op.Demonitor:
        this.onDemonitor(from, b as number);
        return index + 3;
      case Op.Down:
        this.onDown(from, a as number, b as number, c as number, d);
        return index + 5;
      case Op.Call:
        this.onCall(from, a as number, b as number, c as number, d);
        return index + 5;
      case Op.Reply:
        this.settleCall(a as number, (pending) => pending.resolve(revive(b, this)));
        return index + 3;
      case Op.CallExit:
        this.settleCall(a as number, (pending) =>
          pending.reject(new CallExit(pending.server, revive(b, this) as ExitReason)),
        );
        return index + 3;
      case Op.CallFull:
        this.settleCall(a as number, (pending) =>
          pending.reject(new MailboxFull(pending.server as Pid, b as number)),
        );
        return index + 3;
      case Op.Spawn:
        this.onSpawn(from, a as number, b as SpawnSpec | null);
        return index + 3;
      case Op.Crash:
        this.onRemoteCrash?.(this.pidOn(from, a as number), revive(b, this) as ExitReason);
        return index + 3;
      case Op.NameAdd:
        this.remoteNames.set(a as string, this.pidOn(from, b as number));
        if (this.namedSpawns.size > 0) this.namedSpawns.delete(linkKey(from, b as number));
        return index + 3;
      case Op.NameRemove:
        if (this.remoteNames.get(a as string)?.id === b) this.remoteNames.delete(a as string);
        return index + 3;
      case Op.Lost:
        this.lost(a as number);
        return index + 2;
      case Op.Peer:
        this.onPeer?.(a as number, b);
        this.reached(a as number, c as number);
        return index + 4;
      case Op.Sync:
        this.post(from, Op.SyncReply, a);
        return index + 2;
      case Op.SyncReply:
        this.settleRound(a as number, from);
        return index + 2;
      default:
        throw new Error(`zbmd: unknown cross-thread operation ${String(op)} (a runtime bug)`);
    }
  }

  private onExit(from: number, target: number, sender: number, reason: unknown): void {
    const record = this.exported.get(target);
    if (record === undefined) return;
    signal(this.runtime, record, this.pidOn(from, sender), revive(reason, this) as ExitReason, false);
  }

  private onLink(from: number, target: number, sender: number): void {
    const record = this.exported.get(target);
    if (record === undefined || record.state === DEAD) {
      // Erlang: linking to a process that does not exist gives the linker an exit signal noproc
      this.post(from, Op.LinkExit, sender, target, 'noproc');
      return;
    }
    (extraOf(record).remoteLinks ??= new Map()).set(linkKey(from, sender), this.pidOn(from, sender));
  }

  private onLinkExit(from: number, target: number, sender: number, reason: unknown): void {
    const record = this.exported.get(target);
    if (record === undefined || record.extra?.remoteLinks?.delete(linkKey(from, sender)) !== true) return;
    signal(this.runtime, record, this.pidOn(from, sender), revive(reason, this) as ExitReason, true);
  }

  private onMonitor(from: number, target: number, watcher: number, refId: number): void {
    const record = this.exported.get(target);
    if (record === undefined || record.state === DEAD) {
      this.post(from, Op.Down, watcher, refId, target, 'noproc');
      return;
    }
    const observer = new RemoteMonitor(this, from, watcher, refId);
    const key = watch(this.runtime, record, observer);
    this.monitorsIn.set(linkKey(from, refId), { record, key });
  }

  private onDemonitor(from: number, refId: number): void {
    const entry = this.monitorsIn.get(linkKey(from, refId));
    if (entry === undefined) return;
    this.monitorsIn.delete(linkKey(from, refId));
    unwatch(entry.record, entry.key);
  }

  /** @see RemoteMonitor */
  monitorFired(thread: number, watcher: number, refId: number, pid: Pid, reason: ExitReason): void {
    this.monitorsIn.delete(linkKey(thread, refId));
    this.post(thread, Op.Down, watcher, refId, pid.id, encodeReason(reason, this));
  }

  private onDown(from: number, watcher: number, refId: number, target: number, reason: unknown): void {
    const record = this.exported.get(watcher);
    const entry = record?.extra?.remoteMonitors?.get(refId);
    if (record === undefined || entry === undefined || record.state === DEAD) return;
    record.extra!.remoteMonitors!.delete(refId);
    const pid = entry.pid.id === target && entry.pid.thread === from ? entry.pid : this.pidOn(from, target);
    deliverSignalMessage(
      this.runtime,
      record,
      new DownMessage(entry.ref, pid, revive(reason, this) as ExitReason),
    );
  }

  private onCall(from: number, target: number, caller: number, callId: number, request: unknown): void {
    const record = this.exported.get(target);
    if (record === undefined || record.state === DEAD) {
      this.post(from, Op.CallExit, callId, 'noproc');
      return;
    }
    const handle = new RemoteCallFrom(
      this,
      from,
      callId,
      caller === 0 ? undefined : this.pidOn(from, caller),
    );
    handle.target = record;
    handle.watchId = watch(this.runtime, record, handle);
    try {
      deliver(this.runtime, record, new CallRequest(revive(request, this), handle));
    } catch (error) {
      if (!(error instanceof MailboxFull)) throw error;
      handle.settled = true;
      unwatch(record, handle.watchId);
      this.post(from, Op.CallFull, callId, error.capacity);
    }
  }

  /** @see RemoteCallFrom */
  replied(thread: number, callId: number, value: unknown): void {
    this.post(thread, Op.Reply, callId, encode(value, this, 'reply'));
  }

  callServerExited(thread: number, callId: number, reason: ExitReason): void {
    this.post(thread, Op.CallExit, callId, encodeReason(reason, this));
  }

  private settleCall(callId: number, settle: (pending: RemoteCall) => void): void {
    const pending = this.calls.get(callId);
    if (pending === undefined) return; // timed out already: a late reply is dropped
    this.calls.delete(callId);
    if (pending.timer !== undefined) this.runtime.clock.cancelTimer(pending.timer);
    settle(pending);
  }

  private onSpawn(from: number, id: number, spec: SpawnSpec | null): void {
    if (spec === null) {
      this.created(id); // a spawn refused at the spawner (its name was taken): nothing comes
      return;
    }
    const linkPid = spec.link === 0 ? undefined : this.pidOn(from, spec.link);
    let record: ProcessRecord;
    try {
      record = this.runtime.spawnCode(
        spec.module,
        spec.export,
        revive(spec.args, this) as unknown[],
        {
          trapExit: spec.trapExit,
          name: spec.name,
          mailbox: spec.mailbox as never,
        },
        undefined,
        id,
      );
    } catch (error) {
      // the spawn failed here: the linked spawner learns it through the link, as from a crash
      Atomics.sub(this.counters.loads, this.thread, 1);
      if (spec.name !== undefined) this.names.release(spec.name, ownerWord(this.thread, id));
      if (linkPid !== undefined) this.post(from, Op.LinkExit, spec.link, id, encodeReason(error, this));
      this.runtime.reportCrash(this.pidOn(this.thread, id), error as ExitReason);
      this.created(id); // what waited for it now finds no process: noproc
      return;
    }
    this.exportRecord(record);
    if (linkPid !== undefined) {
      const extra = extraOf(record);
      (extra.remoteLinks ??= new Map()).set(linkKey(from, spec.link), linkPid);
      extra.linkedSpawner = linkPid;
    }
    this.created(id);
  }

  // ---------------------------------------------------------------------------------------------
  // A lost thread

  /**
   * Thread `peer` is gone: every link and monitor to its processes fires with `noconnection`,
   * calls to it fail with `CallExit('noconnection')`, its names are forgotten.
   */
  lost(peer: number): void {
    this.peers[peer] = undefined;
    this.outboxes[peer] = [];
    this.transfers[peer] = [];
    for (const [callId, pending] of this.calls) {
      if (pending.thread !== peer) continue;
      this.calls.delete(callId);
      if (pending.timer !== undefined) this.runtime.clock.cancelTimer(pending.timer);
      pending.reject(new CallExit(pending.server, 'noconnection'));
    }
    for (const [name, pid] of this.remoteNames) if (pid.thread === peer) this.remoteNames.delete(name);
    // its names are free again: thread 0 frees all of them (before it starts the replacement),
    // each thread those it claimed for spawns there that were still on their way
    if (this.thread === 0) {
      this.names.releaseThread(peer);
      // the next incarnation (thread 0 reaches it at once): spawns allocated from now on by
      // threads that still take the lost one for current are stale (see `spawn`)
      this.epochs[peer] = Atomics.add(this.counters.epochs, peer, 1) + 1;
    }
    for (const [key, name] of this.namedSpawns) {
      if (!key.startsWith(`${peer}:`)) continue;
      this.namedSpawns.delete(key);
      this.names.release(name, ownerWord(peer, Number(key.slice(key.indexOf(':') + 1))));
    }
    for (const [key, entry] of this.monitorsIn) {
      if (!key.startsWith(`${peer}:`)) continue;
      this.monitorsIn.delete(key);
      unwatch(entry.record, entry.key);
    }
    for (const record of [...this.runtime.live]) this.loseLinks(record, peer);
    for (const round of [...this.rounds]) this.settleRound(round.id, peer);
    this.openRound();
    this.onLost?.(peer);
  }

  /**
   * Once this incarnation is connected (its boot): ids allocated for this thread between its
   * start and now came either from a thread that knew of it (their spawn is on its way here) or
   * from one that still took this thread for its dead predecessor (their spawn went to the dead
   * thread and never comes). A round settles which: what waits for the second kind gets noproc.
   */
  settleBoot(): void {
    if (Atomics.load(this.counters.ids, this.thread) > this.createdBelow) this.openRound();
  }

  /**
   * After a loss, some awaited spawns may never come (their spawner died with them in flight).
   * Every live thread is asked to answer once all it posted here before the question is on its
   * way (per-pair order): a spawn allocated before the round began by a thread that answers has
   * then arrived, so what is still awaited below the round's limit was the lost thread's, and
   * what waits for it gets noproc.
   */
  private openRound(): void {
    const waiting = new Set<number>();
    for (let peer = 0; peer < this.threads; peer++)
      if (peer !== this.thread && this.peers[peer] !== undefined) waiting.add(peer);
    const round = { id: this.nextRound++, limit: Atomics.load(this.counters.ids, this.thread), waiting };
    this.rounds.push(round);
    for (const peer of waiting) this.post(peer, Op.Sync, round.id);
    if (waiting.size === 0) this.settleRound(round.id, -1);
  }

  private settleRound(id: number, peer: number): void {
    const at = this.rounds.findIndex((round) => round.id === id);
    if (at < 0) return;
    const round = this.rounds[at];
    round.waiting.delete(peer);
    if (round.waiting.size > 0) return;
    this.rounds.splice(at, 1);
    for (let awaited = this.createdBelow; awaited < round.limit; awaited++)
      if (!this.createdAbove.has(awaited)) this.created(awaited);
  }

  private loseLinks(record: ProcessRecord, peer: number): void {
    const extra = record.extra;
    if (extra === undefined) return;
    if (extra.remoteMonitors !== undefined) {
      for (const [refId, entry] of extra.remoteMonitors) {
        if (entry.pid.thread !== peer) continue;
        extra.remoteMonitors.delete(refId);
        deliverSignalMessage(this.runtime, record, new DownMessage(entry.ref, entry.pid, 'noconnection'));
      }
    }
    if (extra.remoteLinks !== undefined) {
      for (const [key, pid] of extra.remoteLinks) {
        if (pid.thread !== peer) continue;
        extra.remoteLinks.delete(key);
        signal(this.runtime, record, pid, 'noconnection', true);
        if (record.state === DEAD) return;
      }
    }
  }
}

/** The ArrayBuffers in a message (after `structuredClone`: all private to it). */
function collectBuffers(value: unknown, found: ArrayBuffer[], depth: number): void {
  if (typeof value !== 'object' || value === null || depth > 64) return;
  if (value instanceof ArrayBuffer) {
    if (!found.includes(value)) found.push(value);
  } else if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer && !found.includes(value.buffer)) found.push(value.buffer);
  } else if (Array.isArray(value)) {
    for (const item of value) collectBuffers(item, found, depth + 1);
  } else {
    for (const item of Object.values(value)) collectBuffers(item, found, depth + 1);
  }
}

function linkKey(thread: number, id: number): string {
  return `${thread}:${id}`;
}

/** A monitor held by a process on another thread: its DOWN travels back there. */
export class RemoteMonitor implements ExitObserver {
  constructor(
    private readonly remote: Remote,
    readonly thread: number,
    readonly watcher: number,
    private readonly refId: number,
  ) {}

  get watcherPid(): Pid {
    return new Pid(this.remote.runtime.nodeName, 0, this.watcher, 0, this.thread);
  }

  exited(pid: Pid, reason: ExitReason): void {
    this.remote.monitorFired(this.thread, this.watcher, this.refId, pid, reason);
  }
}

/** The `from` of a call made on another thread: the reply (or the server's exit) travels back. */
export class RemoteCallFrom extends ForwardedCallFrom {
  constructor(remote: Remote, thread: number, callId: number, caller: Pid | undefined) {
    super(
      (value) => remote.replied(thread, callId, value), // throws NotCloneable here, at the replier
      (reason) => remote.callServerExited(thread, callId, reason),
      caller,
    );
  }
}
