/**
 * The registry (Erlang's register/whereis). Names are node-wide, so the cases about a name and a
 * process run twice (describe.each): on a one-thread system, and with the named process on
 * thread 1 of a two-thread system (a fixtures' `Puppet` spawned by module URL) while thread 0
 * looks the name up, sends by it and tries to take it.
 *
 * One thread only, and why:
 * - "sending to an unregistered name ... bad names": no second process is involved.
 * - "a dead process cannot be registered", "at most one name": `system.register(name, pid)`
 *   registers a process of the calling thread (it checks liveness synchronously); a process on
 *   another thread registers itself (`ctx.register`), which the two-thread variant does.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  ActorSystem,
  type AlreadyRegistered,
  AlreadyRegistered as AlreadyRegisteredError,
  type Context,
  isAlreadyRegistered,
  isNotRegistered,
  type Pid,
} from '../../src/actor/index.js';
import type { PuppetOrder } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, idle, inbox, testSystem } from './helpers.js';

const puppet = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'Puppet' };

const variants = [
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the named process on thread 1', threads: 2 },
] as const;

const twoThreads = fileTwoThreadSystem();

describe.each(variants)('registry, $title', ({ threads }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });

  /**
   * A process named `name` that reports what it gets to a thread-0 inbox: registered by thread 0
   * (one thread), or registering itself on thread 1 (the report of it follows the name's broadcast
   * from thread 1, so thread 0 knows the name when the report arrives).
   */
  async function named(name: string): Promise<{ pid: Pid; next: () => Promise<any> }> {
    const box = inbox(system);
    if (threads === 1) {
      const pid = system.spawn({ handle: (message: unknown, ctx: Context) => ctx.send(box.pid, message) });
      system.register(name, pid);
      return { pid, next: box.next };
    }
    const pid = system.spawn(puppet, [box.pid], { thread: 1 });
    const order: PuppetOrder = { do: 'register', name };
    system.send(pid, order);
    expect(await box.next()).toEqual({ registered: name });
    return { pid, next: box.next };
  }

  it('register, whereis, send by name, unregister', async () => {
    const { pid, next } = await named('logger');
    expect(system.whereis('logger')?.equals(pid)).toBe(true);
    expect(system.registered()).toEqual(['logger']);
    system.send('logger', 'hello');
    expect(await next()).toBe('hello');
    if (threads === 1) {
      expect(system.unregister('logger')).toBe(true);
      expect(system.unregister('logger')).toBe(false);
      expect(system.whereis('logger')).toBeUndefined();
    }
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    await exited;
  });

  it('a name already registered is an AlreadyRegistered error naming the holder', async () => {
    const { pid: holder } = await named('name');
    let error: unknown;
    try {
      system.register('name', idle(system));
    } catch (caught) {
      error = caught;
    }
    expect(isAlreadyRegistered(error)).toBe(true);
    expect((error as AlreadyRegistered).holder.equals(holder)).toBe(true);
    const alive = system.stats().alive;
    expect(() => system.spawn(() => {}, { name: 'name' })).toThrow(AlreadyRegisteredError);
    expect(system.stats().alive).toBe(alive); // the failed spawn left nothing behind
    if (threads === 2) {
      // and the other way round: thread 1 cannot take a name thread 0 holds
      const box = inbox(system);
      system.register('taken', box.pid);
      const other = system.spawn(puppet, [box.pid], { thread: 1 });
      system.send(other, { do: 'register', name: 'taken' } satisfies PuppetOrder);
      expect(await box.next()).toEqual({ refused: 'AlreadyRegistered' });
      system.exit(other, 'kill');
      system.exit(box.pid, 'kill');
    }
    const exited = system.whenExited(holder);
    system.exit(holder, 'kill');
    await exited;
  });

  it('the name is released when the process exits, and can be taken again', async () => {
    const { pid } = await named('worker');
    const exited = system.whenExited(pid);
    system.exit(pid, 'kill');
    await exited;
    expect(system.whereis('worker')).toBeUndefined();
    const again = idle(system);
    system.register('worker', again);
    expect(system.whereis('worker')).toBe(again);
    system.exit(again, 'kill');
  });
});

describe('registry', () => {
  it('a process has at most one name; a dead one cannot be registered', async () => {
    const { system } = testSystem();
    const a = idle(system);
    system.register('first', a);
    expect(() => system.register('second', a)).toThrow(/already registered as 'first'/);
    const dead = system.spawn(() => {});
    await system.settle();
    expect(() => system.register('dead', dead)).toThrow(/not alive/);
  });

  it('sending to an unregistered name is a NotRegistered error; bad names are BadArgument', () => {
    const { system } = testSystem();
    let error: unknown;
    try {
      system.send('ghost', 'x');
    } catch (caught) {
      error = caught;
    }
    expect(isNotRegistered(error)).toBe(true);
    expect(() => system.register('', idle(system))).toThrow(/non-empty string/);
  });

  it('a process registers itself through its context', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ init: (ctx: Context) => ctx.register('me'), handle: () => {} });
    await system.settle();
    expect(system.whereis('me')).toBe(pid);
  });
});

describe('registry, a refused spawn on a two-thread system', () => {
  it('a spawn refused for a taken name does not count toward its thread load (placement stays even)', async () => {
    const system = new ActorSystem({ threads: 2 });
    try {
      system.register('taken', idle(system));
      for (let attempt = 0; attempt < 20; attempt++)
        expect(() => system.spawn({ handle: () => {} }, { name: 'taken' })).toThrow(AlreadyRegisteredError);
      const placed = Array.from({ length: 10 }, () => system.spawn(puppet, [], { thread: 'any' }).thread);
      // 20 refused spawns counted as live would send every one of these to thread 1
      expect(placed.filter((thread) => thread === 0).length).toBeGreaterThanOrEqual(3);
    } finally {
      await system.close();
    }
  });
});
