import type {
  ActorSystem,
  ActorSystemOptions,
  Context,
  ExitReason,
  Handler,
  Pid,
} from '../../src/actor/index.js';
import type { ChildSpec, SupervisionEvent } from '../../src/supervision/index.js';
import { onSupervisionEvent, whichChildren } from '../../src/supervision/index.js';

import { fileTwoThreadSystem, testSystem } from '../actor/helpers.js';

export { fileTwoThreadSystem, testSystem };

/** What a test worker understands. */
export type WorkerMessage =
  | 'crash'
  | { exit: ExitReason }
  | { ping: Pid; tag?: unknown }
  | { unlink: Pid }
  | { trap: boolean };

/**
 * A worker: crashes on 'crash', exits with a reason on { exit }, answers { ping } with
 * ['pong', self, tag], unlinks from a pid on { unlink }, traps exits on { trap }. When it traps
 * exits it ignores EXIT messages (a child that will not stop on `shutdown`).
 */
export function workerHandler(): Handler<WorkerMessage> {
  return {
    handle(message, ctx) {
      if (message === 'crash') throw new Error('worker crash');
      if (typeof message !== 'object' || message === null) return;
      if ('exit' in message) ctx.exit(message.exit);
      if ('ping' in message) ctx.send(message.ping, ['pong', ctx.self, message.tag]);
      if ('unlink' in message) ctx.unlink(message.unlink);
      if ('trap' in message) ctx.trapExit(message.trap);
    },
  };
}

/** Counts the starts of each child id. */
export class StartLog {
  readonly starts = new Map<string, number>();
  readonly order: string[] = [];

  count(id: string): number {
    return this.starts.get(id) ?? 0;
  }

  record(id: string): void {
    this.starts.set(id, this.count(id) + 1);
    this.order.push(id);
  }
}

/** How a test starts a worker: here, or (threads suites) by module URL on another thread. */
export type SpawnWorker = (ctx: Context) => Pid;

export const spawnLocalWorker: SpawnWorker = (ctx) => ctx.spawnLink(workerHandler());

/** Starts the fixtures' `Worker` class on scheduler thread `thread` (the system needs threads > 1). */
export function spawnWorkerOn(thread: number): SpawnWorker {
  const code = { module: new URL('./fixtures/worker.ts', import.meta.url).href, export: 'Worker' };
  return (ctx) => ctx.spawnLink(code, [], { thread });
}

/** A worker child spec whose starts are logged. */
export function workerSpec(
  id: string,
  log: StartLog,
  extra: Partial<ChildSpec> = {},
  spawn: SpawnWorker = spawnLocalWorker,
): ChildSpec {
  return {
    id,
    start: (ctx: Context) => {
      log.record(id);
      return spawn(ctx);
    },
    ...extra,
  };
}

/** Records every supervision event of the system. */
export function recordEvents(system: ActorSystem): SupervisionEvent[] {
  const events: SupervisionEvent[] = [];
  onSupervisionEvent(system, (event) => events.push(event));
  return events;
}

/** The pid of a child by id, from the supervisor's own answer. */
export async function pidOf(
  system: ActorSystem,
  supervisor: Pid,
  id: string,
): Promise<Pid | 'restarting' | undefined> {
  const children = await whichChildren(system, supervisor);
  return children.find((child) => child.id === id)?.pid;
}

/** Resolves with the next supervision event of `kind` in `system`. */
export function nextEvent(system: ActorSystem, kind: SupervisionEvent['kind']): Promise<SupervisionEvent> {
  return new Promise((resolve) => {
    const stop = onSupervisionEvent(system, (event) => {
      if (event.kind !== kind) return;
      stop();
      resolve(event);
    });
  });
}

/** Where a suite's supervisor children run: the OTP suites run once per placement (describe.each). */
export interface WorkerPlacement {
  readonly name: string;
  readonly system: () => ActorSystem;
  readonly spawn: SpawnWorker;
}

/**
 * The two placements: one thread, and the children on thread 1 of the file's two-thread system
 * (`options` for it, such as a SimulatedClock; `remote` names that placement in the test titles).
 */
export function workerPlacements(
  options: ActorSystemOptions = {},
  remote = 'children on another thread',
): WorkerPlacement[] {
  const twoThreads = fileTwoThreadSystem(options);
  return [
    { name: 'one thread', system: () => testSystem().system, spawn: spawnLocalWorker },
    { name: remote, system: () => twoThreads().system, spawn: spawnWorkerOn(1) },
  ];
}
