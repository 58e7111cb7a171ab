import type { SimulatedClock } from '../actor/Clock.js';
import { guardOf, TaggedError } from '../internal/errors.js';
import { CircuitBreaker, isCircuitOpen } from './CircuitBreaker.js';
import { isConcurrencyConflict, replay } from './EventStore.js';
import type { FaultConfig } from './FaultConfig.js';
import { InMemoryEventStore } from './InMemoryEventStore.js';
import { BreakerModel, type ModelTransition } from './internal/BreakerModel.js';
import { PhiAccrualDetector } from './PhiAccrualDetector.js';
import { Saga } from './Saga.js';
import type { SimulationContext } from './Simulation.js';
import { drive } from './Simulation.js';

/** A named scenario for `runScenarioByName` and `zbmd simulate`. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Fault rates for the scenario's runs (each run's seed is added). */
  readonly faults: Partial<Omit<FaultConfig, 'seed'>>;
  readonly run: (context: SimulationContext) => Promise<void>;
  /** Decision branches the scenario reports through `context.coverage` (listed even when never reached). */
  readonly branches?: readonly string[];
}

/** An invariant did not hold; the message says which and with what values. */
export class InvariantViolation extends TaggedError('InvariantViolation') {
  constructor(
    readonly scenario: string,
    readonly invariant: string,
  ) {
    super(`${scenario}: invariant violated: ${invariant}`);
  }
}

export const isInvariantViolation = guardOf(InvariantViolation);

function check(scenario: string, condition: boolean, invariant: () => string): void {
  if (!condition) throw new InvariantViolation(scenario, invariant());
}

function between(context: SimulationContext, low: number, high: number): number {
  return low + context.random.nextInt(high - low + 1);
}

function delay(clock: SimulatedClock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(ms, resolve));
}

/**
 * A breaker in front of a flaky kernel (kernel timeouts injected), run in lockstep with a
 * reference model of its state machine (`internal/BreakerModel.ts`): every call is admitted or
 * rejected as the model says, every state change is the model's (same states, same simulated
 * time), and the circuit turns half-open exactly `resetTimeoutMs` after it opened.
 */
async function circuitBreakerScenario(context: SimulationContext): Promise<void> {
  const name = 'circuit-breaker';
  const { clock } = context;
  const options = {
    failureThreshold: between(context, 1, 5),
    successThreshold: between(context, 1, 3),
    resetTimeoutMs: between(context, 50, 500),
    halfOpenMaxCalls: between(context, 1, 3),
  };
  const breaker = new CircuitBreaker({ clock, ...options });
  const model = new BreakerModel(options, (branch) => context.coverage.hit(branch));
  const realTransitions: ModelTransition[] = [];
  const violations: unknown[] = [];
  breaker.onStateChange((change) => {
    realTransitions.push({ from: change.from, to: change.to, atMs: change.atMs });
    if (change.to !== 'half-open') return;
    // the reset timer: the model must be open and due exactly now
    if (model.state !== 'open' || change.atMs !== model.halfOpenDueAtMs) {
      violations.push(
        new InvariantViolation(
          name,
          `half-open at ${change.atMs} ms; the model is ${model.state}, due at ${model.halfOpenDueAtMs} ms`,
        ),
      );
      return;
    }
    model.resetTimeoutElapsed(change.atMs);
  });
  const compare = (where: string): void => {
    if (violations.length > 0) throw violations[0];
    check(
      name,
      JSON.stringify(realTransitions) === JSON.stringify(model.transitions),
      () =>
        `${where}: transitions ${JSON.stringify(realTransitions.slice(-3))}, the model's ${JSON.stringify(model.transitions.slice(-3))}`,
    );
    check(
      name,
      breaker.state === model.state,
      () => `${where}: state ${breaker.state}, the model's ${model.state}`,
    );
    check(
      name,
      model.state !== 'open' || clock.now() <= model.halfOpenDueAtMs,
      () => `${where}: still open at ${clock.now()} ms, half-open was due at ${model.halfOpenDueAtMs} ms`,
    );
  };
  const calls: Promise<void>[] = [];
  for (let round = 0; round < 200 && violations.length === 0; round++) {
    compare(`round ${round}`);
    const burst = between(context, 1, 4);
    for (let index = 0; index < burst; index++) {
      // Handled at once: a violation inside a call must fail this run, not the process.
      calls.push(
        modelledCall(context, breaker, model, name, compare).catch(
          (error: unknown) => void violations.push(error),
        ),
      );
    }
    await drive(clock, delay(clock, between(context, 0, 120)));
  }
  await drive(clock, Promise.all(calls));
  compare('end');
}

