import {
  ActorSystem,
  castTo,
  formatReason,
  type GenServer,
  Random,
  reply,
  startGenServer,
} from '../actor/index.js';
import { type SupervisionEvent, startSupervisor, stopSupervisor, treeView } from '../supervision/index.js';

export interface DemoOptions {
  /** How many of the 100 operations are injected crashes. */
  readonly crashes: number;
  readonly seed: number;
  readonly write: (line: string) => void;
}

export interface DemoResult {
  readonly finalValue: number;
  readonly expectedValue: number;
  readonly restarts: number;
  readonly recoveryUs: number[];
}

class IntentionalCrash extends Error {
  constructor() {
    super('intentional crash (injected by the demo)');
    this.name = 'IntentionalCrash';
  }
}

type CounterCast = { increment: number } | 'crash';

/** The design book's Example 2 counter: a GenServer whose state survives in a store on restart. */
function counterServer(store: { value: number }): GenServer<number, void> {
  return {
    init: () => store.value,
    handleCast(request: CounterCast, value) {
      if (request === 'crash') throw new IntentionalCrash();
      store.value = value + request.increment; // the last good state, as a checkpoint would keep it
      return store.value;
    },
    handleCall: (_request: 'get', _from, value) => reply(value, value),
  };
}

/**
 * A small supervised system (seeds/001 Example 2): a counter under a one-for-one supervisor,
 * 100 operations with crashes injected at seeded positions; prints each crash and repair.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { write } = options;
  const system = new ActorSystem({ onCrash: () => {} }); // crashes are printed below, as repairs
  const store = { value: 0 };
  const recoveryUs: number[] = [];
  let crashedAt = 0;
  let restarted: () => void = () => {};
  const onEvent = (event: SupervisionEvent): void => {
    if (event.kind === 'child_exited') {
      write(`  ${event.childId} ${event.pid} crashed: ${formatReason(event.reason)}`);
    } else if (event.kind === 'child_restarted') {
      const micros = (performance.now() - crashedAt) * 1000;
      recoveryUs.push(micros);
      write(`  supervisor restarted ${event.childId} as ${event.pid} in ${micros.toFixed(0)} us`);
      restarted();
    }
  };
  const supervisor = await startSupervisor(system, {
    strategy: 'one_for_one',
    intensity: 10,
    periodMs: 60_000,
    children: [
      {
        id: 'counter',
        start: (ctx) => startGenServer(ctx, counterServer(store), undefined, { link: true, name: 'counter' }),
      },
    ],
    onEvent,
  });
  write(`supervision tree at start:\n${indent(treeView(system, supervisor))}`);
  const random = new Random(options.seed);
  const crashAt = new Set<number>();
  while (crashAt.size < Math.min(options.crashes, 100)) crashAt.add(random.nextInt(100));
  let expected = 0;
  for (let operation = 0; operation < 100; operation++) {
    if (crashAt.has(operation)) {
      const repaired = new Promise<void>((resolve) => (restarted = resolve));
      crashedAt = performance.now();
      castTo(system, 'counter', 'crash');
      await repaired;
    } else {
      castTo(system, 'counter', { increment: 1 });
      expected++;
    }
  }
  const finalValue = await system.call<number>('counter', 'get', 1000);
  write(
    `final counter value: ${finalValue} (expected ${expected}, ${recoveryUs.length} restarts, no increment lost)`,
  );
  write(`supervision tree at the end:\n${indent(treeView(system, supervisor))}`);
  await stopSupervisor(system, supervisor);
  return { finalValue, expectedValue: expected, restarts: recoveryUs.length, recoveryUs };
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
