/**
 * The cluster under seeded node kills, restarts, partitions, heals and message delays, on the
 * deterministic `SimulatedNetwork` (only the cluster layer's public API is used). Time moves one
 * simulated millisecond at a time with microtask flushes in between (as the cluster tests drive
 * it), and the oracle is checked at every millisecond:
 *
 * - at most one live node believes it leads;
 * - while a live node is on the store side, a leader exists again within
 *   lease + renew interval + six one-way delays of the last moment one was seen, or of the moment
 *   the first store-side node could campaign (its start; its rejoin's round trips done; for one
 *   back from the other side, its pending bucket operation timed out);
 * - each node's incarnation only grows, and each new life of a name gets a larger one;
 * - at the end (healed, every operation settled, then a quiet period): the names bucket, read
 *   raw by an observer, records only holders that are a live node's current incarnation and
 *   that node holds the name (a down node's names are gone; no name has two holders), and every
 *   name a live node believes it holds is recorded for it.
 */
import { unpack } from 'msgpackr';
import type { SimulatedClock } from '../actor/Clock.js';
import { ClusterNode } from '../cluster/ClusterNode.js';
import { isAlreadyRegistered, isClusterError } from '../cluster/errors.js';
import { BUCKET_OPERATION_TIMEOUT_MS } from '../cluster/NatsTransport.js';
import { SimulatedNetwork } from '../cluster/SimulatedNetwork.js';
import type { ClusterTransport } from '../cluster/Transport.js';
import { KNOWN_DEVIATIONS } from './knownDeviations.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const SCENARIO = 'cluster';
/** Lease of the simulated cluster (the cluster's minimum is 100 ms); renewal every lease / 4. */
const LEASE_MS = 400;
const RENEW_MS = LEASE_MS / 4;
const GLOBAL_NAMES = ['trainer', 'coordinator', 'evaluator'] as const;
/** After the last event: heal, wait for every operation (bucket timeouts are 5 s), then this. */
const QUIET_MS = 8_000;

interface Life {
  readonly node: ClusterNode;
  readonly transport: ClusterTransport;
  alive: boolean;
  /** The names this life holds as acknowledged to the scenario (register ok, minus unregister and onNameLost). */
  readonly held: Map<string, string>;
  /** Names reported lost (onNameLost) by this life. */
  readonly lostNames: Set<string>;
  /** Names whose unregisterGlobal failed (not connected): retried once healed, must then release. */
  readonly unregisterFailed: Set<string>;
  /** When this life heard it was quarantined (its rejoin started). */
  readonly quarantinedAt: number[];
}

/**
 * Advances the clock 1 ms at a time, flushing promise callbacks, and checks after each step.
 * Every 10 simulated ms it yields one macrotask turn, so Node reports unhandled rejections (a
 * node process would die of one) while the seed runs, not after it.
 */
