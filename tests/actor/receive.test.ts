/**
 * Selective receive. The cases about the messages of another process run twice (describe.each):
 * one thread, and the sender (a fixtures' `Relay`) on thread 1 while the receiving process
 * function runs on thread 0.
 *
 * One thread only, and why: a process spawned on another thread by module URL is a handler
 * (no process functions cross), so the receiver stays on thread 0; the cases that inspect the
 * receiver between two settles or move the simulated clock (waiting, timeouts, tryReceive, the
 * handler error) have no second process and read thread 0's state synchronously.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActorSystem, Context, Pid } from '../../src/actor/index.js';
import { Relay } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, inbox, testSystem } from './helpers.js';

const relay = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'Relay' };

const twoThreads = fileTwoThreadSystem();

describe.each([
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the sender on thread 1', threads: 2 },
] as const)("selective receive of another process's messages, $title", ({ threads }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });

  /** A sender: `send(to, ...messages)` has it send them to `to`, in order. */
  function sender(): { send: (to: Pid, ...messages: unknown[]) => void; stop: () => void } {
    const pid = threads === 1 ? system.spawn(new Relay()) : system.spawn(relay, [], { thread: 1 });
    return {
      send: (to, ...messages) => {
        for (const body of messages) system.send(pid, { to, body });
      },
      stop: () => system.exit(pid, 'kill'),
    };
  }

  it('takes the oldest matching message and leaves the others in order', async () => {
    const box = inbox(system);
    const pid = system.spawn(async (ctx: Context) => {
      await ctx.receive((m) => m === 'start');
      const got = [await ctx.receive((m) => typeof m === 'number' && m > 10)];
      got.push(...[await ctx.receive(), await ctx.receive(), await ctx.receive()]);
      ctx.send(box.pid, got);
    });
    const from = sender();
    from.send(pid, 1, 20, 2, 30, 'start');
    expect(await box.next()).toEqual([20, 1, 2, 30]);
    from.stop();
  });

  it('property: selective receive keeps the order of the messages it skips', async () => {
    const from = sender();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 9 }),
        async (values, wanted) => {
          const box = inbox(system);
          const pid = system.spawn(async (ctx: Context) => {
            const taken: number[] = [];
            const rest: number[] = [];
            await ctx.receive((m) => m === 'go'); // sent last: every value is in the mailbox
            for (;;) {
              const m = await ctx.receive<number>((x) => x === wanted, 0);
              if (m === undefined) break;
              taken.push(m);
            }
            for (;;) {
              const m = await ctx.receive<number>(undefined, 0);
              if (m === undefined) break;
              rest.push(m);
            }
            ctx.send(box.pid, { taken, rest });
          });
          from.send(pid, ...values, 'go');
          const { taken, rest } = await box.next();
          expect(taken).toEqual(values.filter((v) => v === wanted));
          expect(rest).toEqual(values.filter((v) => v !== wanted));
          system.exit(box.pid, 'kill');
        },
      ),
      { numRuns: 50 },
    );
    from.stop();
  });
});

describe('selective receive', () => {
  it('a message arriving while the process waits is taken only if it matches', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    const pid = system.spawn(async (ctx: Context) => {
      got.push(await ctx.receive((m) => m === 'wanted'));
      got.push(await ctx.receive(undefined, 0));
    });
    await system.settle();
    system.send(pid, 'other');
    await system.settle();
    expect(got).toEqual([]);
    system.send(pid, 'wanted');
    await system.settle();
    expect(got).toEqual(['wanted', 'other']);
  });

  it('timeout 0 returns at once; a timeout returns undefined when its time comes, not before', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    system.spawn(async (ctx: Context) => {
      got.push(await ctx.receive(undefined, 0));
      got.push(await ctx.receive(undefined, 100));
      got.push('after');
    });
    await system.settle();
    expect(got).toEqual([undefined]);
    await system.advance(99);
    expect(got).toEqual([undefined]);
    await system.advance(1);
    expect(got).toEqual([undefined, undefined, 'after']);
  });

  it('a message that arrives before the timeout cancels it', async () => {
    const { system, clock } = testSystem();
    const got: unknown[] = [];
    const pid = system.spawn(async (ctx: Context) => {
      got.push(await ctx.receive(undefined, 100));
    });
    await system.settle();
    system.send(pid, 'in time');
    await system.settle();
    expect(got).toEqual(['in time']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('receive is for process functions: a handler actor gets a clear error', async () => {
    const { system, crashes } = testSystem();
    const pid = system.spawn({ handle: (_m: unknown, ctx: Context) => void ctx.receive() });
    system.send(pid, 'x');
    await system.settle();
    expect(String(crashes[0][1])).toMatch(/receive is for process functions/);
  });
});

describe('tryReceive', () => {
  it('takes a queued matching message at once, or returns undefined without waiting', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    const pid = system.spawn(async (ctx: Context) => {
      await ctx.receive((m) => m === 'go');
      got.push(
        ctx.tryReceive((m) => m === 'b'),
        ctx.tryReceive((m) => m === 'zzz'),
        ctx.tryReceive(),
      );
    });
    for (const message of ['a', 'b', 'go']) system.send(pid, message);
    await system.settle();
    expect(got).toEqual(['b', undefined, 'a']);
  });
});
