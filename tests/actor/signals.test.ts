import { describe, expect, it } from 'vitest';
import { type Context, DownMessage, ExitMessage, isNoProc, type Pid } from '../../src/actor/index.js';
import { collector, idle, testSystem } from './helpers.js';

/** Spawns a process that links to `target`, records what it receives, and optionally traps exits. */
function linkedTo(system: ReturnType<typeof testSystem>['system'], target: Pid, trapExit: boolean) {
  const messages: unknown[] = [];
  const pid = system.spawn(
    {
      init: (ctx: Context) => ctx.link(target),
      handle: (message: unknown) => void messages.push(message),
    },
    { trapExit },
  );
  return { pid, messages };
}

describe('exit signals (erlang:exit/2)', () => {
  it('kill sent directly is untrappable and the target dies as killed', async () => {
    const { system } = testSystem();
    const target = idle(system, { trapExit: true });
    const exited = system.whenExited(target);
    await system.settle();
    system.exit(target, 'kill');
    expect(await exited).toBe('killed');
    expect(system.isAlive(target)).toBe(false);
  });

  it('normal is ignored by a process that does not trap exits', async () => {
    const { system } = testSystem();
    const target = idle(system);
    await system.settle();
    system.exit(target, 'normal');
    await system.settle();
    expect(system.isAlive(target)).toBe(true);
  });

  it('normal sent by a process to itself ends it with reason normal', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: (_message: unknown, ctx: Context) => ctx.exit(ctx.self, 'normal') });
    const exited = system.whenExited(pid);
    system.send(pid, 'go');
    expect(await exited).toBe('normal');
  });

  it('a trapping process gets any signal, normal included, as an EXIT message at the end of its mailbox', async () => {
    const { system } = testSystem();
    const { pid, messages } = collector(system, { trapExit: true });
    await system.settle();
    system.send(pid, 'first');
    system.exit(pid, 'normal');
    system.exit(pid, 'shutdown');
    system.exit(pid, { shutdown: 'detail' });
    await system.settle();
    expect(messages[0]).toBe('first');
    expect(messages.slice(1).map((m) => (m as ExitMessage).reason)).toEqual([
      'normal',
      'shutdown',
      { shutdown: 'detail' },
    ]);
    expect((messages[1] as ExitMessage).from).toBe(system.rootPid);
    expect(system.isAlive(pid)).toBe(true);
  });

  it('any other reason kills a process that does not trap exits, with that reason', async () => {
    const { system } = testSystem();
    const target = idle(system);
    const exited = system.whenExited(target);
    system.exit(target, { shutdown: 'maintenance' });
    expect(await exited).toEqual({ shutdown: 'maintenance' });
  });
});

describe('links', () => {
  it('an abnormal exit propagates through a link to a non-trapping process, with the same reason', async () => {
    const { system } = testSystem();
    const a = idle(system);
    const b = linkedTo(system, a, false);
    await system.settle();
    const exited = system.whenExited(b.pid);
    system.exit(a, 'boom');
    expect(await exited).toBe('boom');
  });

  it('a normal exit does not kill linked processes; a trapping one gets EXIT normal', async () => {
    const { system } = testSystem();
    const a = system.spawn(async (ctx) => {
      await ctx.receive();
    });
    const plain = linkedTo(system, a, false);
    const trapping = linkedTo(system, a, true);
    await system.settle();
    system.send(a, 'finish');
    await system.settle();
    expect(system.isAlive(plain.pid)).toBe(true);
    expect(trapping.messages).toEqual([new ExitMessage(a, 'normal')]);
  });

  it('killed propagates as killed: links see the converted reason', async () => {
    const { system } = testSystem();
    const a = idle(system);
    const watcher = linkedTo(system, a, true);
    await system.settle();
    system.exit(a, 'kill');
    await system.settle();
    expect(watcher.messages).toEqual([new ExitMessage(a, 'killed')]);
  });

  it('kill arriving through a link is NOT converted: a trapping process gets EXIT kill and lives', async () => {
    const { system } = testSystem();
    const a = system.spawn({ handle: (_m: unknown, ctx: Context) => ctx.exit('kill') });
    const trapping = linkedTo(system, a, true);
    const plain = linkedTo(system, a, false);
    await system.settle();
    const plainExit = system.whenExited(plain.pid);
    system.send(a, 'die');
    await system.settle();
    expect(trapping.messages).toEqual([new ExitMessage(a, 'kill')]);
    expect(system.isAlive(trapping.pid)).toBe(true);
    // a non-trapping process dies with reason kill (not killed): the signal was an ordinary one
    expect(await plainExit).toBe('kill');
  });

  it('links are bidirectional and idempotent; unlink removes both directions', async () => {
    const { system } = testSystem();
    const a = idle(system);
    const b = system.spawn({
      init: (ctx: Context) => {
        ctx.link(a);
        ctx.link(a);
        ctx.link(ctx.self); // linking to itself does nothing
      },
      handle: (message: string, ctx: Context) => {
        if (message === 'unlink') ctx.unlink(a);
      },
    });
    await system.settle();
    expect(system.processInfo(a)!.links).toEqual([b]);
    expect(system.processInfo(b)!.links).toEqual([a]);
    system.send(b, 'unlink');
    await system.settle();
    expect(system.processInfo(a)!.links).toEqual([]);
    system.exit(a, 'boom');
    await system.settle();
    expect(system.isAlive(b)).toBe(true);
  });

  it('linking to a dead process: a trapping caller gets EXIT noproc, a non-trapping one fails with NoProc', async () => {
    const { system } = testSystem();
    const dead = system.spawn(() => {});
    await system.settle();
    const trapping = linkedTo(system, dead, true);
    const errors: unknown[] = [];
    system.spawn({
      init: (ctx: Context) => {
        try {
          ctx.link(dead);
        } catch (error) {
          errors.push(error);
        }
      },
      handle: () => {},
    });
    await system.settle();
    expect(trapping.messages).toEqual([new ExitMessage(dead, 'noproc')]);
    expect(errors).toHaveLength(1);
    expect(isNoProc(errors[0])).toBe(true);
  });

  it('spawnLink links child and parent; a crash of the child kills the parent', async () => {
    const { system, crashes } = testSystem();
    let child: Pid | undefined;
    const parent = system.spawn(async (ctx) => {
      child = ctx.spawnLink({
        handle: () => {
          throw new Error('child bug');
        },
      });
      await ctx.receive();
    });
    await system.settle();
    const parentExit = system.whenExited(parent);
    system.send(child!, 'crash');
    const reason = await parentExit;
    expect(reason).toBeInstanceOf(Error);
    expect((reason as Error).message).toBe('child bug');
    expect(crashes.map(([pid]) => pid)).toEqual([child]);
  });

  it('a long chain of links dies without deep recursion', async () => {
    const { system } = testSystem();
    const pids: Pid[] = [idle(system)];
    for (let i = 1; i < 50_000; i++) {
      const previous = pids[i - 1];
      pids.push(system.spawn({ init: (ctx: Context) => ctx.link(previous), handle: () => {} }));
    }
    await system.settle();
    system.exit(pids[0], 'cascade');
    expect(system.stats().alive).toBe(0);
  });
});

