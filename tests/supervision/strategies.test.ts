import { describe, expect, it } from 'vitest';
import type { ActorSystem, Context, Pid } from '../../src/actor/index.js';
import {
  type ChildSpec,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../../src/supervision/index.js';
import { pidOf, StartLog, testSystem, workerPlacements, workerSpec } from './helpers.js';

/**
 * seeds/003 (sage_runtime) translated: children are process functions that run once and end
 * `normal` (Ok) or crash (Err); a run counter per child says how often each was started.
 */
function runOnce(
  id: string,
  log: StartLog,
  restart: ChildSpec['restart'],
  outcome: (run: number) => 'ok' | 'fail' | 'wait',
  waitMs = 50,
): ChildSpec {
  return {
    id,
    restart,
    start: (ctx: Context) => {
      log.record(id);
      const run = log.count(id) - 1;
      return ctx.spawnLink(async (self: Context) => {
        const result = outcome(run);
        if (result === 'fail') throw new Error(`${id} simulated failure`);
        if (result === 'wait') await self.receive(() => false, waitMs);
      });
    },
  };
}

// Run twice: everything on one thread (a simulated clock), and the children on thread 1 of a
// two-thread system with the supervisor on thread 0. The tests wait for the crashed child's exit,
// then ask the supervisor (the call queues behind the EXIT it already got), never for a settle.
const placements = workerPlacements();

/** A sibling stopped by the strategy: 'shutdown', or 'noproc' when it was gone before we asked. */
const STOPPED = ['shutdown', 'noproc'];

describe.each(placements)(
  'strategies: seeds/000 "supervisor restart strategies" ($name)',
  ({ system: make, spawn }) => {
    it('one_for_one: the crashed child restarts, its sibling is unaffected', async () => {
      const system = make();
      const log = new StartLog();
      const supervisor = await startSupervisor(system, {
        strategy: 'one_for_one',
        children: [workerSpec('child1', log, {}, spawn), workerSpec('child2', log, {}, spawn)],
      });
      const child1 = (await pidOf(system, supervisor, 'child1')) as Pid;
      const child2 = (await pidOf(system, supervisor, 'child2')) as Pid;
      system.send(child1, 'crash');
      await system.whenExited(child1);
      const newChild1 = (await pidOf(system, supervisor, 'child1')) as Pid;
      expect(newChild1.equals(child1)).toBe(false);
      expect(newChild1.thread).toBe(child1.thread);
      expect(await pidOf(system, supervisor, 'child2')).toBe(child2);
      // both answer: the new one and the untouched sibling
      expect((await pingOf(system, newChild1))[1].equals(newChild1)).toBe(true);
      expect((await pingOf(system, child2))[1].equals(child2)).toBe(true);
      expect(log.order).toEqual(['child1', 'child2', 'child1']);
      await stopSupervisor(system, supervisor);
    });

    it('one_for_all: both children get new pids', async () => {
      const system = make();
      const log = new StartLog();
      const supervisor = await startSupervisor(system, {
        strategy: 'one_for_all',
        children: [workerSpec('child1', log, {}, spawn), workerSpec('child2', log, {}, spawn)],
      });
      const [before1, before2] = (await whichChildren(system, supervisor)).map((child) => child.pid as Pid);
      system.send(before1, 'crash');
      await system.whenExited(before1);
      expect(STOPPED).toContain(await system.whenExited(before2));
      const [after1, after2] = (await whichChildren(system, supervisor)).map((child) => child.pid as Pid);
      expect(after1.equals(before1)).toBe(false);
      expect(after2.equals(before2)).toBe(false);
      expect((await pingOf(system, after1))[1].equals(after1)).toBe(true);
      expect((await pingOf(system, after2))[1].equals(after2)).toBe(true);
      expect(log.order).toEqual(['child1', 'child2', 'child1', 'child2']);
      await stopSupervisor(system, supervisor);
    });

    it('rest_for_one: the failed child and those after it restart, those before do not', async () => {
      const system = make();
      const log = new StartLog();
      const supervisor = await startSupervisor(system, {
        strategy: 'rest_for_one',
        intensity: 10,
        children: ['a', 'b', 'c', 'd'].map((id) => workerSpec(id, log, {}, spawn)),
      });
      const before = (await whichChildren(system, supervisor)).map((child) => child.pid as Pid);
      system.send(before[1], 'crash');
      await system.whenExited(before[1]);
      for (const index of [2, 3]) expect(STOPPED).toContain(await system.whenExited(before[index]));
      const after = (await whichChildren(system, supervisor)).map((child) => child.pid as Pid);
      expect(after[0]).toBe(before[0]);
      for (const index of [1, 2, 3]) expect(after[index].equals(before[index])).toBe(false);
      // stopped in reverse start order, started in start order
      expect(log.order.slice(4)).toEqual(['b', 'c', 'd']);
      await stopSupervisor(system, supervisor);
    });
  },
);

/** Pings a worker and waits for its pong (from a helper process of the test). */
function pingOf(system: ActorSystem, pid: Pid): Promise<[string, Pid, unknown]> {
  return new Promise((resolve) => {
    const me = system.spawn({
      handle: (message: [string, Pid, unknown], ctx) => {
        resolve(message);
        ctx.stop();
      },
    });
    system.send(pid, { ping: me });
  });
}

describe('strategies: seeds/003 (sage_runtime) tests', () => {
  it('test_one_for_one_restart: a transient child failing twice then succeeding runs 3 times', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    await startSupervisor(system, {
      intensity: 5,
      periodMs: 60_000,
      children: [runOnce('Worker', log, 'transient', (run) => (run < 2 ? 'fail' : 'ok'))],
    });
    await system.settle();
    expect(log.count('Worker')).toBe(3);
  });

  it('test_transient_no_restart_on_success: runs once', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [runOnce('Worker', log, 'transient', () => 'ok')],
    });
    await system.settle();
    expect(log.count('Worker')).toBe(1);
    expect(system.isAlive(supervisor)).toBe(true);
    expect(await whichChildren(system, supervisor)).toEqual([
      { id: 'Worker', pid: undefined, type: 'worker', restart: 'transient' },
    ]);
  });

  it('test_temporary_never_restarts: runs once although it failed, and is removed', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      children: [runOnce('Worker', log, 'temporary', () => 'fail')],
    });
    await system.settle();
    expect(log.count('Worker')).toBe(1);
    expect(system.isAlive(supervisor)).toBe(true);
    expect(await whichChildren(system, supervisor)).toEqual([]);
  });

  it('test_circuit_breaker: an always failing permanent child trips the intensity (1 + 3 runs at most)', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      intensity: 3,
      periodMs: 60_000,
      children: [runOnce('Worker', log, 'permanent', () => 'fail')],
    });
    const exited = system.whenExited(supervisor);
    await system.settle();
    expect(await exited).toBe('shutdown');
    expect(log.count('Worker')).toBe(4);
  });

  it('test_permanent_restarts_on_success: a permanent child is restarted even after normal, until the intensity trips', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      intensity: 3,
      periodMs: 60_000,
      children: [runOnce('Worker', log, 'permanent', () => 'ok')],
    });
    const exited = system.whenExited(supervisor);
    await system.settle();
    expect(await exited).toBe('shutdown');
    expect(log.count('Worker')).toBe(4);
  });

  it('test_rest_for_one_restarts_downstream', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    await startSupervisor(system, {
      strategy: 'rest_for_one',
      intensity: 5,
      periodMs: 60_000,
      children: [
        runOnce('Child1', log, 'temporary', () => 'wait'),
        runOnce('Child2', log, 'transient', (run) => (run < 2 ? 'fail' : 'ok')),
        runOnce('Child3', log, 'transient', () => 'wait'),
      ],
    });
    await system.advance(100);
    expect(log.count('Child1')).toBe(1);
    expect(log.count('Child2')).toBe(3);
    expect(log.count('Child3')).toBeGreaterThanOrEqual(2);
  });

  it('the seed made Child3 temporary; under OTP rules a temporary child stopped by rest_for_one is never restarted', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    const supervisor = await startSupervisor(system, {
      strategy: 'rest_for_one',
      intensity: 5,
      periodMs: 60_000,
      children: [
        runOnce('Child1', log, 'temporary', () => 'wait'),
        runOnce('Child2', log, 'transient', (run) => (run < 2 ? 'fail' : 'ok')),
        runOnce('Child3', log, 'temporary', () => 'wait'),
      ],
    });
    await system.settle();
    expect(log.count('Child3')).toBe(1);
    expect((await whichChildren(system, supervisor)).map((child) => child.id)).toEqual(['Child1', 'Child2']);
  });

  it('test_one_for_all_restarts_all', async () => {
    const { system } = testSystem();
    const log = new StartLog();
    await startSupervisor(system, {
      strategy: 'one_for_all',
      intensity: 5,
      periodMs: 60_000,
      children: [
        runOnce('Child1', log, 'transient', () => 'wait', 100),
        runOnce('Child2', log, 'transient', (run) => (run < 2 ? 'fail' : 'wait'), 10),
      ],
    });
    await system.advance(200);
    expect(log.count('Child2')).toBe(3);
    expect(log.count('Child1')).toBeGreaterThanOrEqual(2);
  });
});
