import { describe, expect, it } from 'vitest';
import { ActorSystem, type Context, isProcessExited, type Pid } from '../../src/actor/index.js';
import { testSystem } from './helpers.js';

describe('scheduler', () => {
  it('a flooded actor handles at most the reduction budget per turn, so others take turns', async () => {
    const { system } = testSystem({ reductionBudget: 10 });
    const order: string[] = [];
    const busy = system.spawn({ handle: () => void order.push('busy') });
    const other = system.spawn({ handle: () => void order.push('other') });
    for (let i = 0; i < 25; i++) system.send(busy, i);
    system.send(other, 'x');
    await system.settle();
    // busy runs 10, then other gets its turn, then busy continues
    expect(order.indexOf('other')).toBe(10);
    expect(order).toHaveLength(26);
  });

  it('reductions are counted per process', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: () => {} });
    for (let i = 0; i < 5; i++) system.send(pid, i);
    await system.settle();
    expect(system.processInfo(pid)!.reductions).toBe(5);
  });

  it('an actor awaiting a promise suspends only itself', async () => {
    const { system } = testSystem();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const log: string[] = [];
    const slow = system.spawn({
      handle: async (message: string) => {
        log.push(`slow:${message}`);
        await gate;
      },
    });
    const fast = system.spawn({ handle: (message: string) => void log.push(`fast:${message}`) });
    system.send(slow, 'a');
    system.send(slow, 'b');
    system.send(fast, '1');
    system.send(fast, '2');
    await system.settle();
    expect(log).toEqual(['slow:a', 'fast:1', 'fast:2']);
    expect(system.processInfo(slow)!.status).toBe('suspended');
    expect(system.processInfo(slow)!.mailboxLength).toBe(1);
    release();
    await system.settle();
    expect(log).toEqual(['slow:a', 'fast:1', 'fast:2', 'slow:b']);
  });

  it('kill works while the actor awaits: it dies at once and its AbortSignal fires', async () => {
    const { system } = testSystem();
    let signal!: AbortSignal;
    const after: string[] = [];
    const pid = system.spawn({
      handle: async (_message: unknown, ctx: Context) => {
        signal = ctx.signal;
        await new Promise(() => {}); // never settles: only the kill ends this
        after.push('resumed');
      },
    });
    system.send(pid, 'work');
    await system.settle();
    expect(signal.aborted).toBe(false);
    system.exit(pid, 'kill');
    expect(system.isAlive(pid)).toBe(false);
    expect(signal.aborted).toBe(true);
    expect(isProcessExited(signal.reason)).toBe(true);
    expect(after).toEqual([]);
  });

  it('a killed process body cannot act any more: its context throws ProcessExited', async () => {
    const { system } = testSystem();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const errors: unknown[] = [];
    const { pid: observer } = { pid: system.spawn({ handle: () => {} }) };
    const pid = system.spawn(async (ctx: Context) => {
      await gate;
      try {
        ctx.send(observer, 'should not arrive');
      } catch (error) {
        errors.push(error);
      }
    });
    await system.settle();
    system.exit(pid, 'kill');
    release();
    await system.settle();
    expect(errors).toHaveLength(1);
    expect(isProcessExited(errors[0])).toBe(true);
    expect(system.processInfo(observer)!.reductions).toBe(0);
  });

  it('the event loop keeps serving timers and I/O while actors exchange messages without end', async () => {
    const system = new ActorSystem({ onCrash: () => {} });
    let pong: Pid;
    let exchanges = 0;
    const ping = system.spawn({
      handle: (n: number, ctx: Context) => {
        exchanges++;
        ctx.send(pong, n + 1);
      },
    });
    pong = system.spawn({ handle: (n: number, ctx: Context) => ctx.send(ping, n + 1) });
    system.send(ping, 0);
    // an immediate and a host timer must run although the ping-pong never ends by itself
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
    expect(exchanges).toBeGreaterThan(0);
    system.shutdown();
  });

  it('turns are deterministic on a simulated clock: same program, same interleaving', async () => {
    const run = async () => {
      const { system } = testSystem({ reductionBudget: 3 });
      const log: string[] = [];
      const pids = [0, 1, 2].map((i) =>
        system.spawn({
          handle: (n: number, ctx: Context) => {
            log.push(`${i}:${n}`);
            if (n < 5) ctx.send(pids[(i + n) % 3], n + 1);
          },
        }),
      );
      for (const pid of pids) system.send(pid, 0);
      await system.settle();
      return log;
    };
    expect(await run()).toEqual(await run());
  });
});
