/**
 * gen_server's semantics. The call and start suites run twice (describe.each): on one thread,
 * and with the server on thread 1 of a two-thread system while thread 0 calls it, casts to it,
 * sends it exit signals and watches its exit.
 *
 * One thread only, and why:
 * - "an exit signal before init ran": the signal must land in the same tick as the spawn, which
 *   only a caller on the server's own thread can do.
 * - "hot code upgrade": upgradeServer takes a behaviour object (closures), which cannot cross.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  type CallExit,
  type CallTimeout,
  type Context,
  callServer,
  castTo,
  type ExitReason,
  type GenServer,
  getServerState,
  isCallExit,
  isCallTimeout,
  isStartError,
  type Pid,
  reply,
  type ServerRefOf,
  serverRef,
  startGenServer,
  upgradeServer,
} from '../../src/actor/index.js';
import {
  type CounterArgs,
  Starter,
  type StartOrder,
  type StartOutcome,
  startOutcome,
  Counter as ThreadCounter,
  Trapping as ThreadTrapping,
} from './fixtures/threadActors.js';
import { fileTwoThreadSystem, inbox, testSystem } from './helpers.js';

const fixtures = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href };

const variants = [
  { title: 'one thread', threads: 1, remote: 0 },
  { title: 'two threads, the server on thread 1', threads: 2, remote: 1 },
] as const;

const twoThreads = fileTwoThreadSystem();

/**
 * gen_server's call semantics, run twice (describe.each): a server started with startGenServer on
 * a one-thread system (simulated clock), and the same behaviour (fixtures' Counter) spawned by
 * module URL on thread 1 of a two-thread system, called from thread 0.
 */
