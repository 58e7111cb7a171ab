import { afterEach, describe, expect, it } from 'vitest';
import { castTo } from '../../src/actor/index.js';
import { getState, TraceBuffer, trace } from '../../src/observe/index.js';
import { supervisedFixture } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

describe('trace (sys:trace)', () => {
  it('records messages in and out, calls and the exit of one process, in order', async () => {
    const { system } = await supervisedFixture();
    cleanups.push(() => system.shutdown());
    const echo = system.spawn({
      handle(message: { reply: unknown; to: never }, ctx) {
        ctx.send(message.to, message.reply);
      },
    });
    const sink = system.spawn({ handle() {} });
    const tracing = trace(system, echo);
    system.send(echo, { reply: 'pong', to: sink });
    await system.settle();
    const counter = system.whereis('counter')!;
    const counterTrace = trace(system, counter, { messages: false, calls: true, exits: true });
    castTo(system, counter, { add: 2 });
    expect(await system.call(counter, 'get')).toBe(2);
    system.exit(echo, 'kill');
    await system.settle();

    const events = tracing.events();
    expect(events.map((event) => event.kind)).toEqual(['in', 'out', 'exit']);
    expect(events[0]).toMatchObject({ pid: String(echo), peer: undefined, data: { reply: 'pong' } });
    expect(events[1]).toMatchObject({ pid: String(echo), peer: String(sink), data: 'pong' });
    expect(events[2]).toMatchObject({ kind: 'exit', data: 'killed' });
    // messages: false keeps the cast out; the call is recorded with its request
    expect(counterTrace.events().map((event) => [event.kind, event.data])).toEqual([['call', 'get']]);
    counterTrace.stop();
    tracing.stop();
    expect(system.tracer).toBeUndefined();
  });

  it('keeps at most `capacity` events and counts the dropped ones', async () => {
    const { system } = await supervisedFixture();
    cleanups.push(() => system.shutdown());
    const sink = system.spawn({ handle() {} });
    const tracing = trace(system, sink, { capacity: 3 });
    for (let index = 0; index < 5; index++) system.send(sink, index);
    expect(tracing.events().map((event) => event.data)).toEqual([2, 3, 4]);
    expect(tracing.dropped).toBe(2);
    tracing.stop();
    expect(() => trace(system, sink, { capacity: 0 })).toThrow(/trace capacity must be an integer/);
  });

  it('the ring buffer wraps in order', () => {
    const buffer = new TraceBuffer<number>(2);
    buffer.push(1);
    buffer.push(2);
    buffer.push(3);
    expect(buffer.toArray()).toEqual([2, 3]);
    buffer.clear();
    expect(buffer.length).toBe(0);
  });
});

describe('getState (sys:get_state)', () => {
  it("returns a GenServer's state between two messages", async () => {
    const { system } = await supervisedFixture();
    cleanups.push(() => system.shutdown());
    castTo(system, 'counter', { add: 5 });
    castTo(system, 'counter', { add: 2 });
    expect(await getState(system, 'counter')).toBe(7);
  });
});
