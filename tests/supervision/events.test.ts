/**
 * Supervision events. The event log of a supervisor's actions runs twice (describe.each): on one
 * thread, and with the child on thread 1 of a two-thread system while the supervisor (and the
 * simulated clock that stamps the events) is on thread 0.
 *
 * One thread only: "system-wide listeners ..." is about listeners of the calling thread; the
 * children there only start and never exit, so no second thread is involved in what it checks.
 */
import { describe, expect, it } from 'vitest';
import { type Pid, SimulatedClock } from '../../src/actor/index.js';
import {
  formatSupervisionEvent,
  onSupervisionEvent,
  type SupervisionEvent,
  startSupervisor,
  terminateChild,
} from '../../src/supervision/index.js';
import { pidOf, StartLog, testSystem, workerPlacements, workerSpec } from './helpers.js';

const placements = workerPlacements({ clock: new SimulatedClock() }, 'the child on another thread');

describe.each(placements)('supervision events ($name)', ({ system: make, spawn }) => {
  it('every action is an event with the supervisor, child id, pid, reason and clock time', async () => {
    const system = make();
    const log = new StartLog();
    const events: SupervisionEvent[] = [];
    const supervisor = await startSupervisor(system, {
      onEvent: (event) => events.push(event),
      children: [workerSpec('w', log, {}, spawn)],
    });
    const first = (await pidOf(system, supervisor, 'w')) as Pid;
    await system.advance(250);
    const start = system.clock.now() - 250; // (the two-thread system's clock is shared by the file)
    system.send(first, 'crash');
    await system.whenExited(first); // the supervisor got the EXIT before: the call below queues behind it
    const second = (await pidOf(system, supervisor, 'w')) as Pid;
    await terminateChild(system, supervisor, 'w');
    expect(events.map((event) => [event.kind, event.childId, event.pid, event.timeMs - start])).toEqual([
      ['child_started', 'w', first, 0],
      ['child_exited', 'w', first, 250],
      ['child_restarted', 'w', second, 250],
      ['child_terminated', 'w', second, 250],
    ]);
    expect(second.thread).toBe(first.thread);
    expect(events.every((event) => event.supervisor === supervisor)).toBe(true);
    expect((events[1].reason as Error).message).toBe('worker crash');
    expect(events[3].reason).toBe('shutdown');
    expect(formatSupervisionEvent(events[1])).toMatch(
      /child_exited w <0\.\d+\.0(@t1)?> \(Error: worker crash\)/,
    );
  });
});

describe('supervision events', () => {
  it('system-wide listeners see every supervisor; unsubscribing stops them; a throwing listener breaks nothing', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const seen: string[] = [];
    const unsubscribe = onSupervisionEvent(system, (event) => seen.push(`${event.kind}:${event.childId}`));
    const removeBroken = onSupervisionEvent(system, () => {
      throw new Error('broken listener');
    });
    const stderr = process.stderr.write;
    const reported: string[] = [];
    process.stderr.write = ((chunk: string) =>
      reported.push(chunk) > 0) as unknown as typeof process.stderr.write;
    try {
      await startSupervisor(system, { children: [workerSpec('a', log)] });
      await startSupervisor(system, { children: [workerSpec('b', log)] });
    } finally {
      process.stderr.write = stderr;
    }
    unsubscribe();
    removeBroken();
    await startSupervisor(system, { children: [workerSpec('c', log)] });
    expect(seen).toEqual(['child_started:a', 'child_started:b']);
    expect(reported.some((line) => line.includes('broken listener'))).toBe(true);
  });
});
