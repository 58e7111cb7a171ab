/**
 * Supervision edge cases. "A start that forgot to link", "no stale EXIT" and "a GenServer child
 * that traps exits runs terminate" run twice (describe.each): on one thread, and with the
 * children on thread 1 (the server spawned with spawnLink by module URL: its parent is the
 * supervisor).
 *
 * So do the GenServer children killed during their async init (on thread 1 they are started
 * with startGenServer by module URL, which waits for their init there).
 *
 * One thread only, and why: a supervisor killed during its own init or an async restart (the
 * kill must land between two of its turns, on its own thread), a name registered twice (the
 * supervisor's own name) and the doc example.
 */
import { describe, expect, it } from 'vitest';
import {
  type Context,
  ExitMessage,
  type GenServer,
  getServerState,
  isAlreadyRegistered,
  type Pid,
  startGenServer,
} from '../../src/actor/index.js';
import {
  isSupervisorStartFailed,
  Supervisor,
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import { initServers, ReadyServer, Trapping } from '../actor/fixtures/threadActors.js';
import { inbox } from '../actor/helpers.js';
import {
  fileTwoThreadSystem,
  nextEvent,
  pidOf,
  recordEvents,
  StartLog,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
  workerHandler,
  workerSpec,
} from './helpers.js';

const workerCode = { module: new URL('./fixtures/worker.ts', import.meta.url).href, export: 'Worker' };
const initServerCode = {
  module: new URL('../actor/fixtures/threadActors.ts', import.meta.url).href,
  export: 'initServer',
};
const trappingCode = {
  module: new URL('../actor/fixtures/threadActors.ts', import.meta.url).href,
  export: 'trappingServer',
};

const twoThreads = fileTwoThreadSystem();

describe.each([
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'children on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const)('edge cases, $name', ({ threads, spawn }) => {
  const make = () => (threads === 1 ? testSystem().system : twoThreads().system);

  /** Starts an init server of `kind` linked to the supervisor: here, or by module URL on thread 1. */
  const startServer = (ctx: Context, kind: 'ready' | 'slow', reporter: Pid): Promise<Pid> =>
    threads === 1
      ? startGenServer(ctx, kind === 'ready' ? ReadyServer : initServers.slow, { reporter }, { link: true })
      : startGenServer(ctx, initServerCode, [kind, { reporter }], { link: true, thread: 1 });

  it('a GenServer child killed during its async init: the start fails, is counted and retried (OTP)', async () => {
    const system = make();
    const events = recordEvents(system);
    const box = inbox(system);
    let starts = 0;
    // start 1: at once; start 2: an async init that never returns (killed below); start 3: at once
    const supervisor = await startSupervisor(system, {
      intensity: 3,
      periodMs: 5000,
      children: [
        { id: 's', start: (ctx: Context) => startServer(ctx, starts++ === 1 ? 'slow' : 'ready', box.pid) },
      ],
    });
    const { initRunning: first } = await box.next();
    system.exit(first, 'boom');
    const { initRunning: second } = await box.next(); // the restart is waiting on init number 2
    const restarted = nextEvent(system, 'child_restarted');
    system.exit(second, 'kill');
    const { initRunning: third } = await box.next();
    const { pid } = await restarted;
    expect(pid?.equals(third)).toBe(true);
    expect(starts).toBe(3);
    expect(await system.call(pid as Pid, 'get')).toBe(0);
    expect(
      events
        .filter((event) => event.kind === 'child_start_failed' && event.supervisor.equals(supervisor))
        .map((event) => event.reason),
    ).toEqual(['killed']);
    expect(system.isAlive(supervisor)).toBe(true);
    await stopSupervisor(system, supervisor);
  });

  it('a GenServer child killed during every async init: the supervisor gives up at its intensity', async () => {
    const system = make();
    const events = recordEvents(system);
    const box = inbox(system);
    let starts = 0;
    const supervisor = await startSupervisor(system, {
      intensity: 2,
      periodMs: 5000,
      children: [
        { id: 's', start: (ctx: Context) => startServer(ctx, starts++ === 0 ? 'ready' : 'slow', box.pid) },
      ],
    });
    const exited = system.whenExited(supervisor);
    system.exit((await box.next()).initRunning, 'boom'); // restart 1 of 2
    system.exit((await box.next()).initRunning, 'kill'); // the start fails: try again is restart 2 of 2
    system.exit((await box.next()).initRunning, 'kill'); // a third restart is past the intensity
    expect(await exited).toBe('shutdown');
    expect(starts).toBe(3);
    const mine = events.filter((event) => event.supervisor.equals(supervisor));
    expect(mine.map((event) => event.kind)).toContain('restart_intensity_reached');
    expect(mine.filter((event) => event.kind === 'child_start_failed')).toHaveLength(2);
    if (threads === 1) expect(system.stats().alive).toBe(1); // the reporting inbox only
  });

  it('a GenServer child that traps exits runs terminate with shutdown when the supervisor stops it', async () => {
    const system = make();
    const box = inbox(system);
    const supervisor = await startSupervisor(system, {
      children: [
        {
          id: 'server',
          start: (ctx: Context) =>
            threads === 1
              ? startGenServer(ctx, Trapping, box.pid, { link: true })
              : ctx.spawnLink(trappingCode, [box.pid], { thread: 1 }),
        },
      ],
    });
    const server = (await pidOf(system, supervisor, 'server')) as Pid;
    await getServerState(system, server); // its init (which traps exits) has run
    await stopSupervisor(system, supervisor);
    expect(await box.next()).toEqual({ terminated: 'shutdown' });
  });

  it('a start that forgot to link: the supervisor links it, so its exits are still seen', async () => {
    const system = make();
    let starts = 0;
    const supervisor = await startSupervisor(system, {
      children: [
        {
          id: 'loose',
          start: (ctx: Context) => {
            starts++;
            // no link
            return threads === 1 ? ctx.spawn(workerHandler()) : ctx.spawn(workerCode, [], { thread: 1 });
          },
        },
      ],
    });
    const pid = (await pidOf(system, supervisor, 'loose')) as Pid;
    const exited = system.whenExited(pid);
    system.send(pid, 'crash');
    await exited;
    const restarted = (await pidOf(system, supervisor, 'loose')) as Pid; // queued behind the EXIT
    expect(starts).toBe(2);
    expect(restarted.equals(pid)).toBe(false);
    await stopSupervisor(system, supervisor);
  });

  it('no stale EXIT is left in the supervisor mailbox after it stopped a child', async () => {
    const system = make();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [workerSpec('w', log, {}, spawn), workerSpec('v', log, {}, spawn)],
    });
    await terminateChild(system, supervisor, 'w');
    await terminateChild(system, supervisor, 'v');
    await whichChildren(system, supervisor); // a late EXIT from thread 1 would be in by now
    expect(system.mailboxOf(supervisor).filter((message) => message instanceof ExitMessage)).toEqual([]);
    await stopSupervisor(system, supervisor);
  });
});