async function modelledCall(
  context: SimulationContext,
  breaker: CircuitBreaker,
  model: BreakerModel,
  name: string,
  compare: (where: string) => void,
): Promise<void> {
  const durationMs = between(context, 0, 40);
  const fails = context.faults.shouldTimeoutKernel();
  const ticket = model.admit();
  let ran = false;
  const running = breaker.call(async () => {
    ran = true;
    await delay(context.clock, durationMs);
    if (fails) throw new Error('kernel timeout (injected)');
  });
  // the operation starts in the same turn as the admission
  check(
    name,
    ran === (ticket !== undefined),
    () =>
      `at ${context.clock.now()} ms the breaker ${ran ? 'ran' : 'rejected'} a call the model ${ticket === undefined ? 'rejects' : 'admits'} (${model.state})`,
  );
  try {
    await running;
  } catch (error) {
    if (isCircuitOpen(error)) {
      check(name, !ran, () => 'CircuitOpen from a call that ran');
      return;
    }
    if (!(error instanceof Error && error.message.startsWith('kernel timeout'))) throw error;
  }
  if (ticket === undefined) return;
  model.settle(ticket, fails, context.clock.now());
  compare(`after a call that ${fails ? 'failed' : 'succeeded'} at ${context.clock.now()} ms`);
}

/**
 * Heartbeats with random jitter and dropped messages, and peer outages (actor crashes):
 * accuracy (no suspicion while the gap stays within the acceptable pause), completeness
 * (suspicion once the gap passes mean + pause + 6 deviations), and the rejoin rule (an outage
 * never enters the window).
 */
async function phiDetectorScenario(context: SimulationContext): Promise<void> {
  const name = 'phi-detector';
  const { clock, faults } = context;
  const intervalMs = between(context, 100, 1000);
  const jitterMs = Math.floor(intervalMs * 0.2);
  const acceptableHeartbeatPauseMs = 3 * (intervalMs + jitterMs);
  const detector = new PhiAccrualDetector({
    clock,
    acceptableHeartbeatPauseMs,
    firstHeartbeatEstimateMs: intervalMs,
  });
  let lastArrivalMs = clock.now();
  let largestNormalGapMs = 0;
  detector.heartbeat();
  for (let beat = 0; beat < 300; beat++) {
    if (faults.shouldCrashActor()) {
      const stats = detector.stats();
      const outageMs =
        Math.ceil(stats.meanMs + acceptableHeartbeatPauseMs + 6 * Math.max(stats.stdDeviationMs, 100)) + 1;
      clock.advance(outageMs);
      check(
        name,
        !detector.isAvailable(),
        () => `peer silent for ${outageMs} ms still available (phi ${detector.phi()})`,
      );
      const ignoredBefore = detector.stats().ignoredIntervals;
      detector.heartbeat();
      lastArrivalMs = clock.now();
      check(
        name,
        detector.stats().ignoredIntervals === ignoredBefore + 1,
        () => 'outage interval entered the window',
      );
      continue;
    }
    const stepMs = intervalMs + between(context, -jitterMs, jitterMs);
    const probeMs = between(context, 0, stepMs);
    clock.advance(probeMs);
    checkAccuracy(name, detector, clock.now() - lastArrivalMs, acceptableHeartbeatPauseMs);
    clock.advance(stepMs - probeMs);
    if (faults.shouldDropMessage()) continue;
    const gapMs = clock.now() - lastArrivalMs;
    checkAccuracy(name, detector, gapMs, acceptableHeartbeatPauseMs);
    if (detector.isAvailable()) largestNormalGapMs = Math.max(largestNormalGapMs, gapMs);
    detector.heartbeat();
    lastArrivalMs = clock.now();
    const meanMs = detector.stats().meanMs;
    const bound = Math.max(largestNormalGapMs, 1.25 * intervalMs);
    check(
      name,
      meanMs <= bound + 1e-6,
      () => `window mean ${meanMs} ms above the largest normal gap ${bound} ms`,
    );
  }
}

function checkAccuracy(name: string, detector: PhiAccrualDetector, gapMs: number, pauseMs: number): void {
  if (gapMs <= pauseMs) {
    check(
      name,
      detector.isAvailable(),
      () => `suspected after a gap of ${gapMs} ms <= pause ${pauseMs} ms (phi ${detector.phi()})`,
    );
  }
}

/**
 * Sagas whose steps fail at random (actor crashes) and whose compensations fail at random
 * (kernel timeouts, retried): every resource acquired by a completed step is released unless
 * its compensation failed every attempt, compensations run in reverse order, and the status
 * says which case happened.
 */
