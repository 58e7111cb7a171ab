import { describe, expect, it } from 'vitest';
import { type Context, isOnAnotherThread, Pid, Random } from '../../src/actor/index.js';
import type { PuppetOrder } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, idle, inbox, testSystem } from './helpers.js';

const twoThreads = fileTwoThreadSystem();
const PUPPET = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'Puppet' };

describe('introspection', () => {
  it('processInfo reports status, mailbox length, links, monitors and trap_exit', async () => {
    const { system } = testSystem();
    const target = idle(system);
    const watcher = system.spawn(
      async (ctx: Context) => {
        ctx.link(target);
        ctx.monitor(target);
        await ctx.receive((m) => m === 'never');
      },
      { trapExit: true },
    );
    await system.settle();
    system.send(watcher, 'queued');
    const info = system.processInfo(watcher)!;
    expect(info).toMatchObject({
      status: 'waiting',
      mailboxLength: 1,
      links: [target],
      monitors: [target],
      trapExit: true,
      kind: 'process',
    });
    expect(system.processInfo(target)!.monitoredBy).toEqual([watcher]);
    expect(system.processInfo(target)!.kind).toBe('handler');
  });

  it('processes() lists live pids in spawn order and stats() counts the system', async () => {
    const { system } = testSystem();
    const a = idle(system);
    const b = idle(system);
    const c = idle(system);
    system.exit(b, 'kill');
    expect(system.processes()).toEqual([a, c]);
    system.send(a, 'x');
    expect(system.stats()).toMatchObject({ spawned: 3, exited: 1, alive: 2, messagesSent: 1 });
    expect(system.processInfo(b)).toBeUndefined();
  });

  it('pids print as Erlang does and name their node; pidOf finds a live pid by its text', () => {
    const { system } = testSystem({ nodeName: 'trainer@gpu1' });
    const pid = idle(system);
    expect(String(pid)).toMatch(/^<0\.\d+\.0>$/);
    expect(pid.node).toBe('trainer@gpu1');
    expect(system.pidOf(pid.toString())).toBe(pid);
    expect(pid.equals(new Pid('trainer@gpu1', 0, pid.id, 0))).toBe(true);
    expect(pid.equals(new Pid('other@host', 0, pid.id, 0))).toBe(false);
  });

  it('onExit listeners see every exit', async () => {
    const { system } = testSystem();
    const seen: unknown[] = [];
    const stop = system.onExit((pid, reason) => seen.push([pid, reason]));
    const pid = system.spawn(() => {});
    await system.settle();
    stop();
    system.spawn(() => {});
    await system.settle();
    expect(seen).toEqual([[pid, 'normal']]);
  });
});

describe('Random', () => {
  it('replays from a seed and from a saved state', () => {
    const a = new Random(7);
    const b = new Random(7);
    expect(Array.from({ length: 5 }, () => a.nextUint32())).toEqual(
      Array.from({ length: 5 }, () => b.nextUint32()),
    );
    a.normal();
    const state = a.getState();
    const expected = [a.normal(), a.next(), a.nextInt(10)];
    const c = new Random(0);
    c.setState(state);
    expect([c.normal(), c.next(), c.nextInt(10)]).toEqual(expected);
  });

  it('nextInt is in range and rejects bad bounds', () => {
    const random = new Random(1);
    for (let i = 0; i < 1000; i++) {
      const value = random.nextInt(7);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(7);
    }
    expect(() => random.nextInt(0)).toThrow(RangeError);
  });
});

describe('whenExited', () => {
  it('resolves with the reason; aborting the signal stops the watch and rejects', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: () => {} });
    const controller = new AbortController();
    const watched = system.whenExited(pid, { signal: controller.signal });
    controller.abort(new Error('no longer interested'));
    await expect(watched).rejects.toThrow('no longer interested');
    const exited = system.whenExited(pid);
    system.exit(pid, 'bye');
    expect(await exited).toBe('bye');
    expect(await system.whenExited(pid)).toBe('noproc');
  });
});

