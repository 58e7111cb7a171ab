import type { TransferListItem } from 'node:worker_threads';
import type { ExitReason } from '../ExitReason.js';
import type { Pid, Ref } from '../Pid.js';
import type { ProcessRecord } from './Process.js';
/**
 * The seam between a node's local scheduler and "somewhere else" a pid can live. Today the
 * other side is another scheduler thread of the same node (a MessagePort per pair of threads,
 * ThreadPool.ts); a cluster transport (NATS) implements the same interface per remote node.
 *
 * A transport moves batches of operations (see `Op` in Remote.ts) in order, one batch per post,
 * and reports when its peer is gone. It never interprets them: Remote.ts encodes operations
 * (sends, exit signals, links, monitors, calls, spawns, names), Remote.ts applies them on
 * arrival, and the order of operations from one sender to one receiver is the order of posts.
 */
export interface PeerTransport {
  /** Sends one batch; `transfer` lists ArrayBuffers moved (not copied) with it. */
  post(batch: unknown[], transfer: TransferListItem[]): void;
  /** Stops sending; batches posted after this are dropped. */
  close(): void;
}

/** What a transport calls on the node it serves. */
export interface TransportSink {
  /** A batch from peer `peer` arrived. */
  receive(peer: number, batch: unknown[]): void;
  /** Peer `peer` is gone (its thread died, its node went away): its processes exit `noconnection`. */
  lost(peer: number): void;
}

/**
 * Reaches pids on other nodes (src/cluster/RemoteProcesses.ts over NATS). The runtime asks
 * `owns(pid)` before its local and cross-thread paths: a pid that names another node, or an
 * earlier incarnation of this one, goes through the router.
 */
export interface NodeRouter {
  owns(pid: Pid): boolean;
  send(to: Pid, message: unknown): void;
  /** To the process registered as `name` on node `node` (dropped when there is none). */
  sendNamed(node: string, name: string, message: unknown): void;
  exit(from: Pid, to: Pid, reason: ExitReason): void;
  link(record: ProcessRecord, to: Pid): void;
  unlink(record: ProcessRecord, to: Pid): void;
  monitor(record: ProcessRecord, to: Pid): Ref;
  /** False if `ref` is not a monitor on another node. */
  demonitor(record: ProcessRecord, ref: Ref): boolean;
  call(caller: ProcessRecord | undefined, server: Pid, request: unknown, timeoutMs: number): Promise<unknown>;
}
