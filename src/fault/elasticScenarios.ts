/**
 * Elastic data-parallel training under worker and leader losses, without processes or NATS: the
 * real replicas and shard math (`ml/elastic/ShardedReplica.ts`, `shardMath.ts`) driven by a
 * simulated job that plays the protocol of `ElasticWorker.ts` (assign, parts, commit, sync,
 * state transfer) one message at a time. Each message delivered is one `actor_crash` decision,
 * so a failing seed shrinks: the crash takes a random live worker, the leader included.
 *
 * - A worker lost mid-step: its parts not yet received are discarded, its shards not yet covered
 *   go to the members left (`assignShards` over them), and a part it sent before dying may still
 *   arrive late (dropped when its shards are covered).
 * - The leader lost before its commit: a new term, and the step in flight is redone from scratch.
 * - The leader lost while broadcasting its commit: some replicas are one step ahead. A new
 *   leader that heard the commit either sends it again to everyone (a replica that applied it
 *   must ignore it) or sends its state to those behind.
 * - Joins at step boundaries: a new replica is given the leader's state.
 *
 * The oracle: at the end every live replica holds the weights, optimizer state and losses of the
 * single-process reference (`runShardedReference`) bit for bit, every replica applied each step
 * at most once, and the lineage audit finds no step lost or repeated.
 */
import type { Random } from '../actor/Random.js';
import { InMemoryDataset } from '../ml/data/Dataset.js';
import { runShardedReference } from '../ml/elastic/reference.js';
import { type ReplicaSpec, type ReplicaState, ShardedReplica } from '../ml/elastic/ShardedReplica.js';
import {
  assignShards,
  coveringNodes,
  nodeKey,
  reduceNumbers,
  reduceTree,
  type TreeNode,
  treeComplete,
} from '../ml/elastic/shardMath.js';
import { buildMlp } from '../ml/training/models.js';
import type { OptimizerName, TrainingData } from '../ml/training/TrainingConfig.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const SCENARIO = 'elastic';
const WORKERS_MAX = 4;
const JOIN_CHANCE = 0.25;
const LATE_PART_CHANCE = 0.5;
/** Attempts at steps (redone ones included) per planned step before the run counts as stuck. */
const ATTEMPTS_PER_STEP_MAX = 10;

function fail(invariant: string): never {
  throw new InvariantViolation(SCENARIO, invariant);
}

/** A tiny classification run: a few features and classes, a few steps, any optimizer. */
function tinyRun(random: Random): { spec: ReplicaSpec; data: TrainingData } {
  const between = (low: number, high: number) => low + random.nextInt(high - low + 1);
  const features = between(2, 5);
  const classes = between(2, 4);
  const samples = (length: number) =>
    new InMemoryDataset({
      features: Float32Array.from({ length: length * features }, () => Math.round(random.next() * 64) / 16),
      labels: Int32Array.from({ length }, () => random.nextInt(classes)),
      featureShape: [features],
      numClasses: classes,
    });
  const data = { train: samples(between(5, 24)), test: samples(4), name: 'in-memory' };
  const optimizer = (['sgd', 'adam', 'adamw'] as const)[random.nextInt(3)] as OptimizerName;
  const spec: ReplicaSpec = {
    model: 'mlp',
    factory: buildMlp,
    optimizer,
    learningRate: optimizer === 'sgd' ? 0.05 : 0.01,
    batchSize: between(2, 9),
    shards: between(1, 8),
    seed: random.nextInt(1_000),
    shuffle: random.next() < 0.5,
    plannedSteps: between(3, 9),
  };
  return { spec, data };
}

interface PendingPart {
  readonly worker: string;
  readonly node: TreeNode;
  /** A part sent by a worker that died since (its replica still computes the same bits). */
  readonly late: boolean;
}

interface InFlight {
  readonly step: number;
  readonly owners: string[];
  readonly covered: Set<number>;
  readonly parts: Map<string, Float32Array>;
  readonly losses: Map<string, number>;
  readonly queue: PendingPart[];
}