describe.each(variants)('GenServer calls, $title', ({ threads, remote }) => {
  let system: ActorSystem;
  let crashes: [Pid, ExitReason][];
  beforeEach(() => {
    if (threads === 1) ({ system, crashes } = testSystem());
    else ({ system, crashes } = twoThreads());
  });

  async function server(args: CounterArgs): Promise<ServerRefOf<typeof ThreadCounter>> {
    if (threads === 1) return startGenServer(system, ThreadCounter, args);
    const pid = system.spawn({ ...fixtures, export: 'counterServer' }, [args], { thread: remote });
    expect(pid.thread).toBe(remote);
    return serverRef<typeof ThreadCounter>(pid);
  }

  /** Lets `ms` pass: the simulated clock is moved; on two threads, real time passes by itself. */
  const elapse = (ms: number): Promise<void> => (threads === 1 ? system.advance(ms) : Promise.resolve());

  it('the design book test: call answers, cast and info change the state', async () => {
    const pid = await server({ start: 40 });
    castTo(system, pid, 'increment');
    system.send(pid, 1);
    expect(await callServer(system, pid, 'get')).toBe(42);
    expect(await getServerState(system, pid)).toEqual({ count: 42, held: [] });
    system.exit(pid, 'kill');
  });

  it('a call that gets no reply fails with CallTimeout, and the late reply is dropped', async () => {
    const pid = await server({ start: 0 });
    const box = inbox(system);
    const caller = system.spawn(async (ctx: Context) => {
      ctx.send(box.pid, await ctx.call(pid, 'hold', 50).catch((error: unknown) => error));
      ctx.send(box.pid, await ctx.receive()); // the first message after the timeout
    });
    const outcome = box.next();
    await elapse(50);
    const error = await outcome;
    expect(isCallTimeout(error)).toBe(true);
    expect((error as CallTimeout).timeoutMs).toBe(50);
    castTo(system, pid, 'release'); // the server replies now, to a call that is over
    await callServer(system, pid, 'get'); // the late reply was sent (and arrived) before this one
    system.send(caller, 'next');
    expect(await box.next()).toBe('next'); // the late reply never reached the caller's mailbox
    system.exit(pid, 'kill');
  });

  it('a call to a dead server fails with noproc; one to an unregistered name too', async () => {
    const pid = await server({ start: 0 });
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    await exited;
    const error = await system.call(pid, 'get').catch((e: unknown) => e);
    expect(isCallExit(error)).toBe(true);
    expect((error as CallExit).reason).toBe('noproc');
    await expect(system.call('nobody', 'get')).rejects.toThrow(/noproc/);
  });

  it('a server that dies during the call fails it with its exit reason, after terminate ran', async () => {
    const box = inbox(system);
    const pid = await server({ start: 0, reporter: box.pid });
    const error = await system.call(pid, 'crash').catch((e: unknown) => e);
    expect(isCallExit(error)).toBe(true);
    expect(((error as CallExit).reason as Error).message).toBe('counter bug');
    const { terminated } = await box.next();
    expect((terminated as Error).message).toBe('counter bug');
    expect(crashes.map(([crashed]) => String(crashed))).toContain(String(pid));
  });

  it('stop with a reply answers the caller, then the server exits with the reason', async () => {
    const pid = await server({ start: 0 });
    const exited = system.whenExited(pid);
    expect(await callServer(system, pid, 'stop')).toBe('stopping');
    expect(await exited).toBe('normal');
  });

  it('registered servers are reached by name, from any thread', async () => {
    const pid = await server({ start: 7, name: 'counter' });
    await callServer(system, pid, 'get'); // init (which registered the name) has run
    expect(String(system.whereis('counter'))).toBe(String(pid));
    castTo(system, 'counter', 'increment');
    castTo(system, 'nobody', 'increment'); // a cast never fails
    expect(await callServer(system, serverRef<typeof ThreadCounter>('counter'), 'get')).toBe(8);
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    await exited;
  });

  it('the call round trip works from inside another actor (suspending only the caller)', async () => {
    const pid = await server({ start: 5 });
    const box = inbox(system);
    const client = system.spawn({
      handle: async (_m: unknown, ctx: Context) => ctx.send(box.pid, await ctx.call(pid, 'get')),
    });
    system.send(client, 'ask');
    system.send(client, 'ask');
    expect([await box.next(), await box.next()]).toEqual([5, 5]);
    system.exit(pid, 'kill');
  });
});

/**
 * gen_server:start's outcomes, run twice: everything on one thread (the test starts the server
 * with startGenServer, or a local `Starter` does for a linked start), and a `Starter` on thread 1
 * starting the server on its thread while thread 0 sends the exit signals and watches the exits.
 */
