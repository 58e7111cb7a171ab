import { guardOf, TaggedError } from '../internal/errors.js';
import {
  ActorSystem,
  type CallFrom,
  CallRequest,
  type CodeRef,
  type Context,
  DEFAULT_CALL_TIMEOUT_MS,
  type Handler,
  type MailboxOptions,
  systemOf,
  type Where,
} from './ActorSystem.js';
import { CastRequest, GetStateRequest } from './Call.js';
import { ExitMessage, type ExitReason } from './ExitReason.js';
import { BadArgument, crossThreadClasses, ProcessExited } from './errors.js';
import { describe, isCodeRef } from './internal/checks.js';
import { EXPLICIT_STATE, type ExplicitState } from './internal/movable.js';
import { linkedSpawnerOf } from './internal/Process.js';
import { GEN_SERVER, type GenServerMark, StartedProbe, startByCode } from './internal/startByCode.js';
import type { Pid } from './Pid.js';

/**
 * A generic server, as OTP's gen_server: state held by a process, changed by calls (which
 * reply), casts (which do not) and other messages (info).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, callServer, castTo, type GenServer, reply, startGenServer } from 'zbmd';
 *
 * const Counter: GenServer<number, number, 'get', 'increment'> = {
 *   init: (start) => start,
 *   handleCall: (_request, _from, count) => reply(count, count),
 *   handleCast: (_request, count) => count + 1,
 * };
 * const system = new ActorSystem();
 * const counter = await startGenServer(system, Counter, 41); // a ServerRef<'get', 'increment', unknown>
 * castTo(system, counter, 'increment'); // castTo(system, counter, 'inc') does not compile
 * assert.equal(await callServer(system, counter, 'get'), 42);
 * system.shutdown();
 * ```
 *
 * `Call` and `Cast` (default `any`) type the requests; an unannotated behaviour object has them
 * inferred from its callbacks instead, replies included.
 */
export interface GenServer<State, Args = void, Call = any, Cast = any> {
  /** The code version; `codeChange` receives the previous one during an upgrade. */
  readonly version?: string | number;
  init(args: Args, context: Context): State | Promise<State>;
  handleCall?(
    request: Call,
    from: CallFrom,
    state: State,
    context: Context,
  ): CallResult<State> | Promise<CallResult<State>>;
  handleCast?(
    request: Cast,
    state: State,
    context: Context,
  ): State | Stop<State> | Promise<State | Stop<State>>;
  handleInfo?(
    message: any,
    state: State,
    context: Context,
  ): State | Stop<State> | Promise<State | Stop<State>>;
  /** Runs when the server stops (a `stop` result, a crash in a callback, or its parent's exit). */
  terminate?(reason: ExitReason, state: State, context: Context): void | Promise<void>;
  /** Migrates the state during a hot code upgrade. */
  codeChange?(oldVersion: string | number | undefined, state: any, extra: unknown): State;
}

/** Reply `value` and continue with `state`. */
export class Reply<State, Value = unknown> {
  constructor(
    readonly value: Value,
    readonly state: State,
  ) {}
}

/** Continue with `state` without replying now (reply later with `system.reply(from, value)`). */
export class NoReply<State> {
  constructor(readonly state: State) {}
}

/** Stop with `reason` (after replying `replyValue` to a call, when given). */
export class Stop<State> {
  constructor(
    readonly reason: ExitReason,
    readonly state: State,
    readonly replyValue?: unknown,
    readonly hasReply = false,
  ) {}
}

export type CallResult<State> = Reply<State> | NoReply<State> | Stop<State>;

export const reply = <State, Value>(value: Value, state: State): Reply<State, Value> =>
  new Reply(value, state);
export const noreply = <State>(state: State): NoReply<State> => new NoReply(state);
export function stop<State>(reason: ExitReason, state: State, ...replyValue: [] | [unknown]): Stop<State> {
  return new Stop(reason, state, replyValue[0], replyValue.length > 0);
}

// ---------------------------------------------------------------------------------------------
// Typed references

declare const serverProtocol: unique symbol;

/** The requests a server takes and the replies it gives, carried by a reference's type only. */
export interface ServerProtocol<Call, Cast, ReplyValue> {
  readonly call: Call;
  readonly cast: Cast;
  readonly reply: ReplyValue;
}

/** Marks a pid or name with its server's protocol (a type only: nothing is stored). */
export interface Typed<Call, Cast, ReplyValue> {
  readonly [serverProtocol]?: ServerProtocol<Call, Cast, ReplyValue>;
}

