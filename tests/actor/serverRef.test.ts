/**
 * Typed server references: `startGenServer` resolves to a `ServerRef` typed from the behaviour's
 * handleCall / handleCast, so `callServer` / `castTo` with a wrong request fail to compile (the
 * `@ts-expect-error` lines below are checked by `npm run typecheck`, which covers tests/). At run
 * time a ServerRef is the server's pid; plain pids and names keep working untyped.
 */
import { describe, expect, it } from 'vitest';
import {
  type CallOf,
  type CastOf,
  callServer,
  castTo,
  type GenServer,
  getServerState,
  isPid,
  type Pid,
  type ReplyOf,
  reply,
  type ServerRef,
  serverRef,
  startGenServer,
} from '../../src/actor/index.js';
import { startSupervisor } from '../../src/supervision/index.js';
import { testSystem } from './helpers.js';

/** The README's counter: casts add a number, calls answer 'get' with the count. */
const Counter = {
  init: (start: number) => start,
  handleCast: (n: number, count: number) => count + n,
  handleCall: (request: 'get' | { add: number }, _from: unknown, count: number) =>
    request === 'get' ? reply(count, count) : reply('ok' as const, count + request.add),
};

/** Compile-time checks: each `@ts-expect-error` line must be an error, or typecheck fails. */
function typeChecks(
  ref: ServerRef<CallOf<typeof Counter>, CastOf<typeof Counter>, ReplyOf<typeof Counter>>,
  pid: Pid,
) {
  const where = testSystem().system;
  castTo(where, ref, 41);
  // @ts-expect-error a counter's cast is a number: the string that once made its state "0forty-one"
  castTo(where, ref, 'forty-one');
  // @ts-expect-error a misspelled call request
  void callServer(where, ref, 'gte');
  // @ts-expect-error a call request of the wrong shape
  void callServer(where, ref, { add: 'one' });
  const count: Promise<number | 'ok'> = callServer(where, ref, 'get');
  // @ts-expect-error the reply is a number or 'ok', not a string
  const wrong: Promise<string> = callServer(where, ref, 'get');
  // Plain pids and names stay untyped, as before.
  castTo(where, pid, 'anything');
  castTo(where, 'counter', { any: 'thing' });
  void callServer(where, pid, 'whatever');
  // A ServerRef is a Pid: supervisors, links and send take it as one.
  const asPid: Pid = ref;
  // A name typed from the behaviour.
  const named = serverRef<typeof Counter>('counter');
  // @ts-expect-error typed names check casts too
  castTo(where, named, 'forty-one');
  // A behaviour annotated with its call and cast types types its refs too.
  const Annotated: GenServer<number, number, 'get', number> = {
    init: (start) => start,
    handleCall: (_request, _from, count) => reply(count, count),
    handleCast: (n, count) => count + n,
  };
  void startGenServer(where, Annotated, 1).then((annotated) => {
    // @ts-expect-error 'put' is not a call of Annotated
    void callServer(where, annotated, 'put');
    castTo(where, annotated, 2);
  });
  // @ts-expect-error the start argument of Counter is a number
  void startGenServer(where, Counter, 'zero');
  return [count, wrong, asPid];
}
void typeChecks;

describe('typed server references', () => {
  it('startGenServer resolves to the pid, typed: calls and casts reach the server', async () => {
    const { system } = testSystem();
    const counter = await startGenServer(system, Counter, 0);
    expect(isPid(counter)).toBe(true);
    castTo(system, counter, 41);
    castTo(system, counter, 1);
    await system.settle();
    expect(await callServer(system, counter, 'get')).toBe(42);
    expect(await callServer(system, counter, { add: 8 })).toBe('ok');
    expect(await getServerState(system, counter)).toBe(50);
  });

  it('a typed name reaches a registered server, and plain pids keep working', async () => {
    const { system } = testSystem();
    const pid: Pid = await startGenServer(system, Counter, 1, { name: 'counter' });
    const counter = serverRef<typeof Counter>('counter');
    castTo(system, counter, 2);
    await system.settle();
    expect(await callServer(system, counter, 'get')).toBe(3);
    expect(await system.call(pid, 'get')).toBe(3);
  });

  it("the README's taste: a supervised counter under a typed name answers 42", async () => {
    const { system } = testSystem();
    await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: 5,
      periodMs: 10_000,
      children: [
        { id: 'counter', start: (ctx) => startGenServer(ctx, Counter, 0, { link: true, name: 'counter' }) },
      ],
    });
    const counter = serverRef<typeof Counter>('counter');
    castTo(system, counter, 41);
    castTo(system, counter, 1);
    await system.settle();
    expect(await callServer(system, counter, 'get')).toBe(42);
  });
});
