/**
 * Restart types, intensity, escalation and init. The restart-type rules and the intensity count
 * run twice (describe.each): on one thread, and with the children on thread 1.
 *
 * The restart window, the retried restarts, escalation and init run twice as well: the start
 * closures and nested supervisors stay on thread 0 (with the simulated clock), the workers they
 * start go to thread 1.
 *
 * One thread only, and why: "a start returning ignore" and "a start that returns something other
 * than a pid" start no child process; the "nothing left alive" counts (`stats().alive`) read the
 * calling thread's processes, so on two threads the workers' exits are awaited instead.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, type Pid, SimulatedClock } from '../../src/actor/index.js';
import {
  isSupervisorStartFailed,
  type SupervisorOptions,
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import { inbox } from '../actor/helpers.js';
import {
  nextEvent,
  pidOf,
  recordEvents,
  StartLog,
  testSystem,
  workerPlacements,
  workerSpec,
} from './helpers.js';

// Run twice: everything on one thread (a simulated clock), and the children on thread 1 of a
// two-thread system with the supervisor on thread 0 (fixtures/worker.ts). The tests wait for the
// child's exit, then ask the supervisor (the call queues behind the EXIT it already got).
const placements = workerPlacements({ clock: new SimulatedClock() });

/** A child stopped by its supervisor: 'shutdown', or 'noproc' when it was gone before we asked. */
const STOPPED = ['shutdown', 'noproc'];

/** Tells child `id` to exit with `reason` and waits until the supervisor has handled its EXIT. */
async function exitChild(system: ActorSystem, supervisor: Pid, id: string, reason: unknown): Promise<Pid> {
  const pid = (await pidOf(system, supervisor, id)) as Pid;
  const exited = system.whenExited(pid);
  system.send(pid, { exit: reason });
  await exited;
  await whichChildren(system, supervisor).catch(() => {}); // the supervisor may have exited
  return pid;
}

describe.each(placements)('restart types (OTP rules), $name', ({ system: make, spawn }) => {
  let system: ActorSystem;
  const supervisors: Pid[] = [];
  beforeEach(() => {
    system = make();
  });
  afterEach(async () => {
    for (const supervisor of supervisors.splice(0)) await stopSupervisor(system, supervisor).catch(() => {});
  });
  const start = async (options: SupervisorOptions): Promise<Pid> => {
    const supervisor = await startSupervisor(system, options);
    supervisors.push(supervisor);
    return supervisor;
  };

  it.each(['normal', 'shutdown', { shutdown: 'drained' }])(
    'a transient child exiting %j is not restarted; its spec is kept',
    async (reason) => {
      const log = new StartLog();
      const supervisor = await start({ children: [workerSpec('t', log, { restart: 'transient' }, spawn)] });
      await exitChild(system, supervisor, 't', reason);
      expect(log.count('t')).toBe(1);
      expect(await whichChildren(system, supervisor)).toEqual([
        { id: 't', pid: undefined, type: 'worker', restart: 'transient' },
      ]);
    },
  );

  it.each(['killed', 'boom', { other: 1 }])(
    'a transient child exiting abnormally (%j) is restarted',
    async (reason) => {
      const log = new StartLog();
      const supervisor = await start({ children: [workerSpec('t', log, { restart: 'transient' }, spawn)] });
      const old = await exitChild(system, supervisor, 't', reason);
      expect(log.count('t')).toBe(2);
      const restarted = (await pidOf(system, supervisor, 't')) as Pid;
      expect(restarted.equals(old)).toBe(false);
      expect(restarted.thread).toBe(old.thread);
    },
  );

  it('a permanent child is restarted after normal too', async () => {
    const log = new StartLog();
    const supervisor = await start({ children: [workerSpec('p', log, {}, spawn)] });
    await exitChild(system, supervisor, 'p', 'normal');
    expect(log.count('p')).toBe(2);
  });

  it('a temporary child is never restarted and is removed, whatever the reason', async () => {
    const log = new StartLog();
    const supervisor = await start({
      children: [workerSpec('tmp', log, { restart: 'temporary' }, spawn), workerSpec('p', log, {}, spawn)],
    });
    await exitChild(system, supervisor, 'tmp', 'boom');
    expect(log.count('tmp')).toBe(1);
    expect((await whichChildren(system, supervisor)).map((child) => child.id)).toEqual(['p']);
  });

  it('one_for_all: a temporary sibling stopped by the restart is removed, not restarted', async () => {
    const log = new StartLog();
    const events = recordEvents(system);
    const supervisor = await start({
      strategy: 'one_for_all',
      children: [
        workerSpec('a', log, {}, spawn),
        workerSpec('tmp', log, { restart: 'temporary' }, spawn),
        workerSpec('c', log, {}, spawn),
      ],
    });
    const tmp = (await pidOf(system, supervisor, 'tmp')) as Pid;
    const tmpExited = system.whenExited(tmp);
    await exitChild(system, supervisor, 'c', 'boom');
    expect(STOPPED).toContain(await tmpExited);
    expect(log.count('tmp')).toBe(1);
    expect(log.order.slice(3)).toEqual(['a', 'c']);
    expect((await whichChildren(system, supervisor)).map((child) => child.id)).toEqual(['a', 'c']);
    // siblings were stopped in reverse start order: tmp before a
    const terminated = events
      .filter((event) => event.kind === 'child_terminated' && event.supervisor.equals(supervisor))
      .map((event) => event.childId);
    expect(terminated).toEqual(['tmp', 'a']);
  });

  it('rest_for_one: a temporary child after the failed one is removed', async () => {
    const log = new StartLog();
    const supervisor = await start({
      strategy: 'rest_for_one',
      children: [
        workerSpec('a', log, {}, spawn),
        workerSpec('b', log, {}, spawn),
        workerSpec('tmp', log, { restart: 'temporary' }, spawn),
      ],
    });
    await exitChild(system, supervisor, 'b', 'boom');
    expect((await whichChildren(system, supervisor)).map((child) => child.id)).toEqual(['a', 'b']);
    expect(log.order).toEqual(['a', 'b', 'tmp', 'b']);
  });
});

