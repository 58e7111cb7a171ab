import { addExtension, Packr } from 'msgpackr';
import type { ActorSystem, CodeRef, SpawnOptions } from '../actor/ActorSystem.js';
import { CallRequest } from '../actor/Call.js';
import type { TimerHandle } from '../actor/Clock.js';
import { DownMessage, ExitMessage, type ExitReason } from '../actor/ExitReason.js';
import { CallExit, CallTimeout, MailboxFull } from '../actor/errors.js';
import { callFrom, ForwardedCallFrom } from '../actor/internal/calls.js';
import { deliver, deliverSignalMessage, sendFrom } from '../actor/internal/delivery.js';
import { DEAD, type ExitObserver, type ProcessRecord } from '../actor/internal/Process.js';
import { type Runtime, runtimes } from '../actor/internal/Runtime.js';
import { exitSignal, link, monitor, signal, unlink, unwatch, watch } from '../actor/internal/signals.js';
import type { NodeRouter } from '../actor/internal/Transport.js';
import { Pid, Ref } from '../actor/Pid.js';
import { ClusterError, MessageTooLarge, RemoteSpawnError } from './errors.js';
import type { GlobalHolder } from './GlobalRegistry.js';
import type { NodeEvent, NodeId } from './Membership.js';
import type { ClusterTransport } from './Transport.js';

/**
 * Remote processes: send, exit, link, unlink, monitor, demonitor and call between the actor
 * systems of two zbmd nodes, over NATS. Each node incarnation listens on one subject,
 * `zbmd.<cluster>.node.<name>.<incarnation>`; a node publishes everything for another node on
 * that node's subject through its one connection, so NATS keeps the order of operations per
 * sender-receiver pair. Operations posted in one turn of the event loop travel in one frame per
 * target node (a msgpack header, then one msgpack value per operation; at most max_payload bytes).
 */

/** Operation codes on the node subject; each operation is one msgpack array `[op, ...fields]`. */
enum Op {
  Send = 1, // targetId, message
  Exit = 2, // targetId, from, reason
  Link = 3, // targetId, from
  Unlink = 4, // targetId, from
  LinkExit = 5, // targetId, from, reason
  Monitor = 6, // targetId, watcher, refId
  Demonitor = 7, // targetId, refId
  Down = 8, // watcherId, refId, target, reason
  Call = 9, // targetId, caller | null, callId, request
  Reply = 10, // callId, value
  CallExit = 11, // callId, reason
  CallFull = 12, // callId, capacity
  SendNamed = 13, // name, message
  Spawn = 14, // callId, module, export, args, options, linkTo | null
  Spawned = 15, // callId, id, serial
  SpawnFailed = 16, // callId, reason
}

/** Fields after the code, per operation. */
const ARITY: Record<number, number> = {
  1: 2,
  2: 3,
  3: 2,
  4: 2,
  5: 3,
  6: 3,
  7: 2,
  8: 4,
  9: 4,
  10: 2,
  11: 2,
  12: 2,
  13: 2,
  14: 6,
  15: 3,
  16: 2,
};

const FRAME_TAG = 'zbmd/2';

/** A node that keeps receiving stale frames of a broken connection re-announces its own at most this often. */
const RESET_REMINDER_MS = 100;

/**
 * This long after frames went to a peer, an empty frame follows with the next number, so a lost
 * last frame (nothing after it to show the gap) is found too: within about this long.
 */
export const FRAME_SYNC_MS = 100;

/** A frame is published once it holds this many bytes (or at the end of the turn); one larger message travels alone. */
const FRAME_TARGET_BYTES = 64 * 1024;

/** msgpack extension types (application range) for the runtime's values. */
const EXT_PID = 0x5a;
const EXT_REF = 0x5b;
const EXT_EXIT = 0x5c;
const EXT_DOWN = 0x5d;

/** The node whose operation is being encoded or decoded (pids resolve against it). */
let context: RemoteProcesses | undefined;

addExtension({
  Class: Pid,
  type: EXT_PID,
  write: (pid: Pid) => context!.wirePid(pid),
  read: (fields: unknown) => context!.importPid(fields),
});
addExtension({
  Class: Ref,
  type: EXT_REF,
  write: (ref: Ref) => [ref.node, ref.id],
  read: (fields: [string, number]) => new Ref(String(fields[0]), Number(fields[1])),
});
addExtension({
  Class: ExitMessage,
  type: EXT_EXIT,
  write: (message: ExitMessage) => [message.from, safeReason(message.reason)],
  read: (fields: [Pid, ExitReason]) => new ExitMessage(fields[0], fields[1]),
});
addExtension({
  Class: DownMessage,
  type: EXT_DOWN,
  write: (message: DownMessage) => [message.ref, message.pid, safeReason(message.reason)],
  read: (fields: [Ref, Pid, ExitReason]) => new DownMessage(fields[0], fields[1], fields[2]),
});

const packr = new Packr({ useRecords: false, moreTypes: true });

/** An exit reason that msgpack cannot carry travels as its text. */
function safeReason(reason: unknown): unknown {
  try {
    packr.pack(reason);
    return reason;
  } catch {
    return String(reason);
  }
}

export interface AttachOptions {
  /** Told about every malformed frame dropped (default: a line on stderr). */
  readonly onMalformed?: (subject: string, detail: string) => void;
  /**
   * Told when the connection to a node broke because a frame from it was lost (a gap in its
   * sequence numbers): its links and monitors fired `noconnection` (default: a line on stderr).
   */
  readonly onConnectionLost?: (node: NodeId, detail: string) => void;
}

/** What this node sends to one peer: the connection's epoch and the next frame's number in it. */
interface Outgoing {
  epoch: number;
  seq: number;
}

