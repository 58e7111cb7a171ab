import { describe, expect, it } from 'vitest';
import type { Context, Pid } from '../../src/actor/index.js';
import {
  type ChildSpec,
  DynamicSupervisor,
  getChildSpec,
  isMaxChildrenReached,
  restartChild,
  startChild,
} from '../../src/supervision/index.js';
import { testSystem, workerHandler } from './helpers.js';

function template(started: unknown[][], restart: ChildSpec['restart'] = 'permanent'): ChildSpec {
  return {
    id: 'replica',
    restart,
    start: (ctx: Context, ...args: unknown[]) => {
      started.push(args);
      return ctx.spawnLink(workerHandler());
    },
  };
}

describe('DynamicSupervisor (simple_one_for_one)', () => {
  it('starts children from the template with the extra arguments appended', async () => {
    const { system } = testSystem();
    const started: unknown[][] = [];
    const pool = await DynamicSupervisor.start(system, { template: template(started) });
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]); // nothing at init
    await DynamicSupervisor.startChild(system, pool, 'resnet', 2);
    await DynamicSupervisor.startChild(system, pool, 'bert', 1);
    expect(started).toEqual([
      ['resnet', 2],
      ['bert', 1],
    ]);
    expect((await DynamicSupervisor.countChildren(system, pool)).active).toBe(2);
  });

  it('restarts a crashed child with the same arguments, alone', async () => {
    const { system } = testSystem();
    const started: unknown[][] = [];
    const pool = await DynamicSupervisor.start(system, { template: template(started), intensity: 5 });
    const first = (await DynamicSupervisor.startChild(system, pool, 'a')) as { pid: Pid };
    const second = (await DynamicSupervisor.startChild(system, pool, 'b')) as { pid: Pid };
    system.send(first.pid, 'crash');
    await system.settle();
    expect(started).toEqual([['a'], ['b'], ['a']]);
    expect(system.isAlive(second.pid)).toBe(true);
    const pids = (await DynamicSupervisor.whichChildren(system, pool)).map((child) => child.pid);
    expect(pids).toHaveLength(2);
    expect(pids).not.toContain(first.pid);
  });

  it('terminateChild by pid stops and forgets the child; an id or unknown pid is not_found', async () => {
    const { system } = testSystem();
    const pool = await DynamicSupervisor.start(system, { template: template([]) });
    const child = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    expect(await DynamicSupervisor.terminateChild(system, pool, child.pid)).toBe('ok');
    expect(system.isAlive(child.pid)).toBe(false);
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]);
    expect(await DynamicSupervisor.terminateChild(system, pool, child.pid)).toEqual({ error: 'not_found' });
    expect(await restartChild(system, pool, 'replica')).toEqual({ error: 'simple_one_for_one' });
  });

  it('a transient child that exits normally is forgotten', async () => {
    const { system } = testSystem();
    const pool = await DynamicSupervisor.start(system, { template: template([], 'transient') });
    const child = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    system.send(child.pid, { exit: 'normal' });
    await system.settle();
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]);
  });

  it('maxChildren: the start beyond the limit gets MaxChildrenReached; room frees up when a child goes', async () => {
    const { system } = testSystem();
    const pool = await DynamicSupervisor.start(system, { template: template([]), maxChildren: 2 });
    const a = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    await DynamicSupervisor.startChild(system, pool);
    const third = await DynamicSupervisor.startChild(system, pool);
    expect('error' in third && isMaxChildrenReached(third.error) && third.error.limit).toBe(2);
    await DynamicSupervisor.terminateChild(system, pool, a.pid);
    expect('pid' in (await DynamicSupervisor.startChild(system, pool))).toBe(true);
  });

  it('startChild with a spec instead of arguments is refused; getChildSpec by pid gives the template', async () => {
    const { system } = testSystem();
    const pool = await DynamicSupervisor.start(system, { template: template([]) });
    expect(await startChild(system, pool, { id: 'x', start: () => 'ignore' })).toEqual({
      error: 'expected_extra_args',
    });
    const child = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    const spec = await getChildSpec(system, pool, child.pid);
    expect('spec' in spec && spec.spec.id).toBe('replica');
  });

  it('a start returning ignore adds nothing', async () => {
    const { system } = testSystem();
    const pool = await DynamicSupervisor.start(system, { template: { id: 'maybe', start: () => 'ignore' } });
    expect(await DynamicSupervisor.startChild(system, pool)).toEqual({ pid: undefined });
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]);
  });
});
