import {
  ActorSystem,
  BadArgument,
  type Context,
  type ExitReason,
  isPid,
  type Pid,
  systemOf,
  type Where,
} from '../actor/index.js';
import type { ChildSpec } from './ChildSpec.js';
import { SupervisorStartFailed } from './errors.js';
import {
  resolveSupervisorOptions,
  type SupervisorConfig,
  type SupervisorOptions,
} from './internal/config.js';
import {
  CountChildrenRequest,
  DeleteChildRequest,
  GetChildSpecRequest,
  RestartChildRequest,
  StartChildRequest,
  StopRequest,
  TerminateChildRequest,
  WhichChildrenRequest,
} from './internal/messages.js';
import { unregisterSupervisor } from './internal/registry.js';
import { SupervisorCore } from './internal/SupervisorCore.js';
import type {
  ChildCounts,
  ChildInfo,
  DeleteChildResult,
  GetChildSpecResult,
  RestartChildResult,
  StartChildResult,
  TerminateChildResult,
} from './SupervisorResults.js';

/** Where supervisor functions act from: the system (outside any process) or a process's context. */
export type { Where } from '../actor/ActorSystem.js';
export {
  DEFAULT_INTENSITY,
  DEFAULT_MAX_CHILDREN,
  DEFAULT_PERIOD_MS,
  MAX_INTENSITY,
  MAX_PERIOD_MS,
  type SupervisorOptions,
} from './internal/config.js';

/** Supervisor calls wait as long as it takes by default, as OTP's (`infinity`). */
export const DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS = Number.POSITIVE_INFINITY;

/**
 * Starts a supervisor: an actor that traps exits, starts `children` in order and keeps them
 * running by OTP's rules. Resolves with its pid once every child has started. If a child fails
 * to start, the children already started are stopped (reverse order) and the promise rejects with
 * `SupervisorStartFailed` naming the child; the supervisor exits with
 * `{ shutdown: SupervisorStartFailed }`. Bad options reject with `InvalidSupervisorOptions` or
 * `InvalidChildSpec`, before any process is spawned.
 *
 * Started from a process's context, the supervisor is linked to that process (its parent: an EXIT
 * from it stops the supervisor and its children, with the same reason; as in OTP, a parent that
 * does not trap exits also dies of a failed start's `{ shutdown: ... }` through the link). Started
 * from the system, its parent is `system.rootPid`, so `system.exit(supervisor, 'shutdown')` stops
 * it cleanly. EXIT signals from other processes are ignored, as OTP's supervisors ignore them.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, type GenServer, reply, startGenServer } from 'zbmd';
 * import { startSupervisor, whichChildren } from 'zbmd/supervision';
 *
 * const Counter: GenServer<number, number> = {
 *   init: (start) => start,
 *   handleCall: (_request: 'get', _from, count) => reply(count, count),
 * };
 * const system = new ActorSystem();
 * const supervisor = await startSupervisor(system, {
 *   strategy: 'one_for_one',
 *   intensity: 3,
 *   periodMs: 5000,
 *   children: [{ id: 'counter', start: (ctx) => startGenServer(ctx, Counter, 0, { link: true }) }],
 * });
 * const [child] = await whichChildren(system, supervisor); // { id: 'counter', pid: <0.43.0>, type: 'worker', restart: 'permanent' }
 * assert.equal(child?.type, 'worker');
 * assert.equal(child?.restart, 'permanent');
 * system.shutdown();
 * ```
 */
export function startSupervisor(where: Where, options: SupervisorOptions): Promise<Pid> {
  let config: SupervisorConfig;
  try {
    config = resolveSupervisorOptions(options);
  } catch (error) {
    return Promise.reject(error);
  }
  const system = systemOf(where);
  const parent = isSystem(where) ? system.rootPid : where.self;
  return new Promise<Pid>((resolve, reject) => {
    let settled = false;
    let pid: Pid | undefined;
    const startWatch = new AbortController();
    const settle = (failure?: SupervisorStartFailed): void => {
      if (settled) return;
      settled = true;
      startWatch.abort(); // the watch below only matters until the start settles
      if (failure === undefined) resolve(pid!);
      else reject(failure);
    };
    const body = (context: Context): Promise<void> => runSupervisor(context, config, parent, settle);
    const spawnOptions = { name: config.name, trapExit: true };
    pid = isSystem(where) ? system.spawn(body, spawnOptions) : where.spawnLink(body, spawnOptions);
    // killed during init: the body never resumes, so its exit settles the start
    system.whenExited(pid, { signal: startWatch.signal }).then(
      (reason) => settle(new SupervisorStartFailed(undefined, reason)),
      () => {},
    );
  });
}

/** The supervisor's process: init, then one message at a time until it exits. */
async function runSupervisor(
  context: Context,
  config: SupervisorConfig,
  parent: Pid,
  settle: (failure?: SupervisorStartFailed) => void,
): Promise<void> {
  const core = new SupervisorCore(context, config, parent);
  const failure = await core.startInitialChildren();
  if (failure !== undefined) {
    unregisterSupervisor(context.self);
    settle(failure);
    context.exit({ shutdown: failure }); // OTP: {shutdown, {failed_to_start_child, Id, Reason}}
  }
  settle();
  for (;;) {
    const message = await context.receive();
    const pending = core.handle(message);
    if (pending !== undefined) await pending;
  }
}