describe('edge cases', () => {
  it('a supervisor killed during init fails its start (SupervisorStartFailed without a child id)', async () => {
    const { system } = testSystem();
    let supervisorPid: Pid | undefined;
    const starting = startSupervisor(system, {
      children: [
        {
          id: 'slow',
          start: (ctx: Context) => {
            supervisorPid = ctx.self;
            return new Promise<Pid>(() => {});
          },
        },
      ],
    }).catch((e: unknown) => e);
    await system.settle();
    system.exit(supervisorPid!, 'kill');
    const error = await starting;
    expect(isSupervisorStartFailed(error) && error.childId === undefined && error.reason).toBe('killed');
  });

  it('a supervisor killed while awaiting an async restart does nothing once the start resolves', async () => {
    const { system, crashes } = testSystem();
    const events = recordEvents(system);
    let release: (() => void) | undefined;
    let starts = 0;
    const supervisor = await startSupervisor(system, {
      children: [
        {
          id: 'w',
          start: async (ctx: Context) => {
            if (starts++ > 0) await new Promise<void>((resolve) => (release = resolve));
            return ctx.spawnLink(workerHandler());
          },
        },
      ],
    });
    system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
    await system.settle();
    system.exit(supervisor, 'kill');
    const before = events.length;
    release!();
    await system.settle();
    expect(events.length).toBe(before);
    expect(crashes).toHaveLength(1); // only the worker's crash: the supervisor was not reported as crashing
  });

  it('a name already registered rejects the start with AlreadyRegistered, and nothing is left running', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    await startSupervisor(system, { name: 'root', children: [workerSpec('a', log)] });
    const error = await startSupervisor(system, { name: 'root', children: [workerSpec('b', log)] }).catch(
      (e: unknown) => e,
    );
    expect(isAlreadyRegistered(error)).toBe(true);
    expect(log.count('b')).toBe(0);
  });

  it('the doc example: the Supervisor namespace and whichChildren', async () => {
    const { system } = testSystem();
    const Counter: GenServer<number, number> = { init: (start) => start };
    const supervisor = await Supervisor.start(system, {
      strategy: 'one_for_one',
      intensity: 3,
      periodMs: 5000,
      children: [{ id: 'counter', start: (ctx) => startGenServer(ctx, Counter, 0, { link: true }) }],
    });
    const [child] = await whichChildren(system, supervisor);
    expect(child).toMatchObject({ id: 'counter', type: 'worker', restart: 'permanent' });
    await Supervisor.stop(system, supervisor);
    expect(system.stats().alive).toBe(0);
  });
});
