import { systemOf, type Where } from '../actor/ActorSystem.js';
import {
  type ActorSystem,
  BadArgument,
  type ExitReason,
  type Handler,
  isPid,
  type Pid,
} from '../actor/index.js';
import { whichChildren } from './Supervisor.js';

export interface RollingUpgradeOptions {
  /** The code swap for one child: returns the function given to `system.upgrade` (current => next). */
  readonly upgrade: (childId: string, pid: Pid) => (current: Handler) => Handler;
  /** Children upgraded at once, in start order. Default 1. */
  readonly batchSize?: number;
  /** Runs once a child's swap has happened; false or a throw fails the child and stops the rollout. */
  readonly check?: (pid: Pid, childId: string) => boolean | Promise<boolean>;
  /** Longest wait for one child's swap to happen (it waits behind the child's queued messages). Default 5000. */
  readonly timeoutMs?: number;
}

/** Why a child's upgrade failed: it was gone, it is not a handler actor, the swap or check failed. */
export interface FailedUpgrade {
  readonly childId: string;
  readonly pid: Pid;
  readonly reason: 'noproc' | 'timeout' | 'check_failed' | ExitReason;
}

export interface RollingUpgradeReport {
  /** True when every running child was upgraded and passed its check. */
  readonly completed: boolean;
  readonly upgraded: { readonly childId: string; readonly pid: Pid }[];
  /** The failures of the batch that stopped the rollout. */
  readonly failed: FailedUpgrade[];
  /** Children left on the old code because the rollout stopped. */
  readonly notAttempted: string[];
}

export const DEFAULT_UPGRADE_TIMEOUT_MS = 5000;

/**
 * Hot code upgrade rolled out gradually across a supervisor's running children: batch by batch,
 * each child's code is swapped between two messages (no message lost or reordered), then
 * `check` runs; the first batch with a failure stops the rollout, and the report says which
 * children failed and which were left on the old code.
 *
 * A swap changes the running process only: a child the supervisor restarts later runs the code
 * its spec's `start` gives it, so change what `start` spawns too if restarts must keep the new code.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, type Handler } from 'zbmd';
 * import { DynamicSupervisor, rollingUpgrade } from 'zbmd/supervision';
 *
 * const version = (tag: string): Handler => ({ handle: (message: unknown, ctx) => {
 *   const { from } = message as { from: Parameters<typeof ctx.send>[0] };
 *   ctx.send(from, tag);
 * } });
 * const system = new ActorSystem();
 * const pool = await DynamicSupervisor.start(system, {
 *   template: { id: 'replica', start: (ctx) => ctx.spawnLink(version('v1')) },
 * });
 * for (let i = 0; i < 4; i++) await DynamicSupervisor.startChild(system, pool);
 * const report = await rollingUpgrade(system, pool, {
 *   upgrade: () => () => version('v2'),
 *   batchSize: 2,
 * });
 * if (!report.completed) console.log('rolled back by hand:', report.failed);
 * assert.equal(report.completed, true);
 * assert.equal(report.upgraded.length, 4);
 * system.shutdown();
 * ```
 */
export async function rollingUpgrade(
  where: Where,
  supervisor: Pid | string,
  options: RollingUpgradeOptions,
): Promise<RollingUpgradeReport> {
  const batchSize = options.batchSize ?? 1;
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPGRADE_TIMEOUT_MS;
  if (typeof options.upgrade !== 'function')
    throw new BadArgument('rollingUpgrade: upgrade must be a function');
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new BadArgument(`rollingUpgrade: batchSize must be an integer >= 1, got ${batchSize}`);
  if (!(timeoutMs >= 0)) throw new BadArgument(`rollingUpgrade: timeoutMs must be >= 0, got ${timeoutMs}`);
  const system = systemOf(where);
  const running = (await whichChildren(where, supervisor)).filter((child) => isPid(child.pid));
  const upgraded: { childId: string; pid: Pid }[] = [];
  for (let first = 0; first < running.length; first += batchSize) {
    const batch = running
      .slice(first, first + batchSize)
      .map((child) => ({ childId: child.id, pid: child.pid as Pid }));
    const outcomes = await Promise.all(
      batch.map((child) => upgradeOne(system, child.childId, child.pid, options, timeoutMs)),
    );
    const failed: FailedUpgrade[] = [];
    batch.forEach((child, index) => {
      const outcome = outcomes[index];
      if (outcome === true) upgraded.push(child);
      else failed.push({ ...child, reason: outcome });
    });
    if (failed.length > 0) {
      const notAttempted = running.slice(first + batchSize).map((child) => child.id);
      return { completed: false, upgraded, failed, notAttempted };
    }
  }
  return { completed: true, upgraded, failed: [], notAttempted: [] };
}

async function upgradeOne(
  system: ActorSystem,
  childId: string,
  pid: Pid,
  options: RollingUpgradeOptions,
  timeoutMs: number,
): Promise<true | FailedUpgrade['reason']> {
  let swapped: true | FailedUpgrade['reason'];
  try {
    swapped = await swap(system, pid, options.upgrade(childId, pid), timeoutMs);
  } catch (error) {
    return error as ExitReason; // the upgrade factory threw, or the child is not a handler actor
  }
  if (swapped !== true || options.check === undefined) return swapped;
  try {
    if (!(await options.check(pid, childId))) return 'check_failed';
  } catch (error) {
    return error as ExitReason;
  }
  return system.isAlive(pid) ? true : 'noproc';
}

/** Swaps the code and resolves once the swap has happened, or with why it did not. */
function swap(
  system: ActorSystem,
  pid: Pid,
  next: (current: Handler) => Handler,
  timeoutMs: number,
): Promise<true | FailedUpgrade['reason']> {
  return new Promise((resolve) => {
    let done = false;
    const timer = system.clock.setTimer(timeoutMs, () => finish('timeout'));
    const finish = (outcome: true | FailedUpgrade['reason']): void => {
      if (done) return;
      done = true;
      system.clock.cancelTimer(timer);
      resolve(outcome);
    };
    const accepted = system.upgrade(pid, (current) => {
      const result = next(current); // a throw here crashes the child: whenExited reports it
      if (typeof result === 'object' && result !== null && typeof result.handle === 'function') finish(true);
      return result;
    });
    if (!accepted) return finish('noproc');
    system.whenExited(pid).then((reason) => finish(reason));
  });
}
