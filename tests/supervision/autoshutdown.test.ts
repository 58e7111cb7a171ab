import { describe, expect, it } from 'vitest';
import type { Pid } from '../../src/actor/index.js';
import { type AutoShutdown, startSupervisor, terminateChild } from '../../src/supervision/index.js';
import { pidOf, StartLog, testSystem, workerSpec } from './helpers.js';

async function setup(autoShutdown: AutoShutdown) {
  const { system } = testSystem();
  const log = new StartLog();
  const supervisor = await startSupervisor(system, {
    autoShutdown,
    intensity: 5,
    children: [
      workerSpec('job1', log, { restart: 'transient', significant: true }),
      workerSpec('job2', log, { restart: 'temporary', significant: true }),
      workerSpec('helper', log),
    ],
  });
  const exit = async (id: string, reason: unknown) => {
    system.send((await pidOf(system, supervisor, id)) as Pid, { exit: reason });
    await system.settle();
  };
  return { system, supervisor, exit, log };
}

describe('significant children and autoShutdown (OTP 24+)', () => {
  it('never: significant exits change nothing', async () => {
    const { system, supervisor, exit } = await setup('never');
    await exit('job1', 'normal');
    await exit('job2', 'normal');
    expect(system.isAlive(supervisor)).toBe(true);
  });

  it('any_significant: the first significant child to exit (normally) stops the supervisor with shutdown', async () => {
    const { system, supervisor, exit } = await setup('any_significant');
    const exited = system.whenExited(supervisor);
    await exit('job1', 'normal');
    expect(await exited).toBe('shutdown');
    expect(system.stats().alive).toBe(0);
  });

  it('any_significant: a transient significant child that crashes is restarted, not a shutdown', async () => {
    const { system, supervisor, exit, log } = await setup('any_significant');
    await exit('job1', 'boom');
    expect(system.isAlive(supervisor)).toBe(true);
    expect(log.count('job1')).toBe(2);
  });

  it('any_significant: a temporary significant child stops the supervisor whatever its reason', async () => {
    const { system, supervisor, exit } = await setup('any_significant');
    const exited = system.whenExited(supervisor);
    await exit('job2', 'boom');
    expect(await exited).toBe('shutdown');
  });

  it('all_significant: only when the last significant child has exited', async () => {
    const { system, supervisor, exit } = await setup('all_significant');
    const exited = system.whenExited(supervisor);
    await exit('job2', 'normal');
    expect(system.isAlive(supervisor)).toBe(true);
    await exit('job1', { shutdown: 'done' });
    expect(await exited).toBe('shutdown');
  });

  it('terminateChild of a significant child does not trigger auto shutdown', async () => {
    const { system, supervisor } = await setup('any_significant');
    expect(await terminateChild(system, supervisor, 'job1')).toBe('ok');
    expect(system.isAlive(supervisor)).toBe(true);
  });
});
