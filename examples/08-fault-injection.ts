/**
 * Example 8 (design book ch. 10): a system under seeded fault injection (actor crashes and
 * message drops, as `ZBMD_FAULTS` would set them) keeps working: 100 workers under a
 * one_for_all supervisor take 10,000 messages, and afterwards every worker answers a ping.
 * The same seed replays the same faults. Run: `node dist/examples/08-fault-injection.js`.
 */
import { ActorSystem, castTo, type GenServer, reply, startGenServer } from 'zbmd';
import { FaultInjector, runtimeFaults } from 'zbmd/fault';
import { type SupervisionEvent, startSupervisor } from 'zbmd/supervision';

const WORKERS = 100;
const MESSAGES = 10_000;

const Worker: GenServer<number> = {
  init: () => 0,
  handleCast: (_work: { readonly work: number }, handled) => handled + 1,
  handleCall: (_request: 'ping', _from, handled) => reply(true, handled),
};

export interface FaultInjectionOutcome {
  readonly sent: number;
  readonly sendFailures: number;
  readonly restarts: number;
  readonly alive: number;
  readonly faults: Readonly<Record<string, number>>;
}

export async function main(
  write: (line: string) => void = console.log,
  seed = 7,
): Promise<FaultInjectionOutcome> {
  const injector = new FaultInjector({ actorCrashRate: 0.01, messageDropRate: 0.001, seed });
  const system = new ActorSystem({ faults: runtimeFaults(injector), onCrash: () => {} });
  let restarts = 0;
  const onEvent = (event: SupervisionEvent): void => {
    if (event.kind === 'child_restarted') restarts += 1;
  };
  await startSupervisor(system, {
    strategy: 'one_for_all',
    intensity: 100,
    periodMs: 60_000,
    onEvent,
    children: Array.from({ length: WORKERS }, (_, i) => ({
      id: `worker-${i}`,
      restart: 'permanent' as const,
      start: (ctx: Parameters<typeof startGenServer>[0]) =>
        startGenServer(ctx, Worker, undefined, { link: true, name: `worker-${i}` }),
    })),
  });
  let sendFailures = 0;
  for (let i = 0; i < MESSAGES; i++) {
    try {
      castTo(system, `worker-${i % WORKERS}`, { work: i }); // a cast to a restarting worker is dropped, as in OTP
    } catch (error) {
      sendFailures += 1;
      write(`message ${i} failed: ${(error as Error).message}`);
    }
    if (i % 100 === 99) await system.settle();
  }
  await system.settle();
  // Pings are calls: a dropped request or a crash during the call is retried, as a client would.
  let alive = 0;
  for (let i = 0; i < WORKERS; i++) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const pong = await system.call<boolean>(`worker-${i}`, 'ping', 100).catch(() => false);
      if (pong) {
        alive += 1;
        break;
      }
      await system.settle();
    }
  }
  const faults = injector.counts();
  write(
    `sent ${MESSAGES - sendFailures} of ${MESSAGES}; ${restarts} restarts; ${alive}/${WORKERS} workers answer`,
  );
  write(`injected: ${JSON.stringify(faults)}`);
  system.shutdown();
  return { sent: MESSAGES - sendFailures, sendFailures, restarts, alive, faults };
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
