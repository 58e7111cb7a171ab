/**
 * The lean process record (internal/Process.ts): a process is one object that is its record, its
 * pid and its context; a pid's shared parts live in an interned home; the state alone says
 * whether a process is queued and whether it has had its first turn. These cases pin down what
 * must not change with that layout.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, isPid, Pid } from '../../src/actor/index.js';
import { testSystem } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('the process record', () => {
  it('a pid reports the fields it was made with, and equals exactly the pids with the same ones', () => {
    const field = fc.record({
      node: fc.constantFrom('a@h', 'b@h'),
      index: fc.integer({ min: 0, max: 2 }),
      id: fc.integer({ min: 0, max: 3 }),
      serial: fc.integer({ min: 0, max: 1 }),
      thread: fc.integer({ min: 0, max: 2 }),
      creation: fc.integer({ min: 0, max: 1 }),
    });
    fc.assert(
      fc.property(field, field, (a, b) => {
        const pa = new Pid(a.node, a.index, a.id, a.serial, a.thread, a.creation);
        const pb = new Pid(b.node, b.index, b.id, b.serial, b.thread, b.creation);
        expect([pa.node, pa.nodeIndex, pa.id, pa.serial, pa.thread, pa.creation]).toEqual([
          a.node,
          a.index,
          a.id,
          a.serial,
          a.thread,
          a.creation,
        ]);
        // as before: the node index is how this system prints the node, not part of the identity
        const same =
          a.node === b.node &&
          a.id === b.id &&
          a.serial === b.serial &&
          a.thread === b.thread &&
          a.creation === b.creation;
        expect(pa.equals(pb)).toBe(same);
        expect(String(pa)).toBe(`<${a.index}.${a.id}.${a.serial}${a.thread === 0 ? '' : `@t${a.thread}`}>`);
      }),
      { numRuns: 300 },
    );
  });

  it('the context is the pid: ctx.self is what spawn returned, and a pid is still only a pid to the API', async () => {
    const { system } = testSystem();
    const seen: unknown[] = [];
    const pid = system.spawn({
      handle: (message: string, ctx: Context) => {
        seen.push(message, ctx.self === pid, isPid(ctx.self));
      },
    });
    system.send(pid, 'hi');
    await system.settle();
    expect(seen).toEqual(['hi', true, true]);
    expect(system.processes()).toEqual([pid]);
    expect(JSON.stringify({ pid })).toBe(`{"pid":"${pid}"}`);
  });

  it('a process is runnable until its first turn, which runs init once however many messages wait', async () => {
    const { system } = testSystem();
    const log: string[] = [];
    const pid = system.spawn({
      init: () => void log.push('init'),
      handle: (message: string) => void log.push(message),
    });
    expect(system.processInfo(pid)!.status).toBe('runnable');
    for (const message of ['a', 'b', 'c']) system.send(pid, message);
    expect(system.processInfo(pid)!.status).toBe('runnable');
    await system.settle();
    expect(log).toEqual(['init', 'a', 'b', 'c']);
    expect(system.processInfo(pid)!.status).toBe('waiting');
    system.send(pid, 'd');
    expect(system.processInfo(pid)!.status).toBe('runnable');
    await system.settle();
    expect(log).toEqual(['init', 'a', 'b', 'c', 'd']);
  });

  it('a process function killed before its first turn never runs; one killed while waiting never resumes', async () => {
    const { system } = testSystem();
    let ran = 0;
    let resumed = 0;
    const early = system.spawn(() => {
      ran++;
    });
    system.exit(early, 'kill');
    const waiting = system.spawn(async (ctx: Context) => {
      await ctx.receive();
      resumed++;
    });
    await system.settle();
    system.send(waiting, 'wake');
    system.exit(waiting, 'kill');
    await system.settle();
    expect([ran, resumed]).toEqual([0, 0]);
    expect(system.stats()).toMatchObject({ alive: 0, exited: 2 });
  });

  it('a pid held after its process exited keeps neither its behaviour nor its queued messages', async () => {
    const { system } = testSystem();
    // made in a function of its own: a suspended async function keeps all its locals reachable
    const { pid, behaviour, message } = await suspendedWithAMessage(system);
    expect(system.processInfo(pid)!.mailboxLength).toBe(1);
    system.exit(pid, 'kill');
    await system.settle();
    // WeakRef targets stay alive until the current job's microtasks are done: end the job first
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(behaviour.deref()).toBeUndefined();
    expect(message.deref()).toBeUndefined();
    expect(system.processInfo(pid)).toBeUndefined();
    expect(pid.equals(pid)).toBe(true);
  });

  it('a process spawned with its own mailbox limit keeps it; the others get the system default', async () => {
    const { system } = testSystem({ mailboxCapacity: 3 });
    const small = system.spawn(
      { handle: () => new Promise<void>(() => {}) },
      { mailbox: { capacity: 1, overflow: 'drop-newest' } },
    );
    const plain = system.spawn({ handle: () => new Promise<void>(() => {}) });
    system.send(small, 0);
    system.send(plain, 0);
    await system.settle(); // both suspend on message 0
    for (let i = 1; i <= 3; i++) system.send(small, i);
    expect(system.processInfo(small)!.mailboxLength).toBe(1);
    for (let i = 1; i <= 3; i++) system.send(plain, i);
    expect(() => system.send(plain, 4)).toThrow(/mailbox/i);
    expect(system.stats().messagesDropped).toBe(2);
  });
});

/** A handler suspended in its first message with a second one queued; weak references to both. */
async function suspendedWithAMessage(
  system: ActorSystem,
): Promise<{ pid: Pid; behaviour: WeakRef<object>; message: WeakRef<object> }> {
  const handler = { handle: () => new Promise<void>(() => {}) }; // never settles
  const payload = { big: new Array(1000).fill(1) };
  const pid = system.spawn(handler);
  system.send(pid, 'first');
  await system.settle();
  system.send(pid, payload); // waits in the mailbox behind the suspended turn
  return { pid, behaviour: new WeakRef(handler), message: new WeakRef(payload) };
}
