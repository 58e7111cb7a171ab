/**
 * Rolling hot code upgrade. One thread only: the upgrade is a function (current => next), and a
 * function cannot cross threads, so a child on another thread is refused with `OnAnotherThread`
 * (the last case checks that refusal, and that the child runs on untouched).
 */
import { describe, expect, it } from 'vitest';
import { type Context, type Handler, isOnAnotherThread, type Pid } from '../../src/actor/index.js';
import { rollingUpgrade, startSupervisor, whichChildren } from '../../src/supervision/index.js';
import { inbox } from '../actor/helpers.js';
import { fileTwoThreadSystem, spawnWorkerOn, testSystem } from './helpers.js';

const twoThreads = fileTwoThreadSystem();

/** A versioned echo: answers { ask } with its version and counts what it handled. */
class Echo implements Handler {
  handled = 0;
  constructor(readonly version: number) {}
  handle(message: { ask: Pid }, ctx: Context): void {
    this.handled++;
    ctx.send(message.ask, [this.version, ctx.self]);
  }
}

async function pool(size: number) {
  const { system } = testSystem();
  const supervisor = await startSupervisor(system, {
    children: Array.from({ length: size }, (_, index) => ({
      id: `r${index}`,
      start: (ctx: Context) => ctx.spawnLink(new Echo(1)),
    })),
  });
  const versions = new Map<string, number>();
  const asker = system.spawn({
    handle: (reply: [number, Pid]) => void versions.set(String(reply[1]), reply[0]),
  });
  const ask = async (pid: Pid) => {
    system.send(pid, { ask: asker });
    await system.settle();
    return versions.get(String(pid));
  };
  return { system, supervisor, ask };
}

describe('rolling hot code upgrade across a supervisor children', () => {
  it('upgrades batch by batch, keeping state (codeChange-style migration) and every message', async () => {
    const { system, supervisor, ask } = await pool(5);
    const order: string[] = [];
    const report = await rollingUpgrade(system, supervisor, {
      batchSize: 2,
      upgrade: (childId) => (current) => {
        order.push(childId);
        const next = new Echo(2);
        next.handled = (current as Echo).handled; // state migrates
        return next;
      },
      check: async (pid) => (await ask(pid)) === 2,
    });
    expect(report.completed).toBe(true);
    expect(report.upgraded.map((child) => child.childId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(order).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('stops at the first batch with a failed check and reports what failed and what was not attempted', async () => {
    const { system, supervisor, ask } = await pool(5);
    const report = await rollingUpgrade(system, supervisor, {
      batchSize: 2,
      upgrade: (childId) => () => new Echo(childId === 'r3' ? 0 : 2), // r3 gets a bad build
      check: async (pid) => (await ask(pid)) === 2,
    });
    expect(report.completed).toBe(false);
    expect(report.upgraded.map((child) => child.childId)).toEqual(['r0', 'r1', 'r2']);
    expect(report.failed.map((failure) => [failure.childId, failure.reason])).toEqual([
      ['r3', 'check_failed'],
    ]);
    expect(report.notAttempted).toEqual(['r4']);
  });

  it('an upgrade that crashes the child is a failure with its reason (the supervisor restarts it on the old code)', async () => {
    const { system, supervisor, ask } = await pool(2);
    const report = await rollingUpgrade(system, supervisor, {
      upgrade: () => () => {
        throw new Error('migration failed');
      },
    });
    expect(report.completed).toBe(false);
    expect((report.failed[0].reason as Error).message).toBe('migration failed');
    expect(report.notAttempted).toEqual(['r1']);
    const restarted = (await whichChildren(system, supervisor))[0].pid as Pid;
    expect(await ask(restarted)).toBe(1);
  });

  it('a child on another thread is refused with OnAnotherThread, and runs on untouched', async () => {
    const { system } = twoThreads();
    const supervisor = await startSupervisor(system, {
      children: [{ id: 'remote', start: spawnWorkerOn(1) }],
    });
    const report = await rollingUpgrade(system, supervisor, { upgrade: () => (current) => current });
    expect(report.completed).toBe(false);
    const failure = report.failed[0];
    expect(failure.childId).toBe('remote');
    expect(isOnAnotherThread(failure.reason) && failure.reason.pid.thread).toBe(1);
    const box = inbox(system);
    system.send(failure.pid, { ping: box.pid, tag: 'still here' });
    expect(await box.next()).toEqual(['pong', failure.pid, 'still here']);
  });
});