/** The job: live members with their replicas, the leader, and the applies each replica made. */
class SimulatedJob {
  readonly members = new Map<string, ShardedReplica>();
  /** Every replica ever started (the dead ones still compute a late part). */
  readonly replicas = new Map<string, ShardedReplica>();
  readonly applies = new Map<string, Int32Array>();
  leader = '';
  term = 1;
  #named = 0;

  constructor(
    readonly spec: ReplicaSpec,
    readonly data: TrainingData,
    readonly context: SimulationContext,
    workers: number,
  ) {
    for (let index = 0; index < workers; index++) this.#start();
    this.leader = this.#sorted()[0];
  }

  get step(): number {
    return this.members.get(this.leader)!.step;
  }

  #start(state?: ReplicaState): string {
    const name = `w${++this.#named}`;
    const replica = new ShardedReplica(this.spec, this.data);
    if (state !== undefined) replica.importState(state);
    this.members.set(name, replica);
    this.replicas.set(name, replica);
    this.applies.set(name, new Int32Array(this.spec.plannedSteps));
    return name;
  }

  #sorted(): string[] {
    return [...this.members.keys()].sort();
  }

  #pick<T>(values: readonly T[]): T {
    return values[this.context.random.nextInt(values.length)];
  }

  /** One `actor_crash` decision per message; returns the worker lost, if any (never the last one). */
  #crash(): string | undefined {
    if (this.members.size < 2 || !this.context.faults.shouldCrashActor()) return undefined;
    const victim = this.#pick(this.#sorted());
    this.members.delete(victim);
    return victim;
  }

  #apply(name: string, step: number, gradient: Float32Array, loss: number): boolean {
    const applied = this.members.get(name)!.apply(step, gradient, loss);
    if (!applied) return false;
    const counts = this.applies.get(name)!;
    if (++counts[step] > 1) fail(`step ${step} was applied ${counts[step]} times by ${name}`);
    return true;
  }

  /** A step attempt: assignment, parts (with losses), commit. Returns when it ends or is abandoned. */
  runStep(): void {
    const { coverage, random } = this.context;
    if (this.members.size < WORKERS_MAX && random.next() < JOIN_CHANCE) {
      this.#start(this.members.get(this.leader)!.exportState());
      coverage.hit('join');
    }
    const step = this.step;
    for (const [name, replica] of this.members)
      if (replica.step !== step) fail(`${name} is at step ${replica.step} at the boundary of step ${step}`);
    const owners = assignShards(this.spec.shards, this.#sorted());
    const inflight: InFlight = {
      step,
      owners,
      covered: new Set(),
      parts: new Map(),
      losses: new Map(),
      queue: [],
    };
    this.#queueParts(inflight, [...owners.keys()]);
    let faulted = false;
    while (inflight.queue.length > 0) {
      const lost = this.#crash();
      if (lost === this.leader) {
        this.#leaderLost();
        return;
      }
      if (lost !== undefined) {
        faulted = true;
        this.#workerLost(inflight, lost);
      }
      // The loss may have emptied the queue (its parts were the last, and all its shards covered).
      const part = inflight.queue.shift();
      if (part !== undefined) this.#deliver(inflight, part);
    }
    if (!treeComplete(this.spec.shards, new Set(inflight.parts.keys())))
      fail(`step ${step}: the parts [${[...inflight.parts.keys()].join(', ')}] do not cover the tree`);
    const gradient = reduceTree(this.spec.shards, inflight.parts)!;
    const loss = reduceNumbers(this.spec.shards, inflight.losses);
    if (this.#commit(step, gradient, loss)) faulted = true;
    if (!faulted) coverage.hit('clean-step');
  }

  /** Queues, in a seeded order, the parts the owners of `shards` send (their covering subtrees). */
  #queueParts(inflight: InFlight, shards: readonly number[]): void {
    const held = new Map<string, Set<number>>();
    for (const shard of shards) {
      const owner = inflight.owners[shard];
      if (!this.members.has(owner))
        fail(`shard ${shard} of step ${inflight.step} went to '${owner}', no member`);
      if (!held.has(owner)) held.set(owner, new Set());
      held.get(owner)!.add(shard);
    }
    for (const [worker, mine] of held)
      for (const node of coveringNodes(this.spec.shards, mine)) {
        const at = this.context.random.nextInt(inflight.queue.length + 1);
        inflight.queue.splice(at, 0, { worker, node, late: false });
      }
  }

  /** A worker lost mid-step: its parts not received are gone, its uncovered shards reassigned. */
  #workerLost(inflight: InFlight, lost: string): void {
    const { coverage, random } = this.context;
    coverage.hit('worker-lost-mid-step');
    const sent = inflight.queue.filter((part) => part.worker === lost);
    inflight.queue.splice(0, inflight.queue.length, ...inflight.queue.filter((part) => part.worker !== lost));
    const missing = [...inflight.owners.keys()].filter(
      (shard) => inflight.owners[shard] === lost && !inflight.covered.has(shard),
    );
    if (missing.length === 0) return;
    coverage.hit('reassigned');
    const owners = assignShards(missing.length, this.#sorted());
    missing.forEach((shard, index) => {
      inflight.owners[shard] = owners[index];
    });
    this.#queueParts(inflight, missing);
    if (sent.length > 0 && random.next() < LATE_PART_CHANCE)
      inflight.queue.splice(random.nextInt(inflight.queue.length + 1), 0, { ...sent[0], late: true });
  }

  /** The leader adds a part unless one of its shards is covered already (a duplicate). */
  #deliver(inflight: InFlight, part: PendingPart): void {
    const { coverage } = this.context;
    const { node } = part;
    const replica = part.late ? this.replicas.get(part.worker)! : this.members.get(part.worker);
    if (replica === undefined) return;
    const { gradient, loss } = replica.computeNode(inflight.step, node);
    if (node.hi - node.lo >= 3) coverage.hit('subtree-part');
    for (let shard = node.lo; shard < node.hi; shard++)
      if (inflight.covered.has(shard)) {
        coverage.hit(part.late ? 'late-part-dropped' : 'duplicate-part-dropped');
        return;
      }
    if (part.late) coverage.hit('late-part-used');
    for (let shard = node.lo; shard < node.hi; shard++) inflight.covered.add(shard);
    inflight.parts.set(nodeKey(node), gradient);
    inflight.losses.set(nodeKey(node), loss);
  }

  /** The leader lost before it committed: a new term, and the step is redone by the members left. */
  #leaderLost(): void {
    this.context.coverage.hit('leader-lost');
    this.context.coverage.hit('step-redone');
    this.term++;
    this.leader = this.#pick(this.#sorted());
  }

  /** Broadcasts the commit, then applies it at the leader. Returns true when a fault hit it. */
  #commit(step: number, gradient: Float32Array, loss: number): boolean {
    const { coverage, random } = this.context;
    const followers = this.#sorted().filter((name) => name !== this.leader);
    let faulted = false;
    while (followers.length > 0) {
      const next = followers.splice(random.nextInt(followers.length), 1)[0];
      const lost = this.#crash();
      if (lost === this.leader) {
        this.#leaderLostAtCommit(step, gradient, loss);
        return true;
      }
      if (lost !== undefined) {
        faulted = true;
        coverage.hit('worker-lost-at-commit');
        followers.splice(0, followers.length, ...followers.filter((name) => name !== lost));
      }
      if (this.members.has(next)) this.#apply(next, step, gradient, loss);
    }
    this.#apply(this.leader, step, gradient, loss);
    return faulted;
  }

  /**
   * The leader lost while broadcasting its commit. Nobody heard it: the step is redone. Else a
   * member that heard it leads; it sends the commit again to all, or its state to those behind.
   */
  #leaderLostAtCommit(step: number, gradient: Float32Array, loss: number): void {
    const { coverage, random } = this.context;
    const ahead = this.#sorted().filter((name) => this.members.get(name)!.step === step + 1);
    if (ahead.length === 0) {
      this.#leaderLost();
      return;
    }
    coverage.hit('leader-lost-at-commit');
    this.term++;
    this.leader = this.#pick(ahead);
    if (random.next() < 0.5) {
      coverage.hit('commit-heard-twice');
      for (const name of this.#sorted()) this.#apply(name, step, gradient, loss);
      return;
    }
    coverage.hit('state-transfer');
    const state = this.members.get(this.leader)!.exportState();
    for (const [, replica] of this.members) if (replica.step === step) replica.importState(state);
  }
}