async function sagaScenario(context: SimulationContext): Promise<void> {
  const name = 'saga';
  for (let round = 0; round < 50; round++) {
    const held = new Set<string>();
    const released: string[] = [];
    const stepCount = between(context, 1, 8);
    const steps = Array.from({ length: stepCount }, (_, index) => ({
      name: `step-${index}`,
      action: () => {
        if (context.faults.shouldCrashActor()) throw new Error(`step-${index} crashed (injected)`);
        held.add(`resource-${index}`);
      },
      compensate: () => {
        if (context.faults.shouldTimeoutKernel())
          throw new Error(`release of resource-${index} timed out (injected)`);
        held.delete(`resource-${index}`);
        released.push(`resource-${index}`);
      },
    }));
    const result = await new Saga(`round-${round}`, steps, { compensationAttempts: 2 }).run(undefined);
    const failedCompensations = new Set(result.compensationErrors.map((failure) => failure.step));
    check(
      name,
      result.completed.every((step, index) => step === `step-${index}`),
      () => 'completed steps are not a prefix',
    );
    if (result.status === 'completed') {
      check(
        name,
        held.size === stepCount,
        () => `${held.size} of ${stepCount} resources held after completion`,
      );
      continue;
    }
    const expectedReleased = [...result.completed].reverse().filter((step) => !failedCompensations.has(step));
    check(
      name,
      result.compensated.join() === expectedReleased.join(),
      () => `compensated ${result.compensated} expected ${expectedReleased}`,
    );
    check(
      name,
      released.join() === expectedReleased.map((step) => step.replace('step', 'resource')).join(),
      () => `released ${released}`,
    );
    check(
      name,
      held.size === failedCompensations.size,
      () => `${held.size} resources leaked, ${failedCompensations.size} compensations failed`,
    );
    check(
      name,
      (result.status === 'compensated') === (failedCompensations.size === 0),
      () => `status ${result.status}`,
    );
  }
}

/**
 * Concurrent writers on one stream with optimistic concurrency, their appends delayed at random
 * (message delays): versions stay contiguous, each conflict names the true version, the stream
 * holds exactly the successful appends in order, and replay from a snapshot equals full replay.
 */
async function eventStoreScenario(context: SimulationContext): Promise<void> {
  const name = 'event-store';
  const { clock, faults } = context;
  const store = new InMemoryEventStore({ timestamp: () => clock.now() });
  const accepted: number[] = [];
  const writer = async (writerId: number): Promise<void> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const version = await store.streamVersion('account');
      await delay(clock, faults.messageDelayMs());
      const amount = writerId * 1000 + attempt;
      try {
        const result = await store.append('account', [{ type: 'deposited', data: { amount } }], version);
        check(
          name,
          result.firstVersion === version + 1,
          () => `append at ${version} got version ${result.firstVersion}`,
        );
        accepted.push(amount);
      } catch (error) {
        if (!isConcurrencyConflict(error)) throw error;
        const actual = await store.streamVersion('account');
        check(
          name,
          error.actualVersion === actual && actual !== version,
          () => `conflict says ${error.actualVersion}, stream at ${actual}`,
        );
      }
    }
  };
  const writers = between(context, 2, 5);
  await drive(clock, Promise.all(Array.from({ length: writers }, (_, index) => writer(index + 1))));
  const events = await store.read('account');
  check(
    name,
    events.every((event, index) => event.version === index + 1),
    () => 'versions are not contiguous',
  );
  check(
    name,
    events.map((event) => (event.data as { amount: number }).amount).join() === accepted.join(),
    () => 'stream differs from accepted appends',
  );
  const reducer = {
    initial: () => 0,
    apply: (sum: number, event: { data: unknown }) => sum + (event.data as { amount: number }).amount,
  };
  const full = await replay(store, 'account', reducer);
  const snapshotVersion = between(context, 0, events.length);
  const partial = events.slice(0, snapshotVersion).reduce(reducer.apply, 0);
  await store.saveSnapshot('account', snapshotVersion, partial);
  const fromSnapshot = await replay(store, 'account', reducer);
  check(
    name,
    fromSnapshot.state === full.state && fromSnapshot.version === full.version,
    () => 'replay from snapshot differs',
  );
}

/** The built-in scenarios, by name. */
export const BUILT_IN_SCENARIOS: readonly Scenario[] = [
  {
    name: 'circuit-breaker',
    description: 'breaker over a flaky kernel in lockstep with a model of its state machine',
    faults: { kernelTimeoutRate: 0.3 },
    run: circuitBreakerScenario,
    branches: [
      'admitted-closed',
      'admitted-trial',
      'rejected-open',
      'rejected-half-open-full',
      'failure-below-threshold',
      'opened-at-threshold',
      'half-open-after-timeout',
      'trial-failed-reopened',
      'trial-succeeded-below-threshold',
      'closed-after-trials',
      'stale-result-ignored',
    ],
  },
  {
    name: 'phi-detector',
    description:
      'phi accrual with jitter, drops and outages: accurate, complete, outages kept out of the window',
    faults: { messageDropRate: 0.1, actorCrashRate: 0.02 },
    run: phiDetectorScenario,
  },
  {
    name: 'saga',
    description: 'sagas with failing steps and failing compensations: reverse-order undo, no silent leaks',
    faults: { actorCrashRate: 0.15, kernelTimeoutRate: 0.2 },
    run: sagaScenario,
  },
  {
    name: 'event-store',
    description:
      'concurrent writers with optimistic concurrency and delays: contiguous versions, exact conflicts',
    faults: { messageDelayRate: 0.5, messageDelayMs: 20 },
    run: eventStoreScenario,
  },
];
