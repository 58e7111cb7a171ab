import { describe, expect, it } from 'vitest';
import { type Context, castTo, type GenServer, reply, startGenServer } from '../../src/actor/index.js';
import { type SupervisionEvent, startSupervisor } from '../../src/supervision/index.js';
import { testSystem } from './helpers.js';

/** seeds/001 Example 2's counterActor as a GenServer: increment, get_value, crash. */
const CounterActor: GenServer<number, void> = {
  init: () => 0,
  handleCast: (message: { increment: number } | 'crash', value) => {
    if (message === 'crash') throw new Error('IntentionalCrash');
    return value + message.increment;
  },
  handleCall: (_request: 'get_value', _from, value) => reply(value, value),
};

describe('seeds/001 Example 2: Supervised Counter', () => {
  it('crashes every 20th message; the supervisor restarts the counter each time and it keeps answering', async () => {
    const { system, crashes } = testSystem();
    const events: SupervisionEvent[] = [];
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 10, // the example's max_restarts
      onEvent: (event) => events.push(event),
      children: [
        {
          id: 'counter',
          restart: 'permanent',
          start: (ctx: Context) =>
            startGenServer(ctx, CounterActor, undefined, { link: true, name: 'counter' }),
        },
      ],
    });
    const valuesBeforeCrash: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      if (i % 20 === 19) {
        valuesBeforeCrash.push(await system.call('counter', 'get_value', 1000));
        castTo(system, 'counter', 'crash');
      } else {
        castTo(system, 'counter', { increment: 1 });
      }
      await system.settle(); // let the supervisor repair the counter before the next message
    }
    const value = await system.call('counter', 'get_value', 1000);
    expect(valuesBeforeCrash).toEqual([19, 19, 19, 19, 19]); // a restarted counter starts from its init state
    expect(value).toBe(0); // i = 99 was a crash: the final counter is a fresh one
    expect(events.filter((event) => event.kind === 'child_restarted')).toHaveLength(5);
    expect(crashes).toHaveLength(5);
    expect(system.isAlive(supervisor)).toBe(true);
  });
});