describe.each(variants)('GenServer start, $title', ({ threads, remote }) => {
  let system: ActorSystem;
  beforeEach(() => {
    if (threads === 1) ({ system } = testSystem());
    else ({ system } = twoThreads());
  });

  const elapse = (ms: number): Promise<void> => (threads === 1 ? system.advance(ms) : Promise.resolve());

  /**
   * Starts a server as `order` says, here or by a Starter (whose reports, the outcome first, come
   * to `reports`; the server's own reports go to `order.args.reporter`).
   */
  function start(order: StartOrder, reports = inbox(system)): Promise<StartOutcome> {
    if (threads === 1 && !order.options.link) return startOutcome(system, order);
    const starter =
      threads === 1
        ? system.spawn(new Starter(reports.pid))
        : system.spawn({ ...fixtures, export: 'Starter' }, [reports.pid], { thread: remote });
    system.send(starter, order);
    return reports.next();
  }

  it('a failing init rejects the start with StartError and the reason', async () => {
    expect(await start({ kind: 'failing', args: {}, options: {} })).toEqual({ failed: 'no config' });
  });

  it('an init that takes too long fails the start with timeout and the server is killed', async () => {
    const box = inbox(system);
    const outcome = start({ kind: 'slow', args: { reporter: box.pid }, options: { timeoutMs: 100 } });
    const { initRunning: server } = await box.next();
    const exited = system.whenExited(server);
    await elapse(100);
    expect(await outcome).toEqual({ failed: 'timeout' });
    expect(await exited).toBe('killed');
  });

  it('a server killed during an async init fails the start with StartError(killed)', async () => {
    const box = inbox(system);
    const outcome = start({ kind: 'slow', args: { reporter: box.pid }, options: { name: 'slow' } });
    const { initRunning: server } = await box.next(); // init has run and is waiting on its promise
    expect(system.whereis('slow')?.equals(server)).toBe(true);
    system.exit(server, 'kill');
    expect(await outcome).toEqual({ failed: 'killed' });
    expect(system.whereis('slow')).toBeUndefined();
  });

  it('an exit signal during an async init fails the start with its reason', async () => {
    const box = inbox(system);
    const outcome = start({ kind: 'slow', args: { reporter: box.pid }, options: {} });
    const { initRunning: server } = await box.next();
    system.exit(server, 'boom');
    expect(await outcome).toEqual({ failed: 'boom' });
  });

  it('an async init that exits the process itself fails the start with that reason', async () => {
    expect(await start({ kind: 'exiting', args: {}, options: {} })).toEqual({ failed: 'no_backend' });
  });

  it('a linked caller of a server killed during init gets the StartError and the exit signal', async () => {
    const box = inbox(system);
    const reports = inbox(system);
    const outcome = start({ kind: 'slow', args: { reporter: box.pid }, options: { link: true } }, reports);
    const { initRunning: server } = await box.next();
    system.exit(server, 'kill');
    expect(await outcome).toEqual({ failed: 'killed' });
    const exit = await reports.next();
    expect(exit.exit).toBe('killed');
    expect((exit.from as Pid).equals(server)).toBe(true);
  });
});

/**
 * gen_server:start for a server named by module URL (a genServerHandler factory export), run
 * twice: on a one-thread system, and started on thread 1 from thread 0. The start resolves once
 * init has returned there, and fails with StartError as startGenServer with a behaviour does.
 */
describe.each(variants)('GenServer start by module URL, $title', ({ threads, remote }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });
  const thread = threads === 1 ? undefined : remote;
  const elapse = (ms: number): Promise<void> => (threads === 1 ? system.advance(ms) : Promise.resolve());
  const failure = (error: unknown): unknown => {
    if (!isStartError(error)) return error;
    return error.reason instanceof Error ? error.reason.message : error.reason;
  };

  it('resolves once init has returned, on the thread asked for; the server answers calls', async () => {
    const pid = await startGenServer(system, { ...fixtures, export: 'counterServer' }, [{ start: 5 }], {
      thread,
    });
    expect(pid.thread).toBe(thread ?? 0);
    expect(await callServer(system, serverRef<typeof ThreadCounter>(pid), 'get')).toBe(5);
    system.exit(pid, 'kill');
  });

  it('a failing init rejects the start with StartError and the reason', async () => {
    const outcome = startGenServer(system, { ...fixtures, export: 'initServer' }, ['failing', {}], {
      thread,
    });
    expect(failure(await outcome.catch((e: unknown) => e))).toBe('no config');
  });

  it('an init that takes too long fails the start with timeout and the server is killed', async () => {
    const box = inbox(system);
    const outcome = startGenServer(
      system,
      { ...fixtures, export: 'initServer' },
      ['slow', { reporter: box.pid }],
      {
        thread,
        timeoutMs: 100,
      },
    ).catch((e: unknown) => e);
    const { initRunning: server } = await box.next();
    const exited = system.whenExited(server);
    await elapse(100);
    expect(failure(await outcome)).toBe('timeout');
    expect(await exited).toBe('killed');
  });

  it('a server killed during an async init fails the start with StartError(killed)', async () => {
    const box = inbox(system);
    const outcome = startGenServer(
      system,
      { ...fixtures, export: 'initServer' },
      ['slow', { reporter: box.pid }],
      {
        thread,
        name: 'slow-by-url',
      },
    ).catch((e: unknown) => e);
    const { initRunning: server } = await box.next();
    expect(system.whereis('slow-by-url')?.equals(server)).toBe(true);
    system.exit(server, 'kill');
    expect(failure(await outcome)).toBe('killed');
    expect(system.whereis('slow-by-url')).toBeUndefined();
  });

  it('an export that does not make a GenServer fails the start, naming what it needs', async () => {
    const outcome = startGenServer(system, { ...fixtures, export: 'Relay' }, [], { thread });
    expect(failure(await outcome.catch((e: unknown) => e))).toMatch(
      /must be a function that returns genServerHandler/,
    );
  });
});