function sameBits(left: ArrayBufferView, right: ArrayBufferView): boolean {
  const a = new Uint8Array(left.buffer, left.byteOffset, left.byteLength);
  const b = new Uint8Array(right.buffer, right.byteOffset, right.byteLength);
  return a.length === b.length && a.every((value, index) => value === b[index]);
}

/** The replica's state against the reference's, bit for bit; returns what differs. */
function differences(state: ReplicaState, reference: ReplicaState): string[] {
  const found: string[] = [];
  if (state.step !== reference.step) found.push(`step ${state.step}, reference ${reference.step}`);
  state.weights.forEach((weights, index) => {
    if (!sameBits(weights, reference.weights[index])) found.push(`weights of parameter ${index}`);
  });
  for (const [name, buffers] of Object.entries(reference.slots))
    buffers.forEach((buffer, index) => {
      const mine = state.slots[name]?.[index];
      if (mine === undefined || !sameBits(mine, buffer)) found.push(`optimizer slot ${name}[${index}]`);
    });
  if (state.optimizerStepCount !== reference.optimizerStepCount)
    found.push(`optimizer step count ${state.optimizerStepCount}, reference ${reference.optimizerStepCount}`);
  if (!sameBits(state.losses, reference.losses)) found.push('step losses');
  return found;
}

