import { describe, expect, it } from 'vitest';
import {
  type CallFrom,
  getMachineState,
  InvalidTransition,
  isInvalidTransition,
  isStartError,
  type StateMachine,
  startStateMachine,
  transitionTable,
  upgradeStateMachine,
} from '../../src/actor/index.js';
import { testSystem } from './helpers.js';

type DoorState = 'locked' | 'open';
const Door: StateMachine<DoorState, { code: string; opened: number }, string> = {
  stateEnter: false,
  init: (code) => ({ state: 'locked', data: { code, opened: 0 } }),
  handleEvent(event, state, data) {
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

describe('StateMachine', () => {
  it('state timeouts fire in the state that set them, on the simulated clock', async () => {
    const { system } = testSystem();
    const pid = await startStateMachine(system, Door, '1234');
    expect(await system.call(pid, '0000')).toBe('wrong code');
    expect(await system.call(pid, '1234')).toBe('opened');
    await system.advance(999);
    expect((await getMachineState(system, pid)).state).toBe('open');
    await system.advance(1);
    expect((await getMachineState(system, pid)).state).toBe('locked');
  });

  it('a state change cancels the state timeout', async () => {
    const { system } = testSystem();
    const pid = await startStateMachine(system, Door, '1');
    await system.call(pid, '1');
    await system.advance(500);
    expect(await system.call(pid, 'close')).toBe('closed');
    await system.call(pid, '1'); // open again: a fresh 1000 ms timeout
    await system.advance(600); // the first timeout would have fired here
    expect((await getMachineState(system, pid)).state).toBe('open');
    await system.advance(400);
    expect((await getMachineState(system, pid)).state).toBe('locked');
  });

  it('postponed events come back after the next state change, in order', async () => {
    const { system } = testSystem();
    const pid = await startStateMachine(system, Door, '1');
    await system.call(pid, '1');
    const { castTo } = await import('../../src/actor/index.js');
    castTo(system, pid, 'new-code-a');
    castTo(system, pid, 'new-code-b');
    expect((await getMachineState<DoorState, { code: string }>(system, pid)).data.code).toBe('1');
    await system.advance(1000); // relock: the postponed casts now apply, a then b
    expect((await getMachineState<DoorState, { code: string }>(system, pid)).data.code).toBe('new-code-b');
  });

  it('event timeouts are cancelled by any event', async () => {
    const { system } = testSystem();
    const log: string[] = [];
    const Idle: StateMachine<'idle', null, void> = {
      init: () => ({
        state: 'idle',
        data: null,
        actions: [{ eventTimeoutMs: 100, content: 'idle-too-long' }],
      }),
      handleEvent(event) {
        log.push(`${event.type}:${String(event.content)}`);
        return event.type === 'info' ? { actions: [{ eventTimeoutMs: 100, content: 'again' }] } : {};
      },
    };
    const pid = await startStateMachine(system, Idle, undefined);
    await system.advance(50);
    system.send(pid, 'ping');
    await system.advance(60); // 110 since start: the first timeout was cancelled by ping
    expect(log).toEqual(['info:ping']);
    await system.advance(40);
    expect(log).toEqual(['info:ping', 'timeout:again']);
  });

  it('the design book FSM: a transition table rejects an event with InvalidTransition and keeps its state', async () => {
    const { system } = testSystem();
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
    expect(await system.call(pid, 'start')).toBe('processing');
    const invalid = await system.call(pid, 'resume');
    expect(isInvalidTransition(invalid)).toBe(true);
    expect((invalid as InvalidTransition).state).toBe('processing');
    expect(await getMachineState(system, pid)).toEqual({ state: 'processing', data: { jobs: 1 } });
    expect(await system.call(pid, 'done')).toBe('idle');
  });

  it('a machine killed during an async init fails the start with StartError(killed)', async () => {
    const { system } = testSystem();
    const outcome = startStateMachine(
      system,
      { init: () => new Promise<never>(() => {}), handleEvent: () => ({}) },
      undefined,
      { name: 'slow' },
    ).catch((e: unknown) => e);
    await system.settle();
    system.exit(system.whereis('slow')!, 'kill');
    const error = await outcome;
    expect(isStartError(error) && error.reason).toBe('killed');
    expect(system.stats().alive).toBe(0);
  });

  it('upgrades its code between events with codeChange', async () => {
    const { system } = testSystem();
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
    expect(await system.call(pid, 'flip')).toBe('off');
    upgradeStateMachine(system, pid, V2);
    expect(await system.call(pid, 'flip')).toBe('v2:on');
    expect(await getMachineState(system, pid)).toEqual({ state: 'off', data: { flips: 2 } });
  });
});
