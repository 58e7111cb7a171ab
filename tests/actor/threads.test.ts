import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ActorSystem,
  CallExit,
  DownMessage,
  ExitMessage,
  type ExitReason,
  NotCloneable,
  type Pid,
} from '../../src/actor/index.js';
import {
  onSupervisionEvent,
  type SupervisionEvent,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../../src/supervision/index.js';

/** Scheduler threads, cross-thread semantics and a lost thread (workers are real worker_threads). */

const fixtures = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href };
const code = (name: string) => ({ ...fixtures, export: name });

/** A local process whose messages a test awaits one at a time. */
function inbox(system: ActorSystem, options: { trapExit?: boolean } = {}) {
  const queued: unknown[] = [];
  const waiting: ((message: unknown) => void)[] = [];
  const pid = system.spawn(
    {
      handle: (message: unknown) => {
        const waiter = waiting.shift();
        if (waiter !== undefined) waiter(message);
        else queued.push(message);
      },
    },
    options,
  );
  const next = (): Promise<any> =>
    queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((resolve) => waiting.push(resolve));
  return { pid, next };
}

// One two-thread system for the file (a worker thread takes about a second to start from sources).
let shared: ActorSystem;
const crashes: [Pid, ExitReason][] = [];
beforeAll(() => {
  shared = new ActorSystem({ threads: 2, onCrash: (pid, reason) => crashes.push([pid, reason]) });
});
afterAll(async () => {
  await shared.close();
});

