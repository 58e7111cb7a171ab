/**
 * gen_statem's semantics. Every case runs twice (describe.each): on one thread, and on a
 * two-thread system with the machine on thread 0 (where the simulated clock drives its timeouts)
 * while its callers, casters and the exit signal are a fixtures' `Client` on thread 1. The start
 * by module URL runs twice as well: on one thread, and with the machine (fixtures' Door) on
 * thread 1, started, called and linked from thread 0.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  type CallFrom,
  type Context,
  castTo,
  ExitMessage,
  getMachineState,
  InvalidTransition,
  isInvalidTransition,
  isStartError,
  type Pid,
  SimulatedClock,
  type StateMachine,
  startStateMachine,
  transitionTable,
  upgradeStateMachine,
} from '../../src/actor/index.js';
import type { DoorArgs } from './fixtures/threadActors.js';
import { fileTwoThreadSystem, inbox, localSide, remoteSide, type Side, testSystem } from './helpers.js';

const variants = [
  { title: 'one thread', threads: 1 },
  { title: 'two threads, the callers on thread 1', threads: 2 },
] as const;

const twoThreads = fileTwoThreadSystem({ clock: new SimulatedClock() });

type DoorState = 'locked' | 'open';
const Door: StateMachine<DoorState, { code: string; opened: number }, string> = {
  stateEnter: false,
  init: (code) => ({ state: 'locked', data: { code, opened: 0 } }),
  handleEvent(event, state, data) {
    if (event.type === 'call' && event.content === 'peek')
      return { actions: [{ reply: [event.from, data.code] }] };
    if (state === 'locked' && event.type === 'call' && event.content === data.code) {
      return {
        next: 'open',
        data: { ...data, opened: data.opened + 1 },
        actions: [{ reply: [event.from, 'opened'] }, { stateTimeoutMs: 1000, content: 'relock' }],
      };
    }
    if (state === 'locked' && event.type === 'call')
      return { actions: [{ reply: [event.from, 'wrong code'] }] };
    if (state === 'open' && event.type === 'state_timeout') return { next: 'locked' };
    if (state === 'open' && event.type === 'call' && event.content === 'close') {
      return { next: 'locked', actions: [{ reply: [event.from, 'closed'] }] };
    }
    if (state === 'open' && event.type === 'cast') return { actions: [{ postpone: true }] };
    if (state === 'locked' && event.type === 'cast') return { data: { ...data, code: event.content } };
    throw new InvalidTransition(state, event.content);
  },
};

describe.each(variants)('StateMachine, $title', ({ threads }) => {
  let system: ActorSystem;
  let side: Side;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
    side = threads === 1 ? localSide(system) : remoteSide(system, 1);
  });

  it('state timeouts fire in the state that set them, on the simulated clock', async () => {
    const pid = await startStateMachine(system, Door, '1234');
    expect(await side.call(pid, '0000')).toBe('wrong code');
    expect(await side.call(pid, '1234')).toBe('opened');
    await system.advance(999);
    expect((await getMachineState(system, pid)).state).toBe('open');
    await system.advance(1);
    expect((await getMachineState(system, pid)).state).toBe('locked');
  });

  it('a state change cancels the state timeout', async () => {
    const pid = await startStateMachine(system, Door, '1');
    await side.call(pid, '1');
    await system.advance(500);
    expect(await side.call(pid, 'close')).toBe('closed');
    await side.call(pid, '1'); // open again: a fresh 1000 ms timeout
    await system.advance(600); // the first timeout would have fired here
    expect((await getMachineState(system, pid)).state).toBe('open');
    await system.advance(400);
    expect((await getMachineState(system, pid)).state).toBe('locked');
  });

  it('postponed events come back after the next state change, in order', async () => {
    const pid = await startStateMachine(system, Door, '1');
    await side.call(pid, '1');
    side.cast(pid, 'new-code-a');
    side.cast(pid, 'new-code-b');
    expect(await side.call(pid, 'peek')).toBe('1'); // both casts arrived, and wait (postponed)
    await system.advance(1000); // relock: the postponed casts now apply, a then b
    expect((await getMachineState<DoorState, { code: string }>(system, pid)).data.code).toBe('new-code-b');
  });

  it('event timeouts are cancelled by any event', async () => {
    const log: string[] = [];
    let logged: () => void = () => {};
    const Idle: StateMachine<'idle', null, void> = {
      init: () => ({
        state: 'idle',
        data: null,
        actions: [{ eventTimeoutMs: 100, content: 'idle-too-long' }],
      }),
      handleEvent(event) {
        log.push(`${event.type}:${String(event.content)}`);
        logged();
        return event.type === 'info' ? { actions: [{ eventTimeoutMs: 100, content: 'again' }] } : {};
      },
    };
    const pid = await startStateMachine(system, Idle, undefined);
    await system.advance(50);
    const arrived = new Promise<void>((resolve) => {
      logged = resolve;
    });
    side.send(pid, 'ping');
    await arrived; // (on the simulated clock, no time passes while it travels)
    await system.advance(60); // 110 since start: the first timeout was cancelled by ping
    expect(log).toEqual(['info:ping']);
    await system.advance(40);
    expect(log).toEqual(['info:ping', 'timeout:again']);
  });

  it('the design book FSM: a transition table rejects an event with InvalidTransition and keeps its state', async () => {
    const machine = transitionTable({
      initial: 'idle' as 'idle' | 'processing' | 'waiting',
      data: { jobs: 0 },
      transitions: [
        { from: 'idle', event: 'start', to: 'processing', action: (d) => ({ jobs: d.jobs + 1 }) },
        { from: 'processing', event: 'wait', to: 'waiting' },
        { from: 'waiting', event: 'resume', to: 'processing' },
        { from: 'processing', event: 'done', to: 'idle' },
      ],
    });
    const pid = await startStateMachine(system, machine, undefined);
    expect(await side.call(pid, 'start')).toBe('processing');
    const invalid = await side.call(pid, 'resume');
    expect(isInvalidTransition(invalid)).toBe(true);
    expect((invalid as InvalidTransition).state).toBe('processing');
    expect(await getMachineState(system, pid)).toEqual({ state: 'processing', data: { jobs: 1 } });
    expect(await side.call(pid, 'done')).toBe('idle');
  });

  it('a machine killed during an async init fails the start with StartError(killed)', async () => {
    const outcome = startStateMachine(
      system,
      { init: () => new Promise<never>(() => {}), handleEvent: () => ({}) },
      undefined,
      { name: 'slow' },
    ).catch((e: unknown) => e);
    await system.settle();
    const pid = system.whereis('slow') as Pid;
    side.exit(pid, 'kill');
    const error = await outcome;
    expect(isStartError(error) && error.reason).toBe('killed');
    expect(system.isAlive(pid)).toBe(false);
    expect(system.whereis('slow')).toBeUndefined();
  });

  it('upgrades its code between events with codeChange', async () => {
    const V1: StateMachine<'on' | 'off', number, void> = {
      version: 'a',
      init: () => ({ state: 'off', data: 0 }),
      handleEvent: (event, state, data) =>
        event.type === 'call'
          ? {
              next: state === 'on' ? 'off' : 'on',
              data: data + 1,
              actions: [{ reply: [event.from as CallFrom, state] }],
            }
          : {},
    };
    const V2: StateMachine<'on' | 'off', { flips: number }, void> = {
      version: 'b',
      init: () => ({ state: 'off', data: { flips: 0 } }),
      codeChange: (old, state, data: number) => ({ state, data: { flips: data * (old === 'a' ? 1 : 0) } }),
      handleEvent: (event, state, data) =>
        event.type === 'call'
          ? {
              next: state === 'on' ? 'off' : 'on',
              data: { flips: data.flips + 1 },
              actions: [{ reply: [event.from as CallFrom, `v2:${state}`] }],
            }
          : {},
    };
    const pid = await startStateMachine(system, V1, undefined);
    expect(await side.call(pid, 'flip')).toBe('off');
    upgradeStateMachine(system, pid, V2);
    expect(await side.call(pid, 'flip')).toBe('v2:on');
    expect(await getMachineState(system, pid)).toEqual({ state: 'off', data: { flips: 2 } });
  });
});

const DOOR = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href, export: 'door' };

/**
 * gen_statem:start_link for a machine elsewhere: startStateMachine by module URL, run twice
 * (describe.each) on one thread (simulated clock) and with the machine on thread 1 (whose
 * timeouts run on that thread's real clock: the state timeout is then short, and awaited through
 * the state enter report, never slept for).
 */
