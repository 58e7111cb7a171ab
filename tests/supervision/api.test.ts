/**
 * The supervisor API. The cases that start, stop and restart child processes run twice
 * (describe.each): on one thread, and with the children on thread 1 while the supervisor runs on
 * thread 0. The others check the supervisor's own answers (bad specs, unknown ids, counts, limits,
 * calls by name, a slow start whose closure runs on the supervisor's thread): one thread.
 */
import { describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, isCallExit, type Pid } from '../../src/actor/index.js';
import {
  countChildren,
  deleteChild,
  getChildSpec,
  isChildStartFailed,
  isInvalidChildSpec,
  isMaxChildrenReached,
  restartChild,
  startChild,
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import {
  fileTwoThreadSystem,
  StartLog,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
  workerSpec,
} from './helpers.js';

/** Whether a worker answers a ping (it is alive and running), from a helper process of the test. */
function answers(system: ActorSystem, pid: Pid): Promise<boolean> {
  return new Promise((resolve) => {
    const me = system.spawn({
      handle: (message: [string, Pid], ctx) => {
        resolve(message[0] === 'pong' && message[1].equals(pid));
        ctx.stop();
      },
    });
    system.send(pid, { ping: me });
  });
}

const twoThreads = fileTwoThreadSystem();

describe.each([
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'children on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const)('supervisor API with child processes, $name', ({ threads, spawn }) => {
  const make = () => (threads === 1 ? testSystem().system : twoThreads().system);

  it('startChild adds and starts a child; a duplicate id is already_started, or already_present once stopped', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {});
    const started = await startChild(system, supervisor, workerSpec('w', log, {}, spawn));
    expect('pid' in started && started.pid !== undefined && (await answers(system, started.pid))).toBe(true);
    const again = await startChild(system, supervisor, workerSpec('w', log, {}, spawn));
    expect(again).toEqual({ error: 'already_started', pid: (started as { pid: Pid }).pid });
    expect(await terminateChild(system, supervisor, 'w')).toBe('ok');
    expect(await startChild(system, supervisor, workerSpec('w', log, {}, spawn))).toEqual({
      error: 'already_present',
    });
    await stopSupervisor(system, supervisor);
  });

  it('terminateChild keeps the spec; restartChild starts it again; deleteChild forgets it', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, { children: [workerSpec('w', log, {}, spawn)] });
    expect(await restartChild(system, supervisor, 'w')).toEqual({ error: 'running' });
    expect(await deleteChild(system, supervisor, 'w')).toEqual({ error: 'running' });
    expect(await terminateChild(system, supervisor, 'w')).toBe('ok');
    expect(await whichChildren(system, supervisor)).toEqual([
      { id: 'w', pid: undefined, type: 'worker', restart: 'permanent' },
    ]);
    const restarted = await restartChild(system, supervisor, 'w');
    expect('pid' in restarted && restarted.pid !== undefined && (await answers(system, restarted.pid))).toBe(
      true,
    );
    expect(log.count('w')).toBe(2);
    await terminateChild(system, supervisor, 'w');
    expect(await deleteChild(system, supervisor, 'w')).toBe('ok');
    expect(await whichChildren(system, supervisor)).toEqual([]);
    await stopSupervisor(system, supervisor);
  });

  it('terminating a temporary child removes it', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [workerSpec('tmp', log, { restart: 'temporary' }, spawn)],
    });
    expect(await terminateChild(system, supervisor, 'tmp')).toBe('ok');
    expect(await whichChildren(system, supervisor)).toEqual([]);
    await stopSupervisor(system, supervisor);
  });
});

describe('supervisor API (calls; expected outcomes are values)', () => {
  it('startChild with a bad spec returns the InvalidChildSpec; a failing start returns ChildStartFailed and adds nothing', async () => {
    const { system } = testSystem();
    const supervisor = await startSupervisor(system, {});
    const bad = await startChild(system, supervisor, {
      id: 'x',
      start: () => 'ignore',
      restart: 'sometimes' as never,
    });
    expect('error' in bad && isInvalidChildSpec(bad.error) && bad.error.problem).toBe('invalid_restart_type');
    const failed = await startChild(system, supervisor, {
      id: 'y',
      start: () => {
        throw new Error('nope');
      },
    });
    expect('error' in failed && isChildStartFailed(failed.error) && failed.error.childId).toBe('y');
    expect(await whichChildren(system, supervisor)).toEqual([]);
    expect(system.isAlive(supervisor)).toBe(true);
  });

  it('not_found for unknown ids', async () => {
    const { system } = testSystem();
    const supervisor = await startSupervisor(system, {});
    expect(await terminateChild(system, supervisor, 'nobody')).toEqual({ error: 'not_found' });
    expect(await restartChild(system, supervisor, 'nobody')).toEqual({ error: 'not_found' });
    expect(await deleteChild(system, supervisor, 'nobody')).toEqual({ error: 'not_found' });
    expect(await getChildSpec(system, supervisor, 'nobody')).toEqual({ error: 'not_found' });
  });

  it('countChildren and getChildSpec (defaults filled in)', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [
        workerSpec('a', log),
        workerSpec('b', log, { restart: 'transient' }),
        { id: 'sub', type: 'supervisor', start: (ctx: Context) => startSupervisor(ctx, {}) },
      ],
    });
    await terminateChild(system, supervisor, 'b');
    expect(await countChildren(system, supervisor)).toEqual({
      specs: 3,
      active: 2,
      supervisors: 1,
      workers: 2,
    });
    const spec = await getChildSpec(system, supervisor, 'sub');
    expect('spec' in spec && { ...spec.spec, start: undefined }).toEqual({
      id: 'sub',
      start: undefined,
      restart: 'permanent',
      shutdown: 'infinity',
      type: 'supervisor',
      significant: false,
      heartbeatMs: undefined,
    });
    const worker = await getChildSpec(system, supervisor, 'a');
    expect('spec' in worker && worker.spec.shutdown).toBe(5000);
  });

  it('maxChildren: startChild at the limit returns MaxChildrenReached', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, { maxChildren: 1, children: [workerSpec('a', log)] });
    const result = await startChild(system, supervisor, workerSpec('b', log));
    expect('error' in result && isMaxChildrenReached(result.error) && result.error.limit).toBe(1);
  });

  it('works by registered name, from inside another process, and an unknown call does not crash it', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    await startSupervisor(system, { name: 'root', children: [workerSpec('a', log)] });
    const seen: unknown[] = [];
    system.spawn(async (ctx: Context) => {
      seen.push((await whichChildren(ctx, 'root')).map((child) => child.id));
      seen.push(await ctx.call('root', 'what?'));
    });
    await system.settle();
    expect(seen).toEqual([['a'], { error: 'unexpected_call' }]);
    await stopSupervisor(system, 'root');
    const error = await whichChildren(system, 'root').catch((e: unknown) => e);
    expect(isCallExit(error)).toBe(true);
  });

  it('answers calls while a child start is slow (the call queues behind it, not lost)', async () => {
    const { system } = testSystem();
    const supervisor = await startSupervisor(system, {});
    const slow = startChild(system, supervisor, {
      id: 'slow',
      start: async (ctx: Context) => {
        await new Promise<void>((resolve) => system.clock.setTimer(50, resolve));
        return ctx.spawnLink({ handle: () => {} });
      },
    });
    const listing = whichChildren(system, supervisor);
    await system.advance(50);
    expect('pid' in (await slow)).toBe(true);
    expect((await listing).map((child) => child.id)).toEqual(['slow']);
  });
});
