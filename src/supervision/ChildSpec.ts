import type { Context, Pid } from '../actor/index.js';
import { InvalidChildSpec } from './errors.js';

/**
 * When a child that exited is restarted (OTP's restart types):
 * - `permanent`: always;
 * - `transient`: only when it exited abnormally, i.e. not with `normal`, `shutdown` or
 *   `{ shutdown: detail }`;
 * - `temporary`: never, not even when a sibling's failure stopped it under one_for_all or
 *   rest_for_one (it is then removed from the supervisor).
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/**
 * How a child is stopped: `'brutal_kill'` (an untrappable kill), a number of milliseconds to wait
 * after the exit signal `shutdown` before killing it, or `'infinity'` (wait as long as it takes;
 * the default for supervisors, so a subtree has all the time it needs).
 */
export type ShutdownSpec = 'brutal_kill' | 'infinity' | number;

export type ChildType = 'worker' | 'supervisor';

/** What a start function returns: the child's pid, or `'ignore'` (no process; the spec is kept). */
export type StartResult = Pid | 'ignore';

/**
 * Starts a child. `context` is the supervisor's own context, so `context.self` is the
 * supervisor: the child must be LINKED to it (`context.spawnLink(...)` or
 * `startGenServer(context, Behavior, args, { link: true })`). The supervisor links once more
 * after the start (links are idempotent), so a forgotten link cannot hide a child's exit.
 * A simple_one_for_one (DynamicSupervisor) child gets the extra arguments of `startChild` after
 * the context. Throwing or rejecting is a start failure.
 */
export type StartFunction = (context: Context, ...extraArgs: any[]) => StartResult | Promise<StartResult>;

/**
 * A child spec as users write it: a plain object. Only `id` and `start` are required.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, type GenServer, reply, startGenServer } from 'zbmd';
 * import { type ChildSpec, startSupervisor, stopSupervisor, whichChildren } from 'zbmd/supervision';
 *
 * const Counter: GenServer<number, number> = {
 *   init: (start) => start,
 *   handleCall: (_request: 'get', _from, count) => reply(count, count),
 * };
 * const counter: ChildSpec = {
 *   id: 'counter',
 *   start: (ctx) => startGenServer(ctx, Counter, 0, { link: true }),
 *   restart: 'permanent',   // default
 *   shutdown: 5000,         // default for workers: 5 s after `shutdown`, then kill
 * };
 * const system = new ActorSystem();
 * const supervisor = await startSupervisor(system, { children: [counter] });
 * assert.equal((await whichChildren(system, supervisor))[0]?.id, 'counter');
 * await stopSupervisor(system, supervisor);
 * system.shutdown();
 * ```
 */
export interface ChildSpec {
  /** Unique among the supervisor's children (a non-empty string of at most 256 characters). */
  readonly id: string;
  readonly start: StartFunction;
  /** Default `'permanent'`. */
  readonly restart?: RestartType;
  /** Default 5000 ms for workers, `'infinity'` for supervisors. */
  readonly shutdown?: ShutdownSpec;
  /** Default `'worker'`. */
  readonly type?: ChildType;
  /**
   * A significant child's exit can stop the supervisor (see `autoShutdown`); only transient and
   * temporary children may be significant. Default false.
   */
  readonly significant?: boolean;
  /**
   * Hang detection: the child must call `heartbeat(ctx)` at least every `heartbeatMs` ms, or it is
   * killed and restarted as a failure (reason `HeartbeatMissed`). Default: no deadline.
   */
  readonly heartbeatMs?: number;
}

/** A validated child spec with every default filled in (what `getChildSpec` returns). */
export interface ResolvedChildSpec {
  readonly id: string;
  readonly start: StartFunction;
  readonly restart: RestartType;
  readonly shutdown: ShutdownSpec;
  readonly type: ChildType;
  readonly significant: boolean;
  readonly heartbeatMs: number | undefined;
}

/** Default shutdown time of a worker: the time it gets to stop after `shutdown` before a kill. */
export const DEFAULT_WORKER_SHUTDOWN_MS = 5000;
/** Longest child id accepted. */
export const MAX_CHILD_ID_LENGTH = 256;
/** Longest heartbeat deadline accepted (one day): a longer one is a mistake, not a deadline. */
export const MAX_HEARTBEAT_MS = 86_400_000;

const RESTART_TYPES: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const CHILD_TYPES: readonly ChildType[] = ['worker', 'supervisor'];
const KNOWN_FIELDS = new Set(['id', 'start', 'restart', 'shutdown', 'type', 'significant', 'heartbeatMs']);

