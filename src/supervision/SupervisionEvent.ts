import { type ActorSystem, type ExitReason, formatReason, type Pid } from '../actor/index.js';

/**
 * What a supervisor did. Every supervision action is one event:
 * - `child_started`: a child started (init, `startChild`, `restartChild`);
 * - `child_exited`: a child exited by itself (`reason` says why);
 * - `child_hung`: a child missed its heartbeat deadline and was killed (`child_exited` follows);
 * - `child_restart_scheduled`: a restart waits `delayMs` (backoff);
 * - `child_restarted`: a child was started again after a failure;
 * - `child_start_failed`: a start or restart failed (`reason`); a restart is tried again;
 * - `child_terminated`: the supervisor stopped a child (`reason` is what it exited with);
 * - `restart_intensity_reached`: one restart too many within the period: the supervisor gives up;
 * - `auto_shutdown`: a significant child's exit stops the supervisor (`autoShutdown`);
 * - `supervisor_shutdown`: the supervisor stopped all its children and exits with `reason`.
 */
export type SupervisionEventKind =
  | 'child_started'
  | 'child_exited'
  | 'child_hung'
  | 'child_restart_scheduled'
  | 'child_restarted'
  | 'child_start_failed'
  | 'child_terminated'
  | 'restart_intensity_reached'
  | 'auto_shutdown'
  | 'supervisor_shutdown';

export interface SupervisionEvent {
  readonly kind: SupervisionEventKind;
  readonly supervisor: Pid;
  /** The child concerned (undefined for events about the supervisor as a whole). */
  readonly childId: string | undefined;
  readonly pid: Pid | undefined;
  readonly reason: ExitReason | undefined;
  /** `system.clock.now()` when it happened. */
  readonly timeMs: number;
  /** The wait before a scheduled restart (backoff), for `child_restart_scheduled`. */
  readonly delayMs?: number;
}

export type SupervisionListener = (event: SupervisionEvent) => void;

const systemListeners = new WeakMap<ActorSystem, Set<SupervisionListener>>();

/**
 * Subscribes to the events of every supervisor of `system` (for logs and metrics). Returns a
 * function that removes the listener. A listener that throws is reported on stderr; it never
 * crashes a supervisor.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { formatSupervisionEvent, onSupervisionEvent, startSupervisor } from 'zbmd/supervision';
 *
 * const system = new ActorSystem();
 * const lines: string[] = [];
 * const unsubscribe = onSupervisionEvent(system, (event) => lines.push(formatSupervisionEvent(event)));
 * await startSupervisor(system, { children: [{ id: 'worker', start: (ctx) => ctx.spawnLink({ handle: () => {} }) }] });
 * unsubscribe();
 * assert.ok(lines.some((line) => line.includes('child_started')));
 * system.shutdown();
 * ```
 */
export function onSupervisionEvent(system: ActorSystem, listener: SupervisionListener): () => void {
  if (typeof listener !== 'function') throw new TypeError('onSupervisionEvent: listener must be a function');
  const listeners = listenersOf(system);
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** @internal The live set of system-wide listeners (supervisors keep a reference to it). */
export function listenersOf(system: ActorSystem): Set<SupervisionListener> {
  let listeners = systemListeners.get(system);
  if (listeners === undefined) {
    listeners = new Set();
    systemListeners.set(system, listeners);
  }
  return listeners;
}

/** One log line for an event: `[12.0 ms] <0.3.0> child_restarted worker <0.9.0>`. */
export function formatSupervisionEvent(event: SupervisionEvent): string {
  const parts = [`[${event.timeMs.toFixed(1)} ms]`, String(event.supervisor), event.kind];
  if (event.childId !== undefined) parts.push(event.childId);
  if (event.pid !== undefined) parts.push(String(event.pid));
  if (event.delayMs !== undefined) parts.push(`in ${event.delayMs.toFixed(1)} ms`);
  if (event.reason !== undefined) parts.push(`(${formatReason(event.reason)})`);
  return parts.join(' ');
}