/**
 * The pid of a running GenServer, typed with what it takes: `callServer(where, ref, request)`
 * accepts only a `Call` and resolves to a `ReplyValue`; `castTo(where, ref, request)` only a
 * `Cast`. At run time it is the plain `Pid` (so supervisors, links and `send` take it as one).
 */
export type ServerRef<Call = unknown, Cast = unknown, ReplyValue = unknown> = Pid &
  Typed<Call, Cast, ReplyValue>;

/** A registered name typed like a `ServerRef` (see `serverRef`); at run time the plain string. */
export type ServerName<Call = unknown, Cast = unknown, ReplyValue = unknown> = string &
  Typed<Call, Cast, ReplyValue>;

type CallbackOf<Behavior, Key extends 'handleCall' | 'handleCast' | 'init'> = Behavior extends {
  readonly [K in Key]?: infer Callback;
}
  ? NonNullable<Callback>
  : never;

/** The requests `handleCall` of a behaviour takes (`never` without a handleCall). */
export type CallOf<Behavior> =
  CallbackOf<Behavior, 'handleCall'> extends (request: infer Call, ...rest: any[]) => any ? Call : never;

/** The requests `handleCast` of a behaviour takes (`never` without a handleCast). */
export type CastOf<Behavior> =
  CallbackOf<Behavior, 'handleCast'> extends (request: infer Cast, ...rest: any[]) => any ? Cast : never;

/** What `reply(value, state)` in handleCall gives; `unknown` where it may reply later or stop. */
export type ReplyOf<Behavior> =
  CallbackOf<Behavior, 'handleCall'> extends (...args: any[]) => infer Result
    ? ReplyValueOf<Awaited<Result>>
    : never;

type ReplyValueOf<Result> = Result extends Reply<any, infer Value> ? Value : unknown;

/** The argument `init` of a behaviour takes. */
export type ArgsOf<Behavior> =
  CallbackOf<Behavior, 'init'> extends (args: infer Args, ...rest: any[]) => any ? Args : never;

/** The typed reference `startGenServer` gives for a behaviour. */
export type ServerRefOf<Behavior> = ServerRef<CallOf<Behavior>, CastOf<Behavior>, ReplyOf<Behavior>>;

/**
 * Types a registered name (or a pid from elsewhere) with a behaviour's protocol:
 * `serverRef<typeof Counter>('counter')`. Nothing is checked at run time: the name is returned.
 */
export function serverRef<Behavior>(
  server: string,
): ServerName<CallOf<Behavior>, CastOf<Behavior>, ReplyOf<Behavior>>;
export function serverRef<Behavior>(server: Pid): ServerRefOf<Behavior>;
export function serverRef(server: Pid | string): Pid | string {
  return server;
}

export { CastRequest } from './Call.js';

export interface StartOptions {
  /** Register the server under this name. */
  readonly name?: string;
  /** Link the server to the calling process (only from inside a process). */
  readonly link?: boolean;
  /** Fail the start (killing the server) if `init` takes longer than this. Default: Infinity. */
  readonly timeoutMs?: number;
  readonly mailbox?: MailboxOptions;
}

/** A server whose init failed or timed out; `reason` is what it exited with. */
export class StartError extends TaggedError('StartError') {
  constructor(readonly reason: ExitReason) {
    super(`server failed to start: ${reason instanceof Error ? reason.message : describe(reason)}`);
  }
}

export const isStartError = guardOf(StartError);
crossThreadClasses('actor', [StartError]);

/**
 * Starts a server and resolves with its pid once `init` has returned, as gen_server:start.
 * Rejects with `StartError` if `init` throws or times out, or if the server exits before its
 * `init` has returned (killed or sent an exit signal during an async init: `reason` is its exit
 * reason; a linked caller also gets the exit signal, as usual).
 *
 * The pid is typed as a `ServerRef` from the behaviour's `handleCall` / `handleCast` (or from
 * `GenServer<State, Args, Call, Cast>` when the behaviour is declared with one), so a call or
 * cast it does not take fails to compile; a behaviour typed `any` gives an untyped ref.
 */
export function startGenServer<Behavior extends GenServer<any, any>>(
  where: Where,
  behavior: Behavior,
  args: ArgsOf<Behavior>,
  options?: StartOptions,
): Promise<ServerRefOf<Behavior>>;
/**
 * Starts a server by module URL, on any scheduler thread (`options.thread`, as for spawn), and
 * resolves with its pid once its `init` has returned there, with the rules above (as
 * gen_server:start_link for a server elsewhere): `code` names a function export that returns
 * `genServerHandler(Behaviour, ...)` and `args` are that export's arguments. With `link` the
 * calling process is linked to the server and is its parent. An export that does not make a
 * GenServer fails the start with `StartError` (its reason a `BadArgument`).
 */
