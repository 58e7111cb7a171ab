import { describe, expect, it } from 'vitest';
import { type Context, RealClock, SimulatedClock } from '../../src/actor/index.js';
import { collector, testSystem } from './helpers.js';

describe('timers', () => {
  it('sendAfter delivers at its time, not before', async () => {
    const { system } = testSystem();
    const { pid, messages } = collector(system);
    system.sendAfter(100, pid, 'tick');
    await system.advance(99);
    expect(messages).toEqual([]);
    await system.advance(1);
    expect(messages).toEqual(['tick']);
  });

  it('cancelTimer returns the time left, or false once fired', async () => {
    const { system } = testSystem();
    const { pid, messages } = collector(system);
    const timer = system.sendAfter(100, pid, 'tick');
    await system.advance(30);
    expect(system.cancelTimer(timer)).toBe(70);
    expect(system.cancelTimer(timer)).toBe(false);
    await system.advance(100);
    expect(messages).toEqual([]);
  });

  it('a timer to a process that died meanwhile is dropped silently', async () => {
    const { system } = testSystem();
    const { pid } = collector(system);
    system.sendAfter(10, pid, 'late');
    system.exit(pid, 'kill');
    await system.advance(10);
    expect(system.stats().alive).toBe(0);
  });

  it('timers set while handling another timer fire inside the same advance, in order', async () => {
    const { system } = testSystem();
    const log: number[] = [];
    system.spawn({
      init: (ctx: Context) => void ctx.sendAfter(10, ctx.self, 1),
      handle: (n: number, ctx: Context) => {
        log.push(system.clock.now());
        if (n < 3) ctx.sendAfter(10, ctx.self, n + 1);
      },
    });
    await system.advance(100);
    expect(log).toEqual([10, 20, 30]);
  });
});

describe('clocks', () => {
  it('SimulatedClock fires due timers in due order, ties in creation order', () => {
    const clock = new SimulatedClock(1000);
    const fired: string[] = [];
    clock.setTimer(20, () => fired.push('b'));
    clock.setTimer(10, () => fired.push('a'));
    clock.setTimer(20, () => fired.push('c'));
    clock.advance(15);
    expect(fired).toEqual(['a']);
    expect(clock.now()).toBe(1015);
    clock.advance(5);
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('cancelled timers never fire and many cancellations keep the heap small', () => {
    const clock = new SimulatedClock();
    let fired = 0;
    const handles = Array.from({ length: 5000 }, (_, i) => clock.setTimer(i, () => fired++));
    for (const handle of handles.slice(0, 4990)) expect(clock.cancelTimer(handle)).toBe(true);
    expect(clock.pendingTimers).toBe(10);
    clock.advance(10_000);
    expect(fired).toBe(10);
  });

  it('negative or NaN delays are rejected', () => {
    const clock = new SimulatedClock();
    expect(() => clock.setTimer(-1, () => {})).toThrow(RangeError);
    expect(() => new RealClock().setTimer(Number.NaN, () => {})).toThrow(/delay must be a number >= 0/);
  });

  it('RealClock fires a timer through one host timer', async () => {
    const clock = new RealClock();
    const fired = new Promise<number>((resolve) => clock.setTimer(0, () => resolve(clock.now())));
    expect(await fired).toBeGreaterThan(0);
  });
});

describe('timers and mailboxes', () => {
  it('a timer message is never dropped by a full mailbox', async () => {
    const { system } = testSystem();
    const pid = system.spawn(
      async (ctx: Context) => {
        await ctx.receive((m) => m === 'never');
      },
      { mailbox: { capacity: 1 } },
    );
    system.send(pid, 'fills the mailbox');
    system.sendAfter(10, pid, 'timer');
    await system.advance(10);
    expect(system.mailboxOf(pid)).toEqual(['fills the mailbox', 'timer']);
  });
});

describe('RealClock and the process lifetime', () => {
  it('a pending call timeout keeps a script alive until it fires', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = `
      import { ActorSystem } from '${process.cwd()}/dist/src/actor/index.js';
      const system = new ActorSystem();
      const pid = system.spawn({ handle() {} });
      try { await system.call(pid, 'question', 30); } catch (error) { console.log(error.name); }
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(output.trim()).toBe('CallTimeout');
  });
});