async function runFor(clock: SimulatedClock, ms: number, check: () => void): Promise<void> {
  for (let t = 0; t < ms; t++) {
    clock.advance(1);
    for (let i = 0; i < 4; i++) await Promise.resolve();
    if (clock.now() % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    check();
  }
}

/**
 * Runs `work` with this listener as the only one for unhandled rejections (the others, a test
 * runner's say, are put back after): a rejection nobody handles inside a node is, in a real node
 * process, its death, so the scenario hears of it and decides.
 */
async function hearingUnhandledRejections<T>(
  onRejection: (reason: unknown) => void,
  work: () => Promise<T>,
): Promise<T> {
  const others = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  const listener = (reason: unknown): void => onRejection(reason);
  process.on('unhandledRejection', listener);
  try {
    const result = await work();
    await new Promise((resolve) => setImmediate(resolve));
    return result;
  } finally {
    process.off('unhandledRejection', listener);
    for (const other of others) process.on('unhandledRejection', other);
  }
}

async function settle<T>(clock: SimulatedClock, work: Promise<T>, check: () => void): Promise<T> {
  let done = false;
  const tracked = work.finally(() => {
    done = true;
  });
  tracked.catch(() => {});
  for (let t = 0; !done && t < 30_000; t++) await runFor(clock, 1, check);
  if (!done)
    throw new InvariantViolation(SCENARIO, `an operation did not settle within 30 s of simulated time`);
  return tracked;
}

/**
 * The scenario with the known deviations it tolerates (default `KNOWN_DEVIATIONS`; none for the
 * cluster today: the five it found were fixed by issue 13). An unhandled rejection is a violation:
 * in a node's process it would be its death.
 */
export function clusterScenarioWith(
  knownDeviations: ReadonlySet<string> = KNOWN_DEVIATIONS,
): (context: SimulationContext) => Promise<void> {
  return (context) => {
    const crashed: unknown[] = [];
    return hearingUnhandledRejections(
      (reason) => crashed.push(reason),
      () => clusterScenario(context, knownDeviations, crashed),
    );
  };
}

async function clusterScenario(
  context: SimulationContext,
  _knownDeviations: ReadonlySet<string>,
  crashed: unknown[],
): Promise<void> {
  const { clock, random, coverage } = context;
  const between = (low: number, high: number) => low + random.nextInt(high - low + 1);
  const maxDelayMs = between(1, 25);
  const network = new SimulatedNetwork({ clock, seed: context.seed, delayMs: { min: 1, max: maxDelayMs } });
  const names = Array.from({ length: between(3, 5) }, (_, index) => `n${index + 1}`);
  const lives = new Map<string, Life>();
  const lastIncarnation = new Map<string, number>();
  /** Partition group of each node (0: the store side); empty when healed. */
  let groups = new Map<string, number>();
  const pending = new Set<Promise<unknown>>();
  const violations: InvariantViolation[] = [];
  const violate = (invariant: string) => violations.push(new InvariantViolation(SCENARIO, invariant));
  // six one-way hops (a renewal's write, a follower's get and create), each up to the delay plus
  // the millisecond the clock moves in
  const replaceWithinMs = LEASE_MS + RENEW_MS + 6 * (maxDelayMs + 1);
  let lastLeaderAt = 0;
  /**
   * When each node can take part in the election again: at once after its start; after a quarantine,
   * once its rejoin's round trips are done; after it came back to the store side, once the bucket
   * operation it sent while cut off has timed out (BUCKET_OPERATION_TIMEOUT_MS).
   */
  const readyAt = new Map<string, number>();
  const hopMs = maxDelayMs + 1;
  const regroup = (next: Map<string, number>): void => {
    for (const name of names) {
      const wasStore = (groups.get(name) ?? 0) === 0;
      const isStore = (next.get(name) ?? 0) === 0;
      if (!wasStore && isStore) readyAt.set(name, clock.now() + BUCKET_OPERATION_TIMEOUT_MS + 2 * hopMs);
    }
    groups = next;
  };
  let leaderKilledAt: number | undefined;
  let processCounter = 0;

  const liveEntries = () => [...lives].filter(([, life]) => life.alive);
  const kill = (name: string, life: Life): void => {
    network.kill(name);
    life.alive = false;
    // the process is gone: nothing it still has scheduled may reach the network again
    track(life.transport.close());
    track(life.node.close());
  };
  const check = (): void => {
    const now = clock.now();
    for (const reason of crashed.splice(0))
      violate(`a rejection nobody handled (it would end a node's process): ${String(reason)}`);
    const live = liveEntries();
    for (const [name, life] of live) {
      const incarnation = life.node.self.incarnation;
      if (incarnation < (lastIncarnation.get(name) ?? 0))
        violate(
          `${name}'s incarnation went from ${lastIncarnation.get(name)} to ${incarnation} at ${now} ms`,
        );
      lastIncarnation.set(name, incarnation);
    }
    const leaders = live.filter(([, life]) => life.node.isLeader).map(([name]) => name);
    if (leaders.length > 1) violate(`${leaders.join(' and ')} both lead at ${now} ms`);
    if (leaders.length > 0) {
      lastLeaderAt = now;
      if (leaderKilledAt !== undefined) {
        coverage.hit('leader-replaced');
        leaderKilledAt = undefined;
      }
      return;
    }
    const ready = live
      .filter(([name]) => (groups.get(name) ?? 0) === 0)
      .map(([name]) => readyAt.get(name) ?? 0)
      .filter((at) => at <= now);
    if (ready.length === 0) return;
    const since = Math.max(lastLeaderAt, Math.min(...ready));
    if (now - since > replaceWithinMs)
      violate(
        `no leader at ${now} ms, ${now - since} ms after the last one (or the last change) though the store side has live nodes; the bound is ${replaceWithinMs} ms`,
      );
  };
  const fail = (): void => {
    if (violations.length > 0) throw violations[0];
  };
  const track = (work: Promise<unknown>): void => {
    const tracked = work.catch(() => {}).finally(() => pending.delete(tracked));
    pending.add(tracked);
  };

  const start = async (name: string): Promise<void> => {
    const transport = network.transport(name);
    const held = new Map<string, string>();
    const lostNames = new Set<string>();
    const quarantinedAt: number[] = [];
    const started = await settle(
      clock,
      ClusterNode.start({
        name,
        transport,
        clock,
        leaseMs: LEASE_MS,
        onMalformed: (subject, detail) => violate(`malformed message on ${subject}: ${detail}`),
        onNameLost: (lostName) => {
          coverage.hit('name-lost-after-partition');
          held.delete(lostName);
          lostNames.add(lostName);
        },
      }),
      check,
    ).then(
      (node) => node,
      (error) => {
        // a node started off the store side cannot allocate its incarnation: it stays down
        if (!isClusterError(error, 'not_connected')) throw error;
        coverage.hit('start-not-connected');
        network.kill(name);
        return undefined;
      },
    );
    if (started === undefined) return;
    const node = started;
    const previous = lastIncarnation.get(name) ?? 0;
    if (node.self.incarnation <= previous)
      violate(`${name} restarted as incarnation ${node.self.incarnation}, not above ${previous}`);
    if (previous > 0) coverage.hit('restart-incarnation-grew');
    node.monitorNodes((event) => {
      if (event.kind === 'quarantined') {
        coverage.hit('quarantined-rejoin');
        quarantinedAt.push(clock.now());
        // the rejoin: an incarnation (two round trips), then a check of each name held
        readyAt.set(name, Math.max(readyAt.get(name) ?? 0, clock.now() + (4 + 4 * held.size) * hopMs));
      }
    });
    lives.set(name, {
      node,
      transport,
      alive: true,
      held,
      lostNames,
      unregisterFailed: new Set(),
      quarantinedAt,
    });
    readyAt.set(name, clock.now());
  };

  for (const name of names) await start(name);
  await runFor(clock, 1000, check);
  fail();

  const steps = between(6, 12);
  for (let step = 0; step < steps; step++) {
    const live = liveEntries();
    const action = random.nextInt(6);
    if (action === 0 && live.length > 1) {
      // kill: half the time the leader, if there is one
      const leader = live.find(([, life]) => life.node.isLeader);
      const [name, life] =
        leader !== undefined && random.chance(0.5) ? leader : live[random.nextInt(live.length)];
      if (life.node.isLeader) {
        coverage.hit('leader-killed');
        leaderKilledAt = clock.now();
      }
      if (life.held.size > 0) coverage.hit('holder-killed');
      kill(name, life);
    } else if (action === 1) {
      const dead = names.filter((name) => lives.get(name)?.alive !== true);
      if (dead.length > 0) await start(dead[random.nextInt(dead.length)]);
    } else if (action === 2) {
      const shuffled = [...names].sort(() => random.next() - 0.5);
      const cut = between(1, names.length - 1);
      const side = [shuffled.slice(0, cut), shuffled.slice(cut)];
      network.partition(side);
      regroup(new Map(side.flatMap((members, index) => members.map((name) => [name, index] as const))));
      coverage.hit('partition');
    } else if (action === 3) {
      network.heal();
      regroup(new Map());
      coverage.hit('heal');
    } else if (action === 4 && live.length > 0) {
      const [, life] = live[random.nextInt(live.length)];
      const globalName = GLOBAL_NAMES[random.nextInt(GLOBAL_NAMES.length)];
      const pid = `<0.${++processCounter}.0>`;
      track(
        life.node.registerGlobal(globalName, pid).then(
          () => {
            coverage.hit('name-registered');
            life.held.set(globalName, pid);
          },
          (error) => {
            if (isAlreadyRegistered(error)) coverage.hit('name-conflict');
            else if (isClusterError(error, 'not_connected')) coverage.hit('name-not-connected');
            else violate(`registerGlobal failed with ${String(error)}`);
          },
        ),
      );
    } else if (action === 5 && live.length > 0) {
      const [, life] = live[random.nextInt(live.length)];
      const held = [...life.held.keys()];
      if (held.length > 0) {
        const chosen = held[random.nextInt(held.length)];
        const pid = life.held.get(chosen)!;
        life.held.delete(chosen);
        life.lostNames.delete(chosen);
        track(
          life.node.unregisterGlobal(chosen).then(
            (was) => {
              if (!was)
                violate(`${chosen} was acknowledged to its holder, yet unregisterGlobal found it not held`);
            },
            (error) => {
              if (!isClusterError(error, 'not_connected'))
                violate(`unregisterGlobal failed with ${String(error)}`);
              // not released: the node still holds the name (unless a rejoin lost it meanwhile)
              else if (!life.lostNames.has(chosen)) {
                coverage.hit('unregister-not-connected');
                life.held.set(chosen, pid);
                life.unregisterFailed.add(chosen);
              }
            },
          ),
        );
      }
    }
    await runFor(clock, between(50, 1500), check);
    fail();
  }

  network.heal();
  regroup(new Map());
  for (let t = 0; pending.size > 0 && t < 30_000; t++) await runFor(clock, 1, check);
  await runFor(clock, QUIET_MS, check);
  fail();
  // a failed unregister left the name held: once healed, a retry releases it
  for (const [name, life] of liveEntries()) {
    for (const globalName of life.unregisterFailed) {
      if (!life.held.has(globalName)) continue;
      const released = await settle(clock, life.node.unregisterGlobal(globalName), check).catch(
        (error) => `failed: ${String(error)}`,
      );
      if (released !== true)
        violate(
          `${name}'s retry of unregisterGlobal('${globalName}') answered ${String(released)}, not true`,
        );
      else coverage.hit('unregister-retried');
      life.held.delete(globalName);
    }
  }
  fail();
  await checkNames(context, network, lives, check);
  fail();
}

/**
 * The final check, once healed and quiet. The names bucket, read raw by an observer: a record of
 * a live node's current incarnation must be a name that node was told it holds; a record of a
 * down incarnation may stay (its purge was sent by nodes that could not reach the store) but no
 * live node may report it (`whereisGlobal` is undefined). Every live node must answer
 * `whereisGlobal` with the live record; every name a live node was told it holds must be
 * recorded for it (a node declared down learns it, by a quarantine notice or its own down
 * mark, and revalidates its names).
 */
async function checkNames(
  context: SimulationContext,
  network: SimulatedNetwork,
  lives: Map<string, Life>,
  check: () => void,
): Promise<void> {
  const { clock, coverage } = context;
  const observer = network.transport('observer');
  const bucket = await settle(clock, observer.openBucket('zbmd_zbmd_names'), check);
  const keys = await settle(clock, bucket.keys(), check);
  /** name -> 'node#incarnation:process' of its live holder. */
  const recorded = new Map<string, string>();
  for (const key of keys) {
    if (!key.startsWith('n.')) continue;
    const entry = await settle(clock, bucket.get(key), check);
    if (entry === undefined) continue;
    const name = Buffer.from(key.slice(2), 'base64url').toString('utf8');
    const holder = unpack(entry.value) as { node: string; incarnation: number; process: string };
    const life = lives.get(holder.node);
    if (life === undefined || !life.alive || life.node.self.incarnation !== holder.incarnation) {
      coverage.hit('down-record-hidden');
      continue;
    }
    if (life.held.get(name) !== holder.process)
      throw new InvariantViolation(
        SCENARIO,
        `'${name}' is recorded for ${holder.process} on ${holder.node}#${holder.incarnation}, which was not told it holds it (it holds ${life.held.get(name) ?? 'nothing'} under that name)`,
      );
    recorded.set(name, `${holder.node}#${holder.incarnation}:${holder.process}`);
  }
  for (const [node, life] of lives) {
    if (!life.alive) continue;
    for (const name of GLOBAL_NAMES) {
      const found = await settle(clock, life.node.whereisGlobal(name), check);
      const seen = found === undefined ? undefined : `${found.node}#${found.incarnation}:${found.process}`;
      if (seen !== recorded.get(name))
        throw new InvariantViolation(
          SCENARIO,
          `${node} finds '${name}' held by ${seen ?? 'nobody'}; the live record is ${recorded.get(name) ?? 'none'}`,
        );
    }
    const self = `${node}#${life.node.self.incarnation}`;
    for (const [name, process] of life.held) {
      if (recorded.get(name) === `${self}:${process}`) continue;
      throw new InvariantViolation(
        SCENARIO,
        `${self} was told it holds '${name}' for ${process}, but the cluster records ${recorded.get(name) ?? 'no holder'}`,
      );
    }
  }
  coverage.hit('names-consistent');
}

export const CLUSTER_SCENARIOS: readonly Scenario[] = [
  {
    name: SCENARIO,
    description:
      '3-5 cluster nodes on the simulated network under kills, restarts, partitions, heals and delays: one leader at most, a new one in bounded time, global names with one holder, incarnations growing',
    faults: {},
    run: clusterScenarioWith(),
    // also hit, not declared (about one seed in 75, too rare for the 40-seed coverage check):
    // 'unregister-not-connected' and 'unregister-retried', a failed unregister and its retry
    branches: [
      'leader-killed',
      'leader-replaced',
      'restart-incarnation-grew',
      'start-not-connected',
      'partition',
      'heal',
      'quarantined-rejoin',
      'name-registered',
      'name-conflict',
      'name-not-connected',
      'name-lost-after-partition',
      'holder-killed',
      'down-record-hidden',
      'names-consistent',
    ],
  },
];
