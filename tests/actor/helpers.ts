import { afterAll } from 'vitest';
import {
  ActorSystem,
  type ActorSystemOptions,
  type ExitReason,
  type Pid,
  SimulatedClock,
} from '../../src/actor/index.js';

/** A deterministic system on a simulated clock that records crashes instead of printing them. */
export function testSystem(options: ActorSystemOptions = {}): {
  system: ActorSystem;
  clock: SimulatedClock;
  crashes: [Pid, ExitReason][];
} {
  const clock = new SimulatedClock();
  const crashes: [Pid, ExitReason][] = [];
  const system = new ActorSystem({
    clock,
    onCrash: (pid, reason) => crashes.push([pid, reason]),
    ...options,
  });
  return { system, clock, crashes };
}

/**
 * One two-thread system for a test file, made on first use and closed after the file (a worker
 * thread takes about a second to start from sources); its crashes are recorded, not printed.
 * Call at the top level of the file.
 */
export function fileTwoThreadSystem(): () => { system: ActorSystem; crashes: [Pid, ExitReason][] } {
  let shared: { system: ActorSystem; crashes: [Pid, ExitReason][] } | undefined;
  afterAll(async () => {
    await shared?.system.close();
  });
  return () => {
    if (shared === undefined) {
      const crashes: [Pid, ExitReason][] = [];
      shared = {
        system: new ActorSystem({ threads: 2, onCrash: (pid, reason) => crashes.push([pid, reason]) }),
        crashes,
      };
    }
    return shared;
  };
}

/** A process that records every message it gets (trapping exits when asked). */
export function collector(
  system: ActorSystem,
  options: { trapExit?: boolean } = {},
): { pid: Pid; messages: unknown[] } {
  const messages: unknown[] = [];
  const pid = system.spawn(
    { handle: (message: unknown) => void messages.push(message) },
    { trapExit: options.trapExit },
  );
  return { pid, messages };
}

/** A process that waits forever (until a signal ends it). */
export function idle(system: ActorSystem, options: { trapExit?: boolean } = {}): Pid {
  return system.spawn({ handle: () => {} }, options);
}

/** A local process whose messages a test awaits one at a time (`next()`), on any clock. */
export function inbox(
  system: ActorSystem,
  options: { trapExit?: boolean } = {},
): { pid: Pid; next: () => Promise<any> } {
  const queued: unknown[] = [];
  const waiting: ((message: unknown) => void)[] = [];
  const pid = system.spawn(
    {
      handle: (message: unknown) => {
        const waiter = waiting.shift();
        if (waiter !== undefined) waiter(message);
        else queued.push(message);
      },
    },
    options,
  );
  const next = (): Promise<any> =>
    queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve));
  return { pid, next };
}
