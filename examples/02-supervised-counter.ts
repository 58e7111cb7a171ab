/**
 * Example 2 (design book ch. 10): a counter under a one_for_one supervisor, sent 100 messages of
 * which every 20th crashes it. The counter checkpoints its state after every message
 * (`checkpointed`), so each restart continues from the last good count: the final value is the
 * sum of the 95 increments, not what was counted since the last crash.
 * Run: `node dist/examples/02-supervised-counter.js`.
 */
import { ActorSystem, castTo, type GenServer, reply, startGenServer } from 'zbmd';
import { CheckpointManager, checkpointed, InMemoryCheckpointStore, type SavedMessage } from 'zbmd/fault';
import { startSupervisor } from 'zbmd/supervision';

type CounterCast = { readonly increment: number } | 'crash';

const Counter: GenServer<number, number> = {
  init: (start) => start,
  handleCast(request: CounterCast, value) {
    if (request === 'crash') throw new Error('intentional crash');
    return value + request.increment;
  },
  handleCall: (_request: 'get_value', _from, value) => reply(value, value),
};

export async function main(write: (line: string) => void = console.log): Promise<number> {
  const system = new ActorSystem({ onCrash: () => {} }); // the supervisor repairs them
  // A directory store (`DirectoryCheckpointStore`) would survive the process too.
  const manager = new CheckpointManager<number, SavedMessage>({
    store: new InMemoryCheckpointStore(),
    serialize: (value) => new TextEncoder().encode(JSON.stringify(value)),
    deserialize: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as number,
  });
  let restarts = -1;
  await startSupervisor(system, {
    strategy: 'one_for_one',
    intensity: 10,
    periodMs: 60_000,
    children: [
      {
        id: 'counter',
        restart: 'permanent',
        start: (ctx) => {
          restarts += 1;
          const server = checkpointed(Counter, { manager, key: 'counter' });
          return startGenServer(ctx, server, 0, { link: true, name: 'counter' });
        },
      },
    ],
  });
  for (let i = 0; i < 100; i++) {
    castTo(system, 'counter', (i % 20 === 19 ? 'crash' : { increment: 1 }) satisfies CounterCast);
    await system.settle(); // let the supervisor restart it before the next message
  }
  const value = await system.call<number>('counter', 'get_value', 1000);
  write(`Final counter value: ${value} (restarts: ${restarts})`);
  system.shutdown();
  return value;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
