import {
  ActorSystem,
  castTo,
  formatReason,
  type GenServer,
  Random,
  reply,
  startGenServer,
} from '../actor/index.js';
import { TaggedError } from '../internal/errors.js';
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
  /** Why the supervisor gave up (more crashes than its intensity allows), if it did; the demo then stops. */
  readonly supervisorGaveUp: string | undefined;
}

/** The demo supervisor's restart intensity: at most this many restarts in `DEMO_PERIOD_MS`. */
export const DEMO_INTENSITY = 10;
export const DEMO_PERIOD_MS = 60_000;

class IntentionalCrash extends TaggedError('IntentionalCrash') {
  constructor() {
    super('intentional crash (injected by the demo)');
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
    intensity: DEMO_INTENSITY,
    periodMs: DEMO_PERIOD_MS,
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
  // The supervisor exits when a crash is one restart too many: then no repair comes.
  const gaveUp = system.whenExited(supervisor).then((reason) => formatReason(reason));
  for (let operation = 0; operation < 100; operation++) {
    if (crashAt.has(operation)) {
      const repaired = new Promise<void>((resolve) => (restarted = resolve));
      crashedAt = performance.now();
      castTo(system, 'counter', 'crash');
      const exit = await Promise.race([repaired.then(() => undefined), gaveUp]);
      if (exit !== undefined) {
        const why =
          `supervisor gave up after ${recoveryUs.length} restarts: crash ${recoveryUs.length + 1} ` +
          `is more than its intensity of ${DEMO_INTENSITY} restarts in ${DEMO_PERIOD_MS / 1000} s allows ` +
          `(it exited with ${exit}); ${100 - operation - 1} operations not run`;
        write(why);
        system.shutdown();
        return {
          finalValue: store.value,
          expectedValue: expected,
          restarts: recoveryUs.length,
          recoveryUs,
          supervisorGaveUp: why,
        };
      }
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
  return {
    finalValue,
    expectedValue: expected,
    restarts: recoveryUs.length,
    recoveryUs,
    supervisorGaveUp: undefined,
  };
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
