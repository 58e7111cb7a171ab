/**
 * A pair's messages arrive in order with no hole, or the connection between the two nodes is
 * declared broken (Erlang's guarantee). Against a real nats-server: a sender floods a process
 * whose mailbox is bounded (`reject` when full) without yielding. What the receiver gets is a
 * prefix of what was sent; the first message that cannot be queued breaks the connection (the
 * sender's link fires `noconnection`), the frames after it are ignored, and the pair reconnects.
 * (A frame lost by NATS itself, at most once, is found the same way by its number; see
 * remoteFrameLoss.test.ts on the simulated network.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actor/ActorSystem.js';
import { ExitMessage } from '../../src/actor/ExitReason.js';
import { ClusterNode } from '../../src/cluster/ClusterNode.js';
import { type NatsServer, startNatsServer } from '../../src/cluster/internal/natsServer.js';
import type { RemoteProcesses } from '../../src/cluster/RemoteProcesses.js';

let server: NatsServer;
const sides: { node: ClusterNode; system: ActorSystem; remote: RemoteProcesses; lost: string[] }[] = [];

async function side(name: string, mailboxCapacity?: number) {
  const node = await ClusterNode.start({ name, nats: server.url, election: false });
  const system = new ActorSystem({ nodeName: name, mailboxCapacity });
  const lost: string[] = [];
  const remote = node.attach(system, { onConnectionLost: (_peer, detail) => lost.push(detail) });
  const made = { node, system, remote, lost };
  sides.push(made);
  return made;
}

beforeAll(async () => {
  server = await startNatsServer();
}, 30_000);

afterAll(async () => {
  for (const { node, system } of sides) {
    await node.close();
    system.shutdown();
  }
  await server?.stop();
});

describe('a sender that floods without yielding (real nats-server)', () => {
  it('the receiver gets a prefix, never a hole; the connection breaks and comes back', async () => {
    const a = await side('fa');
    const b = await side('fb', 1_000);
    await expect
      .poll(() => a.node.isUp(b.node.self) && b.node.isUp(a.node.self), { timeout: 10_000 })
      .toBe(true);
    const got: number[] = [];
    // a frame (up to 64 KiB, thousands of messages) is queued in one go: the mailbox fills
    const exitsAtB: unknown[] = [];
    const receiver = b.system.spawn(async (ctx) => {
      ctx.trapExit(true); // the sender links to it: the break reaches it as EXIT noconnection
      for (;;) {
        const message = await ctx.receive();
        if (typeof message === 'number') got.push(message);
        else exitsAtB.push(message);
      }
    });
    const toB = b.remote.pid(receiver);
    const count = 20_000;
    const exits: unknown[] = [];
    a.system.spawn(async (ctx) => {
      ctx.trapExit(true);
      ctx.link(toB);
      for (let i = 0; i < count; i++) ctx.send(toB, i); // no yield
      for (;;) exits.push(await ctx.receive());
    });
    // the sender's link fires noconnection: the connection broke at the first message not queued
    await expect
      .poll(() => exits.some((e) => e instanceof ExitMessage && e.reason === 'noconnection'), {
        timeout: 10_000,
      })
      .toBe(true);
    expect(b.remote.connectionsLost).toBe(1);
    expect(b.lost[0]).toMatch(/mailbox of .* is full \(capacity 1000\)/);
    // the EXIT comes after the messages queued before the break
    await expect.poll(() => exitsAtB.length, { timeout: 10_000 }).toBe(1);
    // a prefix: 0, 1, 2, ... (the mailbox's 1,000, and one taken at once by the waiting receive), no hole
    const prefix = got.length;
    expect(prefix).toBeGreaterThanOrEqual(1_000);
    expect(prefix).toBeLessThan(count);
    expect(got).toEqual([...Array(prefix).keys()]);
    expect((exitsAtB[0] as ExitMessage).reason).toBe('noconnection');
    // reconnected: a later message arrives after the prefix
    await expect
      .poll(
        () => {
          a.system.send(toB, -1);
          return got.includes(-1);
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    expect(got.slice(0, prefix + 1)).toEqual([...[...Array(prefix).keys()], -1]);
    expect(a.node.isUp(b.node.self)).toBe(true);
  }, 60_000);
});