describe('two scheduler threads', () => {
  let system: ActorSystem;
  beforeAll(() => {
    system = shared;
  });

  it('spawns by module URL on another thread; the pid names its thread', async () => {
    const me = inbox(system);
    const echo = system.spawn(code('Echo'), [], { thread: 1 });
    expect(echo.thread).toBe(1);
    expect(String(echo)).toMatch(/^<0\.\d+\.0@t1>$/);
    expect(system.threads).toBe(2);
    system.send(echo, { from: me.pid, body: 'hello' });
    expect(await me.next()).toEqual({ body: 'hello', thread: 1 });
    expect(system.processInfo(me.pid)?.thread).toBe(0);
  });

  it("places 'any' spawns on the least loaded thread", () => {
    const before = system.processes().length;
    const pids = Array.from({ length: 6 }, () => system.spawn(code('Echo'), [], { thread: 'any' }));
    const onOne = pids.filter((pid) => pid.thread === 1).length;
    expect(onOne).toBeGreaterThanOrEqual(3);
    for (const pid of pids) system.exit(pid, 'kill');
    expect(system.processes().length).toBe(before);
  });

  it('calls a server on another thread; a server that dies fails the call with its reason', async () => {
    const server = system.spawn(code('Answer'), [], { thread: 1 });
    await expect(system.call(server, 'ping')).resolves.toEqual({ request: 'ping', thread: 1 });
    const failure = await system.call(server, 'crash').catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CallExit);
    expect(((failure as CallExit).reason as Error).message).toBe('asked to crash');
    await expect(system.call(server, 'ping')).rejects.toMatchObject({ reason: 'noproc' });
    expect(crashes.some(([pid]) => pid.equals(server))).toBe(true);
  });

  it('a call to a silent server on another thread times out', async () => {
    const server = system.spawn(code('Answer'), [], { thread: 1 });
    await expect(system.call(server, 'hang', 20)).rejects.toMatchObject({ _tag: 'CallTimeout' });
    system.exit(server, 'kill');
  });

  it('monitors and links across threads fire with the exit reason', async () => {
    const watcher = inbox(system);
    const remote = system.spawn(code('Answer'), [], { thread: 1 });
    system.spawn({
      init: (ctx) => {
        ctx.trapExit(true);
        ctx.link(remote);
        ctx.send(watcher.pid, ctx.monitor(remote));
      },
      handle: (message, ctx) => ctx.send(watcher.pid, message),
    });
    const ref = await watcher.next();
    expect(() => system.processInfo(remote)).toThrow(/processInfoAsync/); // synchronous: this thread's
    system.exit(remote, 'kill');
    const signals = [await watcher.next(), await watcher.next()];
    const down = signals.find((message) => message instanceof DownMessage) as DownMessage;
    const exit = signals.find((message) => message instanceof ExitMessage) as ExitMessage;
    expect(down.ref).toBe(ref);
    expect(down.pid.equals(remote)).toBe(true);
    expect(down.reason).toBe('killed');
    expect(exit.from.equals(remote)).toBe(true);
    expect(exit.reason).toBe('killed');
  });

  it('a monitor of a process that is gone gives DOWN noproc; demonitor stops the DOWN', async () => {
    const remote = system.spawn(code('Answer'), [], { thread: 1 });
    const exited = system.whenExited(remote);
    system.exit(remote, 'kill');
    expect(await exited).toBe('killed');
    const result = inbox(system);
    system.spawn({
      init: (ctx) => {
        const late = ctx.monitor(remote);
        const live = system.spawn(code('Answer'), [], { thread: 1 });
        const dropped = ctx.monitor(live);
        ctx.demonitor(dropped, { flush: true });
        system.exit(live, 'kill');
        void system.whenExited(live).then(() => ctx.send(ctx.self, 'done'));
        ctx.send(result.pid, late);
      },
      handle: (message, ctx) => ctx.send(result.pid, message),
    });
    const ref = await result.next();
    const down = (await result.next()) as DownMessage;
    expect(down.ref).toBe(ref);
    expect(down.reason).toBe('noproc');
    expect(await result.next()).toBe('done'); // the demonitored DOWN never came
  });

  it('a local process linked to a crashing remote one dies with the same reason', async () => {
    const server = system.spawn(code('Answer'), [], { thread: 1 });
    const me = inbox(system);
    const linked = system.spawn({
      init: (ctx) => {
        ctx.link(server);
        ctx.send(me.pid, 'linked');
      },
      handle: () => {},
    });
    const exited = system.whenExited(linked);
    expect(await me.next()).toBe('linked');
    await system.call(server, 'crash').catch(() => {});
    expect(((await exited) as Error).message).toBe('asked to crash');
  });

  it('names are node-wide: register on one thread, send and call by name from another', async () => {
    const server = system.spawn(code('Answer'), [], { thread: 1, name: 'answer-t1' });
    expect(system.whereis('answer-t1')?.equals(server)).toBe(true);
    await expect(system.call('answer-t1', 'x')).resolves.toEqual({ request: 'x', thread: 1 });
    expect(() => system.spawn({ handle: () => {} }, { name: 'answer-t1' })).toThrow(/already registered/);
    system.exit(server, 'kill');
    await system.whenExited(server);
  });

  it('refuses a message that cannot cross, at the sender, naming where it is', () => {
    const echo = system.spawn(code('Echo'), [], { thread: 1 });
    expect(() => system.send(echo, { from: echo, body: { run: () => 1 } })).toThrow(NotCloneable);
    expect(() => system.send(echo, { body: new (class Point {})() })).toThrow(/message\.body.*Point/);
    expect(() => system.spawn(code('Echo'), [() => 1], { thread: 1 })).toThrow(NotCloneable);
    system.exit(echo, 'kill');
  });

  it('moves a 64 MiB Float32Array to another thread without a copy', async () => {
    const me = inbox(system);
    const measure = system.spawn(code('Measure'), [me.pid], { thread: 1 });
    const tensor = new Float32Array(16 * 1024 * 1024);
    tensor[0] = 1.5;
    tensor[tensor.length - 1] = -2.5;
    system.send(measure, tensor, { transfer: [tensor.buffer] });
    expect(tensor.buffer.byteLength).toBe(0); // detached: the memory moved
    expect(await me.next()).toEqual({ length: 16 * 1024 * 1024, first: 1.5, last: -2.5 });
    system.exit(measure, 'kill');
  });

  it('keeps the order of every sender-receiver pair under random interleavings', async () => {
    const relay = system.spawn(code('Relay'), [], { thread: 1 });
    const localRelay = system.spawn({
      handle: (m: { to: Pid; body: unknown }, ctx) => ctx.send(m.to, m.body),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 1 })), {
          minLength: 1,
          maxLength: 80,
        }),
        async (plan) => {
          const me = inbox(system);
          const expected = [0, 1].map((target) => plan.filter(([, t]) => t === target).length);
          const keepers = [0, 1].map((thread) =>
            expected[thread] === 0
              ? undefined
              : system.spawn(code('Collect'), [expected[thread], me.pid], { thread }),
          );
          const counters = [0, 0, 0];
          for (const [sender, target] of plan) {
            const body = [sender, counters[sender]++];
            const to = keepers[target]!;
            if (sender === 0) system.send(to, body);
            else system.send(sender === 1 ? localRelay : relay, { to, body });
          }
          const live = keepers.filter((keeper) => keeper !== undefined);
          for (let report = 0; report < live.length; report++) {
            const seen = (await me.next()) as [number, number][];
            for (const sender of [0, 1, 2]) {
              const sequence = seen.filter(([from]) => from === sender).map(([, n]) => n);
              expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
            }
          }
          for (const keeper of live) system.exit(keeper, 'kill');
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('a scheduler thread that dies', () => {
  it('is a lost node: links, monitors and calls get noconnection; a fresh thread replaces it; supervisors restart there', async () => {
    const lost: number[] = [];
    const system = new ActorSystem({
      threads: 2,
      onCrash: () => {},
      onThreadExit: (thread) => lost.push(thread),
    });
    try {
      const restarted = new Promise<SupervisionEvent>((resolve) =>
        onSupervisionEvent(system, (event) => {
          if (event.kind === 'child_restarted') resolve(event);
        }),
      );
      const supervisor = await startSupervisor(system, {
        strategy: 'one_for_one',
        intensity: 5,
        children: [{ id: 'remote', start: (ctx) => ctx.spawnLink(code('Answer'), [], { thread: 1 }) }],
      });
      const [first] = await whichChildren(system, supervisor);
      expect((first.pid as Pid).thread).toBe(1);
      const killer = system.spawn(code('ThreadKiller'), [], { thread: 1 });
      const silent = system.spawn(code('Answer'), [], { thread: 1 });
      const watcher = inbox(system);
      system.spawn({
        init: (ctx) => {
          ctx.trapExit(true);
          ctx.link(killer);
          ctx.monitor(silent);
          ctx.send(watcher.pid, 'watching');
        },
        handle: (message, ctx) => ctx.send(watcher.pid, message),
      });
      expect(await watcher.next()).toBe('watching');
      const pending = system.call(silent, 'hang', Number.POSITIVE_INFINITY);
      await expect(system.call(first.pid as Pid, 'before')).resolves.toMatchObject({ thread: 1 });
      system.send(killer, 'exit'); // process.exit in the worker: the thread ends mid-conversation

      const failure = await pending.catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(CallExit);
      expect((failure as CallExit).reason).toBe('noconnection');
      const signals = [await watcher.next(), await watcher.next()];
      expect(signals.find((m) => m instanceof ExitMessage)).toMatchObject({ reason: 'noconnection' });
      expect(signals.find((m) => m instanceof DownMessage)).toMatchObject({ reason: 'noconnection' });
      expect(lost).toEqual([1]);

      const event = await restarted;
      expect(event.childId).toBe('remote');
      const [again] = await whichChildren(system, supervisor);
      expect((again.pid as Pid).thread).toBe(1);
      expect((again.pid as Pid).equals(first.pid)).toBe(false);
      await expect(system.call(again.pid as Pid, 'after')).resolves.toEqual({ request: 'after', thread: 1 });

      // an uncaught error in the worker ends the thread the same way
      const restartedAgain = new Promise<SupervisionEvent>((resolve) =>
        onSupervisionEvent(system, (event) => {
          if (event.kind === 'child_restarted' && !event.pid?.equals(again.pid)) resolve(event);
        }),
      );
      const exited = system.whenExited(again.pid as Pid);
      system.send(system.spawn(code('ThreadKiller'), [], { thread: 1 }), 'throw');
      expect(await exited).toBe('noconnection');
      await restartedAgain;
      expect(lost).toEqual([1, 1]);
      await stopSupervisor(system, supervisor);
    } finally {
      await system.close();
    }
  });
});

/**
 * Erlang's exit-signal table (erlang:exit/2, links, trap_exit), run twice: both sides on thread 0,
 * and the target on thread 1. The outcome must not depend on where the target lives.
 */
describe.each([
  ['the same thread', 0],
  ['different threads', 1],
])('exit signals with the two sides on %s', (_title, thread) => {
  // the same-thread variant is a one-thread system: today's semantics, no worker at all
  let system: ActorSystem;
  beforeAll(() => {
    system = thread === 0 ? new ActorSystem({ onCrash: () => {} }) : shared;
  });
  afterAll(async () => {
    if (system !== shared) await system.close();
  });

  const target = (reporter: Pid, trapExit: boolean) =>
    system.spawn(code('Target'), [reporter], { thread, trapExit });

  /** A process on thread 0 linked to `pid`: it exits with whatever reason it is sent. */
  async function linkedPeer(pid: Pid): Promise<Pid> {
    const me = inbox(system);
    const peer = system.spawn({
      init: (ctx) => {
        ctx.link(pid);
        ctx.send(me.pid, 'linked');
      },
      handle: (reason: ExitReason, ctx) => ctx.exit(reason),
    });
    expect(await me.next()).toBe('linked');
    return peer;
  }

  it.each([
    ['normal', false, 'alive'],
    ['normal', true, { exit: 'normal' }],
    ['kill', true, 'killed'],
    ['kill', false, 'killed'],
    ['shutdown', false, 'shutdown'],
    ['shutdown', true, { exit: 'shutdown' }],
  ] as const)('exit(pid, %s) with trap_exit %s: %j', async (reason, trapExit, outcome) => {
    const reporter = inbox(system);
    const pid = target(reporter.pid, trapExit);
    await expect(system.call(pid, 'ready?')).resolves.toBe('alive');
    const exited = system.whenExited(pid);
    system.exit(pid, reason);
    if (outcome === 'alive') await expect(system.call(pid, 'still?')).resolves.toBe('alive');
    else if (typeof outcome === 'string') expect(await exited).toBe(outcome);
    else expect(await reporter.next()).toEqual(outcome);
    system.exit(pid, 'kill');
  });

  it.each([
    ['boom', false, 'boom'],
    ['normal', false, 'alive'],
    ['kill', true, { exit: 'kill' }],
    ['boom', true, { exit: 'boom' }],
  ] as const)('a linked peer exits %s, trap_exit %s: %j', async (reason, trapExit, outcome) => {
    const reporter = inbox(system);
    const pid = target(reporter.pid, trapExit);
    const exited = system.whenExited(pid);
    const peer = await linkedPeer(pid);
    system.send(peer, reason);
    if (outcome === 'alive') {
      expect(await system.whenExited(peer)).toBe('normal');
      await expect(system.call(pid, 'still?')).resolves.toBe('alive');
    } else if (typeof outcome === 'string') expect(await exited).toBe(outcome);
    else expect(await reporter.next()).toEqual(outcome);
    system.exit(pid, 'kill');
  });

  it('a call to a server that exits fails with its reason; to a dead one with noproc', async () => {
    const reporter = inbox(system);
    const pid = target(reporter.pid, false);
    const peer = await linkedPeer(pid);
    const exited = system.whenExited(pid);
    system.send(peer, 'gone');
    expect(await exited).toBe('gone');
    await expect(system.call(pid, 'x')).rejects.toMatchObject({ _tag: 'CallExit', reason: 'noproc' });
  });
});