export function startGenServer(
  where: Where,
  code: CodeRef,
  args: readonly unknown[],
  options?: CodeStartOptions,
): Promise<Pid>;
export function startGenServer(
  where: Where,
  behavior: GenServer<any, any> | CodeRef,
  args: unknown,
  options: CodeStartOptions = {},
): Promise<unknown> {
  if (isCodeRef(behavior))
    return startByCode(
      'genServer',
      where,
      behavior,
      args as readonly unknown[],
      options,
      (reason) => new StartError(reason),
    );
  return startHere(where, behavior, args, options);
}

/** Where a server started by module URL runs: `thread` as for spawn (default: the calling thread). */
export interface CodeStartOptions extends StartOptions {
  readonly thread?: number | 'any';
}

function startHere(
  where: Where,
  behavior: GenServer<any, any>,
  args: unknown,
  options: StartOptions,
): Promise<Pid> {
  checkBehavior(behavior);
  const linkTo = options.link ? contextOf(where, 'startGenServer with link') : undefined;
  const system = systemOf(where);
  return new Promise<Pid>((resolve, reject) => {
    const handler = new GenServerHandler(behavior as GenServer<unknown, unknown>, args, linkTo?.self);
    const spawnOptions = { name: options.name, mailbox: options.mailbox };
    const pid =
      linkTo !== undefined ? linkTo.spawnLink(handler, spawnOptions) : system.spawn(handler, spawnOptions);
    let timer: ReturnType<ActorSystem['clock']['setTimer']> | undefined;
    // A server that exits before init has returned (killed, an exit signal, its linked parent's
    // exit, before or during an async init) fails the start with its reason, as gen_server:start
    // returns {error, Reason}; the watch ends once the start has settled.
    const watch = new AbortController();
    const settle = (error: unknown): void => {
      if (timer !== undefined) system.clock.cancelTimer(timer);
      watch.abort();
      if (error === undefined) resolve(pid);
      else reject(error);
    };
    handler.onStarted = settle;
    system.whenExited(pid, { signal: watch.signal }).then(
      (reason) => handler.startFailed(reason),
      () => {}, // the watch was ended by the start settling
    );
    const timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      timer = system.clock.setTimer(timeoutMs, () => {
        if (handler.onStarted === undefined) return;
        handler.onStarted = undefined;
        watch.abort();
        system.exit(pid, 'kill');
        reject(new StartError('timeout'));
      });
    }
  });
}

/**
 * A server as a plain handler, for spawning where `startGenServer` cannot: on another thread, by
 * module URL (a module's function export returns `genServerHandler(Behavior, args)`). `init`
 * runs before the first message (calls wait in the mailbox behind it); unlike `startGenServer`
 * nobody waits for it: an init that fails ends the process with its error (links and monitors
 * see it). Spawned with `spawnLink` from another thread, the spawner is the server's parent (as
 * the caller of gen_server:start_link): a server trapping exits terminates when it exits.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { isMainThread } from 'node:worker_threads';
 * import { ActorSystem, callServer, type GenServer, genServerHandler, reply } from 'zbmd';
 *
 * const Counter: GenServer<number, number> = {
 *   init: (start) => start,
 *   handleCall: (_request: 'get', _from, count) => reply(count, count),
 * };
 * // an export of this module builds the handler; the thread that loads the module calls it
 * export const counter = (start: number) => genServerHandler(Counter, start);
 *
 * if (isMainThread) { // the other thread imports this module too: start the system only here
 *   const system = new ActorSystem({ threads: 2 });
 *   const pid = system.spawn({ module: import.meta.url, export: 'counter' }, [41], { thread: 1 });
 *   assert.equal(pid.thread, 1);
 *   assert.equal(await callServer(system, pid, 'get'), 41);
 *   await system.close();
 * }
 * ```
 */
export function genServerHandler<Behavior extends GenServer<any, any>>(
  behavior: Behavior,
  args: ArgsOf<Behavior>,
): Handler {
  checkBehavior(behavior);
  return new GenServerHandler(behavior as GenServer<unknown, unknown>, args, undefined);
}

/**
 * Sends a cast: never fails for a dead server (as gen_server:cast), only for a full mailbox.
 * To a `ServerRef` / `ServerName`, only its server's cast type compiles; a plain pid or name
 * takes anything.
 */
