import { ActorSystem } from '../actor/ActorSystem.js';
import { isCallExit, isCallTimeout } from '../actor/errors.js';
import { type GenServer, reply, startGenServer } from '../actor/GenServer.js';
import type { Pid } from '../actor/Pid.js';
import { startSupervisor, whichChildren } from '../supervision/index.js';
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

/**
 * Ten permanent workers under a one_for_one supervisor while the runtime crashes processes and
 * drops messages: after every round of work and once the system settles, each child of the
 * live supervisor is alive; if the supervisor gave up, it did so only after more than
 * `intensity` restarts in its period (never silently).
 */
async function supervisedStormScenario(context: SimulationContext): Promise<void> {
  const name = 'supervised-storm';
  const restarts: number[] = [];
  const system = new ActorSystem({
    clock: context.clock,
    faults: runtimeFaults(context.faults),
    onCrash: () => {},
  });
  const intensity = 20;
  const periodMs = 1000;
  const supervisor = await drive(
    context.clock,
    startSupervisor(system, {
      strategy: 'one_for_one',
      intensity,
      periodMs,
      onEvent: (event) => event.kind === 'child_restarted' && restarts.push(event.timeMs),
      children: Array.from({ length: 10 }, (_, index) => ({
        id: `worker${index}`,
        start: (ctx) => ctx.spawnLink({ handle: () => {} }),
      })),
    }),
  );
  const rounds = 10 + context.random.nextInt(30);
  for (let round = 0; round < rounds && system.isAlive(supervisor); round++) {
    const children = await drive(
      context.clock,
      whichChildren(system, supervisor, 100).catch(() => []),
    );
    for (const child of children) if (typeof child.pid === 'object') system.send(child.pid as Pid, { round });
    await drive(context.clock, new Promise<void>((resolve) => context.clock.setTimer(10, resolve)));
    if (!system.isAlive(supervisor)) break;
    const after = await drive(
      context.clock,
      whichChildren(system, supervisor, 100).catch(() => undefined),
    );
    if (after === undefined) continue; // the request was dropped (an injected fault): ask next round
    for (const child of after) {
      if (child.pid === 'restarting') continue;
      if (child.pid === undefined || !system.isAlive(child.pid as Pid)) {
        throw new InvariantViolation(name, `round ${round}: ${child.id} is dead under a live supervisor`);
      }
    }
  }
  if (!system.isAlive(supervisor)) {
    const last = restarts.length === 0 ? 0 : restarts[restarts.length - 1];
    const recent = restarts.filter((time) => time > last - periodMs).length;
    if (recent < intensity)
      throw new InvariantViolation(
        name,
        `the supervisor gave up after only ${recent} restarts in ${periodMs} ms`,
      );
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
  {
    name: 'supervised-storm',
    description: 'crash storms under a supervisor: no permanent child stays dead, no silent give-up',
    faults: { actorCrashRate: 0.05, messageDropRate: 0.02 },
    run: supervisedStormScenario,
  },
];
