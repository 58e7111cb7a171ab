import { ActorSystem } from '../actor/ActorSystem.js';
import { isCallExit, isCallTimeout } from '../actor/errors.js';
import { type GenServer, reply, startGenServer } from '../actor/GenServer.js';
import type { Pid } from '../actor/Pid.js';
import { startSupervisor, whichChildren } from '../supervision/index.js';
import { runtimeFaults } from './runtimeFaults.js';
import { drive, type SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const CALL_TIMEOUT_MS = 100;

/** What the runtime's fault hooks decided for one call's request. */
type SendDecision = 'deliver' | 'drop' | number;

/** The call number a request envelope carries (`{ request: { call } }`), if it is one of ours. */
function callNumberOf(message: unknown): number | undefined {
  if (typeof message !== 'object' || message === null || !('request' in message)) return undefined;
  const request = (message as { request: unknown }).request;
  if (typeof request !== 'object' || request === null || !('call' in request)) return undefined;
  return (request as { call: number }).call;
}

/**
 * A counter server called many times while the runtime drops and delays messages and crashes
 * processes. The fault hooks are recorded, and each call is checked against the one outcome the
 * injected faults allow, at the exact simulated time:
 * - request dropped, or delayed by >= the timeout: `CallTimeout` at the timeout;
 * - request delivered (maybe delayed) and the server crashed on it: `CallExit(InjectedCrash)` when
 *   it arrived;
 * - otherwise the reply, when it arrived, with the count of requests the server handled.
 * Calls are spaced by more than the longest delay, so each request is the only message in flight
 * and the server handles it exactly once (or never, when it was dropped).
 */
async function genServerCallsScenario(context: SimulationContext): Promise<void> {
  const name = 'genserver-calls';
  const hooks = runtimeFaults(context.faults);
  const requestDecisions = new Map<number, SendDecision>();
  const crashDecisions: boolean[] = []; // of the current server, in order
  let server: Pid | undefined;
  const system = new ActorSystem({
    clock: context.clock,
    faults: {
      onSend: (to, message) => {
        const decision = hooks.onSend!(to, message);
        const call = callNumberOf(message);
        if (call !== undefined) requestDecisions.set(call, decision);
        return decision;
      },
      crashBeforeHandle: (pid) => {
        const crash = hooks.crashBeforeHandle!(pid);
        if (pid === server) crashDecisions.push(crash);
        return crash;
      },
    },
    onCrash: () => {},
  });
  const Counter: GenServer<number> = {
    init: () => 0,
    handleCall: (_request: { call: number }, _from, value) => reply(value + 1, value + 1),
  };
  server = await drive(context.clock, startGenServer(system, Counter, undefined));
  let handled = 0; // requests the current server handled, by the model
  const quietMs = context.faults.config.messageDelayMs + 1;
  const calls = 20 + context.random.nextInt(60);
  for (let call = 0; call < calls; call++) {
    const startedAt = context.clock.now();
    const crashesBefore = crashDecisions.length;
    let settledAt = -1;
    const outcome = await drive(
      context.clock,
      system.call<number>(server, { call }, CALL_TIMEOUT_MS).then(
        (value) => {
          settledAt = context.clock.now();
          return { value } as const;
        },
        (error: unknown) => {
          settledAt = context.clock.now();
          return { error } as const;
        },
      ),
    );
    await drive(context.clock, new Promise<void>((resolve) => context.clock.setTimer(quietMs, resolve)));
    const decision = requestDecisions.get(call);
    const arrivesAfterMs =
      decision === 'drop' || decision === undefined ? undefined : decision === 'deliver' ? 0 : decision;
    const crashes = crashDecisions.slice(crashesBefore);
    const fail = (what: string) =>
      new InvariantViolation(name, `call ${call} (request ${String(decision)}): ${what}`);
    if (crashes.length !== (arrivesAfterMs === undefined ? 0 : 1))
      throw fail(`the server handled ${crashes.length} messages for it`);
    const crashed = crashes[0] === true;
    const elapsed = settledAt - startedAt;
    const got = 'value' in outcome ? `reply ${outcome.value}` : String(outcome.error);
    if (arrivesAfterMs === undefined || arrivesAfterMs >= CALL_TIMEOUT_MS) {
      context.coverage.hit(arrivesAfterMs === undefined ? 'request-dropped' : 'request-delayed-past-timeout');
      if (!('error' in outcome) || !isCallTimeout(outcome.error) || elapsed !== CALL_TIMEOUT_MS)
        throw fail(`expected CallTimeout after ${CALL_TIMEOUT_MS} ms, got ${got} after ${elapsed} ms`);
    } else if (crashed) {
      context.coverage.hit('server-crashed-on-request');
      const exit = 'error' in outcome && isCallExit(outcome.error) ? outcome.error : undefined;
      if (
        exit === undefined ||
        !(exit.reason instanceof Error) ||
        exit.reason.name !== 'InjectedCrash' ||
        elapsed !== arrivesAfterMs
      )
        throw fail(
          `expected CallExit(InjectedCrash) after ${arrivesAfterMs} ms, got ${got} after ${elapsed} ms`,
        );
    } else {
      context.coverage.hit(arrivesAfterMs === 0 ? 'reply' : 'reply-after-delay');
      if (!('value' in outcome) || outcome.value !== handled + 1 || elapsed !== arrivesAfterMs)
        throw fail(
          `expected reply ${handled + 1} after ${arrivesAfterMs} ms, got ${got} after ${elapsed} ms`,
        );
    }
    if (arrivesAfterMs !== undefined && !crashed) handled++;
    if (crashed === system.isAlive(server))
      throw fail(`the server is ${crashed ? 'alive after it crashed' : 'dead though it never crashed'}`);
    if (crashed) {
      // start a fresh one, as a supervisor would
      context.coverage.hit('server-replaced');
      server = await drive(context.clock, startGenServer(system, Counter, undefined));
      crashDecisions.length = 0;
      handled = 0;
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
      'calls to a server under drops, delays and crashes: each has the one outcome its faults allow',
    faults: { messageDropRate: 0.05, messageDelayRate: 0.3, messageDelayMs: 150, actorCrashRate: 0.03 },
    run: genServerCallsScenario,
    branches: [
      'reply',
      'reply-after-delay',
      'request-dropped',
      'request-delayed-past-timeout',
      'server-crashed-on-request',
      'server-replaced',
    ],
  },
  {
    name: 'supervised-storm',
    description: 'crash storms under a supervisor: no permanent child stays dead, no silent give-up',
    faults: { actorCrashRate: 0.05, messageDropRate: 0.02 },
    run: supervisedStormScenario,
  },
];