/**
 * Adds a child and starts it (OTP's start_child). For a simple_one_for_one supervisor, pass the
 * extra arguments (an array) for the template's `start` instead of a spec.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { startChild, startSupervisor } from 'zbmd/supervision';
 *
 * const cache = { handle: () => {} };
 * const system = new ActorSystem();
 * const supervisor = await startSupervisor(system, { children: [] });
 * const first = await startChild(system, supervisor, { id: 'cache', start: (ctx) => ctx.spawnLink(cache) });
 * assert.ok('pid' in first);
 * const again = await startChild(system, supervisor, { id: 'cache', start: (ctx) => ctx.spawnLink(cache) });
 * if ('error' in again) console.log(again.error); // 'already_present', 'already_started', MaxChildrenReached...
 * assert.ok('error' in again);
 * system.shutdown();
 * ```
 */
export function startChild(
  where: Where,
  supervisor: Pid | string,
  specOrExtraArgs: ChildSpec | readonly unknown[],
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<StartChildResult> {
  return where.call(checkServer(supervisor), new StartChildRequest(specOrExtraArgs), timeoutMs);
}

/**
 * Stops a child by its shutdown spec (by id; by pid for simple_one_for_one). Its spec is kept
 * (restartChild starts it again), unless it is temporary or dynamic. `'ok'` or `{ error: 'not_found' }`.
 */
export function terminateChild(
  where: Where,
  supervisor: Pid | string,
  target: string | Pid,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<TerminateChildResult> {
  return where.call(checkServer(supervisor), new TerminateChildRequest(checkTarget(target)), timeoutMs);
}

/** Starts a stopped child again from its kept spec. */
export function restartChild(
  where: Where,
  supervisor: Pid | string,
  id: string,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<RestartChildResult> {
  return where.call(checkServer(supervisor), new RestartChildRequest(checkId(id)), timeoutMs);
}

/** Forgets the spec of a stopped child. */
export function deleteChild(
  where: Where,
  supervisor: Pid | string,
  id: string,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<DeleteChildResult> {
  return where.call(checkServer(supervisor), new DeleteChildRequest(checkId(id)), timeoutMs);
}

/** The children in start order, with their pid, `'restarting'` or undefined (stopped). */
export function whichChildren(
  where: Where,
  supervisor: Pid | string,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<ChildInfo[]> {
  return where.call(checkServer(supervisor), new WhichChildrenRequest(), timeoutMs);
}

/** How many children: specs, active, supervisors, workers. */
export function countChildren(
  where: Where,
  supervisor: Pid | string,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<ChildCounts> {
  return where.call(checkServer(supervisor), new CountChildrenRequest(), timeoutMs);
}

/** The resolved spec of a child (by id; by pid for simple_one_for_one). */
export function getChildSpec(
  where: Where,
  supervisor: Pid | string,
  target: string | Pid,
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<GetChildSpecResult> {
  return where.call(checkServer(supervisor), new GetChildSpecRequest(checkTarget(target)), timeoutMs);
}

/**
 * Stops a supervisor as its parent would: its children stop in reverse start order, then it
 * exits with `reason` (default `shutdown`). Resolves once it has exited.
 */
export async function stopSupervisor(
  where: Where,
  supervisor: Pid | string,
  reason: ExitReason = 'shutdown',
  timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
): Promise<void> {
  const system = systemOf(where);
  const server = checkServer(supervisor);
  const pid = typeof server === 'string' ? system.whereis(server) : server;
  const exited = pid === undefined ? Promise.resolve<ExitReason>('noproc') : system.whenExited(pid);
  await where.call(pid ?? supervisor, new StopRequest(reason), timeoutMs);
  await exited;
}

/**
 * The supervisor API under one name (the same functions as above).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { type ChildSpec, Supervisor } from 'zbmd/supervision';
 *
 * const worker = (id: string): ChildSpec => ({ id, start: (ctx) => ctx.spawnLink({ handle: () => {} }) });
 * const children = [worker('loader'), worker('trainer')];
 * const system = new ActorSystem();
 * const supervisor = await Supervisor.start(system, { strategy: 'rest_for_one', children });
 * await Supervisor.terminateChild(system, supervisor, 'loader');
 * assert.equal((await Supervisor.countChildren(system, supervisor)).active, 1);
 * await Supervisor.stop(system, supervisor);
 * system.shutdown();
 * ```
 */
export const Supervisor = {
  start: startSupervisor,
  startChild,
  terminateChild,
  restartChild,
  deleteChild,
  whichChildren,
  countChildren,
  getChildSpec,
  stop: stopSupervisor,
} as const;

function isSystem(where: Where): where is ActorSystem {
  return where instanceof ActorSystem;
}

function checkServer(supervisor: unknown): Pid | string {
  if (isPid(supervisor) || (typeof supervisor === 'string' && supervisor.length > 0)) return supervisor;
  throw new BadArgument(`expected a supervisor pid or registered name, got ${String(supervisor)}`);
}

function checkTarget(target: unknown): string | Pid {
  if (isPid(target) || typeof target === 'string') return target;
  throw new BadArgument(`expected a child id (string) or pid, got ${String(target)}`);
}

function checkId(id: unknown): string {
  if (typeof id === 'string') return id;
  throw new BadArgument(`expected a child id (string), got ${String(id)}`);
}