export function castTo<Cast = unknown>(
  where: Where,
  server: ServerRef<any, Cast, any> | ServerName<any, Cast, any>,
  request: NoInfer<Cast>,
): void {
  const system = systemOf(where);
  if (typeof server === 'string' && system.whereis(server) === undefined) return;
  if (where instanceof ActorSystem) system.send(server, new CastRequest(request));
  else where.send(server, new CastRequest(request));
}

/**
 * Calls a server (gen_server:call). Through a `ServerRef` / `ServerName`, only its server's call
 * type compiles and the promise has its reply type; a plain pid or name takes anything.
 */
export function callServer<ReplyValue = unknown, Call = unknown>(
  where: Where,
  server: ServerRef<Call, any, ReplyValue> | ServerName<Call, any, ReplyValue>,
  request: NoInfer<Call>,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<ReplyValue> {
  return where.call<ReplyValue>(server, request, timeoutMs);
}

/** The state of a running server (sys:get_state), for debugging and tests. */
export function getServerState<State>(
  where: Where,
  server: Pid | string,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<State> {
  return where.call<State>(server, new GetStateRequest(), timeoutMs);
}

/**
 * Hot code upgrade of a running server: between two messages, `codeChange(oldVersion, state,
 * extra)` of the new code migrates the state, and the new callbacks take over. No message is
 * lost or reordered. Resolves false if the server is not alive.
 */
export function upgradeServer<State>(
  system: ActorSystem,
  server: Pid,
  next: GenServer<State, any>,
  extra?: unknown,
): boolean {
  checkBehavior(next);
  return system.upgrade(server, (current) => {
    if (!(current instanceof GenServerHandler))
      throw new BadArgument(`upgradeServer: ${server} is not a GenServer`);
    current.changeCode(next, extra);
    return current;
  });
}

function contextOf(where: Where, operation: string): Context {
  if (where instanceof ActorSystem)
    throw new BadArgument(`${operation} needs a process context to link to, not the system`);
  return where;
}

function checkBehavior(behavior: unknown): void {
  if (
    typeof behavior !== 'object' ||
    behavior === null ||
    typeof (behavior as GenServer<unknown>).init !== 'function'
  ) {
    throw new BadArgument(
      `expected a GenServer behavior object with an init function, got ${describe(behavior)}`,
    );
  }
}

/**
 * The handler actor that runs a GenServer's callbacks. Its state is explicit (the value the
 * callbacks return), so a server spawned by module URL from a `genServerHandler` factory can
 * move to another thread (migrate): the factory makes the handler again there, which takes over
 * the state and the parent.
 */
class GenServerHandler<State, Args> implements Handler, ExplicitState, GenServerMark {
  state!: State;
  onStarted: ((error: unknown) => void) | undefined;

  constructor(
    private behavior: GenServer<State, Args>,
    private readonly args: Args,
    private parent: Pid | undefined,
  ) {}

  get [EXPLICIT_STATE](): ExplicitState {
    return this;
  }

  get [GEN_SERVER](): true {
    return true;
  }

  checkpoint(): unknown {
    return { state: this.state, parent: this.parent };
  }

  restore(saved: unknown): void {
    const { state, parent } = saved as { state: State; parent: Pid | undefined };
    this.state = state;
    this.parent = parent;
  }

  init(context: Context): void | Promise<void> {
    // spawned with a link from another thread (genServerHandler by module URL): the spawner is
    // its parent, as the caller of gen_server:start_link is
    this.parent ??= linkedSpawnerOf(context);
    let result: State | Promise<State>;
    try {
      result = this.behavior.init(this.args, context);
    } catch (error) {
      this.startFailed(error);
      throw error;
    }
    if (isPromise(result)) {
      return result.then(
        (state) => this.started(state),
        (error: unknown) => {
          this.startFailed(error);
          throw error;
        },
      );
    }
    this.started(result);
  }

  private started(state: State): void {
    this.state = state;
    const onStarted = this.onStarted;
    this.onStarted = undefined;
    onStarted?.(undefined);
  }

  /** Fails the start (once) with the reason the server exits with. */
  startFailed(error: unknown): void {
    const onStarted = this.onStarted;
    this.onStarted = undefined;
    // an init that called context.exit(reason) rejects with ProcessExited: the reason is inside
    onStarted?.(new StartError(error instanceof ProcessExited ? error.reason : (error as ExitReason)));
  }

  handle(message: unknown, context: Context): void | Promise<void> {
    if (message instanceof CallRequest) return this.handleCall(message, context);
    if (message instanceof CastRequest)
      return this.afterCallback(this.behavior.handleCast, message.request, context);
    if (message instanceof ExitMessage && this.parent !== undefined && message.from.equals(this.parent)) {
      // OTP: a server trapping exits that gets an EXIT from its parent terminates with that reason
      return this.finish(message.reason, context);
    }
    if (this.behavior.handleInfo === undefined) return; // as OTP, unexpected messages are dropped
    return this.afterCallback(this.behavior.handleInfo, message, context);
  }

  private handleCall(call: CallRequest, context: Context): void | Promise<void> {
    if (call.request instanceof StartedProbe) {
      context.system.reply(call.from, 'started');
      return;
    }
    if (call.request instanceof GetStateRequest) {
      context.system.reply(call.from, this.state);
      return;
    }
    const callback = this.behavior.handleCall;
    if (callback === undefined) {
      return this.crash(
        context,
        new BadArgument(`server ${context.self} has no handleCall for ${describe(call.request)}`),
      );
    }
    let result: CallResult<State> | Promise<CallResult<State>>;
    try {
      result = callback.call(this.behavior, call.request, call.from, this.state, context);
    } catch (error) {
      return this.crash(context, error);
    }
    if (isPromise(result)) {
      return result.then(
        (settled) => this.applyCallResult(settled, call.from, context),
        (error: unknown) => this.crash(context, error),
      );
    }
    return this.applyCallResult(result, call.from, context);
  }

  private applyCallResult(result: CallResult<State>, from: CallFrom, context: Context): void | Promise<void> {
    if (result instanceof Reply) {
      this.state = result.state;
      context.system.reply(from, result.value);
      return;
    }
    if (result instanceof NoReply) {
      this.state = result.state;
      return;
    }
    if (result instanceof Stop) {
      this.state = result.state;
      if (result.hasReply) context.system.reply(from, result.replyValue);
      return this.finish(result.reason, context);
    }
    return this.crash(
      context,
      new BadArgument(`handleCall must return reply(), noreply() or stop(), got ${describe(result)}`),
    );
  }

  private afterCallback(
    callback:
      | ((message: any, state: State, context: Context) => State | Stop<State> | Promise<State | Stop<State>>)
      | undefined,
    message: unknown,
    context: Context,
  ): void | Promise<void> {
    if (callback === undefined) {
      return this.crash(
        context,
        new BadArgument(`server ${context.self} has no callback for ${describe(message)}`),
      );
    }
    let result: State | Stop<State> | Promise<State | Stop<State>>;
    try {
      result = callback.call(this.behavior, message, this.state, context);
    } catch (error) {
      return this.crash(context, error);
    }
    if (isPromise(result)) {
      return result.then(
        (settled) => this.applyState(settled, context),
        (error: unknown) => this.crash(context, error),
      );
    }
    return this.applyState(result, context);
  }

  private applyState(result: State | Stop<State>, context: Context): void | Promise<void> {
    if (result instanceof Stop) {
      this.state = result.state;
      return this.finish(result.reason, context);
    }
    this.state = result;
  }

  /** Calls terminate, then exits with `reason`. */
  private finish(reason: ExitReason, context: Context): void | Promise<void> {
    const terminate = this.behavior.terminate;
    if (terminate === undefined) return exitWith(context, reason);
    let result: void | Promise<void>;
    try {
      result = terminate.call(this.behavior, reason, this.state, context);
    } catch (error) {
      return exitWith(context, error as ExitReason);
    }
    if (isPromise(result)) {
      return result.then(
        () => exitWith(context, reason),
        (error: unknown) => exitWith(context, error as ExitReason),
      );
    }
    return exitWith(context, reason);
  }

  /**
   * A callback threw: terminate runs (as in OTP), then the error is thrown on, so the runtime
   * reports the crash and the server exits with it.
   */
  private crash(context: Context, error: unknown): void | Promise<void> {
    if (error instanceof ProcessExited) throw error;
    const rethrow = (): never => {
      throw error;
    };
    const terminate = this.behavior.terminate;
    if (terminate === undefined) return rethrow();
    let result: void | Promise<void>;
    try {
      result = terminate.call(this.behavior, error as ExitReason, this.state, context);
    } catch {
      return rethrow(); // the original error is the one worth reporting
    }
    if (isPromise(result)) return result.then(rethrow, rethrow);
    return rethrow();
  }

  changeCode(next: GenServer<State, any>, extra: unknown): void {
    const oldVersion = this.behavior.version;
    if (next.codeChange !== undefined) this.state = next.codeChange(oldVersion, this.state, extra);
    this.behavior = next;
  }
}

function exitWith(context: Context, reason: ExitReason): never {
  return context.exit(reason);
}

function isPromise<T>(value: unknown): value is Promise<T> {
  return value !== undefined && value !== null && typeof (value as Promise<T>).then === 'function';
}
