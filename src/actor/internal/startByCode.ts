import type { CodeRef, Context, Handler, MailboxOptions, Where } from '../ActorSystem.js';
import { ActorSystem } from '../ActorSystem.js';
import type { ExitReason } from '../ExitReason.js';
import { BadArgument, crossThreadClasses, isCallExit, isCallTimeout } from '../errors.js';
import type { Pid } from '../Pid.js';
import { describe } from './checks.js';
import { extraOf, type MovableCode, type ProcessRecord } from './Process.js';

/**
 * startGenServer and startStateMachine by module URL (GenServer.ts, StateMachine.ts): the process
 * is spawned from `startedServer` below, which makes it with the named export and runs its init;
 * the starter then calls it with a `StartedProbe`, which waits in the mailbox behind init, so its
 * answer says init has returned (as gen_server:start_link and gen_statem:start_link return once
 * init has).
 */

/** The call a process started by module URL answers once its init has returned. */
export class StartedProbe {}
crossThreadClasses('actor', [StartedProbe]);

/** Marks the GenServer handler (GenServer.ts). */
export const GEN_SERVER: unique symbol = Symbol('zbmd.genServer');
/** Marks the StateMachine handler (StateMachine.ts). */
export const STATE_MACHINE: unique symbol = Symbol('zbmd.stateMachine');

export interface GenServerMark {
  readonly [GEN_SERVER]: true;
}

export interface StateMachineMark {
  readonly [STATE_MACHINE]: true;
}

/** What a start by module URL makes: the export must give a handler of this kind. */
export type StartedKind = 'genServer' | 'stateMachine';

const KINDS: Record<StartedKind, { mark: symbol; maker: string; start: string }> = {
  genServer: { mark: GEN_SERVER, maker: 'genServerHandler', start: 'startGenServer' },
  stateMachine: { mark: STATE_MACHINE, maker: 'stateMachineHandler', start: 'startStateMachine' },
};

function isKind(value: unknown, kind: StartedKind): value is Handler {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[KINDS[kind].mark] === true
  );
}

/**
 * The export a process started by module URL is spawned from (args: module, export, the export's
 * args, kind): makes the handler with that export, refuses anything but the kind asked for, and
 * runs its init.
 */
export function startedServer(
  module: string,
  exportName: string,
  args: unknown[],
  kind: StartedKind = 'genServer',
): Handler {
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
      const { maker, start } = KINDS[kind] ?? KINDS.genServer;
      if (!isKind(behavior, kind))
        throw new BadArgument(
          `${start}: export '${exportName}' of ${module} must be a function that returns ${maker}(...), got ${describe(behavior)}`,
        );
      const record = context as unknown as ProcessRecord;
      record.behavior = behavior;
      // a server made by a factory export can move (migrate) as if spawned from it
      if (kind === 'genServer')
        extraOf(record).code = { module, export: exportName, args } satisfies MovableCode;
      await behavior.init?.(context);
    },
    handle: (): void => {
      throw new Error('zbmd: a process started by module URL got a message before its init (a runtime bug)');
    },
  };
}

const STARTED_SERVER = { module: import.meta.url, export: 'startedServer' };

/** What a start by module URL takes (GenServer's `CodeStartOptions`). */
export interface StartByCodeOptions {
  readonly name?: string;
  readonly link?: boolean;
  readonly timeoutMs?: number;
  readonly mailbox?: MailboxOptions;
  readonly thread?: number | 'any';
}

/**
 * Spawns `code` (through `startedServer`) where `options.thread` says, and resolves with its pid
 * once its init has returned; rejects with `failed(reason)` (a `StartError`) if init throws, the
 * process exits during init, or init outlasts `timeoutMs` (the process is then killed).
 */
export function startByCode(
  kind: StartedKind,
  where: Where,
  code: CodeRef,
  args: readonly unknown[],
  options: StartByCodeOptions,
  failed: (reason: ExitReason) => Error,
): Promise<Pid> {
  const { start } = KINDS[kind];
  if (!Array.isArray(args)) throw new BadArgument(`${start}: args must be an array, got ${describe(args)}`);
  if (options.link && where instanceof ActorSystem)
    throw new BadArgument(`${start} with link needs a process context to link to, not the system`);
  const system = where instanceof ActorSystem ? where : where.system;
  const module = code.module instanceof URL ? code.module.href : code.module;
  const spawnArgs = [module, code.export, args, kind];
  const spawnOptions = { name: options.name, mailbox: options.mailbox, thread: options.thread };
  const pid =
    options.link && !(where instanceof ActorSystem)
      ? where.spawnLink(STARTED_SERVER, spawnArgs, spawnOptions)
      : system.spawn(STARTED_SERVER, spawnArgs, spawnOptions);
  const timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
  // the probe waits in the mailbox behind init: its answer says init has returned
  return system.call(pid, new StartedProbe(), timeoutMs).then(
    () => pid,
    (error: unknown) => {
      if (isCallTimeout(error)) {
        system.exit(pid, 'kill');
        throw failed('timeout');
      }
      if (isCallExit(error)) throw failed(error.reason);
      throw error;
    },
  );
}