describe.each(placements)('restart intensity, $name', ({ system: make, spawn }) => {
  const flaky = (log: StartLog, extra: Partial<SupervisorOptions> = {}): SupervisorOptions => ({
    intensity: 2,
    periodMs: 1000,
    children: [workerSpec('w', log, {}, spawn), workerSpec('other', log, {}, spawn)],
    ...extra,
  });

  it('intensity restarts in the period are fine; one more and the supervisor stops all children (reverse order) and exits shutdown', async () => {
    const system = make();
    const log = new StartLog();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, flaky(log));
    const exited = system.whenExited(supervisor);
    await exitChild(system, supervisor, 'w', 'boom');
    await exitChild(system, supervisor, 'w', 'boom');
    expect(system.isAlive(supervisor)).toBe(true);
    const other = (await pidOf(system, supervisor, 'other')) as Pid;
    const otherExited = system.whenExited(other);
    await exitChild(system, supervisor, 'w', 'boom');
    expect(await exited).toBe('shutdown');
    expect(STOPPED).toContain(await otherExited);
    expect(
      events
        .filter((event) => event.supervisor.equals(supervisor))
        .map((event) => event.kind)
        .slice(-4),
    ).toEqual(['child_exited', 'restart_intensity_reached', 'child_terminated', 'supervisor_shutdown']);
  });

  it('intensity 0: the first restart is one too many', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, flaky(log, { intensity: 0 }));
    const exited = system.whenExited(supervisor);
    await exitChild(system, supervisor, 'w', 'boom');
    expect(await exited).toBe('shutdown');
    expect(log.count('w')).toBe(1);
  });

  it('exits that need no restart do not count', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      intensity: 0,
      children: [
        workerSpec('t', log, { restart: 'transient' }, spawn),
        workerSpec('tmp', log, { restart: 'temporary' }, spawn),
      ],
    });
    await exitChild(system, supervisor, 't', 'normal');
    await exitChild(system, supervisor, 'tmp', 'boom');
    expect(system.isAlive(supervisor)).toBe(true);
    await stopSupervisor(system, supervisor);
  });
});

describe('restart types and intensity (one thread)', () => {
  it('a start returning ignore keeps the spec with no pid (and a temporary one is dropped)', async () => {
    const { system } = testSystem();
    const supervisor = await startSupervisor(system, {
      children: [
        { id: 'ignored', start: () => 'ignore' },
        { id: 'gone', restart: 'temporary', start: () => 'ignore' },
      ],
    });
    expect(await whichChildren(system, supervisor)).toEqual([
      { id: 'ignored', pid: undefined, type: 'worker', restart: 'permanent' },
    ]);
  });

  it('a start that returns something other than a pid or ignore is a start failure', async () => {
    const { system } = testSystem();
    const error = await startSupervisor(system, {
      children: [{ id: 'odd', start: () => 42 as never }],
    }).catch((e: unknown) => e);
    expect(isSupervisorStartFailed(error) && error.childId).toBe('odd');
  });
});

