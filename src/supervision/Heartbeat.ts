import { type Context, isMailboxFull, type Pid } from '../actor/index.js';
import { linkedSpawnerOf } from '../actor/internal/Process.js';
import { HeartbeatSignal } from './internal/messages.js';
import { parentOf } from './internal/registry.js';

/**
 * Tells the supervisor "I am alive and not hung". A child whose spec has `heartbeatMs` must call
 * this at least that often; a child that misses the deadline is killed and restarted as a
 * failure (reason `HeartbeatMissed`), as seed 002's `check_heartbeats`.
 *
 * The supervisor is found from the supervision tree once the child has been recorded (after its
 * `start` returned). From inside `init`, before that, pass the supervisor's pid explicitly (the
 * start function gets the supervisor's context: `const supervisor = ctx.self`). A child started
 * on another scheduler thread (`ctx.spawnLink(code, args, { thread })`) takes the process that
 * spawned and linked it for its supervisor, from `init` on as well. Returns false
 * when no supervisor is known, or its mailbox is full (the beat is not sent; a beat is never
 * worth crashing the child for).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, SimulatedClock } from 'zbmd';
 * import { type ChildSpec, heartbeat, startSupervisor, whichChildren } from 'zbmd/supervision';
 *
 * const system = new ActorSystem({ clock: new SimulatedClock() });
 * const trainer: ChildSpec = {
 *   id: 'trainer',
 *   heartbeatMs: 1000,
 *   // beats once per step; this one is never sent a step, so it is taken for hung
 *   start: (ctx) => ctx.spawnLink({ handle: (_step: number, self) => void heartbeat(self) }),
 * };
 * const supervisor = await startSupervisor(system, { children: [trainer] });
 * const before = (await whichChildren(system, supervisor))[0]?.pid;
 * await system.advance(1500); // past the deadline: killed and restarted
 * const after = (await whichChildren(system, supervisor))[0]?.pid;
 * assert.notEqual(String(after), String(before));
 * system.shutdown();
 * ```
 */
export function heartbeat(context: Context, supervisor?: Pid): boolean {
  const target = supervisor ?? parentOf(context.self) ?? linkedSpawnerOf(context);
  if (target === undefined) return false;
  try {
    context.send(target, new HeartbeatSignal(context.self));
  } catch (error) {
    if (isMailboxFull(error)) return false;
    throw error;
  }
  return true;
}
