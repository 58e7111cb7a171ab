import { describe, expect, it } from 'vitest';
import { type Context, Pid, Random } from '../../src/actor/index.js';
import { idle, testSystem } from './helpers.js';

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
