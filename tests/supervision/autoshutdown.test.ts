/**
 * Significant children and autoShutdown, run twice (describe.each): on one thread, and with the
 * children on thread 1 while the supervisor runs on thread 0. Only the "nothing left alive" check
 * (`stats().alive`, the calling thread's count) is one-thread.
 */
import { describe, expect, it } from 'vitest';
import type { Pid } from '../../src/actor/index.js';
import {
  type AutoShutdown,
  startSupervisor,
  stopSupervisor,
  terminateChild,
  whichChildren,
} from '../../src/supervision/index.js';
import {
  fileTwoThreadSystem,
  pidOf,
  type SpawnWorker,
  StartLog,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
  workerSpec,
} from './helpers.js';

const twoThreads = fileTwoThreadSystem();

async function setup(autoShutdown: AutoShutdown, threads: 1 | 2, spawn: SpawnWorker) {
  const system = threads === 1 ? testSystem().system : twoThreads().system;
  const log = new StartLog();
  const supervisor = await startSupervisor(system, {
    autoShutdown,
    intensity: 5,
    children: [
      workerSpec('job1', log, { restart: 'transient', significant: true }, spawn),
      workerSpec('job2', log, { restart: 'temporary', significant: true }, spawn),
      workerSpec('helper', log, {}, spawn),
    ],
  });
  /** Tells child `id` to exit with `reason`, and waits until the supervisor has handled its EXIT. */
  const exit = async (id: string, reason: unknown) => {
    const pid = (await pidOf(system, supervisor, id)) as Pid;
    const exited = system.whenExited(pid);
    system.send(pid, { exit: reason });
    await exited;
    await whichChildren(system, supervisor).catch(() => {}); // queued behind the EXIT; it may have exited
  };
  /** Stops a supervisor left running on the shared two-thread system. */
  const cleanUp = async () => {
    if (threads === 2 && system.isAlive(supervisor)) await stopSupervisor(system, supervisor);
  };
  return { system, supervisor, exit, log, cleanUp };
}

describe.each([
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'children on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const)('significant children and autoShutdown (OTP 24+), $name', ({ threads, spawn }) => {
  it('never: significant exits change nothing', async () => {
    const { system, supervisor, exit, cleanUp } = await setup('never', threads, spawn);
    await exit('job1', 'normal');
    await exit('job2', 'normal');
    expect(system.isAlive(supervisor)).toBe(true);
    await cleanUp();
  });

  it('any_significant: the first significant child to exit (normally) stops the supervisor with shutdown', async () => {
    const { system, supervisor, exit } = await setup('any_significant', threads, spawn);
    const exited = system.whenExited(supervisor);
    await exit('job1', 'normal');
    expect(await exited).toBe('shutdown');
    if (threads === 1) expect(system.stats().alive).toBe(0);
  });

  it('any_significant: a transient significant child that crashes is restarted, not a shutdown', async () => {
    const { system, supervisor, exit, log, cleanUp } = await setup('any_significant', threads, spawn);
    await exit('job1', 'boom');
    expect(system.isAlive(supervisor)).toBe(true);
    expect(log.count('job1')).toBe(2);
    await cleanUp();
  });

  it('any_significant: a temporary significant child stops the supervisor whatever its reason', async () => {
    const { system, supervisor, exit } = await setup('any_significant', threads, spawn);
    const exited = system.whenExited(supervisor);
    await exit('job2', 'boom');
    expect(await exited).toBe('shutdown');
  });

  it('all_significant: only when the last significant child has exited', async () => {
    const { system, supervisor, exit } = await setup('all_significant', threads, spawn);
    const exited = system.whenExited(supervisor);
    await exit('job2', 'normal');
    expect(system.isAlive(supervisor)).toBe(true);
    await exit('job1', { shutdown: 'done' });
    expect(await exited).toBe('shutdown');
  });

  it('terminateChild of a significant child does not trigger auto shutdown', async () => {
    const { system, supervisor, cleanUp } = await setup('any_significant', threads, spawn);
    expect(await terminateChild(system, supervisor, 'job1')).toBe('ok');
    expect(system.isAlive(supervisor)).toBe(true);
    await cleanUp();
  });
});
