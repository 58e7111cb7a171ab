import { MessageChannel } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actor/index.js';
import { pairRings, RingHub, ringSlots, wakeWords } from '../../src/actor/internal/Ring.js';

/**
 * The cross-thread transport (src/actor/internal/Ring.ts): batches of numbers go through a
 * SharedArrayBuffer ring, other batches (and ones that do not fit) through the MessagePort
 * beside it; the receiver applies them in the order they were posted. Both ends run on this
 * thread here (two hubs on one MessageChannel), so the merge of the two streams is tested
 * without worker start-up; the actor-level suites run over real worker threads.
 */

interface Pair {
  post(batch: unknown[], transfer?: ArrayBuffer[]): void;
  received: unknown[][];
  /** Resolves once `count` batches arrived at the far end. */
  arrived(count: number): Promise<void>;
  close(): void;
}

function pair(slots: number | undefined): Pair {
  const { port1, port2 } = new MessageChannel();
  if (slots !== undefined) pairRings(port1, port2, slots);
  const wake = wakeWords(2);
  const received: unknown[][] = [];
  let waiter: { count: number; resolve: () => void } | undefined;
  const sink = {
    receive(_peer: number, batch: unknown[]) {
      received.push(batch);
      if (waiter !== undefined && received.length >= waiter.count) waiter.resolve();
    },
    lost() {},
  };
  const sender = new RingHub(0, wake, { receive() {}, lost() {} }, () => true);
  const receiver = new RingHub(1, wake, sink, () => true);
  const transport = sender.connect(1, port1, false);
  receiver.connect(0, port2, false);
  return {
    post: (batch, transfer = []) => transport.post(batch, transfer),
    received,
    arrived: (count) =>
      received.length >= count
        ? Promise.resolve()
        : new Promise((resolve) => {
            waiter = { count, resolve };
          }),
    close: () => {
      port1.close();
      port2.close();
    },
  };
}

describe('the ring transport between scheduler threads', () => {
  it('sizes its rings within the budget: 2 MiB each for a few threads, smaller for many', () => {
    expect(ringSlots(2)).toBe(1 << 18);
    expect(ringSlots(16)).toBeLessThan(1 << 18);
    expect(ringSlots(16) * 16 * 15).toBeLessThanOrEqual(1 << 22);
    expect(ringSlots(64)).toBe(1 << 12);
  });

  it('keeps the order of number batches and object batches posted in turn', async () => {
    const link = pair(1024);
    const batches: unknown[][] = [[1, 2, 3], [{ a: 1 }], [4, 5], ['text', 6], [7], [8, 9, 10]];
    for (const batch of batches) link.post([...batch]);
    await link.arrived(batches.length);
    expect(link.received).toEqual(batches);
    link.close();
  });

  it('sends a batch that does not fit by the port, and order still holds', async () => {
    const link = pair(16); // 16 slots: a header and 14 numbers at most
    const batches = [
      [1],
      Array.from({ length: 30 }, (_, i) => i),
      [2, 3],
      Array.from({ length: 14 }, () => 9),
      [4],
    ];
    for (const batch of batches) link.post([...batch]);
    await link.arrived(batches.length);
    expect(link.received).toEqual(batches);
    link.close();
  });

  it('moves transfer lists by the port without a copy', async () => {
    const link = pair(1024);
    const buffer = new Float32Array([1, 2, 3]).buffer;
    link.post([1, 2]);
    link.post([buffer], [buffer]);
    link.post([3]);
    expect(buffer.byteLength).toBe(0); // detached at the sender
    await link.arrived(3);
    expect(link.received[0]).toEqual([1, 2]);
    expect([...new Float32Array(link.received[1][0] as ArrayBuffer)]).toEqual([1, 2, 3]);
    expect(link.received[2]).toEqual([3]);
    link.close();
  });

  it('without rings (threadTransport port) every batch goes by the port, in order', async () => {
    const link = pair(undefined);
    for (let i = 0; i < 10; i++) link.post(i % 3 === 0 ? [{ i }] : [i, i]);
    await link.arrived(10);
    expect(link.received).toEqual(Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? [{ i }] : [i, i])));
    link.close();
  });

  it('property: any mix of batch kinds and sizes arrives complete and in order, through a small ring', async () => {
    const batch = fc.oneof(
      fc.array(fc.double({ noNaN: true }), { minLength: 1, maxLength: 40 }),
      fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null)), {
        minLength: 1,
        maxLength: 5,
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(batch, { minLength: 1, maxLength: 60 }), async (batches) => {
        const link = pair(64);
        for (const item of batches) link.post([...item]);
        await link.arrived(batches.length);
        link.close();
        expect(link.received).toEqual(batches);
      }),
      { numRuns: 40 },
    );
  });

  it('threadTransport is checked: only ring or port', () => {
    expect(() => new ActorSystem({ threads: 2, threadTransport: 'pigeon' as never })).toThrow(
      /threadTransport must be 'ring' or 'port', got "pigeon"/,
    );
  });
});