/** What this node has received from one peer: the epoch it accepts and the next frame number. */
interface Incoming {
  readonly node: NodeId;
  epoch: number;
  next: number;
  /** A frame was lost: nothing is delivered until the peer starts a newer epoch at frame 0. */
  broken: boolean;
  remindedAt: number;
}

/** What `attach` needs from the node (ClusterNode passes itself). */
export interface AttachedNode {
  readonly self: NodeId;
  isUp(node: NodeId): boolean;
  nodes(): NodeId[];
  monitorNodes(listener: (event: NodeEvent) => void): () => void;
  registerGlobal(name: string, process: string): Promise<void>;
  whereisGlobal(name: string): Promise<GlobalHolder | undefined>;
  releaseProcess(process: string): Promise<void>;
  onNameLost(listener: (name: string, process: string) => void): () => void;
  onRejoined(listener: (self: NodeId, previous: NodeId) => void): () => void;
}

/** How a global name records a process of an attached system: `pid:<id>.<serial>`. */
const PID_PROCESS = /^pid:(\d+)\.(\d+)$/;

interface OutSpawn {
  readonly peer: string;
  readonly node: NodeId;
  readonly linker: ProcessRecord | undefined;
  readonly resolve: (pid: Pid) => void;
  readonly reject: (error: unknown) => void;
}

interface Peer {
  readonly key: string;
  readonly node: NodeId;
  readonly subject: string;
  readonly index: number;
  chunks: Uint8Array[];
  bytes: number;
  /** Frames went out since the last sync frame. */
  unsynced: boolean;
}

interface OutCall {
  readonly server: Pid;
  readonly peer: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: TimerHandle | undefined;
}

interface OutMonitor {
  readonly ref: Ref;
  readonly watcher: ProcessRecord;
  readonly target: Pid;
  readonly peer: string;
}

/** The subject a node incarnation listens on for remote-process operations. */
export function nodeSubject(cluster: string, node: NodeId): string {
  return `zbmd.${cluster}.node.${node.name}.${node.incarnation}`;
}

function nodeKey(name: string, incarnation: number): string {
  return `${name}.${incarnation}`;
}

function pidKey(pid: Pid): string {
  return `${pid.node}.${pid.creation}:${pid.id}`;
}

/** A message of a peer's stream could not be delivered: the connection breaks rather than leave a hole. */
class StreamHole extends Error {}

/** The largest frame header of `self` (tag, name, incarnation, epoch and frame number at their widest). */
function headerBytes(self: NodeId): number {
  return packr.pack([
    FRAME_TAG,
    self.name,
    self.incarnation,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER,
  ]).length;
}

/** The links of one local process to processes on other nodes; fires their LinkExit on its exit. */
class NodeLinks implements ExitObserver {
  readonly remotes = new Map<string, Pid>();
  watchId = 0;
  constructor(
    private readonly owner: RemoteProcesses,
    readonly record: ProcessRecord,
  ) {}
  exited(pid: Pid, reason: ExitReason): void {
    this.owner.localLinkedExited(pid, this, reason);
  }
}

/** The `from` of a call that arrived from another node: the reply travels back there. */
class NodeCallFrom extends ForwardedCallFrom {
  constructor(owner: RemoteProcesses, peer: string, callId: number, caller: Pid | undefined) {
    super(
      (value) => owner.postTo(peer, [Op.Reply, callId, value]), // MessageTooLarge at the replier
      (reason) => owner.postTo(peer, [Op.CallExit, callId, safeReason(reason)]),
      caller,
    );
  }
}

/**
 * One actor system attached to one cluster node (`ClusterNode.attach(system)`): the system's
 * processes reach pids of other nodes, and other nodes reach its processes.
 */
export class RemoteProcesses implements NodeRouter {
  readonly #runtime: Runtime;
  #self: NodeId;
  #subject: string;
  /** The largest frame header (tag, name, incarnation, epoch and frame number at their widest). */
  #headerBytes: number;
  readonly #peers = new Map<string, Peer>();
  readonly #outgoing = new Map<string, Outgoing>();
  readonly #incoming = new Map<string, Incoming>();
  readonly #onConnectionLost: (node: NodeId, detail: string) => void;
  /** Connections broken by a lost frame (a gap in a peer's frame numbers), since attach. */
  connectionsLost = 0;
  readonly #down = new Set<string>();
  readonly #indexes = new Map<string, number>();
  readonly #exported = new Map<number, ProcessRecord>();
  readonly #links = new Map<ProcessRecord, NodeLinks>();
  readonly #calls = new Map<number, OutCall>();
  readonly #monitorsOut = new Map<number, OutMonitor>();
  readonly #monitorsIn = new Map<string, { record: ProcessRecord; watchId: number }>();
  readonly #spawns = new Map<number, OutSpawn>();
  readonly #unNameLost: () => void;
  #unsubscribe: () => void;
  readonly #unRejoined: () => void;
  readonly #unmonitor: () => void;
  readonly #uninterrupted: () => void;
  readonly #onMalformed: (subject: string, detail: string) => void;
  #nextCallId = 1;
  #flushArmed = false;
  #syncTimer: TimerHandle | undefined;
  #detached = false;
  /** The largest frame a publish carries (the server's max_payload). */
  readonly maxPayloadBytes: number;

