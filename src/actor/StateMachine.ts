import {
  ActorSystem,
  type CallFrom,
  CallRequest,
  type CodeRef,
  type Context,
  type Handler,
} from './ActorSystem.js';
import type { TimerHandle } from './Clock.js';
import type { ExitReason } from './ExitReason.js';
import { BadArgument, crossThreadClasses, InvalidTransition, ProcessExited } from './errors.js';
import { CastRequest, type CodeStartOptions, StartError, type StartOptions } from './GenServer.js';
import { describe, isCodeRef } from './internal/checks.js';
import { STATE_MACHINE, StartedProbe, startByCode } from './internal/startByCode.js';
import type { Pid } from './Pid.js';

/**
 * A state machine process, as OTP's gen_statem (handle_event_function mode): every event goes
 * to `handleEvent` with the current state and data, which returns the transition.
 *
 * - `postpone`: the event is kept and delivered again, in order, after the next state change.
 * - `stateTimeoutMs`: an event of type `state_timeout` unless the state changes first.
 * - `eventTimeoutMs`: an event of type `timeout` unless any event arrives first.
 * - `stateEnter: true`: an `enter` event after each state change, before anything else.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem, InvalidTransition, type StateMachine, startStateMachine } from 'zbmd';
 *
 * const Door: StateMachine<'locked' | 'open', { code: string }, string> = {
 *   init: (code) => ({ state: 'locked', data: { code } }),
 *   handleEvent(event, state, data) {
 *     if (state === 'locked' && event.type === 'call' && event.content === data.code)
 *       return { next: 'open', actions: [{ reply: [event.from, 'opened'] }, { stateTimeoutMs: 5000 }] };
 *     if (state === 'open' && event.type === 'state_timeout') return { next: 'locked' };
 *     throw new InvalidTransition(state, event.content);
 *   },
 * };
 * const system = new ActorSystem();
 * const door = await startStateMachine(system, Door, '1234');
 * assert.equal(await system.call(door, '1234'), 'opened');
 * system.shutdown();
 * ```
 */
export interface StateMachine<S extends string, D, Args = void> {
  readonly version?: string | number;
  /** Deliver an `enter` event after every state change. */
  readonly stateEnter?: boolean;
  init(args: Args, context: Context): Initial<S, D> | Promise<Initial<S, D>>;
  handleEvent(
    event: StateEvent<S>,
    state: S,
    data: D,
    context: Context,
  ): Transition<S, D> | Promise<Transition<S, D>>;
  terminate?(reason: ExitReason, state: S, data: D, context: Context): void;
  codeChange?(
    oldVersion: string | number | undefined,
    state: S,
    data: any,
    extra: unknown,
  ): { state: S; data: D };
}

export interface Initial<S, D> {
  readonly state: S;
  readonly data: D;
  readonly actions?: readonly Action[];
}

export type StateEvent<S = string> =
  | { readonly type: 'call'; readonly content: any; readonly from: CallFrom }
  | { readonly type: 'cast'; readonly content: any }
  | { readonly type: 'info'; readonly content: any }
  | { readonly type: 'state_timeout'; readonly content: any }
  | { readonly type: 'timeout'; readonly content: any }
  | { readonly type: 'internal'; readonly content: any }
  | { readonly type: 'enter'; readonly content: S };

/** What `handleEvent` returns: the next state (default: same), new data (default: same), actions. */
export type Transition<S, D> =
  | { readonly next?: S; readonly data?: D; readonly actions?: readonly Action[] }
  | { readonly stop: ExitReason; readonly data?: D; readonly actions?: readonly Action[] };

export type Action =
  | { readonly reply: readonly [CallFrom, unknown] }
  | { readonly postpone: true }
  | { readonly stateTimeoutMs: number; readonly content?: unknown }
  | { readonly eventTimeoutMs: number; readonly content?: unknown }
  | { readonly nextEvent: unknown };

/**
 * Starts a state machine (gen_statem:start, or start_link with `link` from a process); resolves
 * with its pid once `init` returned. Rejects with `StartError` if `init` throws or times out, or
 * if the machine exits before its `init` has returned.
 */
