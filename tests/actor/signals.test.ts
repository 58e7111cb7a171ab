import { beforeEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  type Context,
  DownMessage,
  ExitMessage,
  type ExitReason,
  isNoProc,
  type Pid,
} from '../../src/actor/index.js';
import type { PuppetOrder } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, inbox, testSystem } from './helpers.js';

/**
 * Erlang's exit signals, links and monitors, run twice (describe.each): on a one-thread system
 * (a simulated clock, as every actor suite) and on a two-thread system with the remote side (the
 * process signalled, linked to or monitored: a `Puppet` spawned by module URL) on thread 1 and the
 * observing side on thread 0. The outcome must not depend on where the remote side lives. Tests
 * wait on messages, exits and call round trips (which travel behind earlier signals from the same
 * sender), never on `settle()`, which covers thread 0 only.
 */

const fixtures = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href };
const code = (name: string) => ({ ...fixtures, export: name });

const variants = [
  { title: 'one thread', threads: 1, remote: 0 },
  { title: 'two threads, the remote side on thread 1', threads: 2, remote: 1 },
] as const;

const twoThreads = fileTwoThreadSystem();

/** An EXIT or DOWN message as plain data (pids printed), comparable across threads. */
const plain = (message: unknown): unknown => {
  if (message instanceof ExitMessage) return { exit: String(message.from), reason: message.reason };
  if (message instanceof DownMessage) return { down: String(message.pid), reason: message.reason };
  return message;
};