describe('monitors', () => {
  it('each monitor delivers its own DOWN with the exit reason', async () => {
    const { system } = testSystem();
    const target = idle(system);
    const refs: unknown[] = [];
    const { pid: watcher, messages } = collector(system);
    system.spawn({ init: () => {}, handle: () => {} });
    const monitorer = system.spawn(async (ctx) => {
      refs.push(ctx.monitor(target), ctx.monitor(target));
      const downs = [await ctx.receive(), await ctx.receive()];
      ctx.send(watcher, downs);
    });
    await system.settle();
    system.exit(target, 'gone');
    await system.settle();
    const downs = messages[0] as DownMessage[];
    expect(downs.map((d) => d.ref)).toEqual(refs);
    expect(downs.every((d) => d.reason === 'gone' && d.pid === target)).toBe(true);
    expect(system.isAlive(monitorer)).toBe(false);
  });

  it('monitoring a dead or unknown pid delivers DOWN noproc at once', async () => {
    const { system } = testSystem();
    const dead = system.spawn(() => {});
    await system.settle();
    let down: unknown;
    system.spawn(async (ctx) => {
      const ref = ctx.monitor(dead);
      down = await ctx.receive(undefined, 0);
      expect((down as DownMessage).ref).toBe(ref);
    });
    await system.settle();
    expect(down).toBeInstanceOf(DownMessage);
    expect((down as DownMessage).reason).toBe('noproc');
  });

  it('demonitor with flush removes a DOWN already queued; without flush it stays', async () => {
    const { system } = testSystem();
    const results: unknown[] = [];
    const a = idle(system);
    const b = idle(system);
    system.spawn(async (ctx) => {
      const refA = ctx.monitor(a);
      const refB = ctx.monitor(b);
      ctx.send(ctx.self, 'wait');
      await ctx.receive((m) => m === 'go');
      ctx.demonitor(refA, { flush: true });
      ctx.demonitor(refB);
      results.push(await ctx.receive(undefined, 0));
      results.push(await ctx.receive(undefined, 0));
      results.push(await ctx.receive(undefined, 0));
    });
    await system.settle();
    system.exit(a, 'x');
    system.exit(b, 'y');
    const [pid] = system.processes().filter((p) => p !== a && p !== b);
    system.send(pid, 'go');
    await system.settle();
    expect(results[0]).toBe('wait');
    expect((results[1] as DownMessage).reason).toBe('y');
    expect(results[2]).toBeUndefined();
  });

  it('a demonitored process exit delivers nothing', async () => {
    const { system } = testSystem();
    const target = idle(system);
    const { pid, messages } = collector(system);
    const monitorer = system.spawn(async (ctx) => {
      const ref = ctx.monitor(target);
      ctx.demonitor(ref);
      ctx.send(pid, await ctx.receive(undefined, 10));
    });
    await system.settle();
    system.exit(target, 'gone');
    await system.advance(10);
    expect(messages).toEqual([undefined].filter(() => false));
    expect(system.isAlive(monitorer)).toBe(false);
  });

  it('spawnMonitor returns the pid and a ref whose DOWN carries the crash', async () => {
    const { system } = testSystem();
    let result: DownMessage | undefined;
    system.spawn(async (ctx) => {
      const [pid, ref] = ctx.spawnMonitor(() => {
        throw new Error('oops');
      });
      const down = (await ctx.receive((m) => m instanceof DownMessage && m.ref === ref)) as DownMessage;
      expect(down.pid).toBe(pid);
      result = down;
    });
    await system.settle();
    expect((result!.reason as Error).message).toBe('oops');
  });
});

describe('message order', () => {
  it('keeps the order of messages from one sender to one receiver, interleaved with exit signals', async () => {
    const { system } = testSystem();
    const { pid, messages } = collector(system, { trapExit: true });
    await system.settle();
    system.send(pid, 1);
    system.exit(pid, 'a');
    system.send(pid, 2);
    await system.settle();
    expect(messages).toEqual([1, new ExitMessage(system.rootPid, 'a'), 2]);
  });
});
