import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Context } from '../../src/actor/index.js';
import { testSystem } from './helpers.js';

describe('selective receive', () => {
  it('takes the oldest matching message and leaves the others in order', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    const pid = system.spawn(async (ctx: Context) => {
      await ctx.receive((m) => m === 'start');
      got.push(await ctx.receive((m) => typeof m === 'number' && m > 10));
      got.push(...[await ctx.receive(), await ctx.receive(), await ctx.receive()]);
    });
    for (const message of [1, 20, 2, 30, 'start']) system.send(pid, message);
    await system.settle();
    expect(got).toEqual([20, 1, 2, 30]);
  });

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

  it('property: selective receive keeps the order of the messages it skips', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 9 }),
        async (values, wanted) => {
          const { system } = testSystem();
          const taken: number[] = [];
          const rest: number[] = [];
          const pid = system.spawn(async (ctx: Context) => {
            await ctx.receive((m) => m === 'go');
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
          });
          for (const value of values) system.send(pid, value);
          system.send(pid, 'go');
          await system.settle();
          expect(taken).toEqual(values.filter((v) => v === wanted));
          expect(rest).toEqual(values.filter((v) => v !== wanted));
        },
      ),
      { numRuns: 50 },
    );
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