describe.each(variants)('signals, $title', ({ threads, remote }) => {
  let system: ActorSystem;
  let crashes: [Pid, ExitReason][];
  beforeEach(() => {
    if (threads === 1) ({ system, crashes } = testSystem());
    else ({ system, crashes } = twoThreads());
  });

  /** The remote side: a Puppet on thread `remote`, reporting to `reporter`. */
  const puppet = (reporter?: Pid, options: { trapExit?: boolean } = {}): Pid => {
    const pid = system.spawn(code('Puppet'), reporter === undefined ? [] : [reporter], {
      thread: remote,
      ...options,
    });
    expect(pid.thread).toBe(remote);
    return pid;
  };
  const order = (pid: Pid, what: PuppetOrder): void => system.send(pid, what);
  /** Resolves once `pid` has handled everything sent to it before (a call round trip). */
  const alive = (pid: Pid): Promise<unknown> => system.call(pid, 'alive?');

  /** A process on thread 0 linked to `target`: it reports what it gets to its own inbox. */
  async function linkedTo(target: Pid, trapExit: boolean) {
    const box = inbox(system);
    const pid = system.spawn(
      {
        init: (ctx: Context) => {
          ctx.link(target);
          ctx.send(box.pid, 'linked');
        },
        handle: (message: unknown, ctx: Context) => ctx.send(box.pid, message),
      },
      { trapExit },
    );
    expect(await box.next()).toBe('linked');
    return { pid, next: box.next };
  }

  describe('exit signals (erlang:exit/2)', () => {
    it('kill sent directly is untrappable and the target dies as killed', async () => {
      const target = puppet(undefined, { trapExit: true });
      await alive(target);
      const exited = system.whenExited(target);
      system.exit(target, 'kill');
      expect(await exited).toBe('killed');
      await expect(alive(target)).rejects.toMatchObject({ _tag: 'CallExit', reason: 'noproc' });
    });

    it('normal is ignored by a process that does not trap exits', async () => {
      const target = puppet();
      await alive(target);
      system.exit(target, 'normal');
      await expect(alive(target)).resolves.toBe('alive');
      system.exit(target, 'kill');
    });

    it('a trapping process gets any signal, normal included, as an EXIT message at the end of its mailbox', async () => {
      const box = inbox(system);
      const target = puppet(box.pid, { trapExit: true });
      await alive(target);
      system.send(target, 'first');
      system.exit(target, 'normal');
      system.exit(target, 'shutdown');
      system.exit(target, { shutdown: 'detail' });
      const got = [await box.next(), await box.next(), await box.next(), await box.next()];
      const root = String(system.rootPid);
      expect(got.map(plain)).toEqual([
        'first',
        { exit: root, reason: 'normal' },
        { exit: root, reason: 'shutdown' },
        { exit: root, reason: { shutdown: 'detail' } },
      ]);
      await expect(alive(target)).resolves.toBe('alive');
      system.exit(target, 'kill');
    });

    it('any other reason kills a process that does not trap exits, with that reason', async () => {
      const target = puppet();
      const exited = system.whenExited(target);
      system.exit(target, { shutdown: 'maintenance' });
      expect(await exited).toEqual({ shutdown: 'maintenance' });
    });
  });

  describe('links', () => {
    it('an abnormal exit propagates through a link to a non-trapping process, with the same reason', async () => {
      const a = puppet();
      const b = await linkedTo(a, false);
      const exited = system.whenExited(b.pid);
      system.exit(a, 'boom');
      expect(await exited).toBe('boom');
    });

    it('and the other way: a local exit kills the linked remote process, with the same reason', async () => {
      const local = inbox(system);
      const far = puppet();
      order(far, { do: 'link', pid: local.pid });
      await alive(far); // the link has arrived
      const exited = system.whenExited(far);
      system.exit(local.pid, 'boom');
      expect(await exited).toBe('boom');
    });

    it('a normal exit does not kill linked processes; a trapping one gets EXIT normal', async () => {
      const a = puppet();
      const plainLinked = await linkedTo(a, false);
      const trapping = await linkedTo(a, true);
      order(a, { do: 'exit', reason: 'normal' });
      expect(plain(await trapping.next())).toEqual({ exit: String(a), reason: 'normal' });
      expect(system.isAlive(plainLinked.pid)).toBe(true);
      system.exit(plainLinked.pid, 'kill');
      system.exit(trapping.pid, 'kill');
    });

    it('killed propagates as killed: links see the converted reason', async () => {
      const a = puppet();
      const watcher = await linkedTo(a, true);
      system.exit(a, 'kill');
      expect(plain(await watcher.next())).toEqual({ exit: String(a), reason: 'killed' });
      system.exit(watcher.pid, 'kill');
    });

    it('kill arriving through a link is NOT converted: a trapping process gets EXIT kill and lives', async () => {
      const a = puppet();
      const trapping = await linkedTo(a, true);
      const plainLinked = await linkedTo(a, false);
      const plainExit = system.whenExited(plainLinked.pid);
      order(a, { do: 'exit', reason: 'kill' });
      expect(plain(await trapping.next())).toEqual({ exit: String(a), reason: 'kill' });
      expect(system.isAlive(trapping.pid)).toBe(true);
      // a non-trapping process dies with reason kill (not killed): the signal was an ordinary one
      expect(await plainExit).toBe('kill');
      system.exit(trapping.pid, 'kill');
    });

    it('links are bidirectional and idempotent; unlink removes both directions', async () => {
      const box = inbox(system);
      const a = puppet();
      const b = system.spawn({
        init: (ctx: Context) => {
          ctx.link(a);
          ctx.link(a);
          ctx.link(ctx.self); // linking to itself does nothing
          ctx.send(box.pid, 'linked');
        },
        handle: (message: string, ctx: Context) => {
          if (message === 'unlink') ctx.unlink(a);
          ctx.send(box.pid, message);
        },
      });
      expect(await box.next()).toBe('linked');
      expect(system.processInfo(b)!.links.map(String)).toEqual([String(a)]);
      if (remote === 0) expect(system.processInfo(a)!.links).toEqual([b]);
      system.send(b, 'unlink');
      expect(await box.next()).toBe('unlink');
      expect(system.processInfo(b)!.links).toEqual([]);
      if (remote === 0) expect(system.processInfo(a)!.links).toEqual([]);
      // a's side is gone too: its exit no longer reaches b (an exit signal would travel ahead of
      // the DOWN that ends whenExited, so b would be dead by then)
      const exited = system.whenExited(a);
      system.exit(a, 'boom');
      expect(await exited).toBe('boom');
      expect(system.isAlive(b)).toBe(true);
      system.exit(b, 'kill');
    });

    it('linking to a dead process: a trapping caller gets EXIT noproc; a non-trapping one fails with noproc', async () => {
      const dead = puppet();
      const gone = system.whenExited(dead);
      system.exit(dead, 'kill');
      await gone;
      const trapping = await linkedTo(dead, true);
      expect(plain(await trapping.next())).toEqual({ exit: String(dead), reason: 'noproc' });
      const box = inbox(system);
      const plainLinker = system.spawn({
        init: (ctx: Context) => {
          try {
            ctx.link(dead);
            ctx.send(box.pid, 'linked');
          } catch (error) {
            ctx.send(box.pid, error);
          }
        },
        handle: () => {},
      });
      const exited = system.whenExited(plainLinker);
      const outcome = await box.next();
      if (remote === 0) {
        // Erlang: link/1 to a local pid that does not exist raises noproc
        expect(isNoProc(outcome)).toBe(true);
      } else {
        // Erlang: to a process elsewhere, link/1 returns and an exit signal noproc follows
        expect(outcome).toBe('linked');
        expect(await exited).toBe('noproc');
      }
      system.exit(trapping.pid, 'kill');
      system.exit(plainLinker, 'kill');
    });

    it('spawnLink links child and parent; a crash of the child kills the parent', async () => {
      const box = inbox(system);
      const parent = system.spawn(async (ctx) => {
        ctx.send(box.pid, ctx.spawnLink(code('Puppet'), [], { thread: remote }));
        await ctx.receive();
      });
      const child = (await box.next()) as Pid;
      const parentExit = system.whenExited(parent);
      order(child, { do: 'crash', text: 'child bug' });
      const reason = await parentExit;
      expect(reason).toBeInstanceOf(Error);
      expect((reason as Error).message).toBe('child bug');
      expect(crashes.map(([pid]) => String(pid))).toContain(String(child));
      expect(crashes.map(([pid]) => String(pid))).not.toContain(String(parent));
    });
  });

  describe('monitors', () => {
    it('each monitor delivers its own DOWN with the exit reason', async () => {
      const box = inbox(system);
      const target = puppet();
      const refs: unknown[] = [];
      const monitorer = system.spawn(async (ctx) => {
        refs.push(ctx.monitor(target), ctx.monitor(target));
        ctx.send(box.pid, 'monitoring');
        const downs = [await ctx.receive(), await ctx.receive()];
        ctx.send(box.pid, downs);
      });
      const monitorerExit = system.whenExited(monitorer);
      expect(await box.next()).toBe('monitoring');
      system.exit(target, 'gone');
      const downs = (await box.next()) as DownMessage[];
      expect(downs.map((d) => d.ref)).toEqual(refs);
      expect(downs.every((d) => d.reason === 'gone' && d.pid.equals(target))).toBe(true);
      expect(await monitorerExit).toBe('normal');
    });

    it('monitoring a dead or unknown pid delivers DOWN noproc', async () => {
      const dead = puppet();
      const gone = system.whenExited(dead);
      system.exit(dead, 'kill');
      await gone;
      const box = inbox(system);
      system.spawn(async (ctx) => {
        const ref = ctx.monitor(dead);
        const down = (await ctx.receive()) as DownMessage;
        ctx.send(box.pid, { sameRef: down.ref === ref, down });
      });
      const { sameRef, down } = await box.next();
      expect(sameRef).toBe(true);
      expect(down).toBeInstanceOf(DownMessage);
      expect((down as DownMessage).reason).toBe('noproc');
    });

    it('demonitor with flush removes a DOWN already queued; without flush it stays', async () => {
      const box = inbox(system);
      const [a, b, last] = [puppet(), puppet(), puppet()];
      system.spawn(async (ctx) => {
        const refA = ctx.monitor(a);
        const refB = ctx.monitor(b);
        const refLast = ctx.monitor(last);
        ctx.send(box.pid, 'monitoring');
        // the DOWN of `last` comes after those of a and b (exits in that order, one sender):
        // once it is here, both others are queued
        await ctx.receive((m) => m instanceof DownMessage && m.ref === refLast);
        ctx.demonitor(refA, { flush: true });
        ctx.demonitor(refB);
        ctx.send(box.pid, [await ctx.receive(undefined, 0), await ctx.receive(undefined, 0)]);
      });
      expect(await box.next()).toBe('monitoring');
      system.exit(a, 'x');
      system.exit(b, 'y');
      system.exit(last, 'z');
      const [first, second] = await box.next();
      expect((first as DownMessage).reason).toBe('y');
      expect(second).toBeUndefined();
    });

    it('a demonitored process exit delivers nothing', async () => {
      const box = inbox(system);
      const [target, later] = [puppet(), puppet()];
      system.spawn(async (ctx) => {
        ctx.demonitor(ctx.monitor(target));
        const refLater = ctx.monitor(later);
        ctx.send(box.pid, 'ready');
        await ctx.receive((m) => m instanceof DownMessage && m.ref === refLater);
        ctx.send(box.pid, { left: await ctx.receive(undefined, 0) });
      });
      expect(await box.next()).toBe('ready');
      system.exit(target, 'gone');
      system.exit(later, 'gone');
      expect(await box.next()).toEqual({ left: undefined });
    });

    it('spawnMonitor returns the pid and a ref whose DOWN carries the crash', async () => {
      const box = inbox(system);
      system.spawn(async (ctx) => {
        const [pid, ref] = ctx.spawnMonitor(code('Puppet'), [], { thread: remote });
        ctx.send(pid, { do: 'crash', text: 'oops' } satisfies PuppetOrder);
        const down = (await ctx.receive((m) => m instanceof DownMessage && m.ref === ref)) as DownMessage;
        ctx.send(box.pid, { samePid: down.pid.equals(pid), thread: pid.thread, reason: down.reason });
      });
      const { samePid, thread, reason } = await box.next();
      expect(samePid).toBe(true);
      expect(thread).toBe(remote);
      expect((reason as Error).message).toBe('oops');
    });
  });

  describe('message order', () => {
    it('keeps the order of messages from one sender to one receiver, interleaved with exit signals', async () => {
      const box = inbox(system);
      const target = puppet(box.pid, { trapExit: true });
      await alive(target);
      system.send(target, 1);
      system.exit(target, 'a');
      system.send(target, 2);
      const got = [await box.next(), await box.next(), await box.next()];
      expect(got.map(plain)).toEqual([1, { exit: String(system.rootPid), reason: 'a' }, 2]);
      system.exit(target, 'kill');
    });
  });
});

/** Signals that involve one process only, or many on one thread: not parameterized. */
describe('signals on one thread only', () => {
  it('normal sent by a process to itself ends it with reason normal', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: (_message: unknown, ctx: Context) => ctx.exit(ctx.self, 'normal') });
    const exited = system.whenExited(pid);
    system.send(pid, 'go');
    expect(await exited).toBe('normal');
  });

  it('a long chain of links dies without deep recursion', async () => {
    const { system } = testSystem();
    const pids: Pid[] = [system.spawn({ handle: () => {} })];
    for (let i = 1; i < 50_000; i++) {
      const previous = pids[i - 1];
      pids.push(system.spawn({ init: (ctx: Context) => ctx.link(previous), handle: () => {} }));
    }
    await system.settle();
    system.exit(pids[0], 'cascade');
    expect(system.stats().alive).toBe(0);
  });
});