/**
 * gen_server's parent rule, run twice: a server started with startGenServer and link by a parent
 * process, and the same behaviour (fixtures' Trapping) started with link by module URL onto
 * thread 1 by a parent on thread 0 (the linked spawner is its parent, as for
 * gen_server:start_link; the start waits for its init, which traps exits).
 */
describe.each(variants)('GenServer parent, $title', ({ threads, remote }) => {
  it('a linked server trapping exits terminates when its parent exits, with the parent reason', async () => {
    const system = threads === 1 ? testSystem().system : twoThreads().system;
    const box = inbox(system);
    const parent = system.spawn(async (ctx: Context) => {
      const server =
        threads === 1
          ? await startGenServer(ctx, ThreadTrapping, box.pid, { link: true })
          : await startGenServer(ctx, { ...fixtures, export: 'trappingServer' }, [box.pid], {
              link: true,
              thread: remote,
            });
      ctx.send(box.pid, { server });
      await ctx.receive();
    });
    const { server } = await box.next();
    const exited = system.whenExited(server);
    system.exit(parent, 'shutdown');
    expect(await box.next()).toEqual({ terminated: 'shutdown' });
    expect(await exited).toBe('shutdown');
  });
});

/** Rules that act on the caller's thread (not parameterized: see the list at the top). */
describe('GenServer', () => {
  it('an exit signal before init ran fails the start with its reason', async () => {
    const { system } = testSystem();
    // killed in the same tick as the start, before the scheduler ran init at all
    const before = startGenServer(system, { init: () => 0 }, undefined, { name: 'before' }).catch(
      (e: unknown) => e,
    );
    system.exit(system.whereis('before')!, { shutdown: 'early' });
    const early = await before;
    expect(isStartError(early) && early.reason).toEqual({ shutdown: 'early' });
  });

  it('hot code upgrade migrates the state with codeChange and keeps every message in order', async () => {
    const { system } = testSystem();
    const seen: unknown[] = [];
    const V1: GenServer<number, number> = {
      version: 1,
      init: (n) => n,
      handleCast: (n: number, total) => {
        seen.push(`v1:${n}`);
        return total + n;
      },
      handleCall: (_r: unknown, _f, total) => reply(total, total),
    };
    const V2: GenServer<{ total: number; count: number }, number> = {
      version: 2,
      init: (n) => ({ total: n, count: 0 }),
      codeChange: (oldVersion, state: number) => {
        expect(oldVersion).toBe(1);
        return { total: state, count: 0 };
      },
      handleCast: (n: number, state) => {
        seen.push(`v2:${n}`);
        return { total: state.total + n, count: state.count + 1 };
      },
      handleCall: (_r: unknown, _f, state) => reply(state, state),
    };
    const pid = await startGenServer(system, V1, 0);
    castTo(system, pid, 1);
    castTo(system, pid, 2);
    expect(upgradeServer(system, pid, V2)).toBe(true);
    castTo(system, pid, 3);
    expect(await system.call(pid, 'state')).toEqual({ total: 6, count: 1 });
    expect(seen).toEqual(['v1:1', 'v1:2', 'v2:3']);
  });
});
