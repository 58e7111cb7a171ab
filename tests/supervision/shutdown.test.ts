/**
 * Child shutdown (OTP's shutdown field and the stop order). Every case runs twice (describe.each):
 * on one thread (a simulated clock), and with the children on thread 1 of a two-thread system
 * while the supervisor runs on thread 0 (real time: the timeouts are short).
 * On two threads the checks that read a process's state synchronously (`processInfo` links,
 * `stats().alive`) and the exact clock boundary of a timeout (the simulated clock is thread 0's)
 * are one-thread only; the rest of each case is the same.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActorSystem, Context, Pid } from '../../src/actor/index.js';
import {
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import { SlowStop } from './fixtures/worker.js';
import {
  fileTwoThreadSystem,
  pidOf,
  recordEvents,
  type SpawnWorker,
  StartLog,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
  workerSpec,
} from './helpers.js';

const slowStopCode = { module: new URL('./fixtures/worker.ts', import.meta.url).href, export: 'SlowStop' };

const twoThreads = fileTwoThreadSystem();
const placements = [
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'children on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const satisfies readonly { name: string; threads: number; spawn: SpawnWorker }[];

/** A child that did not stop by itself: 'shutdown' or 'killed', or 'noproc' when it was gone before we asked. */
const STOPPED = ['shutdown', 'killed', 'noproc'];

