import { ActorSystem } from '../actor/ActorSystem.js';
import type { Pid } from '../actor/Pid.js';
import type { SupervisionEvent } from '../supervision/index.js';
import { onSupervisionEvent, startSupervisor } from '../supervision/index.js';
import {
  type ModelChildSpec,
  ModelMismatch,
  type ModelRestart,
  type ModelStrategy,
  SupervisorModel,
} from './internal/SupervisorModel.js';
import { KNOWN_DEVIATIONS } from './knownDeviations.js';
import { runtimeFaults } from './runtimeFaults.js';
import { drive, type SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const STRATEGIES: readonly ModelStrategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const RESTARTS: readonly ModelRestart[] = ['permanent', 'transient', 'temporary'];
/** Exit reasons a child is told to stop with; every OTP class of reason is here. */
const REASONS: readonly (() => unknown)[] = [
  () => 'normal',
  () => 'shutdown',
  () => ({ shutdown: 'done' }),
  () => new Error('boom'),
  () => 'crashed',
];

function pick<T>(context: SimulationContext, items: readonly T[]): T {
  return items[context.random.nextInt(items.length)];
}

function delay(context: SimulationContext, ms: number): Promise<void> {
  return new Promise((resolve) => context.clock.setTimer(ms, resolve));
}

/** A child that stops with the reason it is told (`{ exit }`) and ignores other messages. */
const obedientChild = {
  handle: (message: unknown, context: { stop(reason?: unknown): void }) => {
    if (typeof message === 'object' && message !== null && 'exit' in message) context.stop(message.exit);
  },
};

/**
 * A two-level tree under crash storms: a root one_for_one supervisor over an inner supervisor
 * whose strategy, intensity, period and children (with random restart types) come from the seed.
 * Children are told to exit with every kind of reason, killed, and crashed by injected faults;
 * messages are dropped and delayed. Every supervisor's event trace is then fed to a reference
 * model of OTP's rules (`internal/SupervisorModel.ts`), step by step: which children restart for
 * which reason and restart type, in which order per strategy, when intensity trips and what then
 * stops in which order; and an inner supervisor that gives up must reach the root as its
 * `child_exited` with `shutdown` (escalation).
 *
 * `knownDeviations` (default `KNOWN_DEVIATIONS`) lists the differences from OTP the model lets
 * pass for now; with an empty set the model holds the runtime to OTP's rules exactly.
 */
export function supervisorModelScenario(
  knownDeviations: ReadonlySet<string> = KNOWN_DEVIATIONS,
): (context: SimulationContext) => Promise<void> {
  return (context) => runSupervisorModel(context, knownDeviations);
}

async function runSupervisorModel(
  context: SimulationContext,
  knownDeviations: ReadonlySet<string>,
): Promise<void> {
  const name = 'supervisor-model';
  const { clock } = context;
  const system = new ActorSystem({ clock, faults: runtimeFaults(context.faults), onCrash: () => {} });
  const trace: SupervisionEvent[] = [];
  const live = new Map<string, Pid>(); // `${supervisor}/${child}` -> pid, from the trace
  onSupervisionEvent(system, (event) => {
    trace.push(event);
    const key = `${event.supervisor}/${event.childId}`;
    if ((event.kind === 'child_started' || event.kind === 'child_restarted') && event.pid !== undefined)
      live.set(key, event.pid);
    if (event.kind === 'child_exited' || event.kind === 'child_terminated') live.delete(key);
  });
  const periodMs = pick(context, [40, 80, 120]);
  const inner = {
    strategy: pick(context, STRATEGIES),
    intensity: 1 + context.random.nextInt(4),
    periodMs,
    children: Array.from({ length: 2 + context.random.nextInt(4) }, (_, index) => ({
      id: `w${index}`,
      restart: pick(context, RESTARTS),
    })) as ModelChildSpec[],
  };
  const root = {
    strategy: 'one_for_one' as const,
    intensity: 1 + context.random.nextInt(3),
    periodMs: periodMs * 10,
    children: [{ id: 'inner', restart: pick(context, ['permanent', 'transient'] as const) }],
  };
  context.coverage.hit(`strategy-${inner.strategy}`);
  const rootPid = await drive(
    clock,
    startSupervisor(system, {
      ...root,
      children: [
        {
          id: 'inner',
          restart: root.children[0].restart,
          type: 'supervisor',
          start: (ctx) =>
            startSupervisor(ctx, {
              ...inner,
              children: inner.children.map((child) => ({
                ...child,
                start: (c) => c.spawnLink(obedientChild),
              })),
            }),
        },
      ],
    }),
  );
  const rounds = 20 + context.random.nextInt(40);
  for (let round = 0; round < rounds && system.isAlive(rootPid); round++) {
    const targets = [...live].filter(([key]) => !key.startsWith(`${rootPid}/`));
    if (targets.length > 0) {
      const [, pid] = pick(context, targets);
      if (context.random.nextInt(6) === 0) system.exit(pid, 'kill');
      else system.send(pid, { exit: pick(context, REASONS)() });
    }
    const gap = pick(context, [
      0,
      periodMs / 4,
      periodMs / 2,
      periodMs,
      context.random.nextInt(2 * periodMs),
    ]);
    await drive(clock, delay(context, gap));
  }
  await drive(clock, delay(context, 10 * periodMs));
  // stopping the root from outside stops the tree: every child in reverse start order
  // (an exit signal, which faults never drop, not a stop call, which they may)
  if (system.isAlive(rootPid)) {
    const exited = system.whenExited(rootPid);
    system.exit(rootPid, 'shutdown');
    await drive(clock, exited);
  }
  try {
    checkTrace(context, trace, rootPid, root, inner, knownDeviations);
  } catch (error) {
    if (error instanceof ModelMismatch) throw new InvariantViolation(name, error.message);
    throw error;
  } finally {
    system.shutdown();
  }
}

/** Feeds each supervisor's events to its own model and checks escalation to the root. */
function checkTrace(
  context: SimulationContext,
  trace: readonly SupervisionEvent[],
  rootPid: Pid,
  root: ConstructorParameters<typeof SupervisorModel>[0],
  inner: ConstructorParameters<typeof SupervisorModel>[0],
  knownDeviations: ReadonlySet<string>,
): void {
  const hit = (branch: string) => context.coverage.hit(branch);
  const models = new Map<Pid, SupervisorModel>([[rootPid, new SupervisorModel(root, knownDeviations, hit)]]);
  const gaveUp = new Set<Pid>();
  for (const event of trace) {
    let model = models.get(event.supervisor);
    if (model === undefined) {
      // an inner supervisor's incarnation: its events come before the root reports its start
      model = new SupervisorModel(inner, knownDeviations, hit);
      models.set(event.supervisor, model);
    }
    if (event.kind === 'restart_intensity_reached' && event.supervisor !== rootPid)
      gaveUp.add(event.supervisor);
    if (event.supervisor === rootPid && event.kind === 'child_exited' && event.pid !== undefined) {
      const innerModel = models.get(event.pid);
      if (gaveUp.has(event.pid)) {
        hit('escalated');
        if (event.reason !== 'shutdown' || innerModel?.hasStopped !== true)
          throw new ModelMismatch(
            `the inner supervisor gave up but the root saw it exit with ${String(event.reason)}`,
          );
      }
    }
    try {
      model.observe(event);
    } catch (error) {
      if (!(error instanceof ModelMismatch)) throw error;
      const who = event.supervisor === rootPid ? 'root' : `inner ${event.supervisor}`;
      throw new ModelMismatch(`${who} supervisor at ${event.timeMs} ms: ${error.message}`);
    }
  }
  for (const [pid, model] of models) {
    // a supervisor stopped by its parent mid-way is checked up to there; a live one must be done
    try {
      model.finish();
    } catch (error) {
      if (!(error instanceof ModelMismatch)) throw error;
      throw new ModelMismatch(`${pid === rootPid ? 'root' : `inner ${pid}`} supervisor: ${error.message}`);
    }
  }
}

/** Scenarios that check supervisors against a reference model of OTP's rules. */
export const SUPERVISOR_SCENARIOS: readonly Scenario[] = [
  {
    name: 'supervisor-model',
    description:
      'a two-level tree under crash storms, checked event by event against a model of OTP supervisor rules',
    faults: { actorCrashRate: 0.05, messageDropRate: 0.05, messageDelayRate: 0.2, messageDelayMs: 30 },
    run: supervisorModelScenario(),
    branches: [
      'strategy-one_for_one',
      'strategy-one_for_all',
      'strategy-rest_for_one',
      'permanent-restarted',
      'transient-abnormal-restarted',
      'transient-normal-kept',
      'temporary-not-restarted',
      'temporary-sibling-dropped',
      'stopped-sibling-started-with-group',
      'restart-one_for_one',
      'restart-one_for_all',
      'restart-rest_for_one',
      'intensity-at-limit',
      'intensity-reached',
      'escalated',
      'stopped-by-parent',
    ],
  },
];
