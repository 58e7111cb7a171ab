/**
 * Timers. Those a process sets for another run twice (one thread, and the target on thread 1).
 *
 * One thread only, and why: timers a process sets for itself, the clocks themselves, a full
 * mailbox (its contents are read synchronously) and the RealClock process-lifetime check; the
 * simulated clock is thread 0's, so exact boundaries are one-thread checks.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, RealClock, SimulatedClock } from '../../src/actor/index.js';
import { fileTwoThreadSystem, inbox, testSystem } from './helpers.js';

const puppet = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'Puppet' };

const twoThreads = fileTwoThreadSystem();

/**
 * A timer set on one process's thread for a process on another: run twice (describe.each), on one
 * thread (simulated clock) and with the target on thread 1 (real time; the timer runs at the
 * sender, on thread 0, as erlang:send_after's runs at the caller's node).
 */
describe.each([
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the target on thread 1', threads: 2 },
] as const)('timers to another process, $title', ({ threads }) => {
  let system: ActorSystem;
  let crashes: unknown[];
  beforeEach(() => {
    if (threads === 1) ({ system, crashes } = testSystem());
    else ({ system, crashes } = twoThreads());
  });
  /** Lets `ms` pass: the simulated clock is moved; on two threads, real time. */
  const pass = (ms: number): Promise<void> =>
    threads === 1 ? system.advance(ms) : new Promise((resolve) => setTimeout(resolve, ms));

  /** The target: it forwards what it gets to a thread-0 inbox; `got()` is the last arrival so far. */
  function target() {
    const box = inbox(system);
    const pid =
      threads === 1
        ? system.spawn({ handle: (message: unknown, ctx: Context) => ctx.send(box.pid, message) })
        : system.spawn(puppet, [box.pid], { thread: 1 });
    return { pid, next: box.next };
  }

  it('sendAfter delivers at its time, not before', async () => {
    const { pid, next } = target();
    let got: unknown;
    const began = Date.now();
    system.sendAfter(100, pid, 'tick');
    const arrival = next().then((message) => {
      got = message;
    });
    if (threads === 1) {
      await system.advance(99);
      expect(got).toBeUndefined();
      await system.advance(1);
    }
    await arrival;
    expect(got).toBe('tick');
    if (threads === 2) expect(Date.now() - began).toBeGreaterThanOrEqual(95);
    system.exit(pid, 'kill');
  });

  it('cancelTimer returns the time left, or false once fired', async () => {
    const { pid, next } = target();
    const timer = system.sendAfter(300, pid, 'tick');
    await pass(30);
    const left = system.cancelTimer(timer);
    if (threads === 1) expect(left).toBe(270);
    else expect(left !== false && left > 0 && left < 300).toBe(true); // real time: about 270
    expect(system.cancelTimer(timer)).toBe(false);
    await pass(300);
    system.send(pid, 'marker');
    expect(await next()).toBe('marker'); // the cancelled tick never came
    system.exit(pid, 'kill');
  });

  it('a timer to a process that died meanwhile is dropped silently', async () => {
    const { pid } = target();
    const exited = system.whenExited(pid);
    system.sendAfter(10, pid, 'late');
    system.exit(pid, 'kill');
    await exited;
    await pass(20);
    const before = crashes.length;
    const other = target(); // the system, and the target's thread, go on as before
    system.send(other.pid, 'still here');
    expect(await other.next()).toBe('still here');
    expect(crashes.length).toBe(before);
    if (threads === 1) expect(system.stats().alive).toBe(3); // the two inboxes and the second target
    system.exit(other.pid, 'kill');
  });
});

describe('timers', () => {
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
