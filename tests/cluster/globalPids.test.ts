/**
 * Global names holding pids across a partition, on the deterministic network: the side with the
 * store (the JetStream majority) keeps the name; the holder on the other side is the loser and is
 * exited with `kill` when the partition heals (as OTP's default, random_exit_name, exits one of
 * the two), so links to it fire.
 */
import { describe, expect, it } from 'vitest';
import { ExitMessage } from '../../src/actor/ExitReason.js';
import { keeper, world } from './simWorld.js';

describe('a global name held on both sides of a partition', () => {
  it('the store side keeps it; the other holder is killed when the partition heals, and its links fire', async () => {
    const { network, run, start } = await world();
    const a = await start('a');
    const b = await start('b');
    const c = await start('c');
    await run(500);
    const holderOnB = keeper(b.system);
    const linkedOnB = keeper(b.system);
    b.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(holderOnB.pid);
      for (;;) b.system.send(linkedOnB.pid, await ctx.receive());
    });
    let registered = false;
    void b.remote.registerGlobal('coordinator', holderOnB.pid).then(() => {
      registered = true;
    });
    await run(100);
    expect(registered).toBe(true);
    expect((await settleFind(run, a.remote.whereisGlobal('coordinator')))?.node).toBe('b');

    // b is cut off from the store side: a and c declare it down and purge its names
    network.partition([['a', 'c'], ['b']]);
    await run(2_000);
    expect(a.node.isUp(b.node.self)).toBe(false);
    const holderOnA = keeper(a.system);
    let taken: unknown;
    void a.remote.registerGlobal('coordinator', holderOnA.pid).then(
      () => {
        taken = 'ok';
      },
      (error) => {
        taken = error;
      },
    );
    await run(200);
    expect(taken).toBe('ok');
    expect(b.system.isAlive(holderOnB.pid)).toBe(true); // b does not know yet

    network.heal();
    await run(3_000);
    // b learnt it was declared down, rejoined, found the name held by a: its holder was killed
    expect(b.system.isAlive(holderOnB.pid)).toBe(false);
    const exit = linkedOnB.got.find((message) => message instanceof ExitMessage) as ExitMessage;
    expect(exit.reason).toBe('killed');
    expect(exit.from).toBe(holderOnB.pid);
    const fromB = await settleFind(run, b.remote.whereisGlobal('coordinator'));
    expect(fromB?.node).toBe('a');
    expect(await settleFind(run, c.remote.whereisGlobal('coordinator'))).toEqual(fromB);
    expect(await settleFind(run, a.remote.whereisGlobal('coordinator'))).toBe(holderOnA.pid);
    // after the rejoins (each side quarantined the other) the attached systems listen on their
    // nodes' new incarnations: work flows to the winner from both other nodes
    b.system.send(fromB!, 'from b');
    c.system.send(fromB!, 'from c');
    await run(100);
    expect([...holderOnA.got].sort()).toEqual(['from b', 'from c']);
  });
});

async function settleFind<T>(run: (ms: number) => Promise<void>, work: Promise<T>): Promise<T> {
  let done = false;
  let value: T | undefined;
  void work.then((found) => {
    value = found;
    done = true;
  });
  for (let t = 0; !done && t < 1_000; t++) await run(1);
  return value as T;
}
