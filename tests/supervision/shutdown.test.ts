import { describe, expect, it } from 'vitest';
import type { Context, Pid } from '../../src/actor/index.js';
import {
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import { pidOf, recordEvents, StartLog, testSystem, workerSpec } from './helpers.js';

/** A child that traps exits and ignores them: it only stops when killed. */
function stubbornSpec(id: string, shutdown: 'brutal_kill' | 'infinity' | number) {
  return { id, shutdown, start: (ctx: Context) => ctx.spawnLink({ handle: () => {} }, { trapExit: true }) };
}

/** A child that traps exits and stops `delayMs` after it gets `shutdown`. */
function slowStopSpec(id: string, shutdown: number | 'infinity', delayMs: number) {
  return {
    id,
    shutdown,
    start: (ctx: Context) =>
      ctx.spawnLink(
        async (self: Context) => {
          await self.receive(
            (message) => typeof message === 'object' && message !== null && 'reason' in message,
          );
          await self.receive(() => false, delayMs);
          self.exit('shutdown');
        },
        { trapExit: true },
      ),
  };
}

describe('child shutdown', () => {
  it('brutal_kill: the child dies as killed at once', async () => {
    const { system } = testSystem();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [stubbornSpec('s', 'brutal_kill')] });
    expect(await terminateChild(system, supervisor, 's')).toBe('ok');
    const terminated = events.find((event) => event.kind === 'child_terminated');
    expect(terminated?.reason).toBe('killed');
  });

  it('a timeout: a child that ignores shutdown is killed after shutdown ms (simulated clock)', async () => {
    const { system, clock } = testSystem();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [stubbornSpec('s', 300)] });
    const pid = (await pidOf(system, supervisor, 's')) as Pid;
    let done = false;
    const result = terminateChild(system, supervisor, 's').then((value) => {
      done = true;
      return value;
    });
    await system.advance(299);
    expect(done).toBe(false);
    expect(system.isAlive(pid)).toBe(true);
    await system.advance(1);
    expect(await result).toBe('ok');
    expect(clock.now()).toBe(300);
    expect(events.find((event) => event.kind === 'child_terminated')?.reason).toBe('killed');
  });

  it('a timeout: a child that stops in time exits with shutdown and is not killed', async () => {
    const { system } = testSystem();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [slowStopSpec('s', 300, 100)] });
    const result = terminateChild(system, supervisor, 's');
    await system.advance(100);
    expect(await result).toBe('ok');
    expect(events.find((event) => event.kind === 'child_terminated')?.reason).toBe('shutdown');
  });

  it('infinity: the supervisor waits as long as the child takes', async () => {
    const { system } = testSystem();
    const supervisor = await startSupervisor(system, { children: [slowStopSpec('s', 'infinity', 60_000)] });
    let done = false;
    const result = terminateChild(system, supervisor, 's').then(() => {
      done = true;
    });
    await system.advance(59_999);
    expect(done).toBe(false);
    await system.advance(1);
    await result;
    expect(done).toBe(true);
  });

  it('a child that unlinked from the supervisor is still stopped (the supervisor monitors it first)', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, { children: [workerSpec('u', log)] });
    const pid = (await pidOf(system, supervisor, 'u')) as Pid;
    system.send(pid, { unlink: supervisor });
    await system.settle();
    expect(system.processInfo(pid)?.links).toEqual([]);
    expect(await terminateChild(system, supervisor, 'u')).toBe('ok');
    expect(system.isAlive(pid)).toBe(false);
  });

  it('the supervisor stays consistent when a child dies while it stops another (the EXIT is consumed)', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_all',
      intensity: 1,
      children: [workerSpec('a', log), stubbornSpec('slow', 100), workerSpec('c', log)],
    });
    const a = (await pidOf(system, supervisor, 'a')) as Pid;
    const c = (await pidOf(system, supervisor, 'c')) as Pid;
    system.send(c, 'crash'); // one_for_all: stops slow (100 ms), then a
    await system.settle();
    system.send(a, 'crash'); // a dies while the supervisor waits for slow
    await system.advance(100);
    expect(system.isAlive(supervisor)).toBe(true); // a's death was part of the same restart, not a new failure
    const children = await whichChildren(system, supervisor);
    expect(children.every((child) => typeof child.pid === 'object' && system.isAlive(child.pid))).toBe(true);
    expect(log.order).toEqual(['a', 'c', 'a', 'c']);
  });

  it('stopping a supervisor stops its children in reverse start order, then it exits', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, {
      children: ['one', 'two', 'three'].map((id) => workerSpec(id, log)),
    });
    await stopSupervisor(system, supervisor);
    expect(system.isAlive(supervisor)).toBe(false);
    expect(events.filter((event) => event.kind === 'child_terminated').map((event) => event.childId)).toEqual(
      ['three', 'two', 'one'],
    );
    expect(events.at(-1)?.kind).toBe('supervisor_shutdown');
    expect(system.stats().alive).toBe(0);
  });

  it('a nested supervisor (shutdown infinity by default) stops its own subtree before its parent goes on', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const events = recordEvents(system);
    const root = await startSupervisor(system, {
      children: [
        workerSpec('first', log),
        {
          id: 'inner',
          type: 'supervisor',
          start: (ctx: Context) => startSupervisor(ctx, { children: [workerSpec('leaf', log)] }),
        },
      ],
    });
    await stopSupervisor(system, root);
    expect(events.filter((event) => event.kind === 'child_terminated').map((event) => event.childId)).toEqual(
      ['leaf', 'inner', 'first'],
    );
  });
});