export function startStateMachine<S extends string, D, Args>(
  where: ActorSystem | Context,
  machine: StateMachine<S, D, Args>,
  args: Args,
  options?: StartOptions,
): Promise<Pid>;
/**
 * Starts a state machine by module URL, on any scheduler thread (`options.thread`, as for spawn),
 * and resolves with its pid once its `init` has returned there, with the rules above (as
 * gen_statem:start_link for a machine elsewhere): `code` names a function export that returns
 * `stateMachineHandler(Machine, args)`, and `args` are that export's arguments. With `link` the
 * calling process is linked to the machine. An export that does not make a StateMachine fails
 * the start with `StartError` (its reason a `BadArgument`). Its timeouts run on the clock of the
 * thread it lives on.
 */
export function startStateMachine(
  where: ActorSystem | Context,
  code: CodeRef,
  args: readonly unknown[],
  options?: CodeStartOptions,
): Promise<Pid>;
export function startStateMachine<S extends string, D, Args>(
  where: ActorSystem | Context,
  machine: StateMachine<S, D, Args> | CodeRef,
  args: Args,
  options: CodeStartOptions = {},
): Promise<Pid> {
  if (isCodeRef(machine))
    return startByCode(
      'stateMachine',
      where,
      machine,
      args as readonly unknown[],
      options,
      (reason) => new StartError(reason),
    );
  checkMachine(machine);
  return new Promise((resolve, reject) => {
    const handler = new StateMachineHandler(machine, args, (error) =>
      error === undefined ? resolve(pid) : reject(error),
    );
    const spawnOptions = { name: options.name, mailbox: options.mailbox };
    let pid: Pid;
    if (where instanceof ActorSystem) {
      if (options.link)
        throw new BadArgument('startStateMachine with link needs a process context, not the system');
      pid = where.spawn(handler, spawnOptions);
    } else {
      pid = options.link ? where.spawnLink(handler, spawnOptions) : where.spawn(handler, spawnOptions);
    }
    // A machine that exits before init has returned fails the start with its reason (as
    // gen_statem:start); the watch ends once the start has settled.
    const system = where instanceof ActorSystem ? where : where.system;
    const watch = new AbortController();
    handler.watch = watch;
    system.whenExited(pid, { signal: watch.signal }).then(
      (reason) => handler.startFailed(reason),
      () => {}, // the watch was ended by the start settling
    );
  });
}

function checkMachine(machine: unknown): asserts machine is StateMachine<string, unknown, unknown> {
  if (
    typeof machine !== 'object' ||
    machine === null ||
    typeof (machine as StateMachine<string, unknown, unknown>).init !== 'function' ||
    typeof (machine as StateMachine<string, unknown, unknown>).handleEvent !== 'function'
  ) {
    throw new BadArgument(`expected a StateMachine with init and handleEvent, got ${describe(machine)}`);
  }
}

/**
 * A state machine as a plain handler, for starting by module URL on another thread: a module's
 * function export returns `stateMachineHandler(Machine, args)`, and `startStateMachine(where, {
 * module, export }, exportArgs, { thread })` starts it there (the way `genServerHandler` serves
 * `startGenServer`). Spawned directly (`spawn` by module URL), nobody waits for its init: one that
 * fails ends the process with its error.
 */
export function stateMachineHandler<S extends string, D, Args>(
  machine: StateMachine<S, D, Args>,
  args: Args,
): Handler {
  checkMachine(machine);
  return new StateMachineHandler(machine, args, () => {});
}

/** The state of a running machine: `{ state, data }` (for debugging and tests). */
export function getMachineState<S, D>(
  where: ActorSystem | Context,
  machine: Pid | string,
): Promise<{ state: S; data: D }> {
  return where.call(machine, new GetMachineState());
}

/** The call `getMachineState` makes (a class, so that it crosses threads as itself). */
class GetMachineState {}
crossThreadClasses('actor', [GetMachineState]);

/**
 * A machine from a transition table, as the design book's FSM pattern: an event with no row for
 * the current state fails with `InvalidTransition` (to the caller, for a call) and the machine
 * stays where it was.
 */
