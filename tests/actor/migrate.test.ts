import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ActorSystem,
  callServer,
  castTo,
  DownMessage,
  ExitMessage,
  genServerHandler,
  getServerState,
  isNotMovable,
  NotCloneable,
  type NotMovable,
  type Pid,
  startGenServer,
} from '../../src/actor/index.js';
import { Counter } from './fixtures/threadActors.js';
import { inbox } from './helpers.js';

/**
 * migrate(pid, thread): a handler actor made from a class export moves to another scheduler
 * thread with its state; the old pid forwards (messages and calls in order), its links and
 * monitors stay on the old pid and fire with the new process's exit reason.
 */

const fixtures = { module: new URL('./fixtures/threadActors.ts', import.meta.url).href };
const code = (name: string) => ({ ...fixtures, export: name });

interface TallyState {
  total: number;
  seen: number[];
  thread: number;
}

let system: ActorSystem;
beforeAll(() => {
  system = new ActorSystem({ threads: 2, onCrash: () => {} });
});
afterAll(async () => {
  await system.close();
});

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('migrate', () => {
  it('moves an actor with its state; messages sent before, during and after the move arrive once, in order', async () => {
    const tally = system.spawn(code('Tally'), [undefined]);
    expect(tally.thread).toBe(0);
    for (const n of range(1, 51)) system.send(tally, n);
    const moving = system.migrate(tally, 1);
    for (const n of range(51, 101)) system.send(tally, n); // queued behind the move
    const moved = await moving;
    expect(moved.thread).toBe(1);
    for (const n of range(101, 151)) system.send(tally, n); // through the old pid
    const state = await system.call<TallyState>(tally, 'state');
    expect(state.thread).toBe(1);
    expect(state.seen).toEqual(range(1, 151));
    expect(state.total).toBe((150 * 151) / 2);
    // the new pid answers directly too
    expect((await system.call<TallyState>(moved, 'state')).seen.length).toBe(150);
  });

  it('moves it back (from thread 1 to thread 0); both older pids keep forwarding', async () => {
    const tally = system.spawn(code('Tally'), [undefined]);
    system.send(tally, 5);
    const there = await system.migrate(tally, 1);
    system.send(tally, 6);
    const back = await system.migrate(there, 0);
    expect(back.thread).toBe(0);
    system.send(tally, 7);
    system.send(there, 8);
    const state = await system.call<TallyState>(tally, 'state');
    expect(state.thread).toBe(0);
    expect(state.total).toBe(26);
    expect(state.seen.slice(0, 2)).toEqual([5, 6]);
    // 7 passes two forwarders, 8 one: order holds per pid, not across two pids (as in Erlang)
    expect([...state.seen.slice(2)].sort()).toEqual([7, 8]);
  });

  it('keeps links and monitors on the old pid: they fire with the moved process exit reason', async () => {
    const watcher = inbox(system, { trapExit: true });
    const tally = system.spawn(code('Tally'), [undefined]);
    system.send(watcher.pid, 'ready');
    expect(await watcher.next()).toBe('ready');
    const linker = system.spawn(
      {
        handle: (message: unknown, ctx) => {
          if (message === 'link') ctx.link(tally);
          system.send(watcher.pid, { linker: message instanceof ExitMessage ? message.reason : message });
        },
      },
      { trapExit: true },
    );
    system.send(linker, 'link');
    expect(await watcher.next()).toEqual({ linker: 'link' });
    const down = system.whenExited(tally);
    await system.migrate(tally, 1);
    system.send(tally, 'crash');
    const reason = await down;
    expect(reason).toBeInstanceOf(Error);
    expect((reason as Error).message).toBe('tally crashed');
    expect(await watcher.next()).toEqual({ linker: reason });
  });

  it('delivers a monitor DOWN for the old pid with the reason of the new process', async () => {
    const watcher = inbox(system);
    const tally = system.spawn(code('Tally'), [undefined]);
    const observer = system.spawn({
      handle: (message: unknown, ctx) => {
        if (message === 'watch') ctx.monitor(tally);
        else ctx.send(watcher.pid, message);
      },
    });
    system.send(observer, 'watch');
    system.send(observer, 'watching');
    expect(await watcher.next()).toBe('watching');
    const moved = await system.migrate(tally, 1);
    system.exit(moved, 'boom'); // the new process dies; the old pid exits with the same reason
    const message = await watcher.next();
    expect(message).toBeInstanceOf(DownMessage);
    expect((message as DownMessage).pid.equals(tally)).toBe(true);
    expect((message as DownMessage).reason).toBe('boom');
  });

  it('passes an exit signal to the old pid on: the new process dies of it (it does not trap)', async () => {
    const tally = system.spawn(code('Tally'), [undefined]);
    const moved = await system.migrate(tally, 1);
    const oldExit = system.whenExited(tally);
    system.exit(tally, 'shutdown');
    expect(await oldExit).toBe('shutdown');
    await expect(system.call(moved, 'state', 2000)).rejects.toThrow(/noproc|shutdown/);
  });

  it('refuses state that cannot cross threads; the actor goes on where it is', async () => {
    const unmovable = system.spawn(code('Unmovable'), []);
    await expect(system.migrate(unmovable, 1)).rejects.toBeInstanceOf(NotCloneable);
    await expect(system.migrate(unmovable, 1)).rejects.toThrow(/state\.check/);
    expect(await system.call(unmovable, 'thread')).toBe(0);
  });

  it('refuses what cannot move: closures, process functions, a dead pid, a bad thread, one thread', async () => {
    const closure = system.spawn({ handle: () => {} });
    expect(await refusalOf(closure)).toBe('closure-handler');
    await expect(system.migrate(closure, 1)).rejects.toThrow(/only a behaviour spawned by module URL/);
    const body = system.spawn(async (ctx) => {
      await ctx.receive();
    });
    expect(await refusalOf(body)).toBe('process-function');
    await expect(system.migrate(body, 1)).rejects.toThrow(/write it as a handler spawned by module URL/);
    const tally = system.spawn(code('Tally'), [undefined]);
    await expect(system.migrate(tally, 5)).rejects.toThrow(/thread must be an integer in \[0, 1\], got 5/);
    const moved = await system.migrate(tally, 1);
    const error = (await system.migrate(tally, 1).catch((e: unknown) => e)) as NotMovable;
    expect(isNotMovable(error) && error.kind).toBe('moved');
    expect(error.advice).toContain(String(moved));
    system.exit(tally, 'kill');
    await system.whenExited(tally);
    await expect(system.migrate(tally, 1)).rejects.toThrow(/noproc/);
    const one = new ActorSystem({ onCrash: () => {} });
    const pid: Pid = one.spawn({ handle: () => {} });
    await expect(one.migrate(pid, 1)).rejects.toThrow(/one thread/);
  });
});

