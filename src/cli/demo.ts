import {
  ActorSystem,
  type Context,
  castTo,
  type ExitMessage,
  formatReason,
  type GenServer,
  isExitMessage,
  isNormalOrShutdown,
  type Pid,
  Random,
  reply,
  startGenServer,
} from '../actor/index.js';

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
  const restarts: number[] = [];
  const recoveryUs: number[] = [];
  let crashedAt = 0;

  const supervisor = system.spawn(async (ctx: Context) => {
    ctx.trapExit(true);
    let child = await startGenServer(ctx, counterServer(store), undefined, { link: true, name: 'counter' });
    write(`supervisor ${ctx.self} started counter ${child}`);
    for (;;) {
      const exit = (await ctx.receive(isExitMessage)) as ExitMessage;
      if (exit.from !== child) return; // our own supervisor asked us to stop
      if (isNormalOrShutdown(exit.reason)) return;
      const old = child;
      child = await startGenServer(ctx, counterServer(store), undefined, { link: true, name: 'counter' });
      const micros = (performance.now() - crashedAt) * 1000;
      recoveryUs.push(micros);
      restarts.push(restarts.length + 1);
      write(
        `  counter ${old} crashed (${formatReason(exit.reason)}); restarted as ${child} in ${micros.toFixed(0)} us`,
      );
    }
  });

  await waitForName(system, 'counter');
  const random = new Random(options.seed);
  const crashAt = new Set<number>();
  while (crashAt.size < Math.min(options.crashes, 100)) crashAt.add(random.nextInt(100));
  let expected = 0;
  for (let operation = 0; operation < 100; operation++) {
    if (crashAt.has(operation)) {
      crashedAt = performance.now();
      castTo(system, 'counter', 'crash');
      await waitForRestart(system, restarts.length + 1, restarts);
    } else {
      castTo(system, 'counter', { increment: 1 });
      expected++;
    }
  }
  const finalValue = await system.call<number>('counter', 'get', 1000);
  write(
    `final counter value: ${finalValue} (expected ${expected}, ${restarts.length} restarts, no increment lost)`,
  );
  write(`supervision tree:\n  ${supervisor} supervisor\n  └─ ${system.whereis('counter') as Pid} counter`);
  system.shutdown();
  return { finalValue, expectedValue: expected, restarts: restarts.length, recoveryUs };
}

async function waitForName(system: ActorSystem, name: string): Promise<void> {
  for (let round = 0; round < 10_000 && system.whereis(name) === undefined; round++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

async function waitForRestart(system: ActorSystem, count: number, restarts: number[]): Promise<void> {
  for (let round = 0; round < 10_000 && restarts.length < count; round++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await waitForName(system, 'counter');
}
