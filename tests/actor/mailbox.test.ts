/**
 * Mailboxes. The per-sender order property runs twice (one thread, and the receiver on thread 1).
 *
 * One thread only, and why: the bounded-mailbox cases read the mailbox synchronously
 * (`mailboxOf`, which sees the calling thread's processes) and a full `reject` mailbox on another
 * thread cannot throw MailboxFull to the sender synchronously; what it does instead (the send is
 * dropped and counted by the receiver's thread, a call is refused with MailboxFull at the caller:
 * README "Actors on every core") has its own case below. Queue and bad input involve no second
 * process.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Context,
  ExitMessage,
  isBadArgument,
  isMailboxFull,
  type MailboxFull,
} from '../../src/actor/index.js';
import { Queue } from '../../src/actor/internal/Queue.js';
import { Collect } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, inbox, testSystem } from './helpers.js';

const collect = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'Collect' };

/** A process that holds its mailbox until told to drain it with a 'go' message. */
function gated(
  system: ReturnType<typeof testSystem>['system'],
  capacity: number,
  overflow: 'reject' | 'drop-oldest' | 'drop-newest',
) {
  const received: unknown[] = [];
  const pid = system.spawn(
    async (ctx: Context) => {
      ctx.trapExit(true);
      await ctx.receive((m) => m === 'go');
      for (;;) {
        const message = await ctx.receive(undefined, 0);
        if (message === undefined) break;
        received.push(message);
      }
    },
    { mailbox: { capacity, overflow } },
  );
  return { pid, received };
}

describe('bounded mailboxes', () => {
  it('reject: a send to a full mailbox throws MailboxFull to the sender and delivers nothing', async () => {
    const { system } = testSystem();
    const { pid, received } = gated(system, 3, 'reject');
    await system.settle();
    system.send(pid, 1);
    system.send(pid, 2);
    system.send(pid, 3);
    let error: unknown;
    try {
      system.send(pid, 4);
    } catch (caught) {
      error = caught;
    }
    expect(isMailboxFull(error)).toBe(true);
    expect((error as MailboxFull).pid).toBe(pid);
    expect((error as MailboxFull).capacity).toBe(3);
    expect(system.mailboxOf(pid)).toEqual([1, 2, 3]);
    expect(received).toEqual([]);
  });

  it('drop-oldest drops the oldest message; drop-newest drops the new one', async () => {
    const { system } = testSystem();
    const oldest = gated(system, 2, 'drop-oldest');
    const newest = gated(system, 2, 'drop-newest');
    await system.settle();
    for (const value of [1, 2, 3]) {
      system.send(oldest.pid, value);
      system.send(newest.pid, value);
    }
    expect(system.mailboxOf(oldest.pid)).toEqual([2, 3]);
    expect(system.mailboxOf(newest.pid)).toEqual([1, 2]);
    expect(system.stats().messagesDropped).toBe(2);
  });

  it('signals are never dropped: EXIT messages get in beyond capacity, and drop-oldest spares them', async () => {
    const { system } = testSystem();
    const { pid } = gated(system, 2, 'drop-oldest');
    await system.settle();
    system.exit(pid, 'first');
    system.exit(pid, 'second');
    system.exit(pid, 'third');
    system.send(pid, 'message');
    expect(system.mailboxOf(pid)).toEqual([
      new ExitMessage(system.rootPid, 'first'),
      new ExitMessage(system.rootPid, 'second'),
      new ExitMessage(system.rootPid, 'third'),
      'message',
    ]);
  });

  it('rejects bad mailbox options with a clear error', () => {
    const { system } = testSystem();
    expect(() => system.spawn(() => {}, { mailbox: { capacity: 0 } })).toThrow(
      /capacity must be a positive integer/,
    );
    expect(() => system.spawn(() => {}, { mailbox: { overflow: 'drop-all' as never } })).toThrow(
      /overflow must be one of/,
    );
  });
});

const twoThreads = fileTwoThreadSystem();