/** The kind of NotMovable that migrate(pid, 1) fails with (and the process is still where it was). */
async function refusalOf(pid: Pid): Promise<string | undefined> {
  const error = await system.migrate(pid, 1).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(system.isAlive(pid)).toBe(true);
  return isNotMovable(error) ? error.kind : String(error);
}

/**
 * migrate for the other kinds of process: a GenServer spawned by module URL from a
 * genServerHandler factory moves (its state is explicit: the factory makes the handler again on
 * the target, which takes the state over); closures, process functions and classes with state
 * that fields do not hold are refused with NotMovable, and go on where they are.
 */
describe('migrate, per kind of process', () => {
  it('a GenServer from a genServerHandler factory moves with its state; calls, casts and infos through the old pid stay in order', async () => {
    const box = inbox(system);
    const server = system.spawn(code('counterServer'), [{ start: 10, reporter: box.pid }]);
    castTo(system, server, 'increment');
    system.send(server, 5);
    const moving = system.migrate(server, 1);
    castTo(system, server, 'increment'); // queued behind the move, passed on after it
    const moved = await moving;
    expect(moved.thread).toBe(1);
    system.send(server, 100);
    expect(await callServer(system, server, 'get')).toBe(117);
    expect(await callServer(system, moved, 'get')).toBe(117);
    expect(await getServerState(system, moved)).toEqual({ count: 117, held: [], reporter: box.pid });
    // terminate runs there, with the reporter it was started with; the old pid exits with it
    const oldExit = system.whenExited(server);
    expect(await callServer(system, server, 'stop')).toBe('stopping');
    expect(await box.next()).toEqual({ terminated: 'normal' });
    expect(await oldExit).toBe('normal');
  });

  it('a GenServer holding a call it has not answered is refused (NotCloneable at state.held), and answers it later where it is', async () => {
    const server = system.spawn(code('counterServer'), [{ start: 0 }]);
    const held = system.call(server, 'hold', 10_000);
    await callServer(system, server, 'get'); // the hold has been taken
    const error = (await system.migrate(server, 1).catch((e: unknown) => e)) as NotCloneable;
    expect(error).toBeInstanceOf(NotCloneable);
    expect(error.path).toMatch(/^state\.held\[0\]/);
    castTo(system, server, 'release');
    expect(await held).toBe('too late');
    expect(server.thread).toBe(0);
    system.exit(server, 'kill');
  });

  it('a GenServer made here (startGenServer, or genServerHandler spawned as an object) is refused: closure-handler', async () => {
    const started = await startGenServer(system, Counter, { start: 1 });
    expect(await refusalOf(started)).toBe('closure-handler');
    const spawned = system.spawn(genServerHandler(Counter, { start: 2 }));
    expect(await refusalOf(spawned)).toBe('closure-handler');
    expect(await callServer(system, spawned, 'get')).toBe(2);
    system.exit(started, 'kill');
    system.exit(spawned, 'kill');
  });

  it('a class with #private members (its own or its base class) is refused: private-fields', async () => {
    for (const name of ['Secretive', 'SecretiveChild']) {
      const pid = system.spawn(code(name), []);
      system.send(pid, 'tick');
      expect(await refusalOf(pid)).toBe('private-fields');
      const error = (await system.migrate(pid, 1).catch((e: unknown) => e)) as NotMovable;
      expect(error.advice).toMatch(/class Secretive declares #private members/);
      expect(await system.call(pid, 'count')).toBe(1); // still here, state intact
      system.exit(pid, 'kill');
    }
  });

  it('a # in strings and comments of a class is not taken for a #private member: it moves', async () => {
    const pid = system.spawn(code('Hashtag'), []);
    const moved = await system.migrate(pid, 1);
    expect(await system.call(moved, 'state')).toEqual(['#hashtag', '#template #inner', 1]);
    system.exit(pid, 'kill');
  });

  it('a class with a non-enumerable own property is refused: hidden-fields', async () => {
    const pid = system.spawn(code('Hidden'), []);
    expect(await refusalOf(pid)).toBe('hidden-fields');
    expect(await system.call(pid, 'secret')).toBe(42);
    system.exit(pid, 'kill');
  });

  it('the refusal crosses threads as itself when the process lives on another thread', async () => {
    const pid = system.spawn(code('Secretive'), [], { thread: 1 });
    const error = await system.migrate(pid, 0).catch((e: unknown) => e);
    expect(isNotMovable(error) && error.kind).toBe('private-fields');
    expect(await system.call(pid, 'count')).toBe(0); // still on thread 1
    system.exit(pid, 'kill');
  });
});
