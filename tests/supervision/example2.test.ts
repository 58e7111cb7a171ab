/**
 * seeds/001 Example 2: Supervised Counter. Runs twice (describe.each): on one thread, and with
 * the counter on thread 1 of a two-thread system (started by module URL) while its supervisor,
 * and the test that casts to it and calls it by name, are on thread 0.
 */
import { describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, castTo, type Pid, startGenServer } from '../../src/actor/index.js';
import { type SupervisionEvent, startSupervisor, whichChildren } from '../../src/supervision/index.js';
import { CounterActor } from './fixtures/worker.js';
import { fileTwoThreadSystem, testSystem } from './helpers.js';

const counterCode = { module: new URL('./fixtures/worker.ts', import.meta.url).href, export: 'counterActor' };
const twoThreads = fileTwoThreadSystem();

const placements = [
  {
    name: 'one thread',
    system: () => testSystem(),
    start: (ctx: Context) => startGenServer(ctx, CounterActor, undefined, { link: true, name: 'counter' }),
  },
  {
    name: 'the counter on another thread',
    system: () => twoThreads(),
    start: (ctx: Context) => ctx.spawnLink(counterCode, [], { thread: 1, name: 'counter' }),
  },
];

describe.each(placements)('seeds/001 Example 2: Supervised Counter ($name)', ({ system: make, start }) => {
  it('crashes every 20th message; the supervisor restarts the counter each time and it keeps answering', async () => {
    const { system, crashes } = make();
    const events: SupervisionEvent[] = [];
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 10, // the example's max_restarts
      onEvent: (event) => events.push(event),
      children: [{ id: 'counter', restart: 'permanent', start }],
    });
    const valuesBeforeCrash: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 20 === 19) {
        valuesBeforeCrash.push(await system.call('counter', 'get_value', 1000));
        await crash(system, supervisor);
      } else {
        castTo(system, 'counter', { increment: 1 });
      }
    }
    const value = await system.call('counter', 'get_value', 1000);
    expect(valuesBeforeCrash).toEqual([19, 19, 19, 19, 19]); // a restarted counter starts from its init state
    expect(value).toBe(0); // i = 99 was a crash: the final counter is a fresh one
    expect(events.filter((event) => event.kind === 'child_restarted')).toHaveLength(5);
    expect(crashes).toHaveLength(5);
    expect(system.isAlive(supervisor)).toBe(true);
  });
});

/** Crashes the counter and lets the supervisor repair it before the next message. */
async function crash(system: ActorSystem, supervisor: Pid): Promise<void> {
  const counter = system.whereis('counter') as Pid;
  const exited = system.whenExited(counter);
  castTo(system, 'counter', 'crash');
  await exited;
  await whichChildren(system, supervisor); // queued behind the EXIT: the counter is restarted
}
