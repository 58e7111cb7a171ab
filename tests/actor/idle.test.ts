import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ActorSystem, BadArgument, type Pid } from '../../src/actor/index.js';

/**
 * How a scheduler thread waits when it runs out of work (src/actor/internal/Ring.ts: a bounded
 * spin, a bounded Atomics.wait, then Atomics.waitAsync on the event loop). The settings change
 * latency and CPU only: every setting delivers the same messages in the same order, and a
 * waiting worker still serves its timers, its I/O and batches that come by the port.
 */

const responder = { module: new URL('./fixtures/idleActors.ts', import.meta.url).href, export: 'Responder' };

/** A local process whose messages a test awaits one at a time. */
function inbox(system: ActorSystem) {
  const queued: unknown[] = [];
  const waiting: ((message: unknown) => void)[] = [];
  const pid = system.spawn({
    handle: (message: unknown) => {
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(message);
      else queued.push(message);
    },
  });
  const next = (): Promise<any> =>
    queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve));
  return { pid, next };
}

describe('idle settings of scheduler threads', () => {
  it.each([
    ['idleSpinUs', -1],
    ['idleSpinUs', Number.NaN],
    ['idleWaitUs', 100_001],
    ['idleWaitUs', '10'],
  ])('rejects %s = %s, naming the setting and its range', (field, value) => {
    const make = () => new ActorSystem({ threads: 2, [field]: value });
    expect(make).toThrow(BadArgument);
    expect(make).toThrow(new RegExp(`${field} must be a number of microseconds in \\[0, 100000\\]`));
  });

  const systems: ActorSystem[] = [];
  afterAll(async () => {
    await Promise.all(systems.map((system) => system.close()));
  });

  describe.each([
    ['the defaults', {}],
    ['a blocking wait of 1 ms after the spin', { idleWaitUs: 1000 }],
    ['no spin, no blocking wait (event loop only)', { idleSpinUs: 0, idleWaitUs: 0 }],
    ['a long spin and the longest blocking wait', { idleSpinUs: 2000, idleWaitUs: 100_000 }],
    ['no spin, the longest blocking wait', { idleSpinUs: 0, idleWaitUs: 100_000 }],
  ])('with %s', (_name, settings) => {
    let system: ActorSystem;
    let box: ReturnType<typeof inbox>;
    let worker: Pid;
    it('starts a responder on thread 1', async () => {
      system = new ActorSystem({ threads: 2, ...settings });
      systems.push(system);
      box = inbox(system);
      worker = system.spawn(responder, [box.pid], { thread: 1 });
      system.send(worker, 0);
      expect(await box.next()).toBe(0);
    });

    it('answers 300 numbers one at a time, in order (each one is a wake-up on both threads)', async () => {
      const seen: number[] = [];
      for (let n = 1; n <= 300; n++) {
        system.send(worker, n);
        seen.push(await box.next());
      }
      expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    });

    it('answers a burst of 5,000 in order', async () => {
      for (let n = 0; n < 5000; n++) system.send(worker, n);
      const seen: number[] = [];
      for (let n = 0; n < 5000; n++) seen.push(await box.next());
      expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    });

    it('serves a timer, file I/O and a batch on the port while it waits', async () => {
      system.send(worker, { timer: 20 });
      expect(await box.next()).toBe('timer fired');
      const file = fileURLToPath(import.meta.url);
      system.send(worker, { file });
      expect(await box.next()).toBeGreaterThan(1000);
      system.send(worker, { body: 'by the port' });
      expect(await box.next()).toEqual({ echoed: 'by the port' });
      system.send(worker, 7);
      expect(await box.next()).toBe(7);
    });
  });
});