  constructor(
    system: ActorSystem,
    private readonly node: AttachedNode,
    private readonly transport: ClusterTransport,
    private readonly cluster: string,
    options: AttachOptions = {},
  ) {
    const runtime = runtimes.get(system);
    if (runtime === undefined) throw new ClusterError('invalid_option', 'attach: expected an ActorSystem');
    if (runtime.remote !== undefined)
      throw new ClusterError(
        'invalid_option',
        'attach: a system with worker threads cannot join a cluster yet; attach a one-thread system',
      );
    if (runtime.nodes !== undefined)
      throw new ClusterError('invalid_option', 'attach: this system is attached to a cluster node already');
    if (system.nodeName !== node.self.name)
      throw new ClusterError(
        'invalid_option',
        `attach: the system's nodeName (${system.nodeName}) must be the node's name (${node.self.name}): new ActorSystem({ nodeName: '${node.self.name}' })`,
      );
    this.#runtime = runtime;
    this.#self = node.self;
    this.#subject = nodeSubject(cluster, this.#self);
    this.#headerBytes = headerBytes(this.#self);
    this.maxPayloadBytes = transport.maxPayloadBytes;
    this.#onMalformed =
      options.onMalformed ??
      ((subject, detail) =>
        process.stderr.write(`zbmd cluster: dropped a malformed message on ${subject}: ${detail}\n`));
    this.#onConnectionLost =
      options.onConnectionLost ??
      ((node, detail) =>
        process.stderr.write(
          `zbmd cluster: the connection to ${node.name}#${node.incarnation} broke: ${detail}\n`,
        ));
    runtime.nodes = this;
    this.#unsubscribe = transport.subscribe(this.#subject, (data) => this.#receive(data));
    this.#unmonitor = node.monitorNodes((event) => {
      if (event.kind === 'nodedown') this.#lost(nodeKey(event.node.name, event.node.incarnation));
      else if (event.kind === 'quarantined') for (const key of [...this.#peers.keys()]) this.#lost(key);
    });
    this.#uninterrupted = transport.onInterrupted?.(() => this.#interrupted()) ?? (() => undefined);
    // a global name lost after a partition: its process here is the loser, exited as OTP's
    // default resolution (random_exit_name) exits one holder, so links to it fire
    // declared down, the node rejoined as a new incarnation: listen on its subject from now on
    // (every link and monitor to other nodes fired noconnection at the quarantine; local
    // processes stay, and their pids leave this node with the new incarnation)
    this.#unRejoined = node.onRejoined((self) => {
      if (this.#detached) return;
      this.#flush();
      for (const key of [...this.#peers.keys()]) this.#lost(key);
      this.#unsubscribe();
      this.#self = self;
      this.#subject = nodeSubject(cluster, self);
      this.#headerBytes = headerBytes(self);
      this.#unsubscribe = transport.subscribe(this.#subject, (data) => this.#receive(data));
    });
    this.#unNameLost = node.onNameLost((_name, process) => {
      const pid = this.#pidOfProcess(process, this.#self);
      const record = pid?.process as ProcessRecord | undefined;
      if (pid !== undefined && record !== undefined && record.state !== DEAD)
        exitSignal(this.#runtime, this.#runtime.rootPid, pid, 'kill');
    });
  }

  /**
   * The largest message `send` accepts: max_payload less the frame header and the operation's
   * own fields (a few dozen bytes). A larger one is refused with `MessageTooLarge` at the sender.
   */
  get maxMessageBytes(): number {
    return this.maxPayloadBytes - this.#headerBytes;
  }

