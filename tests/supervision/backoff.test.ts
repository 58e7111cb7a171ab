import { describe, expect, it } from 'vitest';
import type { Pid } from '../../src/actor/index.js';
import { restartChild, startSupervisor, terminateChild, whichChildren } from '../../src/supervision/index.js';
import { pidOf, recordEvents, StartLog, testSystem, workerSpec } from './helpers.js';

describe('restart backoff on timers', () => {
  it('fixed: the child comes back after the delay; meanwhile it shows as restarting and calls are answered', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      intensity: 5,
      backoff: { type: 'fixed', delayMs: 1000 },
      children: [workerSpec('w', log)],
    });
    system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
    await system.settle();
    expect(await pidOf(system, supervisor, 'w')).toBe('restarting');
    expect(await restartChild(system, supervisor, 'w')).toEqual({ error: 'restarting' });
    await system.advance(999);
    expect(log.count('w')).toBe(1);
    await system.advance(1);
    expect(log.count('w')).toBe(2);
    const pid = await pidOf(system, supervisor, 'w');
    expect(typeof pid === 'object' && system.isAlive(pid)).toBe(true);
  });

  it('exponential: consecutive failures wait 100, 200, 400 ms; a child that ran long enough starts over', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, {
      intensity: 10,
      periodMs: 10_000,
      backoff: { type: 'exponential', initialDelayMs: 100, maxDelayMs: 10_000, resetAfterMs: 5000 },
      children: [workerSpec('w', log)],
    });
    for (const delay of [100, 200, 400]) {
      system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
      await system.advance(delay);
    }
    const delays = events
      .filter((event) => event.kind === 'child_restart_scheduled')
      .map((event) => event.delayMs);
    expect(delays).toEqual([100, 200, 400]);
    await system.advance(5000); // runs 5 s: the next failure starts the backoff over
    system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
    await system.settle();
    expect(events.filter((event) => event.kind === 'child_restart_scheduled').at(-1)?.delayMs).toBe(100);
  });

  it('one_for_all with backoff: siblings stop at once and all come back after the delay', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_all',
      backoff: { type: 'fixed', delayMs: 500 },
      children: [workerSpec('a', log), workerSpec('b', log)],
    });
    const a = (await pidOf(system, supervisor, 'a')) as Pid;
    system.send((await pidOf(system, supervisor, 'b')) as Pid, 'crash');
    await system.settle();
    expect(system.isAlive(a)).toBe(false);
    expect((await whichChildren(system, supervisor)).map((child) => child.pid)).toEqual([
      'restarting',
      'restarting',
    ]);
    await system.advance(500);
    expect(log.order).toEqual(['a', 'b', 'a', 'b']);
  });

  it('terminateChild cancels a pending restart', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      backoff: { type: 'fixed', delayMs: 500 },
      children: [workerSpec('w', log)],
    });
    system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
    await system.settle();
    expect(await terminateChild(system, supervisor, 'w')).toBe('ok');
    await system.advance(1000);
    expect(log.count('w')).toBe(1);
    expect(await pidOf(system, supervisor, 'w')).toBeUndefined();
  });

  it('restarts after a backoff still count against the intensity', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      intensity: 2,
      periodMs: 10_000,
      backoff: { type: 'fixed', delayMs: 100 },
      children: [workerSpec('w', log)],
    });
    const exited = system.whenExited(supervisor);
    for (let crash = 0; crash < 3; crash++) {
      system.send((await pidOf(system, supervisor, 'w')) as Pid, 'crash');
      await system.advance(100);
    }
    expect(await exited).toBe('shutdown');
    expect(log.count('w')).toBe(3);
  });
});
