/** Nodes with attached actor systems on the deterministic network, all on one simulated clock. */
import { ActorSystem } from '../../src/actor/ActorSystem.js';
import { SimulatedClock } from '../../src/actor/Clock.js';
import type { Pid } from '../../src/actor/Pid.js';
import { ClusterNode, type ClusterNodeOptions } from '../../src/cluster/ClusterNode.js';
import type { NodeId } from '../../src/cluster/Membership.js';
import type { RemoteProcesses } from '../../src/cluster/RemoteProcesses.js';
import { SimulatedNetwork } from '../../src/cluster/SimulatedNetwork.js';

export interface Side {
  readonly node: ClusterNode;
  readonly system: ActorSystem;
  readonly remote: RemoteProcesses;
  readonly lost: string[];
}

export async function world(nodeOptions: Partial<ClusterNodeOptions> = {}) {
  const clock = new SimulatedClock();
  const network = new SimulatedNetwork({ clock, seed: 11, delayMs: { min: 1, max: 3 } });
  const sides: Side[] = [];
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t++) {
      clock.advance(1);
      for (let i = 0; i < 4; i++) await Promise.resolve();
      for (const side of sides) await side.system.settle();
    }
  };
  const start = async (name: string): Promise<Side> => {
    const started = ClusterNode.start({
      name,
      transport: network.transport(name),
      clock,
      election: false,
      ...nodeOptions,
    });
    let node: ClusterNode | undefined;
    void started.then((n) => {
      node = n;
    });
    for (let t = 0; node === undefined && t < 1000; t++) await run(1);
    const system = new ActorSystem({ nodeName: name, clock });
    const lost: string[] = [];
    const remote = node!.attach(system, {
      onConnectionLost: (peer: NodeId, detail) => lost.push(`${peer.name}: ${detail}`),
    });
    const side = { node: node!, system, remote, lost };
    sides.push(side);
    return side;
  };
  return { clock, network, run, start };
}

/** A process that traps exits and keeps everything it receives. */
export function keeper(system: ActorSystem): { pid: Pid; got: unknown[] } {
  const got: unknown[] = [];
  const pid = system.spawn(async (ctx) => {
    ctx.trapExit(true);
    for (;;) got.push(await ctx.receive());
  });
  return { pid, got };
}