export function transitionTable<S extends string, E extends string | number, D>(table: {
  readonly initial: S;
  readonly data: D;
  readonly transitions: readonly { from: S; event: E; to: S; action?: (data: D) => D }[];
}): StateMachine<S, D, void> {
  return {
    init: () => ({ state: table.initial, data: table.data }),
    handleEvent(event, state, data) {
      const content = event.content as E;
      const row = table.transitions.find(
        (transition) => transition.from === state && transition.event === content,
      );
      if (row === undefined) {
        const error = new InvalidTransition(state, content);
        if (event.type === 'call') return { actions: [{ reply: [event.from, error] }] };
        throw error;
      }
      const next = row.action === undefined ? data : row.action(data);
      const actions: Action[] = event.type === 'call' ? [{ reply: [event.from, row.to] }] : [];
      return { next: row.to, data: next, actions };
    },
  };
}

interface QueuedEvent {
  readonly type: StateEvent['type'];
  readonly content: unknown;
  readonly from?: CallFrom;
}

class StateMachineHandler<S extends string, D, Args> implements Handler {
  private state!: S;
  private data!: D;
  private postponed: QueuedEvent[] = [];
  private readonly pending: QueuedEvent[] = [];
  private stateTimer: TimerHandle | undefined;
  private eventTimer: TimerHandle | undefined;
  private context!: Context;

  constructor(
    private machine: StateMachine<S, D, Args>,
    private readonly args: Args,
    private onStarted: ((error: unknown) => void) | undefined,
  ) {}

  /** Ends the start's exit watch once init has returned. */
  watch: AbortController | undefined;

  /** Fails the start (once) with the reason the machine exits with. */
  startFailed(error: unknown): void {
    const onStarted = this.onStarted;
    this.onStarted = undefined;
    this.watch?.abort();
    onStarted?.(new StartError(error instanceof ProcessExited ? error.reason : (error as ExitReason)));
  }

  async init(context: Context): Promise<void> {
    this.context = context;
    let initial: Initial<S, D>;
    try {
      initial = await this.machine.init(this.args, context);
    } catch (error) {
      this.startFailed(error);
      throw error;
    }
    if (this.onStarted === undefined) return; // it exited during init: the start has failed
    this.state = initial.state;
    this.data = initial.data;
    this.watch?.abort();
    this.onStarted(undefined);
    this.onStarted = undefined;
    await this.runActions(initial.actions ?? [], undefined, false);
    await this.drain();
  }

  /** Made by `stateMachineHandler`, for a start by module URL (startByCode.ts). */
  get [STATE_MACHINE](): true {
    return true;
  }

  handle(message: unknown, context: Context): void | Promise<void> {
    if (message instanceof CallRequest && message.request instanceof StartedProbe) {
      context.system.reply(message.from, 'started');
      return;
    }
    if (message instanceof CallRequest && message.request instanceof GetMachineState) {
      context.system.reply(message.from, { state: this.state, data: this.data });
      return;
    }
    if (message instanceof TimeoutEvent && this.isStale(message)) return;
    this.pending.push(toEvent(message));
    return this.drain();
  }

  private isStale(timeout: TimeoutEvent): boolean {
    if (timeout.type === 'state_timeout') return timeout.generation !== this.stateTimerGeneration;
    return timeout.generation !== this.eventTimerGeneration;
  }

