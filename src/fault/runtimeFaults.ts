import type { RuntimeFaults } from '../actor/ActorSystem.js';
import { FaultInjector } from './FaultInjector.js';

/**
 * Connects a seeded `FaultInjector` to the actor runtime: every user message may be dropped or
 * delayed, and every handler turn may crash its process with an `InjectedCrash`, at the
 * injector's rates. Pass the result as `new ActorSystem({ faults })`. With a simulated clock and
 * the deterministic scheduler, a run replays the same faults in the same order.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, SimulatedClock } from 'zbmd';
 * import { FaultInjector, runtimeFaults } from 'zbmd/fault';
 *
 * const injector = new FaultInjector({ messageDropRate: 0.5, seed: 7 });
 * const system = new ActorSystem({ clock: new SimulatedClock(), faults: runtimeFaults(injector) });
 * let handled = 0;
 * const pid = system.spawn({ handle: () => void handled++ });
 * for (let i = 0; i < 100; i++) system.send(pid, i);
 * await system.settle();
 * assert.ok(handled > 0 && handled < 100); // about half the messages were dropped
 * system.shutdown();
 * ```
 */
export function runtimeFaults(injector: FaultInjector): RuntimeFaults {
  return {
    onSend: () => {
      if (injector.shouldDropMessage()) return 'drop';
      const delayMs = injector.messageDelayMs();
      return delayMs > 0 ? delayMs : 'deliver';
    },
    crashBeforeHandle: () => injector.shouldCrashActor(),
  };
}

/**
 * Runtime faults from the `ZBMD_FAULTS` environment variable (JSON or `key=value,...`, see
 * `parseFaultConfig`), or undefined when it is unset or sets no rate above zero. A bad value throws a
 * `FaultConfigError` naming the key and the allowed range.
 */
export function runtimeFaultsFromEnvironment(
  environment: Readonly<Record<string, string | undefined>> = process.env,
): { injector: FaultInjector; faults: RuntimeFaults } | undefined {
  const injector = FaultInjector.fromEnvironment(environment);
  if (!injector.enabled) return undefined;
  return { injector, faults: runtimeFaults(injector) };
}
