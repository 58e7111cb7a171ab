/**
 * Frame numbers per sender-receiver pair on the deterministic network: a lost frame never
 * leaves a hole in what a process receives. The receiver declares the connection broken (links
 * and monitors fire `noconnection` on both sides, as Erlang's distribution does when a
 * connection goes down), the frames after the gap are ignored, and the pair connects again.
 */
import { describe, expect, it } from 'vitest';
import { DownMessage, ExitMessage } from '../../src/actor/ExitReason.js';
import type { Pid } from '../../src/actor/Pid.js';
import { FRAME_SYNC_MS } from '../../src/cluster/RemoteProcesses.js';
import { keeper, world } from './simWorld.js';

describe('frame numbers per pair', () => {
  it('a lost frame breaks the connection: no hole, links and monitors fire noconnection both ways, then it reconnects', async () => {
    const { network, run, start } = await world();
    const a = await start('a');
    const b = await start('b');
    await run(500);
    expect(a.node.isUp(b.node.self)).toBe(true);

    const atA = keeper(a.system);
    const atB = keeper(b.system);
    const toB = b.remote.pid(atB.pid);
    // a links to and monitors b's process; b links back to a's (a pid that crossed in a message)
    const linker = a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(toB);
      ctx.monitor(toB);
      ctx.send(toB, { hello: a.remote.pid(ctx.self) });
      for (;;) a.system.send(atA.pid, await ctx.receive());
    });
    await run(50);
    const hello = atB.got[0] as { hello: Pid };
    expect(hello.hello.node).toBe('a');
    const watcherOnB = b.system.spawn(async (ctx) => {
      ctx.monitor(hello.hello);
      b.system.send(atB.pid, await ctx.receive());
    });
    await run(50);

    a.system.send(toB, 1);
    await run(20);
    // the next frame from a to b is lost
    let lose = true;
    network.lose((from, to, subject) => {
      if (from !== 'a' || to !== 'b' || !subject.includes('.node.') || !lose) return false;
      lose = false;
      return true;
    });
    a.system.send(toB, 2);
    await run(20);
    network.lose(undefined);
    a.system.send(toB, 3); // after the hole: must never be delivered
    await run(100);

    const numbers = atB.got.filter((message) => typeof message === 'number');
    expect(numbers).toEqual([1]);
    expect(b.lost, JSON.stringify([b.lost, a.lost])).toHaveLength(1);
    expect(b.lost[0]).toMatch(/^a: frame \d+ of epoch 0 was lost/);
    expect(b.remote.connectionsLost).toBe(1);
    // on b: the DOWN of its monitor of a's process
    const downOnB = atB.got.find((message) => message instanceof DownMessage) as DownMessage;
    expect(downOnB.reason).toBe('noconnection');
    // on a: EXIT noconnection from b's process (the link) and DOWN noconnection (the monitor)
    const exitOnA = atA.got.find((message) => message instanceof ExitMessage) as ExitMessage;
    expect(exitOnA.reason).toBe('noconnection');
    expect(exitOnA.from.equals(toB)).toBe(true);
    const downOnA = atA.got.find((message) => message instanceof DownMessage) as DownMessage;
    expect(downOnA.reason).toBe('noconnection');
    expect(a.system.isAlive(linker)).toBe(true);
    expect(b.system.isAlive(watcherOnB)).toBe(false); // it got its DOWN and ended

    // the pair has connected again: later messages flow, in order, both ways
    for (let i = 4; i < 8; i++) a.system.send(toB, i);
    b.system.send(hello.hello, 'back');
    await run(50);
    expect(atB.got.filter((message) => typeof message === 'number')).toEqual([1, 4, 5, 6, 7]);
    expect(atA.got).toContain('back');
    expect(a.node.isUp(b.node.self)).toBe(true); // the nodes stay up: only the connection broke
    expect(a.remote.connectionsLost + b.remote.connectionsLost).toBe(1);
  });

  it('the reconnection survives a lost first frame of the new epoch', async () => {
    const { network, run, start } = await world();
    const a = await start('a');
    const b = await start('b');
    await run(500);
    const atB = keeper(b.system);
    const toB = b.remote.pid(atB.pid);
    a.system.send(toB, 1);
    await run(20);
    // lose a's next two frames to b: the one after 1, and a's first frame of its new epoch
    let losing = 2;
    network.lose((from, to, subject) => {
      if (from !== 'a' || to !== 'b' || !subject.includes('.node.') || losing === 0) return false;
      losing--;
      return true;
    });
    a.system.send(toB, 2);
    await run(50);
    network.lose(undefined);
    for (let i = 3; i < 6; i++) {
      a.system.send(toB, i);
      await run(30);
    }
    await run(200);
    for (let i = 10; i < 13; i++) a.system.send(toB, i);
    await run(100);
    const numbers = atB.got.filter((message) => typeof message === 'number') as number[];
    expect(numbers[0]).toBe(1);
    expect(numbers).not.toContain(2);
    // whatever got through after the loss is in order, with no hole inside an epoch, and the tail arrives
    expect(numbers.slice(-3)).toEqual([10, 11, 12]);
    expect([...numbers].sort((x, y) => x - y)).toEqual(numbers);
  });

  it('a node whose own NATS connection was interrupted breaks every connection, and they come back', async () => {
    const { network, run, start } = await world();
    const a = await start('a');
    const b = await start('b');
    await run(500);
    const atA = keeper(a.system);
    const atB = keeper(b.system);
    const toB = b.remote.pid(atB.pid);
    a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(toB);
      for (;;) a.system.send(atA.pid, await ctx.receive());
    });
    a.system.send(toB, 1);
    await run(20);
    network.interrupt('b');
    await run(50);
    expect(b.lost).toEqual(["a: this node's NATS connection was interrupted (frames in flight may be lost)"]);
    expect((atA.got.find((m) => m instanceof ExitMessage) as ExitMessage).reason).toBe('noconnection');
    expect((atB.got.find((m) => m instanceof ExitMessage) as ExitMessage).reason).toBe('noconnection');
    a.system.send(toB, 2);
    await run(50);
    expect(atB.got.filter((m) => typeof m === 'number')).toEqual([1, 2]);
    expect(a.remote.connectionsLost).toBe(0); // a restarted its side when b's new epoch came
  });

  it('a lost last frame (nothing after it) is found by the sync frame that follows it', async () => {
    const { network, run, start } = await world();
    const a = await start('a');
    const b = await start('b');
    await run(500);
    const atB = keeper(b.system);
    const toB = b.remote.pid(atB.pid);
    a.system.send(toB, 1);
    await run(200);
    let lose = true;
    network.lose((from, to, subject) => {
      if (from !== 'a' || to !== 'b' || !subject.includes('.node.') || !lose) return false;
      lose = false;
      return true;
    });
    a.system.send(toB, 2); // the last thing a sends to b
    await run(20);
    expect(b.lost).toEqual([]);
    await run(FRAME_SYNC_MS + 20);
    expect(b.lost).toHaveLength(1);
    expect(atB.got).toEqual([1]);
  });
});
