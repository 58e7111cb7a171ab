/** ClusterNode on the deterministic network: identity, global names, leader, partitions. */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { ClusterNode } from '../../src/cluster/ClusterNode.js';
import { isAlreadyRegistered } from '../../src/cluster/errors.js';
import { SimulatedNetwork } from '../../src/cluster/SimulatedNetwork.js';

async function run(clock: SimulatedClock, ms: number, check?: () => void): Promise<void> {
  for (let t = 0; t < ms; t++) {
    clock.advance(1);
    for (let i = 0; i < 4; i++) await Promise.resolve();
    check?.();
  }
}

async function settle<T>(clock: SimulatedClock, promise: Promise<T>, limitMs = 20_000): Promise<T> {
  let done = false;
  const result = promise.finally(() => {
    done = true;
  });
  result.catch(() => {});
  for (let t = 0; !done && t < limitMs; t++) await run(clock, 1);
  return result;
}

async function cluster(names: readonly string[]) {
  const clock = new SimulatedClock();
  const network = new SimulatedNetwork({ clock, seed: 5, delayMs: { min: 1, max: 4 } });
  const lost: string[] = [];
  const start = (name: string) =>
    settle(
      clock,
      ClusterNode.start({
        name,
        transport: network.transport(name),
        clock,
        onNameLost: (n) => lost.push(`${name}:${n}`),
      }),
    );
  const nodes = new Map<string, ClusterNode>();
  for (const name of names) nodes.set(name, await start(name));
  await run(clock, 1000);
  return { clock, network, nodes, start, lost };
}

const leaders = (nodes: Map<string, ClusterNode>): string[] =>
  [...nodes].filter(([, node]) => node.isLeader).map(([name]) => name);

describe('ClusterNode', () => {
  it('nodes see each other, one leads, and a restarted name gets a larger incarnation', async () => {
    const { clock, network, nodes, start } = await cluster(['a', 'b', 'c']);
    expect(
      nodes
        .get('a')!
        .nodes()
        .map((node) => node.name),
    ).toEqual(['b', 'c']);
    expect(leaders(nodes)).toHaveLength(1);
    expect(nodes.get('b')!.self.incarnation).toBe(1);
    network.kill('b');
    const again = await start('b');
    expect(again.self.incarnation).toBe(2);
    await run(clock, 200);
    expect(nodes.get('a')!.nodes()).toContainEqual({ name: 'b', incarnation: 2 });
    expect(nodes.get('a')!.nodes()).not.toContainEqual({ name: 'b', incarnation: 1 });
  });

  it('a global name has one holder; it goes when its node dies', async () => {
    const { clock, network, nodes } = await cluster(['a', 'b', 'c']);
    await settle(clock, nodes.get('a')!.registerGlobal('trainer', '<0.42.0>'));
    const second = await settle(clock, nodes.get('b')!.registerGlobal('trainer', '<0.7.0>')).catch(
      (error) => error,
    );
    expect(isAlreadyRegistered(second)).toBe(true);
    expect(String(second.message)).toContain('<0.42.0> on a#1');
    expect(await settle(clock, nodes.get('c')!.whereisGlobal('trainer'))).toEqual({
      node: 'a',
      incarnation: 1,
      process: '<0.42.0>',
    });
    network.kill('a');
    await run(clock, 1500);
    expect(await settle(clock, nodes.get('c')!.whereisGlobal('trainer'))).toBeUndefined();
    await settle(clock, nodes.get('b')!.registerGlobal('trainer', '<0.7.0>'));
    expect((await settle(clock, nodes.get('c')!.whereisGlobal('trainer')))?.node).toBe('b');
  });

  it('releaseProcess and unregister remove names', async () => {
    const { clock, nodes } = await cluster(['a', 'b']);
    const a = nodes.get('a')!;
    await settle(clock, a.registerGlobal('x', '<0.1.0>'));
    await settle(clock, a.registerGlobal('y', '<0.1.0>'));
    await settle(clock, a.registerGlobal('z', '<0.2.0>'));
    await settle(clock, a.releaseProcess('<0.1.0>'));
    expect((await settle(clock, nodes.get('b')!.status())).names.map((entry) => entry.name)).toEqual(['z']);
    expect(await settle(clock, a.unregisterGlobal('z'))).toBe(true);
    expect(await settle(clock, a.unregisterGlobal('z'))).toBe(false);
  });

  it('a node cut off past detection comes back as a new incarnation, not as leader, without stale names', async () => {
    const { clock, network, nodes, lost } = await cluster(['a', 'b', 'c']);
    const [leader] = leaders(nodes);
    const isolated = nodes.get(leader)!;
    await settle(clock, isolated.registerGlobal('coordinator', '<0.9.0>'));
    const others = ['a', 'b', 'c'].filter((name) => name !== leader);
    network.partition([others, [leader]]);
    await run(clock, 4000, () => expect(leaders(nodes).length).toBeLessThanOrEqual(1));
    expect(isolated.isLeader).toBe(false);
    expect(others).toContain(leaders(nodes)[0]);
    expect(await settle(clock, nodes.get(others[0])!.whereisGlobal('coordinator'))).toBeUndefined();
    network.heal();
    await run(clock, 3000, () => expect(leaders(nodes).length).toBeLessThanOrEqual(1));
    expect(isolated.self.incarnation).toBe(2);
    expect(isolated.isLeader).toBe(false);
    expect(lost).toEqual([`${leader}:coordinator`]);
    expect(nodes.get(others[0])!.nodes()).toContainEqual({ name: leader, incarnation: 2 });
  });
});
