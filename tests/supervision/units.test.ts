import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Context } from '../../src/actor/index.js';
import { Backoff, RestartIntensity } from '../../src/supervision/index.js';
import { MAILBOX_RETRY_MS, sendToSelf } from '../../src/supervision/internal/selfDelivery.js';
import { testSystem } from './helpers.js';

describe('RestartIntensity (pure)', () => {
  it('allows intensity restarts in the period and refuses the next', () => {
    const window = new RestartIntensity(2, 1000);
    expect(window.record(0)).toBe(true);
    expect(window.record(10)).toBe(true);
    expect(window.record(20)).toBe(false);
  });

  it('slides: a restart periodMs old has left the window', () => {
    const window = new RestartIntensity(1, 1000);
    expect(window.record(0)).toBe(true);
    expect(window.record(999)).toBe(false);
    const fresh = new RestartIntensity(1, 1000);
    fresh.record(0);
    expect(fresh.record(1000)).toBe(true);
    expect(fresh.count(1500)).toBe(1);
  });

  it('agrees with a naive count over all restart times (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 40 }),
        (intensity, periodMs, gaps) => {
          const window = new RestartIntensity(intensity, periodMs);
          const times: number[] = [];
          let now = 0;
          for (const gap of gaps) {
            now += gap;
            times.push(now);
            const inWindow = times.filter((time) => now - time < periodMs).length;
            expect(window.record(now)).toBe(inWindow <= intensity);
          }
        },
      ),
    );
  });
});

describe('Backoff (seed 004)', () => {
  it('fixed: always the same delay', () => {
    const backoff = Backoff.from({ type: 'fixed', delayMs: 5000 }, 1000);
    expect([0, 1, 10].map((attempt) => backoff.delayMs(attempt))).toEqual([5000, 5000, 5000]);
  });

  it('exponential: doubles from the initial delay (seed 004 test_backoff_exponential_duration)', () => {
    const backoff = Backoff.from({ type: 'exponential', initialDelayMs: 1000, maxDelayMs: 60_000 }, 1000);
    expect([0, 1, 2, 3].map((attempt) => backoff.delayMs(attempt))).toEqual([1000, 2000, 4000, 8000]);
  });

  it('exponential respects the cap, also for huge attempts (seed 004 respects_max, overflow_uses_max)', () => {
    const backoff = Backoff.from({ type: 'exponential', initialDelayMs: 1000, maxDelayMs: 10_000 }, 1000);
    expect(backoff.delayMs(5)).toBe(10_000);
    expect(backoff.delayMs(20)).toBe(10_000);
    expect(backoff.delayMs(5000)).toBe(10_000);
  });

  it('jitter stays within [delay * (1 - jitter), delay] and replays from its seed', () => {
    const spec = {
      type: 'exponential',
      initialDelayMs: 100,
      maxDelayMs: 1000,
      jitter: 0.5,
      seed: 9,
    } as const;
    const a = Backoff.from(spec, 1000);
    const b = Backoff.from(spec, 1000);
    for (let attempt = 0; attempt < 20; attempt++) {
      const delay = a.delayMs(attempt);
      const full = Math.min(1000, 100 * 2 ** attempt);
      expect(delay).toBeGreaterThanOrEqual(full * 0.5);
      expect(delay).toBeLessThanOrEqual(full);
      expect(b.delayMs(attempt)).toBe(delay);
    }
  });

  it('none: no wait; resetAfterMs defaults to the period', () => {
    const backoff = Backoff.from(undefined, 5000);
    expect(backoff.delays).toBe(false);
    expect(backoff.delayMs(3)).toBe(0);
    expect(backoff.resetAfterMs).toBe(5000);
  });
});

describe('self delivery (internal): bookkeeping messages survive a full mailbox', () => {
  it('a message to a full mailbox is deferred and delivered once there is room', async () => {
    const { system } = testSystem();
    const got: unknown[] = [];
    const pid = system.spawn(
      async (ctx: Context) => {
        await ctx.receive((message) => message === 'go');
        for (;;) got.push(await ctx.receive());
      },
      { mailbox: { capacity: 1 } },
    );
    await system.settle();
    system.send(pid, 'filler');
    sendToSelf(system, pid, 'important'); // full: deferred, not thrown, not lost
    system.send(pid, 'go'); // a waiting receiver takes a matching message directly
    await system.settle();
    expect(got).toEqual(['filler']);
    await system.advance(MAILBOX_RETRY_MS);
    expect(got).toEqual(['filler', 'important']);
  });
});