describe('a full reject mailbox on another thread', () => {
  it('a send is dropped and counted by the receiver thread; a call is refused with MailboxFull at the caller; the queued ones stay in order', async () => {
    const { system } = twoThreads();
    const box = inbox(system);
    const pid = system.spawn({ ...collect, export: 'Gated' }, [box.pid], {
      thread: 1,
      mailbox: { capacity: 3, overflow: 'reject' },
    });
    const gate = new Int32Array(new SharedArrayBuffer(4));
    system.send(pid, { gate });
    expect(await box.next()).toEqual({ waiting: true }); // it holds its mailbox shut now
    const before = (await system.nodeStats()).threads[1]!.messagesDropped;
    for (const value of [1, 2, 3, 4, 5]) system.send(pid, value); // never throws across threads
    const refused = await system.call(pid, 'room?').catch((error: unknown) => error);
    expect(isMailboxFull(refused)).toBe(true);
    expect((refused as MailboxFull).capacity).toBe(3);
    expect((refused as MailboxFull).pid.equals(pid)).toBe(true);
    const stats = await system.nodeStats();
    expect(stats.threads[1]!.messagesDropped - before).toBe(2); // 4 and 5, counted there
    expect(stats.messagesDropped).toBe(
      stats.threads.reduce((sum, one) => sum + (one?.messagesDropped ?? 0), 0),
    );
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    expect([await box.next(), await box.next(), await box.next()]).toEqual([
      { got: 1 },
      { got: 2 },
      { got: 3 },
    ]);
    expect(await system.call(pid, 'room?')).toBe('served'); // (room again: nothing else was queued)
    system.exit(pid, 'kill');
  });
});

/** Per-sender order, run twice: one thread, and the receiver on thread 1 with the sender on thread 0. */
describe.each([
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the receiver on thread 1', threads: 2 },
] as const)('mailbox order, $title', ({ threads }) => {
  it('property: a mailbox never loses or reorders the messages of one sender', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer(), { maxLength: 300 }),
        fc.integer({ min: 1, max: 50 }),
        async (values, burst) => {
          const system = threads === 1 ? testSystem().system : twoThreads().system;
          const box = inbox(system);
          const expected = [...values, 'end'];
          const pid =
            threads === 1
              ? system.spawn(new Collect(expected.length, box.pid))
              : system.spawn(collect, [expected.length, box.pid], { thread: 1 });
          for (let index = 0; index < values.length; index++) {
            system.send(pid, values[index]);
            if (index % burst === 0) await system.settle();
          }
          system.send(pid, 'end');
          expect(await box.next()).toEqual(expected);
          system.exit(pid, 'kill');
          system.exit(box.pid, 'kill');
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('Queue', () => {
  it('property: behaves like an array under push, shift and removeAt', () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), value: fc.integer() }),
      fc.record({ kind: fc.constant('shift' as const) }),
      fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
        const queue = new Queue<number>();
        const model: number[] = [];
        for (const op of operations) {
          if (op.kind === 'push') {
            queue.push(op.value);
            model.push(op.value);
          } else if (op.kind === 'shift') {
            expect(queue.shift()).toBe(model.shift());
          } else if (model.length > 0) {
            const at = op.at % model.length;
            expect(queue.removeAt(at)).toBe(model.splice(at, 1)[0]);
          }
          expect(queue.length).toBe(model.length);
        }
        expect(queue.toArray()).toEqual(model);
      }),
    );
  });
});

describe('bad input', () => {
  it('sending to something that is not a pid or name, or sending undefined, is a BadArgument', () => {
    const { system } = testSystem();
    const pid = system.spawn({ handle: () => {} });
    expect(() => system.send(42 as never, 'x')).toThrow(/expected a Pid or a registered name, got 42/);
    expect(() => system.send(pid, undefined)).toThrow(/message is undefined/);
    try {
      system.send({} as never, 'x');
    } catch (error) {
      expect(isBadArgument(error)).toBe(true);
    }
  });

  it('spawning something that is not a function or handler is a BadArgument', () => {
    const { system } = testSystem();
    expect(() => system.spawn(42 as never)).toThrow(/expected a process function/);
    expect(() => system.spawn({ handle: 'no' } as never)).toThrow(/expected a process function/);
  });

  it('negative timeouts are rejected', async () => {
    const { system } = testSystem();
    expect(() => system.sendAfter(-1, system.rootPid, 'x')).toThrow(/must be a number of milliseconds >= 0/);
    expect(() => system.call(system.spawn({ handle: () => {} }), 'x', -5)).toThrow(/call timeout must be/);
    let error: unknown;
    system.spawn(async (ctx) => {
      try {
        await ctx.receive(undefined, Number.NaN);
      } catch (caught) {
        error = caught;
      }
    });
    await system.settle();
    expect(isBadArgument(error)).toBe(true);
  });
});
