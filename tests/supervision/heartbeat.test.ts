/**
 * Heartbeat hang detection (seed 002's check_heartbeats). Every case runs twice (describe.each):
 * on one thread, and with the beating child on thread 1 of a two-thread system while the
 * supervisor (and the simulated clock of its deadlines) is on thread 0.
 */
import { describe, expect, it } from 'vitest';
import { type ActorSystem, type Context, type Pid, SimulatedClock } from '../../src/actor/index.js';
import { type ChildSpec, isHeartbeatMissed, startSupervisor } from '../../src/supervision/index.js';
import { inbox } from '../actor/helpers.js';
import { Beater, type BeaterOptions } from './fixtures/worker.js';
import { fileTwoThreadSystem, pidOf, recordEvents, testSystem } from './helpers.js';

const beater = { module: new URL('./fixtures/worker.ts', import.meta.url).href, export: 'Beater' };
const twoThreads = fileTwoThreadSystem({ clock: new SimulatedClock() });

const placements = [
  { name: 'one thread', system: () => testSystem().system, thread: undefined },
  { name: 'the child on another thread', system: () => twoThreads().system, thread: 1 },
] as const;

describe.each(placements)('heartbeat hang detection, $name', ({ system: make, thread }) => {
  /** Spawns a Beater here (linked to `ctx` when given) or on `thread`. */
  function spawnBeater(where: Context | ActorSystem, options: BeaterOptions, link: boolean): Pid {
    if (thread === undefined) {
      const behaviour = new Beater(options);
      return link ? (where as Context).spawnLink(behaviour) : where.spawn(behaviour);
    }
    if (link) return (where as Context).spawnLink(beater, [options], { thread });
    return where.spawn(beater, [options], { thread });
  }

  /** A child spec whose child beats on 'beat' (telling `reports`), its starts kept in `starts`. */
  function beatingSpec(
    starts: Pid[],
    reporter: Pid,
    options: { heartbeatMs: number; beatInInit?: 'explicit' | 'found' },
  ): ChildSpec {
    return {
      id: 'trainer',
      heartbeatMs: options.heartbeatMs,
      start: (ctx: Context) => {
        const supervisor = options.beatInInit === 'explicit' ? ctx.self : undefined;
        const beatInInit = options.beatInInit !== undefined;
        const pid = spawnBeater(ctx, { beatInInit, supervisor, reporter }, true);
        starts.push(pid);
        return pid;
      },
    };
  }

  /** Makes the child beat once; resolves when it has (its beat reached the supervisor first). */
  async function beat(system: ActorSystem, reports: { next: () => Promise<any> }, pid: Pid): Promise<void> {
    system.send(pid, 'beat');
    expect(await reports.next()).toEqual({ beat: true });
    await system.settle();
  }

  it('a child that keeps beating is left alone', async () => {
    const system = make();
    const reports = inbox(system);
    const starts: Pid[] = [];
    const supervisor = await startSupervisor(system, {
      children: [beatingSpec(starts, reports.pid, { heartbeatMs: 100 })],
    });
    for (let tick = 0; tick < 20; tick++) {
      await beat(system, reports, starts[0]);
      await system.advance(60);
    }
    expect(starts).toHaveLength(1);
    expect(system.isAlive(supervisor)).toBe(true);
  });

  it('a child that misses its deadline is killed and restarted as a failure (HeartbeatMissed)', async () => {
    const system = make();
    const reports = inbox(system);
    const starts: Pid[] = [];
    const events = recordEvents(system);
    const supervisor = await startSupervisor(system, {
      intensity: 5,
      children: [beatingSpec(starts, reports.pid, { heartbeatMs: 100 })],
    });
    await beat(system, reports, starts[0]); // at 0: the deadline is 100
    const killed = system.whenExited(starts[0]);
    await system.advance(149);
    expect(await killed).toBe('killed');
    expect(await pidOf(system, supervisor, 'trainer')).toBe(starts[1]); // (queued behind the EXIT)
    expect(starts).toHaveLength(2);
    const exited = events.find((event) => event.kind === 'child_exited');
    expect(isHeartbeatMissed(exited?.reason) && exited.reason.childId).toBe('trainer');
    expect(events.some((event) => event.kind === 'child_hung')).toBe(true);
    expect(starts[1].thread).toBe(starts[0].thread);
  });

  it('a beat pushes the deadline: the check fires heartbeatMs after the last beat', async () => {
    const system = make();
    const reports = inbox(system);
    const starts: Pid[] = [];
    await startSupervisor(system, {
      intensity: 5,
      children: [beatingSpec(starts, reports.pid, { heartbeatMs: 100 })],
    });
    await system.advance(90);
    await beat(system, reports, starts[0]); // at 90
    await system.advance(99); // 189: still fine
    expect(starts).toHaveLength(1);
    const killed = system.whenExited(starts[0]);
    await system.advance(1); // 190: missed
    await killed;
    await system.settle(); // (on two threads the restart follows the EXIT from thread 1)
    expect(starts).toHaveLength(2);
  });

  it('hung children count against the intensity', async () => {
    const system = make();
    const reports = inbox(system);
    const starts: Pid[] = [];
    const supervisor = await startSupervisor(system, {
      intensity: 2,
      periodMs: 10_000,
      children: [beatingSpec(starts, reports.pid, { heartbeatMs: 100 })],
    });
    const exited = system.whenExited(supervisor);
    for (let round = 0; round < 3; round++) {
      const killed = system.whenExited(starts[round]);
      await system.advance(100);
      await killed; // (on two threads, the restart waits for the EXIT from thread 1)
      await system.settle();
    }
    expect(await exited).toBe('shutdown');
    expect(starts).toHaveLength(3);
  });

  it('heartbeat from init needs the supervisor pid (passed explicitly); without a supervisor it returns false', async () => {
    const system = make();
    const reports = inbox(system);
    const starts: Pid[] = [];
    await startSupervisor(system, {
      children: [beatingSpec(starts, reports.pid, { heartbeatMs: 100, beatInInit: 'explicit' })],
    });
    expect(await reports.next()).toEqual({ initBeat: true });
    expect(starts).toHaveLength(1);
    const loner = spawnBeater(system, { reporter: reports.pid }, false);
    system.send(loner, 'beat');
    expect(await reports.next()).toEqual({ beat: false });
  });
});

describe('heartbeat across threads', () => {
  it('a child on another thread finds its supervisor from init on (the process that spawned and linked it)', async () => {
    const { system } = twoThreads();
    const reports = inbox(system);
    const starts: Pid[] = [];
    const events = recordEvents(system);
    await startSupervisor(system, {
      children: [
        {
          id: 'trainer',
          heartbeatMs: 100,
          start: (ctx: Context) => {
            const pid = ctx.spawnLink(beater, [{ beatInInit: true, reporter: reports.pid }], { thread: 1 });
            starts.push(pid);
            return pid;
          },
        },
      ],
    });
    expect(await reports.next()).toEqual({ initBeat: true });
    expect(events.filter((event) => event.kind === 'child_hung')).toEqual([]);
  });
});
