import { describe, expect, it } from 'vitest';
import type { Pid } from '../../src/actor/index.js';
import {
  formatSupervisionEvent,
  onSupervisionEvent,
  type SupervisionEvent,
  startSupervisor,
  terminateChild,
} from '../../src/supervision/index.js';
import { pidOf, StartLog, testSystem, workerSpec } from './helpers.js';

describe('supervision events', () => {
  it('every action is an event with the supervisor, child id, pid, reason and clock time', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const events: SupervisionEvent[] = [];
    const supervisor = await startSupervisor(system, {
      onEvent: (event) => events.push(event),
      children: [workerSpec('w', log)],
    });
    const first = (await pidOf(system, supervisor, 'w')) as Pid;
    await system.advance(250);
    system.send(first, 'crash');
    await system.settle();
    const second = (await pidOf(system, supervisor, 'w')) as Pid;
    await terminateChild(system, supervisor, 'w');
    expect(events.map((event) => [event.kind, event.childId, event.pid, event.timeMs])).toEqual([
      ['child_started', 'w', first, 0],
      ['child_exited', 'w', first, 250],
      ['child_restarted', 'w', second, 250],
      ['child_terminated', 'w', second, 250],
    ]);
    expect(events.every((event) => event.supervisor === supervisor)).toBe(true);
    expect((events[1].reason as Error).message).toBe('worker crash');
    expect(events[3].reason).toBe('shutdown');
    expect(formatSupervisionEvent(events[1])).toMatch(/child_exited w <0\.\d+\.0> \(Error: worker crash\)/);
  });

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