describe.each([
  { title: 'one thread', threads: 1, thread: undefined },
  { title: 'two threads, the machine on thread 1', threads: 2, thread: 1 },
] as const)('StateMachine start by module URL, $title', ({ threads, thread }) => {
  let system: ActorSystem;
  beforeEach(() => {
    system = threads === 1 ? testSystem().system : twoThreads().system;
  });
  const failure = (error: unknown): unknown => {
    if (!isStartError(error)) return error;
    return error.reason instanceof Error ? error.reason.message : error.reason;
  };

  it('resolves once init has returned, on the thread asked for; calls, postponed casts and the state timeout work there', async () => {
    const box = inbox(system);
    const relockMs = threads === 1 ? 1000 : 20;
    const args: DoorArgs = { code: '1', relockMs, reporter: box.pid };
    const pid = await startStateMachine(system, DOOR, [args], { thread });
    expect(pid.thread).toBe(thread ?? 0);
    expect(await system.call(pid, '0')).toBe('wrong code');
    expect(await system.call(pid, '1')).toBe('opened');
    expect(await box.next()).toEqual({ entered: 'open', thread: thread ?? 0 });
    system.send(pid, { $cast: 'a' }); // (an info, not a cast: ignored)
    castTo(system, pid, 'code-a');
    castTo(system, pid, 'code-b');
    expect(await system.call(pid, 'peek')).toBe('1'); // both casts wait, postponed
    if (threads === 1) await system.advance(relockMs);
    expect(await box.next()).toEqual({ entered: 'locked', thread: thread ?? 0 }); // the state timeout
    expect(await system.call(pid, 'peek')).toBe('code-b'); // then a, then b applied
    expect((await getMachineState<DoorState, DoorArgs>(system, pid)).state).toBe('locked');
    system.exit(pid, 'kill');
  });

  it('a failing init rejects the start with StartError and the reason', async () => {
    const outcome = startStateMachine(system, DOOR, [{ code: '1', relockMs: 10, init: 'failing' }], {
      thread,
    });
    expect(failure(await outcome.catch((e: unknown) => e))).toBe('no door');
  });

  it('a machine killed during an async init fails the start with StartError(killed); its name goes', async () => {
    const box = inbox(system);
    const outcome = startStateMachine(
      system,
      DOOR,
      [{ code: '1', relockMs: 10, init: 'slow', reporter: box.pid }],
      { thread, name: 'slow-door' },
    ).catch((e: unknown) => e);
    const { initRunning: machine } = await box.next();
    expect(system.whereis('slow-door')?.equals(machine)).toBe(true);
    system.exit(machine, 'kill');
    expect(failure(await outcome)).toBe('killed');
    expect(system.whereis('slow-door')).toBeUndefined();
  });

  it('an export that does not make a StateMachine fails the start, naming what it needs', async () => {
    const outcome = startStateMachine(system, { ...DOOR, export: 'counterServer' }, [{ start: 0 }], {
      thread,
    });
    expect(failure(await outcome.catch((e: unknown) => e))).toMatch(
      /startStateMachine: export 'counterServer' .* must be a function that returns stateMachineHandler/,
    );
  });

  it('with link, the starting process is linked: it gets the EXIT when the machine stops', async () => {
    const box = inbox(system);
    system.spawn({
      init: async (ctx: Context) => {
        ctx.trapExit(true);
        const started = await startStateMachine(ctx, DOOR, [{ code: '1', relockMs: 10 }], {
          link: true,
          thread,
        });
        ctx.send(box.pid, { started });
      },
      handle: (message: unknown, ctx: Context) => ctx.send(box.pid, message),
    });
    const { started } = (await box.next()) as { started: Pid };
    expect(started.thread).toBe(thread ?? 0);
    expect(await system.call(started, 'stop')).toBe('stopping');
    const exit = await box.next();
    expect(exit).toBeInstanceOf(ExitMessage);
    expect((exit as ExitMessage).from.equals(started)).toBe(true);
    expect((exit as ExitMessage).reason).toEqual({ stopped: 'locked' });
  });
});
