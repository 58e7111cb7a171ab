/** Leader election on the deterministic network: one leader, failover, never two at once. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { LeaderElection } from '../../src/cluster/LeaderElection.js';
import { SimulatedNetwork } from '../../src/cluster/SimulatedNetwork.js';

const LEASE_MS = 2000;

interface World {
  readonly clock: SimulatedClock;
  readonly network: SimulatedNetwork;
  readonly elections: Map<string, LeaderElection>;
  readonly leaderships: string[];
}

async function world(names: readonly string[], seed = 1): Promise<World> {
  const clock = new SimulatedClock();
  const network = new SimulatedNetwork({ clock, seed, delayMs: { min: 1, max: 20 } });
  const elections = new Map<string, LeaderElection>();
  const leaderships: string[] = [];
  for (const name of names) {
    const opening = network.transport(name).openBucket('leader', { ttlMs: LEASE_MS });
    const bucket = await drive(clock, opening);
    const election = new LeaderElection({
      bucket,
      candidate: name,
      leaseMs: LEASE_MS,
      clock,
      onLeader: () => leaderships.push(name),
    });
    elections.set(name, election);
    election.start();
  }
  return { clock, network, elections, leaderships };
}

/** Moves simulated time forward 1 ms at a time, letting promise continuations run in between. */
async function run(w: Pick<World, 'clock'> & Partial<World>, ms: number, check?: () => void): Promise<void> {
  for (let t = 0; t < ms; t++) {
    w.clock.advance(1);
    for (let i = 0; i < 4; i++) await Promise.resolve();
    check?.();
  }
}

async function drive<T>(clock: SimulatedClock, promise: Promise<T>): Promise<T> {
  let settled = false;
  const result = promise.finally(() => {
    settled = true;
  });
  while (!settled) await run({ clock }, 1);
  return result;
}

function leaders(w: World): string[] {
  return [...w.elections].filter(([, election]) => election.isLeader).map(([name]) => name);
}

describe('LeaderElection', () => {
  it('elects exactly one leader, which the others follow', async () => {
    const w = await world(['a', 'b', 'c']);
    await run(w, 1000);
    const [leader] = leaders(w);
    expect(leaders(w)).toHaveLength(1);
    for (const [name, election] of w.elections) {
      if (name !== leader) expect(election.leader).toBe(leader);
    }
  });

  it('a killed leader is replaced within one lease plus a renewal interval', async () => {
    const w = await world(['a', 'b', 'c']);
    await run(w, 1000);
    const [old] = leaders(w);
    w.network.kill(old);
    const killedAt = w.clock.now();
    let replacedAt: number | undefined;
    await run(w, LEASE_MS * 2, () => {
      const now = leaders(w).filter((name) => name !== old);
      if (replacedAt === undefined && now.length === 1) replacedAt = w.clock.now();
    });
    expect(replacedAt).toBeDefined();
    expect(replacedAt! - killedAt).toBeLessThanOrEqual(LEASE_MS + LEASE_MS / 4 + 100);
  });

  it('a leader cut off from the store steps down before its lease can end, then another leads', async () => {
    const w = await world(['a', 'b', 'c']);
    await run(w, 1000);
    const [old] = leaders(w);
    const others = ['a', 'b', 'c'].filter((name) => name !== old);
    w.network.partition([others, [old]]);
    const cutAt = w.clock.now();
    let steppedDownAt: number | undefined;
    await run(w, LEASE_MS * 2, () => {
      expect(leaders(w).length).toBeLessThanOrEqual(1);
      if (steppedDownAt === undefined && !w.elections.get(old)!.isLeader) steppedDownAt = w.clock.now();
    });
    expect(steppedDownAt! - cutAt).toBeLessThan(LEASE_MS);
    expect(leaders(w)).toHaveLength(1);
    expect(others).toContain(leaders(w)[0]);
  });

  it('stop() gives the lease up at once', async () => {
    const w = await world(['a', 'b']);
    await run(w, 1000);
    const [old] = leaders(w);
    const stopping = w.elections.get(old)!.stop();
    await run(w, 100);
    await stopping;
    await run(w, LEASE_MS / 2);
    expect(leaders(w)).toEqual(['a', 'b'].filter((name) => name !== old));
  });

  it('property: never two leaders at once, through kills, partitions and heals', async () => {
    const event = fc.oneof(
      fc.record({ kind: fc.constant('kill' as const), node: fc.constantFrom('a', 'b', 'c', 'd') }),
      fc.record({
        kind: fc.constant('partition' as const),
        cut: fc.subarray(['a', 'b', 'c', 'd'], { minLength: 1, maxLength: 3 }),
      }),
      fc.record({ kind: fc.constant('heal' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 50, max: 3000 }), event), { maxLength: 6 }),
        fc.integer({ min: 0, max: 1000 }),
        async (events, seed) => {
          const w = await world(['a', 'b', 'c', 'd'], seed);
          const never2 = (): void => {
            if (leaders(w).length > 1) throw new Error(`two leaders at ${w.clock.now()}: ${leaders(w)}`);
          };
          for (const [wait, e] of events) {
            await run(w, wait, never2);
            if (e.kind === 'kill') w.network.kill(e.node);
            else if (e.kind === 'partition')
              w.network.partition([['a', 'b', 'c', 'd'].filter((n) => !e.cut.includes(n)), e.cut]);
            else w.network.heal();
          }
          w.network.heal();
          await run(w, LEASE_MS * 2, never2);
          const alive = ['a', 'b', 'c', 'd'].filter((name) => w.network.isAlive(name));
          if (alive.length > 0) expect(leaders(w)).toHaveLength(1);
        },
      ),
      { numRuns: 25, seed: 42 },
    );
  }, 60_000);
});