describe.each(placements)('restart window and retries, $name', ({ system: make, spawn }) => {
  const flaky = (log: StartLog, extra: Partial<SupervisorOptions> = {}): SupervisorOptions => ({
    intensity: 2,
    periodMs: 1000,
    children: [workerSpec('w', log, {}, spawn), workerSpec('other', log, {}, spawn)],
    ...extra,
  });

  it('restarts older than the period leave the window (sliding, on the injected clock)', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, flaky(log));
    for (let round = 0; round < 10; round++) {
      await exitChild(system, supervisor, 'w', 'boom');
      await system.advance(600); // at most 2 restarts in any 1000 ms
    }
    expect(system.isAlive(supervisor)).toBe(true);
    expect(log.count('w')).toBe(11);
    await stopSupervisor(system, supervisor);
  });

  it('a child that fails to restart does not crash the supervisor: it is retried, and the retries count', async () => {
    const system = make();
    let attempts = 0;
    let failing = false;
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, {
      intensity: 3,
      periodMs: 1000,
      children: [
        {
          id: 'fragile',
          start: (ctx: Context) => {
            attempts++;
            if (failing) throw new Error('cannot start now');
            return spawn(ctx);
          },
        },
      ],
    });
    const exited = system.whenExited(supervisor);
    failing = true;
    system.exit((await pidOf(system, supervisor, 'fragile')) as Pid, 'boom');
    expect(await exited).toBe('shutdown');
    expect(attempts).toBe(1 + 3); // the restart and 2 retries are the 3 allowed; the next is one too many
    expect(
      events.filter((event) => event.kind === 'child_start_failed' && event.supervisor.equals(supervisor)),
    ).toHaveLength(3);
  });

  it('a retried restart that succeeds leaves the supervisor running', async () => {
    const system = make();
    let failuresLeft = 0;
    const supervisor = await startSupervisor(system, {
      intensity: 5,
      children: [
        {
          id: 'fragile',
          start: (ctx: Context) => {
            if (failuresLeft-- > 0) return Promise.reject(new Error('not yet'));
            return spawn(ctx);
          },
        },
      ],
    });
    failuresLeft = 2;
    const restarted = nextEvent(system, 'child_restarted');
    const first = (await pidOf(system, supervisor, 'fragile')) as Pid;
    system.exit(first, 'boom');
    const { pid } = await restarted;
    expect(system.isAlive(supervisor)).toBe(true);
    expect(await pidOf(system, supervisor, 'fragile')).toBe(pid);
    expect(pid?.thread).toBe(first.thread);
    await stopSupervisor(system, supervisor);
  });
});

