import { ActorSystem } from '../actor/ActorSystem.js';
import { isCallExit, isCallTimeout } from '../actor/errors.js';
import { type GenServer, reply, startGenServer } from '../actor/GenServer.js';
import { runtimeFaults } from './runtimeFaults.js';
import { drive, type SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const CALL_TIMEOUT_MS = 100;

/**
 * A counter server called many times while the runtime drops and delays messages and crashes
 * processes: every call settles (a reply, `CallTimeout` or `CallExit`) within its timeout plus
 * the largest delay, a reply never goes back in time (the counter only grows while the server
 * lives), and nothing hangs.
 */
async function genServerCallsScenario(context: SimulationContext): Promise<void> {
  const name = 'genserver-calls';
  const crashes: unknown[] = [];
  const system = new ActorSystem({
    clock: context.clock,
    faults: runtimeFaults(context.faults),
    onCrash: (_pid, reason) => crashes.push(reason),
  });
  const Counter: GenServer<number> = {
    init: () => 0,
    handleCall: (_request: 'next', _from, value) => reply(value + 1, value + 1),
  };
  let server = await drive(context.clock, startGenServer(system, Counter, undefined));
  let last = 0;
  const calls = 20 + context.random.nextInt(60);
  for (let call = 0; call < calls; call++) {
    const startedAt = context.clock.now();
    const outcome = await drive(
      context.clock,
      system.call<number>(server, 'next', CALL_TIMEOUT_MS).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
    );
    const elapsed = context.clock.now() - startedAt;
    if (elapsed > CALL_TIMEOUT_MS + context.faults.config.messageDelayMs) {
      throw new InvariantViolation(
        name,
        `call ${call} took ${elapsed} ms (limit ${CALL_TIMEOUT_MS} + delays)`,
      );
    }
    if ('value' in outcome) {
      if (outcome.value <= last) throw new InvariantViolation(name, `reply ${outcome.value} after ${last}`);
      last = outcome.value;
    } else if (!isCallTimeout(outcome.error) && !isCallExit(outcome.error)) {
      throw new InvariantViolation(
        name,
        `call ${call} failed with an unexpected error: ${String(outcome.error)}`,
      );
    }
    if (!system.isAlive(server)) {
      // the server crashed (injected): start a fresh one, as a supervisor would
      server = await drive(
        context.clock,
        startGenServer(system, Counter, undefined).catch(() => server),
      );
      last = 0;
    }
  }
  system.shutdown();
}

/** Scenarios that exercise the actor runtime under injected faults. */
export const ACTOR_SCENARIOS: readonly Scenario[] = [
  {
    name: 'genserver-calls',
    description:
      'calls to a server under message drops, delays and crashes always settle in time and in order',
    faults: { messageDropRate: 0.05, messageDelayRate: 0.2, messageDelayMs: 30, actorCrashRate: 0.02 },
    run: genServerCallsScenario,
  },
];
