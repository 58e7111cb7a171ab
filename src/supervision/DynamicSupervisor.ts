import type { Pid } from '../actor/index.js';
import type { BackoffSpec } from './Backoff.js';
import type { ChildSpec } from './ChildSpec.js';
import type { SupervisionListener } from './SupervisionEvent.js';
import {
  countChildren,
  DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
  startChild,
  startSupervisor,
  terminateChild,
  type Where,
  whichChildren,
} from './Supervisor.js';
import type { ChildCounts, ChildInfo, StartChildResult, TerminateChildResult } from './SupervisorResults.js';

export interface DynamicSupervisorOptions {
  /** The spec every child is made from; `startChild`'s arguments are appended to its `start`. */
  readonly template: ChildSpec;
  /** Most children at once (default 100,000): beyond it `startChild` gets `MaxChildrenReached`. */
  readonly maxChildren?: number;
  readonly intensity?: number;
  readonly periodMs?: number;
  readonly backoff?: BackoffSpec;
  readonly name?: string;
  readonly onEvent?: SupervisionListener;
}

/**
 * A supervisor of children started at run time from one template (OTP's simple_one_for_one,
 * Elixir's DynamicSupervisor): each child is restarted on its own (one_for_one) with the
 * arguments it was started with.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { DynamicSupervisor } from 'zbmd/supervision';
 *
 * const replica = (model: string) => ({ handle: (_request: unknown) => console.log(`${model} got a request`) });
 * const system = new ActorSystem();
 * const pool = await DynamicSupervisor.start(system, {
 *   template: { id: 'replica', restart: 'transient', start: (ctx, model: string) => ctx.spawnLink(replica(model)) },
 *   maxChildren: 8,
 * });
 * const result = await DynamicSupervisor.startChild(system, pool, 'resnet50');
 * assert.ok('pid' in result && result.pid !== undefined);
 * assert.equal((await DynamicSupervisor.countChildren(system, pool)).workers, 1);
 * if ('pid' in result && result.pid) await DynamicSupervisor.terminateChild(system, pool, result.pid);
 * assert.equal((await DynamicSupervisor.countChildren(system, pool)).workers, 0);
 * system.shutdown();
 * ```
 */
export const DynamicSupervisor = {
  start(where: Where, options: DynamicSupervisorOptions): Promise<Pid> {
    const { template, ...rest } = options;
    return startSupervisor(where, { ...rest, strategy: 'simple_one_for_one', children: [template] });
  },

  /** Starts a child from the template with `extraArgs` appended to its start's arguments. */
  startChild(where: Where, supervisor: Pid | string, ...extraArgs: unknown[]): Promise<StartChildResult> {
    return startChild(where, supervisor, extraArgs);
  },

  /** Stops a child (by its shutdown spec) and forgets it. */
  terminateChild(
    where: Where,
    supervisor: Pid | string,
    pid: Pid,
    timeoutMs = DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
  ): Promise<TerminateChildResult> {
    return terminateChild(where, supervisor, pid, timeoutMs);
  },

  whichChildren(where: Where, supervisor: Pid | string): Promise<ChildInfo[]> {
    return whichChildren(where, supervisor);
  },

  countChildren(where: Where, supervisor: Pid | string): Promise<ChildCounts> {
    return countChildren(where, supervisor);
  },
};