describe.each(placements)('escalation, $name', ({ system: make, spawn }) => {
  it('a nested supervisor that gives up exits shutdown; its parent restarts it (a fresh subtree)', async () => {
    const system = make();
    const log = new StartLog();
    const root = await startSupervisor(system, {
      intensity: 5,
      children: [
        workerSpec('sibling', log, {}, spawn),
        {
          id: 'inner',
          type: 'supervisor',
          start: (ctx: Context) =>
            startSupervisor(ctx, { intensity: 0, children: [workerSpec('leaf', log, {}, spawn)] }),
        },
      ],
    });
    const inner = (await pidOf(system, root, 'inner')) as Pid;
    const innerExit = system.whenExited(inner);
    const leaf = (await pidOf(system, inner, 'leaf')) as Pid;
    system.send(leaf, 'crash');
    expect(await innerExit).toBe('shutdown');
    const newInner = (await pidOf(system, root, 'inner')) as Pid;
    expect(newInner).not.toBe(inner);
    expect(system.isAlive(newInner)).toBe(true);
    expect(log.count('leaf')).toBe(2);
    expect(log.count('sibling')).toBe(1);
    expect(((await pidOf(system, newInner, 'leaf')) as Pid).thread).toBe(leaf.thread);
    await stopSupervisor(system, root);
  });

  it('escalation climbs: when the parent also gives up, the root supervisor exits shutdown', async () => {
    const system = make();
    const log = new StartLog();
    const root = await startSupervisor(system, {
      intensity: 0,
      children: [
        {
          id: 'inner',
          type: 'supervisor',
          start: (ctx: Context) =>
            startSupervisor(ctx, { intensity: 0, children: [workerSpec('leaf', log, {}, spawn)] }),
        },
      ],
    });
    const rootExit = system.whenExited(root);
    const inner = (await pidOf(system, root, 'inner')) as Pid;
    const leaf = (await pidOf(system, inner, 'leaf')) as Pid;
    const leafExit = system.whenExited(leaf);
    system.send(leaf, 'crash');
    expect(await rootExit).toBe('shutdown');
    expect(((await leafExit) as Error).message).toBe('worker crash');
    expect(system.isAlive(inner)).toBe(false);
    if (leaf.thread === 0) expect(system.stats().alive).toBe(0);
  });

  it('an EXIT from the parent stops the supervisor and its children with that reason', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [workerSpec('a', log, {}, spawn), workerSpec('b', log, {}, spawn)],
    });
    const children = await Promise.all(
      ['a', 'b'].map(async (id) => (await pidOf(system, supervisor, id)) as Pid),
    );
    const childExits = children.map((child) => system.whenExited(child));
    const exited = system.whenExited(supervisor);
    system.exit(supervisor, { shutdown: 'maintenance' });
    expect(await exited).toEqual({ shutdown: 'maintenance' });
    for (const reason of await Promise.all(childExits)) expect(STOPPED).toContain(reason);
    if (children[0].thread === 0) expect(system.stats().alive).toBe(0);
  });

  it('an EXIT from a stranger is ignored (OTP: only the parent can stop a supervisor by signal)', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, { children: [workerSpec('a', log, {}, spawn)] });
    const stranger = system.spawn(async (ctx: Context) => {
      ctx.exit(supervisor, 'shutdown');
    });
    await system.whenExited(stranger);
    await whichChildren(system, supervisor); // the signal came before this call
    expect(system.isAlive(supervisor)).toBe(true);
    expect(await terminateChild(system, supervisor, 'a')).toBe('ok');
    await stopSupervisor(system, supervisor);
  });
});

describe.each(placements)('init, $name', ({ system: make, spawn }) => {
  it('a child failing to start stops the ones started, in reverse order, and fails the start naming it', async () => {
    const system = make();
    const log = new StartLog();
    const events = recordEvents(system);
    const started: Pid[] = [];
    const spawnKept = (ctx: Context): Pid => {
      const pid = spawn(ctx);
      started.push(pid);
      return pid;
    };
    const error = await startSupervisor(system, {
      children: [
        workerSpec('a', log, {}, spawnKept),
        workerSpec('b', log, {}, spawnKept),
        { id: 'bad', start: () => Promise.reject(new Error('no GPU')) },
        workerSpec('never', log, {}, spawnKept),
      ],
    }).catch((e: unknown) => e);
    expect(isSupervisorStartFailed(error)).toBe(true);
    if (!isSupervisorStartFailed(error)) return;
    expect(error.childId).toBe('bad');
    expect((error.reason as Error).message).toBe('no GPU');
    expect(log.count('never')).toBe(0);
    expect(events.filter((event) => event.kind === 'child_terminated').map((event) => event.childId)).toEqual(
      ['b', 'a'],
    );
    for (const reason of await Promise.all(started.map((pid) => system.whenExited(pid))))
      expect(STOPPED).toContain(reason);
    await system.settle();
    if (started[0].thread === 0) expect(system.stats().alive).toBe(0);
  });

  it('children start in order, each after the previous one is running', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: ['x', 'y', 'z'].map((id) => workerSpec(id, log, {}, spawn)),
    });
    expect(log.order).toEqual(['x', 'y', 'z']);
    const children = await whichChildren(system, supervisor);
    expect(children.every((child) => typeof child.pid === 'object' && system.isAlive(child.pid))).toBe(true);
    // each answers (a running process), in start order
    const box = inbox(system);
    for (const child of children) system.send(child.pid as Pid, { ping: box.pid, tag: child.id });
    const pongs = [await box.next(), await box.next(), await box.next()];
    expect(pongs.map((pong) => pong[2]).sort()).toEqual(['x', 'y', 'z']);
    await stopSupervisor(system, supervisor);
  });
});
