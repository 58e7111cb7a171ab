/**
 * DynamicSupervisor (simple_one_for_one). The cases with children run twice (describe.each): on
 * one thread, and with the children on thread 1 while the supervisor runs on thread 0.
 *
 * One thread only, and why: "startChild with a spec ... getChildSpec" and "a start returning
 * ignore" check the supervisor's own answers (no child process runs on another thread).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActorSystem, Context, Pid } from '../../src/actor/index.js';
import {
  type ChildSpec,
  DynamicSupervisor,
  getChildSpec,
  isMaxChildrenReached,
  restartChild,
  startChild,
} from '../../src/supervision/index.js';
import {
  fileTwoThreadSystem,
  type SpawnWorker,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
} from './helpers.js';

function template(
  started: unknown[][],
  restart: ChildSpec['restart'] = 'permanent',
  spawn: SpawnWorker = spawnLocalWorker,
): ChildSpec {
  return {
    id: 'replica',
    restart,
    start: (ctx: Context, ...args: unknown[]) => {
      started.push(args);
      return spawn(ctx);
    },
  };
}

const twoThreads = fileTwoThreadSystem();

describe.each([
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'children on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const)('DynamicSupervisor (simple_one_for_one), $name', ({ threads, spawn }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });

  it('starts children from the template with the extra arguments appended', async () => {
    const started: unknown[][] = [];
    const pool = await DynamicSupervisor.start(system, { template: template(started, 'permanent', spawn) });
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
    const started: unknown[][] = [];
    const pool = await DynamicSupervisor.start(system, {
      template: template(started, 'permanent', spawn),
      intensity: 5,
    });
    const first = (await DynamicSupervisor.startChild(system, pool, 'a')) as { pid: Pid };
    const second = (await DynamicSupervisor.startChild(system, pool, 'b')) as { pid: Pid };
    const secondExited = system.whenExited(second.pid);
    system.send(first.pid, 'crash');
    await system.whenExited(first.pid);
    const pids = (await DynamicSupervisor.whichChildren(system, pool)).map((child) => String(child.pid));
    expect(started).toEqual([['a'], ['b'], ['a']]);
    expect(pids).toHaveLength(2);
    expect(pids).toContain(String(second.pid)); // alone: the sibling was not touched
    expect(pids).not.toContain(String(first.pid));
    expect(await Promise.race([secondExited, Promise.resolve('alive')])).toBe('alive');
  });

  it('terminateChild by pid stops and forgets the child; an id or unknown pid is not_found', async () => {
    const pool = await DynamicSupervisor.start(system, { template: template([], 'permanent', spawn) });
    const child = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    const exited = system.whenExited(child.pid);
    expect(await DynamicSupervisor.terminateChild(system, pool, child.pid)).toBe('ok');
    expect(await exited).toBe('shutdown');
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]);
    expect(await DynamicSupervisor.terminateChild(system, pool, child.pid)).toEqual({ error: 'not_found' });
    expect(await restartChild(system, pool, 'replica')).toEqual({ error: 'simple_one_for_one' });
  });

  it('a transient child that exits normally is forgotten', async () => {
    const pool = await DynamicSupervisor.start(system, { template: template([], 'transient', spawn) });
    const child = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    const exited = system.whenExited(child.pid);
    system.send(child.pid, { exit: 'normal' });
    await exited;
    expect(await DynamicSupervisor.whichChildren(system, pool)).toEqual([]);
  });

  it('maxChildren: the start beyond the limit gets MaxChildrenReached; room frees up when a child goes', async () => {
    const pool = await DynamicSupervisor.start(system, {
      template: template([], 'permanent', spawn),
      maxChildren: 2,
    });
    const a = (await DynamicSupervisor.startChild(system, pool)) as { pid: Pid };
    await DynamicSupervisor.startChild(system, pool);
    const third = await DynamicSupervisor.startChild(system, pool);
    expect('error' in third && isMaxChildrenReached(third.error) && third.error.limit).toBe(2);
    await DynamicSupervisor.terminateChild(system, pool, a.pid);
    expect('pid' in (await DynamicSupervisor.startChild(system, pool))).toBe(true);
  });
});

describe('DynamicSupervisor (simple_one_for_one)', () => {
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