  /** `pid` (of this system) as other nodes name it: with this node's incarnation. */
  pid(local: Pid): Pid {
    if (local.creation !== 0 || local.node !== this.#self.name) return local;
    const record = local.process as ProcessRecord | undefined;
    if (record !== undefined) this.#export(record); // reachable from other nodes from now on
    return new Pid(local.node, 0, local.id, local.serial, 0, this.#self.incarnation);
  }

  /** A pid of node `node` (name and incarnation), by process number (and serial). */
  remotePid(node: NodeId, id: number, serial = 0): Pid {
    return this.importPid([node.name, node.incarnation, id, serial]);
  }

  /**
   * Spawns a process on node `node` (a name: its incarnation up now) from code named by module
   * URL and export, with `args`, as `system.spawn({ module, export }, args)` does on a thread:
   * the other node loads the module and starts the process there. Resolves with its pid, or
   * rejects with `RemoteSpawnError` (reason 'noconnection' when the node is not up or goes down
   * first; the error's text when the other node refused the spawn, such as a bad export name).
   * A module that fails to load crashes the new process (its links and monitors see why).
   */
  spawn(
    node: string | NodeId,
    code: CodeRef,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<Pid> {
    return this.#spawn(node, code, args, options, undefined);
  }

  /**
   * As `spawn`, linked to the local process `from` from the start (Erlang's spawn_link/4): if the
   * new process dies, `from` gets its exit signal, and the other way round. If `from` has exited
   * when the answer comes, the new process gets exit signal `noproc`.
   */
  spawnLink(
    from: Pid,
    node: string | NodeId,
    code: CodeRef,
    args: readonly unknown[] = [],
    options: SpawnOptions = {},
  ): Promise<Pid> {
    const record = from.creation === 0 ? (from.process as ProcessRecord | undefined) : undefined;
    if (record === undefined || record.state === DEAD)
      return Promise.reject(
        new ClusterError('invalid_option', `spawnLink: ${String(from)} is not a live process of this system`),
      );
    return this.#spawn(node, code, args, options, record);
  }

  #spawn(
    target: string | NodeId,
    code: CodeRef,
    args: readonly unknown[],
    options: SpawnOptions,
    linker: ProcessRecord | undefined,
  ): Promise<Pid> {
    const name = typeof target === 'string' ? target : target.name;
    const node =
      typeof target === 'string' ? this.node.nodes().find((id) => id.name === target) : (target as NodeId);
    const url = code?.module instanceof URL ? code.module.href : code?.module;
    if (
      typeof url !== 'string' ||
      url.length === 0 ||
      typeof code.export !== 'string' ||
      code.export.length === 0
    )
      return Promise.reject(
        new ClusterError(
          'invalid_option',
          'spawn on a node: give code as { module: import.meta.url (a module URL), export: a non-empty export name }',
        ),
      );
    if (!Array.isArray(args))
      return Promise.reject(new ClusterError('invalid_option', 'spawn on a node: args must be an array'));
    const peer =
      node === undefined ? undefined : this.#peerOf(new Pid(node.name, 1, 0, 0, 0, node.incarnation));
    if (node === undefined || peer === undefined)
      return Promise.reject(new RemoteSpawnError(name, 'noconnection'));
    const callId = this.#nextCallId++;
    const spawnOptions = {
      trapExit: options.trapExit === true,
      name: options.name ?? null,
      mailbox: options.mailbox ?? null,
    };
    try {
      this.#post(peer, [Op.Spawn, callId, url, code.export, args, spawnOptions, linker?.pid ?? null]);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#spawns.set(callId, { peer: peer.key, node, linker, resolve, reject });
    });
  }

  /**
   * Registers the global name `name` for the local process `pid` (OTP's global:register_name):
   * `AlreadyRegistered` if a live process holds it. The name goes when the process exits. Every
   * node attached to the cluster finds the pid with `whereisGlobal`.
   */
  async registerGlobal(name: string, pid: Pid): Promise<void> {
    const record = pid.creation === 0 ? (pid.process as ProcessRecord | undefined) : undefined;
    if (record === undefined || record.state === DEAD || pid.node !== this.#self.name)
      throw new ClusterError(
        'invalid_option',
        `registerGlobal: ${String(pid)} is not a live process of this system`,
      );
    const process = `pid:${pid.id}.${pid.serial}`;
    this.#export(record);
    await this.node.registerGlobal(name, process);
    watch(this.#runtime, record, {
      exited: () => void this.node.releaseProcess(process).catch(() => undefined),
    });
    if (record.state === DEAD) await this.node.releaseProcess(process).catch(() => undefined);
  }

  /**
   * The pid holding the global name `name`, usable with send, link, monitor and call; undefined
   * when nobody (alive) holds it, or when it is held by something that is not a process of an
   * attached system (a plain string given to `ClusterNode.registerGlobal`).
   */
  async whereisGlobal(name: string): Promise<Pid | undefined> {
    const holder = await this.node.whereisGlobal(name);
    if (holder === undefined) return undefined;
    return this.#pidOfProcess(holder.process, { name: holder.node, incarnation: holder.incarnation });
  }

  #pidOfProcess(process: string, node: NodeId): Pid | undefined {
    const match = PID_PROCESS.exec(process);
    if (match === null) return undefined;
    const id = Number(match[1]);
    const serial = Number(match[2]);
    if (node.name === this.#self.name && node.incarnation === this.#self.incarnation)
      return this.#localPid(id);
    return this.remotePid(node, id, serial);
  }

  /** Stops listening; every remote link and monitor fires `noconnection`. Idempotent. */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#flush();
    for (const key of [...this.#peers.keys()]) this.#lost(key);
    if (this.#syncTimer !== undefined) this.#runtime.clock.cancelTimer(this.#syncTimer);
    this.#syncTimer = undefined;
    this.#unsubscribe();
    this.#unmonitor();
    this.#uninterrupted();
    this.#unNameLost();
    this.#unRejoined();
    if (this.#runtime.nodes === this) this.#runtime.nodes = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Pids on the wire

  /** @internal The wire form of a pid: [node, incarnation, id, serial]; exports a local process. */
  wirePid(pid: Pid): unknown[] {
    if (pid.creation !== 0 || pid.node !== this.#self.name)
      return [pid.node, pid.creation, pid.id, pid.serial];
    const record = pid.process as ProcessRecord | undefined;
    if (record !== undefined) this.#export(record);
    return [pid.node, this.#self.incarnation, pid.id, pid.serial];
  }

  /** @internal A pid arriving: this system's own (resolved to its process), or another node's. */
  importPid(fields: unknown): Pid {
    if (!Array.isArray(fields) || fields.length !== 4)
      throw new TypeError('a pid must be [node, incarnation, id, serial]');
    const [name, creation, id, serial] = fields as [unknown, unknown, unknown, unknown];
    if (
      typeof name !== 'string' ||
      !Number.isSafeInteger(creation) ||
      !Number.isSafeInteger(id) ||
      !Number.isSafeInteger(serial)
    )
      throw new TypeError('a pid must be [node: string, incarnation, id, serial: integers]');
    const c = creation as number;
    if (name === this.#self.name && c === this.#self.incarnation)
      return this.#exported.get(id as number)?.pid ?? new Pid(name, 0, id as number, serial as number);
    return new Pid(name, this.#indexOf(nodeKey(name, c)), id as number, serial as number, 0, c);
  }

  #indexOf(key: string): number {
    let index = this.#indexes.get(key);
    if (index === undefined) {
      index = this.#indexes.size + 1;
      this.#indexes.set(key, index);
    }
    return index;
  }

  #export(record: ProcessRecord): void {
    if (record.state === DEAD || this.#exported.has(record.pid.id)) return;
    this.#exported.set(record.pid.id, record);
    watch(this.#runtime, record, { exited: (pid) => this.#exported.delete(pid.id) });
  }

  /** This node's own process `id`, as a pid (for replies about a process that is gone). */
  #localPid(id: number): Pid {
    return this.#exported.get(id)?.pid ?? new Pid(this.#self.name, 0, id, 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Outgoing

  /** Pids of other nodes and of earlier lives of this one go through here (NodeRouter). */
  owns(pid: Pid): boolean {
    return pid.creation !== 0 || pid.node !== this.#self.name;
  }

  /** The peer of a pid's node while that node is up; undefined when it is down or unknown. */
  #peerOf(pid: Pid): Peer | undefined {
    if (pid.creation === 0 || this.#detached) return undefined;
    const key = nodeKey(pid.node, pid.creation);
    const known = this.#peers.get(key);
    if (known !== undefined) return known;
    const node = { name: pid.node, incarnation: pid.creation };
    if (this.#down.has(key) || !this.node.isUp(node)) return undefined;
    return this.#addPeer(key, node);
  }

  #addPeer(key: string, node: NodeId): Peer {
    const peer: Peer = {
      key,
      node,
      subject: nodeSubject(this.cluster, node),
      index: this.#indexOf(key),
      chunks: [],
      bytes: 0,
      unsynced: false,
    };
    this.#peers.set(key, peer);
    return peer;
  }

  /** A pid of this very incarnation (another node's copy of one of ours): the local pid. */
  #localOf(pid: Pid): Pid | undefined {
    if (pid.creation !== this.#self.incarnation || pid.node !== this.#self.name) return undefined;
    return this.#exported.get(pid.id)?.pid ?? new Pid(pid.node, 0, pid.id, pid.serial);
  }

  /** @internal Encodes one operation for a peer (by key); dropped when that peer is gone. */
  postTo(key: string, op: unknown[]): void {
    const peer = this.#peers.get(key);
    if (peer !== undefined) this.#post(peer, op);
  }

  #post(peer: Peer, op: unknown[]): void {
    context = this;
    let bytes: Uint8Array;
    try {
      bytes = packr.pack(op);
    } finally {
      context = undefined;
    }
    const limit = this.maxPayloadBytes - this.#headerBytes;
    if (bytes.length > limit) throw new MessageTooLarge(bytes.length, limit);
    if (peer.bytes + bytes.length > Math.min(limit, FRAME_TARGET_BYTES)) this.#flushPeer(peer);
    peer.chunks.push(bytes);
    peer.bytes += bytes.length;
    if (!this.#flushArmed) {
      this.#flushArmed = true;
      queueMicrotask(this.#flush);
    }
  }

  readonly #sync = (): void => {
    this.#syncTimer = undefined;
    if (this.#detached) return;
    for (const peer of this.#peers.values()) {
      if (!peer.unsynced) continue;
      peer.unsynced = false;
      this.#flushPeer(peer, true);
    }
  };

  readonly #flush = (): void => {
    this.#flushArmed = false;
    for (const peer of this.#peers.values()) if (peer.chunks.length > 0) this.#flushPeer(peer);
  };

  #flushPeer(peer: Peer, sync = false): void {
    if (!sync) {
      peer.unsynced = true;
      this.#syncTimer ??= this.#runtime.clock.setTimer(FRAME_SYNC_MS, this.#sync);
    }
    let out = this.#outgoing.get(peer.key);
    if (out === undefined) {
      out = { epoch: 0, seq: 0 };
      this.#outgoing.set(peer.key, out);
    }
    const header = packr.pack([FRAME_TAG, this.#self.name, this.#self.incarnation, out.epoch, out.seq++]);
    const frame = new Uint8Array(header.length + peer.bytes);
    frame.set(header, 0);
    let offset = header.length;
    for (const chunk of peer.chunks) {
      frame.set(chunk, offset);
      offset += chunk.length;
    }
    peer.chunks = [];
    peer.bytes = 0;
    try {
      this.transport.publish(peer.subject, frame);
    } catch (error) {
      this.#runtime.counters.messagesDropped++;
      process.stderr.write(`zbmd cluster: a frame to ${peer.key} could not be published: ${String(error)}\n`);
    }
  }

  send(to: Pid, message: unknown): void {
    const local = this.#localOf(to);
    if (local !== undefined) {
      sendFrom(this.#runtime, undefined, local, message);
      return;
    }
    const peer = this.#peerOf(to);
    if (peer === undefined) {
      this.#runtime.counters.messagesDropped++; // sends to a lost node are dropped, as Erlang's are
      return;
    }
    this.#post(peer, [Op.Send, to.id, message]);
  }

  sendNamed(nodeName: string, name: string, message: unknown): void {
    const node = this.node.nodes().find((id) => id.name === nodeName);
    const peer =
      node === undefined ? undefined : this.#peerOf(new Pid(node.name, 1, 0, 0, 0, node.incarnation));
    if (peer === undefined) {
      this.#runtime.counters.messagesDropped++; // not connected: dropped, as Erlang's {Name, Node} ! Msg
      return;
    }
    this.#post(peer, [Op.SendNamed, name, message]);
  }

  exit(from: Pid, to: Pid, reason: ExitReason): void {
    const local = this.#localOf(to);
    if (local !== undefined) {
      exitSignal(this.#runtime, from, local, reason);
      return;
    }
    const peer = this.#peerOf(to);
    if (peer !== undefined) this.#post(peer, [Op.Exit, to.id, from, safeReason(reason)]);
  }

  link(record: ProcessRecord, to: Pid): void {
    const local = this.#localOf(to);
    if (local !== undefined) {
      link(this.#runtime, record, local);
      return;
    }
    const peer = this.#peerOf(to);
    if (peer === undefined) {
      // Erlang: a link to a pid of a node that is not connected gives an exit signal noconnection
      queueMicrotask(() => signal(this.#runtime, record, to, 'noconnection', true));
      return;
    }
    let links = this.#links.get(record);
    if (links === undefined) {
      links = new NodeLinks(this, record);
      links.watchId = watch(this.#runtime, record, links);
      this.#links.set(record, links);
    }
    const key = pidKey(to);
    if (links.remotes.has(key)) return;
    links.remotes.set(key, to);
    this.#post(peer, [Op.Link, to.id, record.pid]);
  }

  unlink(record: ProcessRecord, to: Pid): void {
    const local = this.#localOf(to);
    if (local !== undefined) {
      unlink(this.#runtime, record, local);
      return;
    }
    const links = this.#links.get(record);
    if (links === undefined || !links.remotes.delete(pidKey(to))) return;
    const peer = this.#peerOf(to);
    if (peer !== undefined) this.#post(peer, [Op.Unlink, to.id, record.pid]);
  }

  /** @internal A local process with links to other nodes exited. */
  localLinkedExited(pid: Pid, links: NodeLinks, reason: ExitReason): void {
    this.#links.delete(links.record);
    const safe = safeReason(reason);
    for (const remote of links.remotes.values()) {
      const peer = this.#peerOf(remote);
      if (peer !== undefined) this.#post(peer, [Op.LinkExit, remote.id, pid, safe]);
    }
    links.remotes.clear();
  }

  monitor(record: ProcessRecord, target: Pid): Ref {
    const local = this.#localOf(target);
    if (local !== undefined) return monitor(this.#runtime, record, local);
    const ref = new Ref(this.#runtime.nodeName, this.#runtime.nextRefId());
    const peer = this.#peerOf(target);
    if (peer === undefined) {
      deliverSignalMessage(this.#runtime, record, new DownMessage(ref, target, 'noconnection'));
      return ref;
    }
    this.#monitorsOut.set(ref.id, { ref, watcher: record, target, peer: peer.key });
    this.#post(peer, [Op.Monitor, target.id, record.pid, ref.id]);
    return ref;
  }

  demonitor(_record: ProcessRecord, ref: Ref): boolean {
    const entry = this.#monitorsOut.get(ref.id);
    if (entry === undefined || entry.ref !== ref) return false;
    this.#monitorsOut.delete(ref.id);
    this.postTo(entry.peer, [Op.Demonitor, entry.target.id, ref.id]);
    return true;
  }

  call(
    caller: ProcessRecord | undefined,
    server: Pid,
    request: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    const local = this.#localOf(server);
    if (local !== undefined) return callFrom(this.#runtime, caller, local, request, timeoutMs);
    const peer = this.#peerOf(server);
    if (peer === undefined) return Promise.reject(new CallExit(server, 'noconnection'));
    const callId = this.#nextCallId++;
    try {
      this.#post(peer, [Op.Call, server.id, caller?.pid ?? null, callId, request]);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const pending: OutCall = { server, peer: peer.key, resolve, reject, timer: undefined };
      this.#calls.set(callId, pending);
      if (timeoutMs !== Number.POSITIVE_INFINITY)
        pending.timer = this.#runtime.clock.setTimer(timeoutMs, () => {
          if (this.#calls.delete(callId)) reject(new CallTimeout(server, timeoutMs));
        });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming

  #receive(data: Uint8Array): void {
    let values: unknown[];
    context = this;
    try {
      values = packr.unpackMultiple(data) as unknown[];
    } catch (error) {
      this.#onMalformed(this.#subject, `not msgpack or a bad value in it: ${String(error)}`);
      return;
    } finally {
      context = undefined;
    }
    const header = values[0];
    if (
      !Array.isArray(header) ||
      header.length !== 5 ||
      header[0] !== FRAME_TAG ||
      typeof header[1] !== 'string' ||
      !Number.isSafeInteger(header[2]) ||
      !Number.isSafeInteger(header[3]) ||
      !Number.isSafeInteger(header[4])
    ) {
      this.#onMalformed(this.#subject, 'the frame does not start with a zbmd header');
      return;
    }
    const from = nodeKey(header[1], header[2]);
    if (this.#down.has(from) || this.#detached) return; // nodedown came after every signal from that node
    const sender = { name: header[1], incarnation: header[2] };
    if (!this.#admit(from, sender, header[3], header[4])) return;
    if (!this.#peers.has(from)) this.#addPeer(from, sender);
    for (let index = 1; index < values.length; index++) {
      const op = values[index];
      if (!Array.isArray(op) || ARITY[op[0]] === undefined || op.length !== ARITY[op[0]] + 1) {
        this.#onMalformed(this.#subject, `operation ${index} of a frame from ${from} is not one of zbmd's`);
        return;
      }
      try {
        this.#apply(from, op);
      } catch (error) {
        if (error instanceof StreamHole) {
          this.#break(from, sender, error.message); // the rest of the frame is not applied
          return;
        }
        this.#onMalformed(this.#subject, `operation ${index} from ${from} failed: ${String(error)}`);
      }
    }
  }

  /**
   * Delivers a message from a peer to a live process (none or dead: dropped, as Erlang's). A
   * message that cannot be queued is a hole in the pair's stream, as a lost frame is.
   */
  #deliver(record: ProcessRecord | undefined, message: unknown): void {
    if (record === undefined || record.state === DEAD) return;
    try {
      deliver(this.#runtime, record, message);
    } catch (error) {
      if (!(error instanceof MailboxFull)) throw error;
      this.#runtime.counters.messagesDropped++;
      throw new StreamHole(
        `the mailbox of ${record.pid} is full (capacity ${error.capacity}); a message from it was not delivered`,
      );
    }
  }

  #apply(from: string, op: unknown[]): void {
    const runtime = this.#runtime;
    switch (op[0] as Op) {
      case Op.SendNamed: {
        runtime.counters.messagesSent++;
        const record = typeof op[1] === 'string' ? runtime.registry.holder(op[1]) : undefined;
        this.#deliver(record, op[2]); // no such name: dropped, as in Erlang
        return;
      }
      case Op.Spawn: {
        const [, callId, url, exportName, args, options, linkTo] = op as [
          Op,
          number,
          string,
          string,
          unknown[],
          { trapExit?: boolean; name?: string | null; mailbox?: SpawnOptions['mailbox'] | null },
          Pid | null,
        ];
        let record: ProcessRecord;
        try {
          const pid = runtime.spawnByCode(
            { module: String(url), export: String(exportName) },
            args,
            {
              trapExit: options?.trapExit === true,
              name: options?.name ?? undefined,
              mailbox: options?.mailbox ?? undefined,
            },
            undefined,
          );
          record = pid.process as ProcessRecord;
        } catch (error) {
          this.postTo(from, [Op.SpawnFailed, callId, String((error as Error)?.message ?? error)]);
          return;
        }
        this.#export(record);
        if (linkTo instanceof Pid) {
          const links = new NodeLinks(this, record);
          links.watchId = watch(runtime, record, links);
          this.#links.set(record, links);
          links.remotes.set(pidKey(linkTo), linkTo);
        }
        this.postTo(from, [Op.Spawned, callId, record.pid.id, record.pid.serial]);
        return;
      }
      case Op.Spawned:
      case Op.SpawnFailed: {
        const pending = this.#spawns.get(op[1] as number);
        if (pending === undefined || pending.peer !== from) return;
        this.#spawns.delete(op[1] as number);
        if (op[0] === Op.SpawnFailed) {
          pending.reject(new RemoteSpawnError(pending.node.name, String(op[2])));
          return;
        }
        const pid = this.remotePid(pending.node, op[2] as number, op[3] as number);
        const linker = pending.linker;
        if (linker !== undefined) {
          if (linker.state === DEAD) this.postTo(from, [Op.LinkExit, pid.id, linker.pid, 'noproc']);
          else {
            let links = this.#links.get(linker);
            if (links === undefined) {
              links = new NodeLinks(this, linker);
              links.watchId = watch(runtime, linker, links);
              this.#links.set(linker, links);
            }
            links.remotes.set(pidKey(pid), pid);
          }
        }
        pending.resolve(pid);
        return;
      }
      case Op.Send: {
        runtime.counters.messagesSent++;
        this.#deliver(this.#exported.get(op[1] as number), op[2]);
        return;
      }
      case Op.Exit: {
        const record = this.#exported.get(op[1] as number);
        if (record !== undefined) signal(runtime, record, op[2] as Pid, op[3] as ExitReason, false);
        return;
      }
      case Op.Link: {
        const sender = op[2] as Pid;
        const record = this.#exported.get(op[1] as number);
        if (record === undefined || record.state === DEAD) {
          this.postTo(from, [Op.LinkExit, sender.id, this.#localPid(op[1] as number), 'noproc']);
          return;
        }
        let links = this.#links.get(record);
        if (links === undefined) {
          links = new NodeLinks(this, record);
          links.watchId = watch(runtime, record, links);
          this.#links.set(record, links);
        }
        links.remotes.set(pidKey(sender), sender);
        return;
      }
      case Op.Unlink: {
        const record = this.#exported.get(op[1] as number);
        if (record !== undefined) this.#links.get(record)?.remotes.delete(pidKey(op[2] as Pid));
        return;
      }
      case Op.LinkExit: {
        const sender = op[2] as Pid;
        const record = this.#exported.get(op[1] as number);
        if (record === undefined || this.#links.get(record)?.remotes.delete(pidKey(sender)) !== true) return;
        signal(runtime, record, sender, op[3] as ExitReason, true);
        return;
      }
      case Op.Monitor: {
        const watcher = op[2] as Pid;
        const refId = op[3] as number;
        const record = this.#exported.get(op[1] as number);
        if (record === undefined || record.state === DEAD) {
          this.postTo(from, [Op.Down, watcher.id, refId, this.#localPid(op[1] as number), 'noproc']);
          return;
        }
        const key = `${from}:${refId}`;
        const watchId = watch(runtime, record, {
          exited: (pid, reason) => {
            this.#monitorsIn.delete(key);
            this.postTo(from, [Op.Down, watcher.id, refId, pid, safeReason(reason)]);
          },
        });
        this.#monitorsIn.set(key, { record, watchId });
        return;
      }
      case Op.Demonitor: {
        const key = `${from}:${op[2] as number}`;
        const entry = this.#monitorsIn.get(key);
        if (entry === undefined) return;
        this.#monitorsIn.delete(key);
        unwatch(entry.record, entry.watchId);
        return;
      }
      case Op.Down: {
        const entry = this.#monitorsOut.get(op[2] as number);
        if (entry === undefined || entry.peer !== from) return;
        this.#monitorsOut.delete(op[2] as number);
        if (entry.watcher.state !== DEAD)
          deliverSignalMessage(
            runtime,
            entry.watcher,
            new DownMessage(entry.ref, entry.target, op[4] as ExitReason),
          );
        return;
      }
      case Op.Call: {
        const callId = op[3] as number;
        const record = this.#exported.get(op[1] as number);
        if (record === undefined || record.state === DEAD) {
          this.postTo(from, [Op.CallExit, callId, 'noproc']);
          return;
        }
        const handle = new NodeCallFrom(this, from, callId, (op[2] as Pid | null) ?? undefined);
        handle.target = record;
        handle.watchId = watch(runtime, record, handle);
        try {
          deliver(runtime, record, new CallRequest(op[4], handle));
        } catch (error) {
          if (!(error instanceof MailboxFull)) throw error;
          handle.settled = true;
          unwatch(record, handle.watchId);
          this.postTo(from, [Op.CallFull, callId, error.capacity]);
        }
        return;
      }
      case Op.Reply:
      case Op.CallExit:
      case Op.CallFull: {
        const pending = this.#calls.get(op[1] as number);
        if (pending === undefined || pending.peer !== from) return; // timed out: a late reply is dropped
        this.#calls.delete(op[1] as number);
        if (pending.timer !== undefined) runtime.clock.cancelTimer(pending.timer);
        if (op[0] === Op.Reply) pending.resolve(op[2]);
        else if (op[0] === Op.CallExit) pending.reject(new CallExit(pending.server, op[2] as ExitReason));
        else pending.reject(new MailboxFull(pending.server, Number(op[2])));
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Frame numbers: in order, or the connection is down

  /**
   * Frame `seq` of connection epoch `epoch` from `from`: true when it is the next one, to be
   * applied. NATS core delivers at most once, so a frame can be lost (a slow consumer at the
   * server); like Erlang's distribution, a pair's messages then never arrive with a hole: the
   * connection is declared broken (links and monitors fire `noconnection`, calls fail), the frames
   * after the gap are ignored, and this node starts a new epoch of its own side, which tells the
   * peer to do the same; the two connect again from frame 0 of their new epochs.
   */
  #admit(from: string, node: NodeId, epoch: number, seq: number): boolean {
    const state = this.#incoming.get(from);
    if (state === undefined) {
      this.#incoming.set(from, {
        node,
        epoch,
        next: seq + 1,
        broken: false,
        remindedAt: Number.NEGATIVE_INFINITY,
      });
      if (seq !== 0) {
        this.#break(from, node, `the first frame heard from it is number ${seq}, not 0`);
        return false;
      }
      // a peer past its first epoch broke a connection whose frames from us were all lost
      if (epoch > 0) this.#restart(from, node);
      return true;
    }
    if (epoch === state.epoch && !state.broken) {
      if (seq === state.next) {
        state.next++;
        return true;
      }
      this.#break(from, node, `frame ${state.next} of epoch ${epoch} was lost (frame ${seq} came next)`);
      return false;
    }
    if (epoch > state.epoch) {
      const wasConnected = !state.broken;
      state.epoch = epoch;
      state.next = seq + 1;
      if (seq !== 0) {
        this.#break(from, node, `epoch ${epoch} starts at frame ${seq}, not 0`);
        return false;
      }
      state.broken = false;
      // the peer found our connection broken and started anew: ours is broken too
      if (wasConnected) this.#restart(from, node);
      return true;
    }
    // a frame of a connection already declared broken: remind the peer of our newer epoch
    if (state.broken) {
      const now = this.#runtime.clock.now();
      if (now - state.remindedAt >= RESET_REMINDER_MS) {
        state.remindedAt = now;
        this.#flushPeer(this.#peers.get(from) ?? this.#addPeer(from, node));
      }
    }
    return false;
  }

  /**
   * This node's own connection to NATS was interrupted: frames from and to every peer may have
   * been lost in it, so every connection is broken (as Erlang's are when a TCP connection drops).
   */
  #interrupted(): void {
    if (this.#detached) return;
    const nodes = new Map<string, NodeId>();
    for (const [key, peer] of this.#peers) nodes.set(key, peer.node);
    for (const [key, state] of this.#incoming) nodes.set(key, state.node);
    for (const [key, node] of nodes)
      this.#break(key, node, "this node's NATS connection was interrupted (frames in flight may be lost)");
  }

  #break(from: string, node: NodeId, detail: string): void {
    let state = this.#incoming.get(from);
    if (state === undefined) {
      // nothing heard yet: accept the peer's next epoch (or its first) from frame 0
      state = { node, epoch: -1, next: 0, broken: true, remindedAt: Number.NEGATIVE_INFINITY };
      this.#incoming.set(from, state);
    }
    state.broken = true;
    state.remindedAt = this.#runtime.clock.now();
    this.connectionsLost++;
    this.#onConnectionLost(node, detail);
    this.#restart(from, node);
  }

  /** Ends the connection with `from` here and starts this side's next epoch with an empty frame. */
  #restart(from: string, node: NodeId): void {
    this.#disconnect(from);
    const out = this.#outgoing.get(from);
    if (out === undefined) this.#outgoing.set(from, { epoch: 1, seq: 0 });
    else {
      out.epoch++;
      out.seq = 0;
    }
    this.#flushPeer(this.#addPeer(from, node));
  }

  // ---------------------------------------------------------------------------------------------
  // A lost node

  /**
   * Node `key` (name.incarnation) is down: links to its processes fire `noconnection`, monitors
   * get DOWN `noconnection`, calls in flight fail with `CallExit(server, 'noconnection')`, and
   * what is sent to it from now on is dropped.
   */
  #lost(key: string): void {
    this.#down.add(key);
    this.#incoming.delete(key);
    this.#outgoing.delete(key);
    this.#disconnect(key);
  }

  /** The connection with node `key` ended: its links and monitors fire, its calls fail. */
  #disconnect(key: string): void {
    this.#peers.delete(key);
    const runtime = this.#runtime;
    for (const [callId, pending] of this.#calls) {
      if (pending.peer !== key) continue;
      this.#calls.delete(callId);
      if (pending.timer !== undefined) runtime.clock.cancelTimer(pending.timer);
      pending.reject(new CallExit(pending.server, 'noconnection'));
    }
    for (const [callId, pending] of this.#spawns) {
      if (pending.peer !== key) continue;
      this.#spawns.delete(callId);
      pending.reject(new RemoteSpawnError(pending.node.name, 'noconnection'));
    }
    for (const [monitorKey, entry] of this.#monitorsIn) {
      if (!monitorKey.startsWith(`${key}:`)) continue;
      this.#monitorsIn.delete(monitorKey);
      unwatch(entry.record, entry.watchId);
    }
    for (const [refId, entry] of this.#monitorsOut) {
      if (entry.peer !== key) continue;
      this.#monitorsOut.delete(refId);
      if (entry.watcher.state !== DEAD)
        deliverSignalMessage(
          runtime,
          entry.watcher,
          new DownMessage(entry.ref, entry.target, 'noconnection'),
        );
    }
    const prefix = `${key}:`;
    for (const [record, links] of [...this.#links]) {
      for (const [linkKey, pid] of [...links.remotes]) {
        if (!linkKey.startsWith(prefix)) continue;
        links.remotes.delete(linkKey);
        if (record.state !== DEAD) signal(runtime, record, pid, 'noconnection', true);
      }
    }
  }
}
