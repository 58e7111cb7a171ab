import { describe, expect, it } from 'vitest';
import type { Context, Pid } from '../../src/actor/index.js';
import {
  type ChildSpec,
  heartbeat,
  isHeartbeatMissed,
  startSupervisor,
} from '../../src/supervision/index.js';
import { pidOf, recordEvents, testSystem } from './helpers.js';

/** A child that beats on every 'beat' message (or from init when asked, with the supervisor's pid). */
function beatingSpec(starts: Pid[], options: { heartbeatMs: number; beatInInit?: boolean }): ChildSpec {
  return {
    id: 'trainer',
    heartbeatMs: options.heartbeatMs,
    start: (ctx: Context) => {
      const supervisor = ctx.self;
      const pid = ctx.spawnLink({
        init: (self: Context) => {
          if (options.beatInInit) heartbeat(self, supervisor);
        },
        handle: (message: unknown, self: Context) => {
          if (message === 'beat') heartbeat(self);
        },
      });
      starts.push(pid);
      return pid;
    },
  };
}

describe('heartbeat hang detection (seed 002 check_heartbeats)', () => {
  it('a child that keeps beating is left alone', async () => {
    const { system } = testSystem();
    const starts: Pid[] = [];
    const supervisor = await startSupervisor(system, {
      children: [beatingSpec(starts, { heartbeatMs: 100 })],
    });
    for (let tick = 0; tick < 20; tick++) {
      system.send(starts[0], 'beat');
      await system.advance(60);
    }
    expect(starts).toHaveLength(1);
    expect(system.isAlive(supervisor)).toBe(true);
  });

  it('a child that misses its deadline is killed and restarted as a failure (HeartbeatMissed)', async () => {
    const { system } = testSystem();
    const starts: Pid[] = [];
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, {
      intensity: 5,
      children: [beatingSpec(starts, { heartbeatMs: 100 })],
    });
    system.send(starts[0], 'beat'); // at 0: the deadline is 100
    await system.advance(149);
    expect(starts).toHaveLength(2);
    expect(system.isAlive(starts[0])).toBe(false);
    const exited = events.find((event) => event.kind === 'child_exited');
    expect(isHeartbeatMissed(exited?.reason) && exited.reason.childId).toBe('trainer');
    expect(events.some((event) => event.kind === 'child_hung')).toBe(true);
    expect(await pidOf(system, supervisor, 'trainer')).toBe(starts[1]);
  });

  it('a beat pushes the deadline: the check fires heartbeatMs after the last beat', async () => {
    const { system } = testSystem();
    const starts: Pid[] = [];
    await startSupervisor(system, { intensity: 5, children: [beatingSpec(starts, { heartbeatMs: 100 })] });
    await system.advance(90);
    system.send(starts[0], 'beat'); // at 90
    await system.advance(99); // 189: still fine
    expect(starts).toHaveLength(1);
    await system.advance(1); // 190: missed
    expect(starts).toHaveLength(2);
  });

  it('hung children count against the intensity', async () => {
    const { system } = testSystem();
    const starts: Pid[] = [];
    const supervisor = await startSupervisor(system, {
      intensity: 2,
      periodMs: 10_000,
      children: [beatingSpec(starts, { heartbeatMs: 100 })],
    });
    const exited = system.whenExited(supervisor);
    await system.advance(300);
    expect(await exited).toBe('shutdown');
    expect(starts).toHaveLength(3);
  });

  it('heartbeat from init needs the supervisor pid (passed explicitly); without a supervisor it returns false', async () => {
    const { system } = testSystem();
    const starts: Pid[] = [];
    await startSupervisor(system, {
      children: [beatingSpec(starts, { heartbeatMs: 100, beatInInit: true })],
    });
    expect(starts).toHaveLength(1);
    let sent: boolean | undefined;
    system.spawn(async (ctx: Context) => {
      sent = heartbeat(ctx);
    });
    await system.settle();
    expect(sent).toBe(false);
  });
});
