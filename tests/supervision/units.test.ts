import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
/**
 * Units of supervision: RestartIntensity and Backoff (pure arithmetic, no process), the
 * supervisor's self delivery (one process). The restart intensity of a running supervisor runs
 * twice (describe.each): on one thread, and with the child on thread 1 (the supervisor and the
 * simulated clock on thread 0).
 */
import { type ActorSystem, type Context, type Pid, SimulatedClock } from '../../src/actor/index.js';
import {
  Backoff,
  RestartIntensity,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../../src/supervision/index.js';
import { MAILBOX_RETRY_MS, sendToSelf } from '../../src/supervision/internal/selfDelivery.js';
import { pidOf, StartLog, testSystem, workerPlacements, workerSpec } from './helpers.js';

const placements = workerPlacements({ clock: new SimulatedClock() }, 'the child on another thread');

/** Crashes the child and waits until the supervisor has handled its EXIT (or has exited). */
async function crash(system: ActorSystem, supervisor: Pid): Promise<void> {
  const child = (await pidOf(system, supervisor, 'w')) as Pid;
  const exited = system.whenExited(child);
  system.send(child, 'crash');
  await exited;
  await whichChildren(system, supervisor).catch(() => {}); // (queued behind the EXIT)
  await system.settle();
}

/**
 * OTP's rule (supervisor.erl, add_restart/3): on a restart at Now, keep the earlier restarts R
 * with R >= Now - Period, add Now, and terminate when more than MaxR are kept.
 */
function otpAddRestart(restarts: number[], now: number, periodMs: number, intensity: number): boolean {
  const threshold = now - periodMs;
  const kept = restarts.filter((time) => time >= threshold);
  restarts.splice(0, restarts.length, ...kept, now);
  return restarts.length <= intensity;
}

describe('RestartIntensity (pure)', () => {
  it('allows intensity restarts in the period and refuses the next', () => {
    const window = new RestartIntensity(2, 1000);
    expect(window.record(0)).toBe(true);
    expect(window.record(10)).toBe(true);
    expect(window.record(20)).toBe(false);
  });

  it('slides as OTP: a restart exactly periodMs old still counts, one periodMs + 1 old does not', () => {
    const window = new RestartIntensity(1, 1000);
    expect(window.record(0)).toBe(true);
    expect(window.record(999)).toBe(false);
    const exact = new RestartIntensity(1, 1000);
    exact.record(0);
    expect(exact.count(1000)).toBe(1);
    expect(exact.record(1000)).toBe(false);
    const later = new RestartIntensity(1, 1000);
    later.record(0);
    expect(later.count(1001)).toBe(0);
    expect(later.record(1001)).toBe(true);
    expect(later.count(2001)).toBe(1);
    expect(later.count(2002)).toBe(0);
  });

  it("agrees with OTP's add_restart on every restart, period edges included (property)", () => {
    // A gap of -1 stands for exactly periodMs, -2 for periodMs + 1, -3 for periodMs - 1.
    const gap = fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constantFrom(-1, -2, -3));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(gap, { maxLength: 40 }),
        (intensity, periodMs, gaps) => {
          const window = new RestartIntensity(intensity, periodMs);
          const times: number[] = [];
          let now = 0;
          for (const step of gaps) {
            now += step >= 0 ? step : periodMs + (step === -1 ? 0 : step === -2 ? 1 : -1);
            expect(window.record(now)).toBe(otpAddRestart(times, now, periodMs, intensity));
          }
        },
      ),
    );
  });
});

describe.each(placements)(
  'supervisor restart intensity on the simulated clock (OTP: R >= Now - Period counts), $name',
  ({ system: make, spawn }) => {
    for (const [gapMs, outcome] of [
      [1000, 'gives up'],
      [1001, 'survives'],
    ] as const) {
      it(`intensity 1, period 1000 ms: a second crash ${gapMs} ms after the first restart ${outcome}`, async () => {
        const system = make();
        const log = new StartLog();
        const supervisor = await startSupervisor(system, {
          strategy: 'one_for_one',
          intensity: 1,
          periodMs: 1000,
          children: [workerSpec('w', log, {}, spawn)],
        });
        let exitReason: unknown;
        void system.whenExited(supervisor).then((reason) => {
          exitReason = reason;
        });
        await crash(system, supervisor);
        expect(log.count('w')).toBe(2); // restarted once, at t = 0
        await system.advance(gapMs);
        await crash(system, supervisor);
        if (outcome === 'gives up') {
          expect(exitReason).toBe('shutdown');
          expect(log.count('w')).toBe(2);
        } else {
          expect(exitReason).toBeUndefined();
          expect(log.count('w')).toBe(3);
          await stopSupervisor(system, supervisor);
        }
      });
    }
  },
);

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
