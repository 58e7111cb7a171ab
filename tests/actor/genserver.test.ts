import { describe, expect, it } from 'vitest';
import {
  type CallExit,
  type CallFrom,
  type CallTimeout,
  type Context,
  callServer,
  castTo,
  ExitMessage,
  type GenServer,
  getServerState,
  isCallExit,
  isCallTimeout,
  isStartError,
  noreply,
  type Pid,
  reply,
  startGenServer,
  stop,
  upgradeServer,
} from '../../src/actor/index.js';
import { testSystem } from './helpers.js';

type CounterCall = 'get' | 'crash' | 'stop' | { slow: true };
const Counter: GenServer<number, number> = {
  version: 1,
  init: (start) => start,
  handleCall(request: CounterCall, _from, count) {
    if (request === 'get') return reply(count, count);
    if (request === 'stop') return stop('normal', count, 'stopping');
    if (request === 'crash') throw new Error('counter bug');
    return noreply(count); // { slow: true }: never answers
  },
  handleCast: (request: 'increment', count) => (request === 'increment' ? count + 1 : count),
  handleInfo: (message: number, count) => count + message,
};

describe('GenServer', () => {
  it('the design book test: call answers, cast and info change the state', async () => {
    const { system } = testSystem();
    const pid = await startGenServer(system, Counter, 40);
    castTo(system, pid, 'increment');
    system.send(pid, 1);
    expect(await system.call(pid, 'get')).toBe(42);
    expect(await getServerState(system, pid)).toBe(42);
  });

  it('a call that gets no reply fails with CallTimeout, and the late reply is dropped', async () => {
    const { system } = testSystem();
    let pending: CallFrom | undefined;
    const server = await startGenServer(
      system,
      {
        init: () => 0,
        handleCall: (_request: unknown, from: CallFrom, state: number) => {
          pending = from;
          return noreply(state);
        },
      },
      undefined,
    );
    const got: unknown[] = [];
    const caller = system.spawn(async (ctx: Context) => {
      try {
        await ctx.call(server, 'question', 50);
      } catch (error) {
        got.push(error);
      }
      got.push(await ctx.receive(undefined, 100));
    });
    await system.advance(50);
    expect(isCallTimeout(got[0])).toBe(true);
    expect((got[0] as CallTimeout).timeoutMs).toBe(50);
    expect(system.reply(pending!, 'too late')).toBe(false);
    await system.advance(100);
    expect(got[1]).toBeUndefined(); // the late reply never reached the caller's mailbox
    expect(system.isAlive(caller)).toBe(false);
  });

  it('a call to a dead server fails with noproc; one to an unregistered name too', async () => {
    const { system } = testSystem();
    const pid = await startGenServer(system, Counter, 0);
    system.exit(pid, 'kill');
    const error = await system.call(pid, 'get').catch((e: unknown) => e);
    expect(isCallExit(error)).toBe(true);
    expect((error as CallExit).reason).toBe('noproc');
    await expect(system.call('nobody', 'get')).rejects.toThrow(/noproc/);
  });

  it('a server that dies during the call fails it with its exit reason, after terminate ran', async () => {
    const { system, crashes } = testSystem();
    const terminated: unknown[] = [];
    const pid = await startGenServer(
      system,
      { ...Counter, terminate: (reason) => void terminated.push(reason) },
      0,
    );
    const error = await system.call(pid, 'crash').catch((e: unknown) => e);
    expect(isCallExit(error)).toBe(true);
    expect(((error as CallExit).reason as Error).message).toBe('counter bug');
    expect((terminated[0] as Error).message).toBe('counter bug');
    expect(crashes).toHaveLength(1);
  });

  it('stop with a reply answers the caller, then the server exits with the reason', async () => {
    const { system } = testSystem();
    const pid = await startGenServer(system, Counter, 0);
    const exited = system.whenExited(pid);
    expect(await system.call(pid, 'stop')).toBe('stopping');
    expect(await exited).toBe('normal');
  });

  it('a failing init rejects the start with StartError and the reason', async () => {
    const { system } = testSystem();
    const error = await startGenServer(
      system,
      {
        init: () => {
          throw new Error('no config');
        },
      },
      undefined,
    ).catch((e: unknown) => e);
    expect(isStartError(error)).toBe(true);
    expect(String(error)).toMatch(/no config/);
  });

  it('an init that takes too long fails the start with timeout and the server is killed', async () => {
    const { system } = testSystem();
    const start = startGenServer(system, { init: () => new Promise<number>(() => {}) }, undefined, {
      timeoutMs: 100,
    });
    const outcome = start.catch((e: unknown) => e);
    await system.advance(100);
    const error = await outcome;
    expect(isStartError(error) && error.reason).toBe('timeout');
    expect(system.stats().alive).toBe(0);
  });

  it('a server killed during an async init fails the start with StartError(killed)', async () => {
    const { system } = testSystem();
    const start = startGenServer(system, { init: () => new Promise<number>(() => {}) }, undefined, {
      name: 'slow',
    });
    const outcome = start.catch((e: unknown) => e);
    await system.settle(); // init has run and is waiting on its promise
    system.exit(system.whereis('slow')!, 'kill');
    const error = await outcome;
    expect(isStartError(error) && error.reason).toBe('killed');
    expect(system.stats().alive).toBe(0);
  });

  it('an exit signal during an async init fails the start with its reason; so does one before init ran', async () => {
    const { system } = testSystem();
    const during = startGenServer(system, { init: () => new Promise<number>(() => {}) }, undefined, {
      name: 'during',
    }).catch((e: unknown) => e);
    await system.settle();
    system.exit(system.whereis('during')!, 'boom');
    const error = await during;
    expect(isStartError(error) && error.reason).toBe('boom');
    // killed in the same tick as the start, before the scheduler ran init at all
    const before = startGenServer(system, { init: () => 0 }, undefined, { name: 'before' }).catch(
      (e: unknown) => e,
    );
    system.exit(system.whereis('before')!, { shutdown: 'early' });
    const early = await before;
    expect(isStartError(early) && early.reason).toEqual({ shutdown: 'early' });
  });

  it('an async init that exits the process itself fails the start with that reason', async () => {
    const { system } = testSystem();
    const error = await startGenServer(
      system,
      {
        init: async (_args: undefined, context: Context) => {
          await Promise.resolve();
          return context.exit('no_backend');
        },
      },
      undefined,
    ).catch((e: unknown) => e);
    expect(isStartError(error) && error.reason).toBe('no_backend');
  });

  it('a linked caller of a server killed during init gets the StartError and the exit signal', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    let server: Pid | undefined;
    system.spawn(
      async (ctx: Context) => {
        const error = await startGenServer(
          ctx,
          {
            init: (_args: undefined, context: Context) => {
              server = context.self;
              return new Promise<number>(() => {});
            },
          },
          undefined,
          { link: true },
        ).catch((e: unknown) => e);
        got.push(isStartError(error) && error.reason);
        got.push(await ctx.receive(undefined, 0));
      },
      { trapExit: true },
    );
    await system.settle();
    system.exit(server!, 'kill');
    await system.settle();
    expect(got[0]).toBe('killed');
    expect(got[1]).toBeInstanceOf(ExitMessage);
    expect((got[1] as ExitMessage).from).toBe(server);
    expect((got[1] as ExitMessage).reason).toBe('killed');
  });

  it('registered servers are reached by name', async () => {
    const { system } = testSystem();
    const pid = await startGenServer(system, Counter, 7, { name: 'counter' });
    expect(system.whereis('counter')).toBe(pid);
    castTo(system, 'counter', 'increment');
    castTo(system, 'nobody', 'increment'); // a cast never fails
    expect(await callServer(system, 'counter', 'get')).toBe(8);
  });

  it('a linked server trapping exits terminates when its parent exits, with the parent reason', async () => {
    const { system } = testSystem();
    const terminated: unknown[] = [];
    let server: unknown;
    const parent = system.spawn(async (ctx: Context) => {
      server = await startGenServer(
        ctx,
        {
          init: (_args: undefined, context: Context) => {
            context.trapExit(true);
            return 0;
          },
          terminate: (reason: unknown) => void terminated.push(reason),
        },
        undefined,
        { link: true },
      );
      await ctx.receive();
    });
    await system.settle();
    system.exit(parent, 'shutdown');
    await system.settle();
    expect(terminated).toEqual(['shutdown']);
    expect(system.isAlive(server as never)).toBe(false);
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

  it('the call round trip works from inside another actor (suspending only the caller)', async () => {
    const { system } = testSystem();
    const server = await startGenServer(system, Counter, 5);
    const answers: unknown[] = [];
    const client = system.spawn({
      handle: async (_m: unknown, ctx: Context) => void answers.push(await ctx.call(server, 'get')),
    });
    system.send(client, 'ask');
    system.send(client, 'ask');
    await system.settle();
    expect(answers).toEqual([5, 5]);
  });
});