/**
 * Validates a child spec field by field, at the edge, and fills in the defaults. Throws
 * `InvalidChildSpec` naming the first bad field (`invalid_restart_type`, `invalid_shutdown`...).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { isInvalidChildSpec, resolveChildSpec } from 'zbmd/supervision';
 *
 * const start = () => { throw new Error('not started in this example'); };
 * assert.equal(resolveChildSpec({ id: 'w', start }).shutdown, 5000);
 * assert.throws(
 *   () => resolveChildSpec({ id: 'w', start, restart: 'sometimes' }),
 *   (error) => isInvalidChildSpec(error) && error.problem === 'invalid_restart_type',
 * );
 * ```
 */
export function resolveChildSpec(spec: unknown): ResolvedChildSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new InvalidChildSpec('invalid_child_spec', undefined, spec, 'a child spec must be a plain object');
  }
  const fields = spec as Record<string, unknown>;
  const id = checkId(fields.id);
  for (const key of Object.keys(fields)) {
    if (!KNOWN_FIELDS.has(key))
      throw new InvalidChildSpec('invalid_child_spec', id, key, `unknown field '${key}'`);
  }
  if (typeof fields.start !== 'function') {
    throw new InvalidChildSpec(
      'invalid_start',
      id,
      fields.start,
      'start must be a function (ctx, ...args) => Pid | "ignore"',
    );
  }
  const restart = checkRestart(id, fields.restart);
  const type = checkType(id, fields.type);
  const shutdown = checkShutdown(id, fields.shutdown, type);
  const significant = checkSignificant(id, fields.significant, restart);
  const heartbeatMs = checkHeartbeat(id, fields.heartbeatMs);
  return { id, start: fields.start as StartFunction, restart, shutdown, type, significant, heartbeatMs };
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_CHILD_ID_LENGTH) {
    throw new InvalidChildSpec(
      'invalid_child_id',
      undefined,
      id,
      `id must be a string of 1 to ${MAX_CHILD_ID_LENGTH} characters`,
    );
  }
  return id;
}

function checkRestart(id: string, restart: unknown): RestartType {
  if (restart === undefined) return 'permanent';
  if (!RESTART_TYPES.includes(restart as RestartType)) {
    throw new InvalidChildSpec(
      'invalid_restart_type',
      id,
      restart,
      `restart must be one of ${RESTART_TYPES.join(', ')}`,
    );
  }
  return restart as RestartType;
}

function checkType(id: string, type: unknown): ChildType {
  if (type === undefined) return 'worker';
  if (!CHILD_TYPES.includes(type as ChildType)) {
    throw new InvalidChildSpec(
      'invalid_child_type',
      id,
      type,
      `type must be one of ${CHILD_TYPES.join(', ')}`,
    );
  }
  return type as ChildType;
}

function checkShutdown(id: string, shutdown: unknown, type: ChildType): ShutdownSpec {
  if (shutdown === undefined) return type === 'supervisor' ? 'infinity' : DEFAULT_WORKER_SHUTDOWN_MS;
  if (shutdown === 'brutal_kill' || shutdown === 'infinity') return shutdown;
  if (typeof shutdown === 'number' && Number.isInteger(shutdown) && shutdown >= 0) return shutdown;
  throw new InvalidChildSpec(
    'invalid_shutdown',
    id,
    shutdown,
    "shutdown must be 'brutal_kill', 'infinity' or an integer number of milliseconds >= 0",
  );
}

function checkSignificant(id: string, significant: unknown, restart: RestartType): boolean {
  if (significant === undefined) return false;
  if (typeof significant !== 'boolean') {
    throw new InvalidChildSpec('invalid_significant', id, significant, 'significant must be a boolean');
  }
  if (significant && restart === 'permanent') {
    throw new InvalidChildSpec(
      'bad_combination',
      id,
      { restart, significant },
      'a permanent child cannot be significant',
    );
  }
  return significant;
}

function checkHeartbeat(id: string, heartbeatMs: unknown): number | undefined {
  if (heartbeatMs === undefined) return undefined;
  if (
    typeof heartbeatMs !== 'number' ||
    !Number.isFinite(heartbeatMs) ||
    heartbeatMs <= 0 ||
    heartbeatMs > MAX_HEARTBEAT_MS
  ) {
    throw new InvalidChildSpec(
      'invalid_heartbeat',
      id,
      heartbeatMs,
      `heartbeatMs must be a number in (0, ${MAX_HEARTBEAT_MS}]`,
    );
  }
  return heartbeatMs;
}
