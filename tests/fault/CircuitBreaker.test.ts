import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { isCallTimeout } from '../../src/actor/errors.js';
import type { CircuitStateChange } from '../../src/fault/index.js';
import {
  BreakerCallTimeout,
  CircuitBreaker,
  CircuitOpen,
  isBreakerCallTimeout,
  isCircuitOpen,
  isInvalidBreakerOption,
  settleCallbacks,
} from '../../src/fault/index.js';

const fail = () => Promise.reject(new Error('service error'));
const succeed = () => Promise.resolve('ok');

async function failTimes(breaker: CircuitBreaker, times: number): Promise<void> {
  for (let index = 0; index < times; index++) await breaker.call(fail).catch(() => {});
}

describe('CircuitBreaker', () => {
  it("seeds/001 'circuit breaker': three failures open it, and calls then fail fast", async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, clock: new SimulatedClock() });
    let failCount = 0;
    const failingFunction = async () => {
      failCount += 1;
      if (failCount <= 3) throw new Error('ServiceError');
    };
    for (let index = 0; index < 3; index++) await breaker.call(failingFunction).catch(() => {});
    expect(breaker.state).toBe('open');
    await expect(breaker.call(failingFunction)).rejects.toBeInstanceOf(CircuitOpen);
    expect(failCount).toBe(3); // the rejected call never ran
  });

  it('has the seed defaults: 5 failures, 3 successes, 30 s reset timeout', () => {
    const breaker = new CircuitBreaker({ clock: new SimulatedClock() });
    expect([breaker.failureThreshold, breaker.successThreshold, breaker.resetTimeoutMs]).toEqual([
      5, 3, 30_000,
    ]);
    expect(breaker.halfOpenMaxCalls).toBe(1);
    expect(breaker.state).toBe('closed');
  });

  it('counts consecutive failures only: a success in closed resets the count', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, clock: new SimulatedClock() });
    await failTimes(breaker, 2);
    await breaker.call(succeed);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    expect(breaker.failures).toBe(2);
  });

  it('passes values and errors through unchanged', async () => {
    const breaker = new CircuitBreaker({ clock: new SimulatedClock() });
    await expect(breaker.call(() => 42)).resolves.toBe(42);
    const error = new Error('boom');
    await expect(breaker.call(() => Promise.reject(error))).rejects.toBe(error);
    await expect(
      breaker.call(() => {
        throw error;
      }),
    ).rejects.toBe(error);
  });

  it('reports the time left in CircuitOpen and goes half-open after resetTimeoutMs', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 1000, clock });
    await failTimes(breaker, 1);
    clock.advance(400);
    const error = await breaker.call(succeed).catch((caught) => caught);
    expect(isCircuitOpen(error) && error.retryAfterMs).toBe(600);
    expect(isCircuitOpen(error) && error.state).toBe('open');
    clock.advance(599);
    expect(breaker.state).toBe('open');
    clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('closes after successThreshold successful trial calls', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({
      failureThreshold: 1,
      successThreshold: 2,
      resetTimeoutMs: 100,
      clock,
    });
    await failTimes(breaker, 1);
    clock.advance(100);
    await breaker.call(succeed);
    expect(breaker.state).toBe('half-open');
    await breaker.call(succeed);
    expect(breaker.state).toBe('closed');
    expect(breaker.failures).toBe(0);
  });

  it('reopens on a failed trial call and restarts the reset timeout', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 100, clock });
    await failTimes(breaker, 1);
    clock.advance(100);
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
    clock.advance(99);
    expect(breaker.state).toBe('open');
    clock.advance(1);
    expect(breaker.state).toBe('half-open');
  });

  it('admits at most halfOpenMaxCalls concurrent trial calls', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({
      failureThreshold: 1,
      successThreshold: 5,
      resetTimeoutMs: 10,
      halfOpenMaxCalls: 2,
      clock,
    });
    await failTimes(breaker, 1);
    clock.advance(10);
    const release: Array<() => void> = [];
    const slow = () => new Promise<string>((resolve) => release.push(() => resolve('done')));
    const first = breaker.call(slow);
    const second = breaker.call(slow);
    const third = await breaker.call(slow).catch((error) => error);
    expect(isCircuitOpen(third) && third.state).toBe('half-open');
    expect(breaker.trialCallsInFlight).toBe(2);
    for (const resolve of release) resolve();
    await Promise.all([first, second]);
    expect(breaker.trialCallsInFlight).toBe(0);
    await expect(breaker.call(succeed)).resolves.toBe('ok'); // a slot is free again
  });

  it('ignores results of calls that settle after the state changed', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 100, clock });
    let rejectSlow: (error: Error) => void = () => {};
    const slow = breaker.call(() => new Promise((_, reject) => (rejectSlow = reject)));
    await failTimes(breaker, 1); // opens
    clock.advance(100); // half-open
    rejectSlow(new Error('late failure from the closed epoch'));
    await slow.catch(() => {});
    expect(breaker.state).toBe('half-open');
  });

  it('notifies listeners of every transition, in order, and stops after unsubscribe', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({
      name: 'model-store',
      failureThreshold: 1,
      successThreshold: 1,
      resetTimeoutMs: 50,
      clock,
    });
    const changes: CircuitStateChange[] = [];
    const unsubscribe = breaker.onStateChange((change) => changes.push(change));
    await failTimes(breaker, 1);
    clock.advance(50);
    await breaker.call(succeed);
    expect(changes.map((change) => `${change.from}>${change.to}@${change.atMs}`)).toEqual([
      'closed>open@0',
      'open>half-open@50',
      'half-open>closed@50',
    ]);
    expect(changes[0].name).toBe('model-store');
    unsubscribe();
    breaker.trip();
    expect(changes).toHaveLength(3);
  });

  it('counts a call past callTimeoutMs as a failure and aborts its signal', async () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, callTimeoutMs: 500, clock });
    let aborted = false;
    const call = breaker.call(
      (signal) =>
        new Promise(() => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
        }),
    );
    clock.advance(500);
    const error = await call.catch((caught) => caught);
    expect(isBreakerCallTimeout(error)).toBe(true);
    expect(BreakerCallTimeout.is(error)).toBe(true);
    expect(error).toMatchObject({ _tag: 'BreakerCallTimeout', name: 'BreakerCallTimeout', timeoutMs: 500 });
    // Not the actor layer's CallTimeout (a call that got no reply): one name, one meaning.
    expect(isCallTimeout(error)).toBe(false);
    expect(aborted).toBe(true);
    expect(breaker.state).toBe('open');
  });

  it('lets isFailure exclude errors (they count as successes)', async () => {
    const breaker = new CircuitBreaker({
      failureThreshold: 1,
      isFailure: (error) => !(error instanceof RangeError),
      clock: new SimulatedClock(),
    });
    await breaker.call(() => Promise.reject(new RangeError('bad input'))).catch(() => {});
    expect(breaker.state).toBe('closed');
  });

  it('trip() and reset() force the state', () => {
    const clock = new SimulatedClock();
    const breaker = new CircuitBreaker({ resetTimeoutMs: 10, clock });
    breaker.trip();
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.state).toBe('closed');
    clock.advance(10); // the reset timer of the trip was cancelled
    expect(breaker.state).toBe('closed');
  });

  it('rejects bad options, naming them', () => {
    for (const options of [
      { failureThreshold: 0 },
      { successThreshold: 1.5 },
      { resetTimeoutMs: -1 },
      { halfOpenMaxCalls: 0 },
    ]) {
      expect(() => new CircuitBreaker(options)).toThrow(/CircuitBreaker: option/);
      try {
        new CircuitBreaker(options);
      } catch (error) {
        expect(isInvalidBreakerOption(error)).toBe(true);
      }
    }
  });

  it('property: no operation ever runs while the circuit is open', async () => {
    const action = fc.oneof(
      fc.record({
        kind: fc.constant('call' as const),
        fails: fc.boolean(),
        durationMs: fc.integer({ min: 0, max: 30 }),
      }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 300 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(action, { maxLength: 60 }),
        async (failureThreshold, successThreshold, halfOpenMaxCalls, actions) => {
          const clock = new SimulatedClock();
          const breaker = new CircuitBreaker({
            failureThreshold,
            successThreshold,
            halfOpenMaxCalls,
            resetTimeoutMs: 100,
            clock,
          });
          let violations = 0;
          const calls: Promise<unknown>[] = [];
          for (const step of actions) {
            if (step.kind === 'wait') {
              clock.advance(step.ms);
              await settleCallbacks();
              continue;
            }
            const stateBefore = breaker.state;
            const call = breaker.call(() => {
              if (breaker.state === 'open') violations++;
              if (breaker.trialCallsInFlight > halfOpenMaxCalls) violations++;
              return new Promise((resolve, reject) =>
                clock.setTimer(step.durationMs, () => (step.fails ? reject(new Error('x')) : resolve(1))),
              );
            });
            calls.push(
              call.catch((error) => {
                if (isCircuitOpen(error) && stateBefore === 'closed') violations++;
              }),
            );
          }
          clock.advance(1000);
          await Promise.all(calls);
          return violations === 0;
        },
      ),
      { numRuns: 200 },
    );
  });
});
