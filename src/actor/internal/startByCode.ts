import type { Context, Handler } from '../ActorSystem.js';
import { BadArgument, crossThreadClasses } from '../errors.js';
import { describe } from './checks.js';
import { extraOf, type MovableCode, type ProcessRecord } from './Process.js';

/**
 * startGenServer by module URL (GenServer.ts): the server is spawned from `startedServer` below,
 * which makes it with the named export and runs its init; the starter then calls it with a
 * `StartedProbe`, which waits in the mailbox behind init, so its answer says init has returned.
 */

/** The call a server started by module URL answers once its init has returned. */
export class StartedProbe {}
crossThreadClasses('actor', [StartedProbe]);

/** Marks the GenServer handler (GenServer.ts), the only behaviour `startedServer` accepts. */
export const GEN_SERVER: unique symbol = Symbol('zbmd.genServer');

export interface GenServerMark {
  readonly [GEN_SERVER]: true;
}

function isGenServer(value: unknown): value is Handler & GenServerMark {
  return (
    typeof value === 'object' && value !== null && (value as Partial<GenServerMark>)[GEN_SERVER] === true
  );
}

/**
 * The export a server started by module URL is spawned from (args: module, export, the export's
 * args): makes the server with that export, refuses anything but a GenServer, and runs its init.
 */
export function startedServer(module: string, exportName: string, args: unknown[]): Handler {
  return {
    init: async (context: Context): Promise<void> => {
      const loaded = (await import(module)) as Record<string, unknown>;
      const factory = loaded[exportName];
      const isClass =
        typeof (factory as { prototype?: { handle?: unknown } })?.prototype?.handle === 'function';
      const behavior =
        typeof factory === 'function' && !isClass
          ? (factory as (...a: unknown[]) => unknown)(...args)
          : factory;
      if (!isGenServer(behavior))
        throw new BadArgument(
          `startGenServer: export '${exportName}' of ${module} must be a function that returns genServerHandler(...), got ${describe(behavior)}`,
        );
      const record = context as unknown as ProcessRecord;
      record.behavior = behavior;
      // a server made by a factory export can move (migrate) as if spawned from it
      extraOf(record).code = { module, export: exportName, args } satisfies MovableCode;
      await behavior.init?.(context);
    },
    handle: (): void => {
      throw new Error('zbmd: a server started by module URL got a message before its init (a runtime bug)');
    },
  };
}

export const STARTED_SERVER = { module: import.meta.url, export: 'startedServer' };
