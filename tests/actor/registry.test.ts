import { describe, expect, it } from 'vitest';
import {
  AlreadyRegistered,
  type Context,
  isAlreadyRegistered,
  isNotRegistered,
} from '../../src/actor/index.js';
import { collector, idle, testSystem } from './helpers.js';

describe('registry', () => {
  it('register, whereis, send by name, unregister', async () => {
    const { system } = testSystem();
    const { pid, messages } = collector(system);
    system.register('logger', pid);
    expect(system.whereis('logger')).toBe(pid);
    expect(system.registered()).toEqual(['logger']);
    system.send('logger', 'hello');
    await system.settle();
    expect(messages).toEqual(['hello']);
    expect(system.unregister('logger')).toBe(true);
    expect(system.unregister('logger')).toBe(false);
    expect(system.whereis('logger')).toBeUndefined();
  });

  it('a name already registered is an AlreadyRegistered error naming the holder', () => {
    const { system } = testSystem();
    const a = idle(system);
    const b = idle(system);
    system.register('name', a);
    let error: unknown;
    try {
      system.register('name', b);
    } catch (caught) {
      error = caught;
    }
    expect(isAlreadyRegistered(error)).toBe(true);
    expect((error as AlreadyRegistered).holder).toBe(a);
    expect(() => system.spawn(() => {}, { name: 'name' })).toThrow(AlreadyRegistered);
    // the failed spawn left nothing behind
    expect(system.stats().alive).toBe(2);
  });

  it('a process has at most one name; a dead one cannot be registered', async () => {
    const { system } = testSystem();
    const a = idle(system);
    system.register('first', a);
    expect(() => system.register('second', a)).toThrow(/already registered as 'first'/);
    const dead = system.spawn(() => {});
    await system.settle();
    expect(() => system.register('dead', dead)).toThrow(/not alive/);
  });

  it('the name is released when the process exits', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: () => {} }, { name: 'worker' });
    system.exit(pid, 'kill');
    expect(system.whereis('worker')).toBeUndefined();
    const again = idle(system);
    system.register('worker', again);
    expect(system.whereis('worker')).toBe(again);
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

  it('a process registers itself through its context and can be monitored by name', async () => {
    const { system } = testSystem();
    const pid = system.spawn({ init: (ctx: Context) => ctx.register('me'), handle: () => {} });
    await system.settle();
    expect(system.whereis('me')).toBe(pid);
  });
});