async function elasticScenario(context: SimulationContext): Promise<void> {
  const { spec, data } = tinyRun(context.random);
  const reference = runShardedReference(spec, data, { evaluateEachEpoch: false }).replica.exportState();
  const job = new SimulatedJob(spec, data, context, 2 + context.random.nextInt(3));
  const attemptsMax = spec.plannedSteps * ATTEMPTS_PER_STEP_MAX;
  for (let attempt = 0; job.step < spec.plannedSteps; attempt++) {
    if (attempt === attemptsMax) fail(`no progress: at step ${job.step} after ${attempt} attempts`);
    job.runStep();
  }
  for (const [name, replica] of job.members) {
    const found = differences(replica.exportState(), reference);
    if (found.length > 0)
      fail(
        `${name} differs from the reference (shards ${spec.shards}, ${spec.optimizer}): ${found.join('; ')}`,
      );
    const audit = replica.audit();
    if (audit.lostSteps !== 0 || audit.repeatedSteps !== 0 || audit.appliedSteps !== spec.plannedSteps)
      fail(
        `${name}'s lineage: ${audit.appliedSteps} of ${spec.plannedSteps} steps applied, ${audit.lostSteps} lost, ${audit.repeatedSteps} repeated`,
      );
  }
}

export const ELASTIC_SCENARIOS: readonly Scenario[] = [
  {
    name: SCENARIO,
    description:
      'sharded data-parallel steps on 2-4 simulated workers with workers and leaders lost mid-step and joins: weights and optimizer state equal to the reference, each step applied once',
    faults: { actorCrashRate: 0.12 },
    run: elasticScenario,
    branches: [
      'clean-step',
      'worker-lost-mid-step',
      'reassigned',
      'late-part-used',
      'late-part-dropped',
      'duplicate-part-dropped',
      'worker-lost-at-commit',
      'leader-lost',
      'step-redone',
      'leader-lost-at-commit',
      'commit-heard-twice',
      'state-transfer',
      'join',
      'subtree-part',
    ],
  },
];