/**
 * erlang:process_info/2 and erlang:processes/0 across threads: `processInfo` stays synchronous
 * for this thread's processes and refuses a pid elsewhere (as process_info's badarg for a pid
 * that is not local); `processInfoAsync` and `nodeProcesses` reach every thread.
 */
describe('introspection across threads', () => {
  it('processInfoAsync of a process on thread 1 tells its thread, name, links and monitors as seen there', async () => {
    const { system } = twoThreads();
    const box = inbox(system);
    const pid = system.spawn(PUPPET, [box.pid], { thread: 1, trapExit: true, name: 'looked-at' });
    const linked = idle(system, { trapExit: true });
    system.send(pid, { do: 'link', pid: linked } satisfies PuppetOrder);
    const watcher = system.spawn({ init: (ctx: Context) => void ctx.monitor(pid), handle: () => {} });
    expect(await system.call(pid, 'ping')).toBe('alive'); // behind the link and the monitor
    const info = (await system.processInfoAsync(pid))!;
    expect(info).toMatchObject({
      name: 'looked-at',
      status: 'waiting',
      mailboxLength: 0,
      trapExit: true,
      kind: 'handler',
      thread: 1,
    });
    expect(info.pid.equals(pid)).toBe(true);
    expect(info.links.map(String)).toEqual([String(linked)]);
    expect(info.monitoredBy.map(String)).toEqual([String(watcher)]);
    // the other side, on this thread, sees the same link from its end
    expect(system.processInfo(linked)!.links.map(String)).toEqual([String(pid)]);
    // on this thread, the local one answers at once, as processInfo does
    expect(await system.processInfoAsync(linked)).toEqual(system.processInfo(linked));
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    await exited;
    system.exit(linked, 'kill');
    system.exit(watcher, 'kill');
  });

  it('processInfo refuses a pid on another thread with OnAnotherThread; processInfoAsync of a dead one is undefined', async () => {
    const { system } = twoThreads();
    const pid = system.spawn(PUPPET, [], { thread: 1 });
    const error = (() => {
      try {
        system.processInfo(pid);
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(isOnAnotherThread(error)).toBe(true);
    expect(String(error)).toMatch(/processInfoAsync/);
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    expect(await exited).toBe('killed');
    expect(await system.processInfoAsync(pid)).toBeUndefined();
    const dead = idle(system);
    system.exit(dead, 'kill');
    expect(system.processInfo(dead)).toBeUndefined();
    expect(await system.processInfoAsync(dead)).toBeUndefined();
  });

  it('nodeProcesses lists the live processes of every thread, each pid naming its thread', async () => {
    const { system } = twoThreads();
    const here = idle(system);
    const there = system.spawn(PUPPET, [], { thread: 1 });
    const listed = await system.nodeProcesses();
    expect(listed.filter((pid) => pid.equals(here))).toHaveLength(1);
    expect(listed.filter((pid) => pid.equals(there))).toHaveLength(1);
    expect(new Set(listed.map((pid) => pid.thread))).toEqual(new Set([0, 1]));
    // thread by thread: every thread-0 pid comes before every thread-1 pid
    expect(listed.map((pid) => pid.thread)).toEqual([...listed.map((pid) => pid.thread)].sort());
    expect(system.processes().some((pid) => pid.equals(there))).toBe(false); // this thread's only
    const exited = system.whenExited(there);
    system.exit(there, 'kill');
    await exited;
    expect((await system.nodeProcesses()).some((pid) => pid.equals(there))).toBe(false);
    system.exit(here, 'kill');
  });

  it('a pid on a lost thread: processInfoAsync is undefined once the fresh thread is up, which lists only its own', async () => {
    const { system } = twoThreads();
    const pid = system.spawn(PUPPET, [], { thread: 1 });
    expect((await system.processInfoAsync(pid))?.thread).toBe(1);
    const exited = system.whenExited(pid);
    await system.killThread(1);
    expect(await exited).toBe('noconnection');
    expect(await system.processInfoAsync(pid)).toBeUndefined();
    const listed = await system.nodeProcesses();
    expect(listed.some((other) => other.equals(pid))).toBe(false);
    expect(listed.some((other) => other.thread === 1)).toBe(true); // (the fresh thread's agent)
  });
});