describe.each(placements)('child shutdown, $name', ({ threads, spawn }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });
  /** Lets `ms` pass: the simulated clock is moved; on two threads, real time passes by itself. */
  const elapse = (ms: number): Promise<void> => (threads === 1 ? system.advance(ms) : Promise.resolve());
  /** Stops a test's supervisor on the shared two-thread system (a one-thread system is dropped). */
  const cleanUp = async (supervisor: Pid): Promise<void> => {
    if (threads === 2) await stopSupervisor(system, supervisor);
  };
  /** The events of `supervisor` only (the two-thread system is shared by the file). */
  const eventsOf = (events: ReturnType<typeof recordEvents>, supervisor: Pid) =>
    events.filter((event) => event.supervisor.equals(supervisor));

  /** A child that traps exits and stops `delayMs` after it gets `shutdown` (Infinity: never, it must be killed). */
  function slowStopSpec(id: string, shutdown: 'brutal_kill' | 'infinity' | number, delayMs: number) {
    const start =
      threads === 1
        ? (ctx: Context) => ctx.spawnLink(new SlowStop(delayMs), { trapExit: true })
        : (ctx: Context) => ctx.spawnLink(slowStopCode, [delayMs], { thread: 1, trapExit: true });
    return { id, shutdown, start };
  }
  const stubbornSpec = (id: string, shutdown: 'brutal_kill' | 'infinity' | number) =>
    slowStopSpec(id, shutdown, Number.POSITIVE_INFINITY);

  /** Pings a worker and waits for its pong: every earlier message from the test has been handled. */
  function pingOf(pid: Pid): Promise<unknown> {
    return new Promise((resolve) => {
      const me = system.spawn({
        handle: (message: unknown, ctx) => {
          resolve(message);
          ctx.stop();
        },
      });
      system.send(pid, { ping: me });
    });
  }

  it('brutal_kill: the child dies as killed at once', async () => {
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [stubbornSpec('s', 'brutal_kill')] });
    expect(await terminateChild(system, supervisor, 's')).toBe('ok');
    const terminated = eventsOf(events, supervisor).find((event) => event.kind === 'child_terminated');
    expect(terminated?.reason).toBe('killed');
    await cleanUp(supervisor);
  });

  it('a timeout: a child that ignores shutdown is killed after shutdown ms', async () => {
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [stubbornSpec('s', 300)] });
    const pid = (await pidOf(system, supervisor, 's')) as Pid;
    let done = false;
    const began = Date.now();
    const exited = system.whenExited(pid);
    const result = terminateChild(system, supervisor, 's').then((value) => {
      done = true;
      return value;
    });
    if (threads === 1) {
      await system.advance(299);
      expect(done).toBe(false);
      expect(system.isAlive(pid)).toBe(true);
      await system.advance(1);
    }
    expect(await result).toBe('ok');
    if (threads === 1) expect(system.clock.now()).toBe(300);
    else expect(Date.now() - began).toBeGreaterThanOrEqual(290);
    expect(await exited).toBe('killed');
    expect(eventsOf(events, supervisor).find((event) => event.kind === 'child_terminated')?.reason).toBe(
      'killed',
    );
    await cleanUp(supervisor);
  });

  it('a timeout: a child that stops in time exits with shutdown and is not killed', async () => {
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, { children: [slowStopSpec('s', 300, 100)] });
    const result = terminateChild(system, supervisor, 's');
    await elapse(100);
    expect(await result).toBe('ok');
    expect(eventsOf(events, supervisor).find((event) => event.kind === 'child_terminated')?.reason).toBe(
      'shutdown',
    );
    await cleanUp(supervisor);
  });

  it('infinity: the supervisor waits as long as the child takes', async () => {
    const delayMs = threads === 1 ? 60_000 : 400;
    const supervisor = await startSupervisor(system, { children: [slowStopSpec('s', 'infinity', delayMs)] });
    let done = false;
    const began = Date.now();
    const result = terminateChild(system, supervisor, 's').then(() => {
      done = true;
    });
    if (threads === 1) {
      await system.advance(59_999);
      expect(done).toBe(false);
      await system.advance(1);
    }
    await result;
    expect(done).toBe(true);
    if (threads === 2) expect(Date.now() - began).toBeGreaterThanOrEqual(390);
    await cleanUp(supervisor);
  });

  it('a child that unlinked from the supervisor is still stopped (the supervisor monitors it first)', async () => {
    const log = new StartLog();
    const supervisor = await startSupervisor(system, { children: [workerSpec('u', log, {}, spawn)] });
    const pid = (await pidOf(system, supervisor, 'u')) as Pid;
    system.send(pid, { unlink: supervisor });
    await pingOf(pid); // the unlink has been done
    if (threads === 1) expect(system.processInfo(pid)?.links).toEqual([]);
    const exited = system.whenExited(pid);
    expect(await terminateChild(system, supervisor, 'u')).toBe('ok');
    expect(await exited).toBe('shutdown');
    await cleanUp(supervisor);
  });

  it('the supervisor stays consistent when a child dies while it stops another (the EXIT is consumed)', async () => {
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_all',
      intensity: 1,
      children: [workerSpec('a', log, {}, spawn), stubbornSpec('slow', 100), workerSpec('c', log, {}, spawn)],
    });
    const a = (await pidOf(system, supervisor, 'a')) as Pid;
    const c = (await pidOf(system, supervisor, 'c')) as Pid;
    system.send(c, 'crash'); // one_for_all: stops slow (100 ms), then a
    await system.whenExited(c);
    system.send(a, 'crash'); // a dies while the supervisor waits for slow
    await system.whenExited(a);
    await elapse(100);
    const children = await whichChildren(system, supervisor); // answered once the restart is over
    expect(system.isAlive(supervisor)).toBe(true); // a's death was part of the same restart, not a new failure
    for (const child of children) {
      expect(typeof child.pid).toBe('object');
      if (child.id !== 'slow') expect(await pingOf(child.pid as Pid)).toEqual(['pong', child.pid, undefined]);
    }
    expect(log.order).toEqual(['a', 'c', 'a', 'c']);
    await cleanUp(supervisor);
  });

  it('stopping a supervisor stops its children in reverse start order, then it exits', async () => {
    const log = new StartLog();
    const events = recordEvents(system);
    const alive = system.stats().alive;
    const supervisor = await startSupervisor(system, {
      children: ['one', 'two', 'three'].map((id) => workerSpec(id, log, {}, spawn)),
    });
    const pids = (await whichChildren(system, supervisor)).map((child) => child.pid as Pid);
    await stopSupervisor(system, supervisor);
    expect(system.isAlive(supervisor)).toBe(false);
    const own = eventsOf(events, supervisor);
    expect(own.filter((event) => event.kind === 'child_terminated').map((event) => event.childId)).toEqual([
      'three',
      'two',
      'one',
    ]);
    expect(own.at(-1)?.kind).toBe('supervisor_shutdown');
    for (const pid of pids) expect(STOPPED).toContain(await system.whenExited(pid));
    if (threads === 1) expect(system.stats().alive).toBe(alive);
  });

  it('a nested supervisor (shutdown infinity by default) stops its own subtree before its parent goes on', async () => {
    const log = new StartLog();
    const events = recordEvents(system);
    const root = await startSupervisor(system, {
      children: [
        workerSpec('first', log, {}, spawn),
        {
          id: 'inner',
          type: 'supervisor',
          start: (ctx: Context) => startSupervisor(ctx, { children: [workerSpec('leaf', log, {}, spawn)] }),
        },
      ],
    });
    const inner = (await pidOf(system, root, 'inner')) as Pid;
    await stopSupervisor(system, root);
    const terminated = events
      .filter((event) => event.kind === 'child_terminated')
      .filter((event) => event.supervisor.equals(root) || event.supervisor.equals(inner))
      .map((event) => event.childId);
    expect(terminated).toEqual(['leaf', 'inner', 'first']);
  });
});