  /** Processes queued events (postponed replays and internal events first). */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const event = this.pending.shift()!;
      if (event.type !== 'timeout') this.cancelEventTimeout();
      await this.dispatch(event);
    }
  }

  private async dispatch(event: QueuedEvent): Promise<void> {
    let transition: Transition<S, D>;
    try {
      transition = await this.machine.handleEvent(
        event as StateEvent<S>,
        this.state,
        this.data,
        this.context,
      );
    } catch (error) {
      if (error instanceof ProcessExited) throw error;
      this.finish(error as ExitReason);
    }
    if (transition === undefined || typeof transition !== 'object') {
      this.finish(
        new BadArgument(`handleEvent must return a transition object, got ${describe(transition)}`),
      );
    }
    if ('data' in transition && transition.data !== undefined) this.data = transition.data;
    if ('stop' in transition) {
      await this.runActions(transition.actions ?? [], event, false);
      this.finish(transition.stop);
    }
    const next = 'next' in transition && transition.next !== undefined ? transition.next : this.state;
    const changed = next !== this.state;
    const oldState = this.state;
    this.state = next;
    await this.runActions(transition.actions ?? [], event, changed);
    if (changed) this.enterState(oldState);
  }

  private cancelEventTimeout(): void {
    if (this.eventTimer !== undefined) this.context.system.clock.cancelTimer(this.eventTimer);
    this.eventTimer = undefined;
    this.eventTimerGeneration++;
  }

  private enterState(oldState: S): void {
    if (this.stateTimerState !== this.state) {
      // a state timeout set in an earlier state is cancelled by the change (even if already queued)
      if (this.stateTimer !== undefined) this.context.system.clock.cancelTimer(this.stateTimer);
      this.stateTimer = undefined;
      this.stateTimerGeneration++;
    }
    // postponed events come back first, in their order, ahead of newer ones
    const replay = this.postponed;
    this.postponed = [];
    if (this.machine.stateEnter) replay.unshift({ type: 'enter', content: oldState });
    this.pending.unshift(...replay);
  }

  private stateTimerState: S | undefined;
  private stateTimerGeneration = 0;
  private eventTimerGeneration = 0;

  private async runActions(
    actions: readonly Action[],
    event: QueuedEvent | undefined,
    changed: boolean,
  ): Promise<void> {
    for (const action of actions) {
      if ('reply' in action) this.context.system.reply(action.reply[0], action.reply[1]);
      else if ('postpone' in action) {
        if (event !== undefined && !changed) this.postponed.push(event);
        else if (event !== undefined) this.pending.unshift(event); // postponed into a new state: retried there
      } else if ('stateTimeoutMs' in action) this.setStateTimeout(action.stateTimeoutMs, action.content);
      else if ('eventTimeoutMs' in action) this.setEventTimeout(action.eventTimeoutMs, action.content);
      else if ('nextEvent' in action) this.pending.unshift({ type: 'internal', content: action.nextEvent });
      else this.finish(new BadArgument(`unknown state machine action ${describe(action)}`));
    }
  }

  private setStateTimeout(timeoutMs: number, content: unknown): void {
    const clock = this.context.system.clock;
    if (this.stateTimer !== undefined) clock.cancelTimer(this.stateTimer);
    this.stateTimerState = this.state;
    const generation = ++this.stateTimerGeneration;
    this.stateTimer = this.context.system.sendAfter(
      timeoutMs,
      this.context.self,
      new TimeoutEvent('state_timeout', content, generation),
    );
  }

  private setEventTimeout(timeoutMs: number, content: unknown): void {
    const clock = this.context.system.clock;
    if (this.eventTimer !== undefined) clock.cancelTimer(this.eventTimer);
    const generation = ++this.eventTimerGeneration;
    this.eventTimer = this.context.system.sendAfter(
      timeoutMs,
      this.context.self,
      new TimeoutEvent('timeout', content, generation),
    );
  }

  private finish(reason: ExitReason): never {
    try {
      this.machine.terminate?.(reason, this.state, this.data, this.context);
    } catch (error) {
      return this.context.exit(error as ExitReason);
    }
    return this.context.exit(reason);
  }

  changeCode(next: StateMachine<S, D, any>, extra: unknown): void {
    if (next.codeChange !== undefined) {
      const migrated = next.codeChange(this.machine.version, this.state, this.data, extra);
      this.state = migrated.state;
      this.data = migrated.data;
    }
    this.machine = next;
  }
}

class TimeoutEvent {
  constructor(
    readonly type: 'state_timeout' | 'timeout',
    readonly content: unknown,
    /** The timer generation it belongs to: a timeout overtaken by a state change or an event is stale. */
    readonly generation: number,
  ) {}
}

function toEvent(message: unknown): QueuedEvent {
  if (message instanceof CallRequest) return { type: 'call', content: message.request, from: message.from };
  if (message instanceof CastRequest) return { type: 'cast', content: message.request };
  if (message instanceof TimeoutEvent) return { type: message.type, content: message.content };
  return { type: 'info', content: message };
}

/** Hot code upgrade of a running state machine (see `upgradeServer`). */
export function upgradeStateMachine<S extends string, D>(
  system: ActorSystem,
  pid: Pid,
  next: StateMachine<S, D, any>,
  extra?: unknown,
): boolean {
  return system.upgrade(pid, (current) => {
    if (!(current instanceof StateMachineHandler))
      throw new BadArgument(`upgradeStateMachine: ${pid} is not a StateMachine`);
    current.changeCode(next, extra);
    return current;
  });
}
