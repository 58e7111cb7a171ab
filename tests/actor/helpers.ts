import { afterAll } from 'vitest';
import {
  ActorSystem,
  type ActorSystemOptions,
  castTo,
  type ExitReason,
  type Pid,
  SimulatedClock,
} from '../../src/actor/index.js';
import type { ClientOrder } from './fixtures/threadActors.js';

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
 * Call at the top level of the file. `options` are added (a `SimulatedClock` drives thread 0 only).
 */
export function fileTwoThreadSystem(
  options: ActorSystemOptions = {},
): () => { system: ActorSystem; crashes: [Pid, ExitReason][] } {
  let shared: { system: ActorSystem; crashes: [Pid, ExitReason][] } | undefined;
  afterAll(async () => {
    await shared?.system.close();
  });
  return () => {
    if (shared === undefined) {
      const crashes: [Pid, ExitReason][] = [];
      shared = {
        system: new ActorSystem({
          threads: 2,
          onCrash: (pid, reason) => crashes.push([pid, reason]),
          ...options,
        }),
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

/** The other side of a conversation, as a test drives it: calls, casts, sends and exit signals. */
export interface Side {
  call(to: Pid | string, request: unknown, timeoutMs?: number): Promise<any>;
  cast(to: Pid | string, request: unknown): void;
  send(to: Pid | string, message: unknown): void;
  exit(to: Pid, reason: ExitReason): void;
}

/** The test itself (the system's own calls) as the other side, on the calling thread. */
export function localSide(system: ActorSystem): Side {
  return {
    call: (to, request, timeoutMs) => system.call(to, request, timeoutMs),
    cast: (to, request) => castTo(system, to as Pid, request),
    send: (to, message) => system.send(to, message),
    exit: (to, reason) => system.exit(to, reason),
  };
}

/**
 * A fixtures' `Client` spawned on scheduler thread `thread` as the other side: every call, cast,
 * send and exit signal is made by that process, from its thread, one at a time in the order
 * given; a call's result comes back (or its error is thrown) once the client got it.
 */
export function remoteSide(system: ActorSystem, thread: number): Side {
  const reports = inbox(system);
  const client = system.spawn({ module: FIXTURES, export: 'Client' }, [reports.pid], { thread });
  const order = (message: ClientOrder): void => system.send(client, message);
  return {
    call: async (to, request, timeoutMs) => {
      order({ call: to, request, timeoutMs });
      const outcome = await reports.next();
      if ('error' in outcome) throw outcome.error;
      return outcome.value;
    },
    cast: (to, request) => order({ cast: to, request }),
    send: (to, message) => order({ send: to, message }),
    exit: (to, reason) => order({ exit: to, reason }),
  };
}

const FIXTURES = new URL('./fixtures/threadActors.ts', import.meta.url).href;
