/**
 * The actor tests of the design book (seeds/001 chapters 3 and 6), translated. Message passing
 * and routing run twice (describe.each): on one thread, and with the echo server (the
 * forwarding actor1) on thread 1 while the caller (actor2) is on thread 0.
 *
 * One thread only, and why: the fault-injection cases inject faults into the calling thread's
 * runtime (`runtimeFaults` hooks one runtime), so they would not reach processes on thread 1.
 */
import { describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, type Pid, startGenServer } from '../../src/actor/index.js';
import { FaultInjector, runtimeFaults } from '../../src/fault/index.js';
import { startSupervisor, whichChildren } from '../../src/supervision/index.js';
import { EchoServer, Relay } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, testSystem } from './helpers.js';

const fixtures = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href };
const twoThreads = fileTwoThreadSystem();

describe.each([
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the echo server and the forwarder on thread 1', threads: 2 },
] as const)('seeds/001 chapter 3 and 6, $title', ({ threads }) => {
  const make = (): ActorSystem => (threads === 1 ? testSystem().system : twoThreads().system);

  it('actor message passing: send, then call answers with the data', async () => {
    const system = make();
    const actor =
      threads === 1
        ? await startGenServer(system, EchoServer, undefined)
        : system.spawn({ ...fixtures, export: 'echoServer' }, [], { thread: 1 });
    system.send(actor, { data: 'hello' });
    const response = await system.call<{ data: string }>(actor, { data: 'world' }, 1000);
    expect(response.data).toBe('world');
  });

  it('actor system message routing: actor1 forwards to actor2, which receives it', async () => {
    const system = make();
    let received: (message: unknown) => void = () => {};
    const response = new Promise((resolve) => {
      received = resolve;
    });
    const actor2 = system.spawn(async (ctx: Context) => {
      received(await ctx.receive(undefined, 1000));
    });
    const actor1: Pid =
      threads === 1
        ? system.spawn(new Relay())
        : system.spawn({ ...fixtures, export: 'Relay' }, [], { thread: 1 });
    system.send(actor1, { to: actor2, body: 'test' });
    expect(await response).toBe('test');
  });
});

describe('seeds/001 chapter 3 and 6 (faults injected in one runtime)', () => {
  it('actor fault injection: about 10% of 1000 operations fail with an injected fault', async () => {
    const injector = new FaultInjector({ messageDropRate: 0.1, seed: 2024 });
    const { system } = testSystem({ faults: runtimeFaults(injector) });
    let delivered = 0;
    const actor = system.spawn({ handle: () => void delivered++ });
    for (let i = 0; i < 1000; i++) system.send(actor, { compute: i });
    await system.settle();
    const failureRate = (1000 - delivered) / 1000;
    expect(failureRate).toBeGreaterThan(0.08);
    expect(failureRate).toBeLessThan(0.12);
    expect(injector.counts().message_drop).toBe(1000 - delivered);
  });

  it('system recovers from random actor failures: a supervised tree of 10 workers stays whole', async () => {
    const injector = new FaultInjector({ actorCrashRate: 0.1, seed: 7 });
    const { system } = testSystem({ faults: runtimeFaults(injector) });
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 1000,
      periodMs: 1000,
      children: Array.from({ length: 10 }, (_, index) => ({
        id: `worker${index}`,
        start: (ctx: Context) => ctx.spawnLink({ handle: () => {} }),
      })),
    });
    for (let round = 0; round < 50; round++) {
      for (const child of await whichChildren(system, supervisor)) {
        if (child.pid instanceof Object && system.isAlive(child.pid as Pid))
          system.send(child.pid as Pid, { work: round });
      }
      await system.settle();
    }
    expect(injector.counts().actor_crash).toBeGreaterThan(0);
    const children = await whichChildren(system, supervisor);
    expect(children).toHaveLength(10);
    expect(children.every((child) => typeof child.pid === 'object' && system.isAlive(child.pid as Pid))).toBe(
      true,
    );
  });
});
