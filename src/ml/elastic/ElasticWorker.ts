/**
 * One worker of an elastic data-parallel job: a cluster node (membership, leader election) with
 * a model replica. Every worker can lead; the elected leader coordinates the steps:
 *
 * 1. On election it broadcasts `sync`; every worker answers with its status (step, admitted).
 *    If a worker is ahead of the new leader, or the leader holds no state yet, the leader asks
 *    the most advanced worker to upload its state. With nobody holding state (a fresh job, or
 *    every worker lost) it starts from the last checkpoint in the job's directory, else from the
 *    seed. Workers behind are sent the state, so every member starts the step at the same step.
 * 2. Each step: `assign` (owner of each shard), each worker computes its shards and sends the
 *    sums of the largest subtrees of the reduction tree it holds; the leader adds the parts by
 *    the tree, broadcasts `commit` (the step's summed gradient, chunked) and applies it itself.
 *    Every replica applies step s once (`ShardedReplica.apply` refuses any other step), so a
 *    commit heard twice changes nothing and a step is never skipped.
 * 3. A member's nodedown (or a status saying it fell behind) mid-step: its missing shards are
 *    assigned to the others at once, and the step completes. A step whose parts have not all
 *    come after `stepTimeoutMs` is finished by the leader itself.
 * 4. Workers that announce themselves (`hello`) are sent the state at the next step boundary
 *    and take shards from the step after.
 *
 * Terms (the leader lease's revision) fence old leaders: a worker ignores messages of a term
 * older than the newest it has seen.
 */
import { ClusterNode } from '../../cluster/ClusterNode.js';
import type { NodeEvent } from '../../cluster/Membership.js';
import { NatsTransport } from '../../cluster/NatsTransport.js';
import { setBlasThreads } from '../internal/blas.js';
import { evaluateAccuracy } from '../train.js';
import { readCheckpoint, readManifest, writeCheckpoint } from '../training/checkpointFiles.js';
import { TrainingError } from '../training/errors.js';
import { loadTrainingData } from '../training/trainingData.js';
import { checkJobSpec, type JobSpec, replicaSpecOf } from './jobSpec.js';
import {
  Assembly,
  bytesOf,
  CHUNK_HEADROOM_BYTES,
  chunksOf,
  decode,
  decodeState,
  encode,
  encodeState,
  floatsOf,
  type Message,
  subjects,
} from './protocol.js';
import { ShardedReplica } from './ShardedReplica.js';
import {
  assignShards,
  coveringNodes,
  nodeKey,
  reduceNumbers,
  reduceTree,
  type TreeNode,
  treeComplete,
} from './shardMath.js';

/** Parameters as one byte string (msgpack list of F32 byte strings). */
export function encodeWeights(parameters: readonly Float32Array[]): Uint8Array {
  return encode({ t: 'weights', weights: parameters.map(bytesOf) });
}

export function decodeWeights(bytes: Uint8Array): Float32Array[] {
  const message = decode(bytes);
  return ((message?.weights as Uint8Array[] | undefined) ?? []).map(floatsOf);
}

/** The job's KV bucket and the key of its spec. */
export function jobBucketName(cluster: string): string {
  return `zbmd_${cluster}_dpjob`;
}
export const JOB_SPEC_KEY = 'spec';

/** The global name the leader holds (`ClusterNode.whereisGlobal` finds the coordinator by it). */
export const COORDINATOR_NAME = 'dp-coordinator';

/** How long a new leader waits for the workers' statuses. */
export const SYNC_WAIT_MS = 1_000;
/** How long a new leader waits for a state it asked a worker to upload. */
export const UPLOAD_WAIT_MS = 5_000;
/** A fresh job's first leader waits up to this long for the workers it was started with. */
export const START_WAIT_MS = 20_000;
/** A worker that hears nothing on the job's broadcast subject for this long gives up (the job is gone). */
export const WORKER_SILENCE_MS = 30_000;
/** A worker not yet admitted says hello this often. */
export const HELLO_EVERY_MS = 500;

export interface WorkerOptions {
  readonly nats: string | readonly string[];
  readonly name: string;
  /** The job's cluster name (subjects and buckets); default 'zbmd-dp'. */
  readonly cluster?: string;
  /** Workers a fresh job waits for before its first step (default: start with whoever is there). */
  readonly initialWorkers?: number;
  /** Told of what this worker does (joins, leads, recovers). */
  readonly log?: (line: string) => void;
}

/** What the job ends with (the leader's figures, broadcast to everyone). */
export interface JobResult {
  readonly steps: number;
  readonly loss: number;
  readonly weightsSha256: string;
  readonly lostSteps: number;
  readonly repeatedSteps: number;
  readonly finalTestAccuracy: number;
  readonly leader: string;
  readonly shards: number;
  readonly gradientBytes: number;
  readonly epochs: { epoch: number; meanLoss: number; steps: number }[];
}

export interface WorkerOutcome {
  readonly name: string;
  /** This worker's replica of the model (the job's final weights). */
  readonly module: import('../nn/Module.js').Module;
  readonly result: JobResult;
  readonly ledAtEnd: boolean;
}

class LostLeadership extends Error {}
class Resync extends Error {}

interface InFlight {
  readonly step: number;
  owners: string[];
  readonly parts: Map<string, Float32Array>;
  readonly losses: Map<string, number>;
  readonly covered: Set<number>;
  /** Part transfers in progress, by sender, step and node. */
  readonly assemblies: Map<string, Assembly>;
  /** Time the leader spent computing its own shards in this step. */
  computeMs: number;
  wake: (() => void) | undefined;
  /** Losses of members during this step: when detected, and who. */
  readonly losses_: { worker: string; cause: string; detectedMs: number; shards: number }[];
}

interface Status {
  readonly name: string;
  readonly incarnation: number;
  readonly step: number;
  readonly admitted: boolean;
  /** The last state transfer this worker took (`term:id`): a hello sent before it is stale. */
  readonly stateKey: string;
  /** The leader this worker last heard, its term, and how long ago it last saw a commit. */
  readonly leader: string;
  /** The leader before `leader` (a new leader's sync makes it `leader` before the answer). */
  readonly formerLeader: string;
  readonly term: number;
  readonly sinceCommitMs: number;
}

export class ElasticWorker {
  readonly name: string;
  readonly cluster: string;
  #transport!: NatsTransport;
  #node!: ClusterNode;
  #spec!: JobSpec;
  #replica!: ShardedReplica;
  #admitted = false;
  #stateKey = '';
  #term = 0;
  #leaderName: string | undefined;
  #formerLeader: string | undefined;
  #lastCommitMs = performance.now();
  #stateAssemblies = new Map<string, Assembly>();
  #commitAssemblies = new Map<string, Assembly>();
  #computed = new Map<string, Set<number>>();
  #unsubscribe: (() => void)[] = [];
  #helloTimer: NodeJS.Timeout | undefined;
  #finished = false;
  #outcome: { resolve: (outcome: WorkerOutcome) => void; reject: (error: unknown) => void } | undefined;
  #leading: LeaderRun | undefined;
  #everLed = false;
  readonly #log: (line: string) => void;

  private constructor(readonly options: WorkerOptions) {
    this.name = options.name;
    this.cluster = options.cluster ?? 'zbmd-dp';
    this.#log = options.log ?? (() => undefined);
  }

  /** Connects, reads the job's spec, loads the data, joins the cluster; resolves when the job is done. */
  static async run(options: WorkerOptions): Promise<WorkerOutcome> {
    const worker = new ElasticWorker(options);
    return worker.#run();
  }

  get replica(): ShardedReplica {
    return this.#replica;
  }

  get spec(): JobSpec {
    return this.#spec;
  }

  get transport(): NatsTransport {
    return this.#transport;
  }

  get node(): ClusterNode {
    return this.#node;
  }

  get admitted(): boolean {
    return this.#admitted;
  }

  set admitted(value: boolean) {
    this.#admitted = value;
  }

  get term(): number {
    return this.#term;
  }

  get lastCommitMs(): number {
    return this.#lastCommitMs;
  }

  get chunkBytes(): number {
    return this.#transport.maxPayloadBytes - CHUNK_HEADROOM_BYTES;
  }

  log(line: string): void {
    this.#log(line);
  }

  async #run(): Promise<WorkerOutcome> {
    this.#transport = await NatsTransport.connect({
      servers: this.options.nats,
      name: `zbmd worker ${this.name}`,
    });
    try {
      const bucket = await this.#transport.openBucket(jobBucketName(this.cluster));
      const entry = await bucket.get(JOB_SPEC_KEY);
      if (entry === undefined)
        throw new TrainingError(
          'invalid_config',
          `no job runs on cluster ${this.cluster} (no spec in ${jobBucketName(this.cluster)})`,
        );
      this.#spec = checkJobSpec(JSON.parse(new TextDecoder().decode(entry.value)));
      setBlasThreads(this.#spec.blasThreads);
      const data = await loadTrainingData(this.#spec.data);
      this.#replica = new ShardedReplica(replicaSpecOf(this.#spec, data.train.length), data);
      const done = new Promise<WorkerOutcome>((resolve, reject) => (this.#outcome = { resolve, reject }));
      this.#subscribe();
      this.#node = await ClusterNode.start({
        name: this.name,
        cluster: this.cluster,
        transport: this.#transport,
        leaseMs: this.#spec.leaseMs,
        onMalformed: () => undefined,
      });
      this.#node.monitorNodes((event) => this.#onNodeEvent(event));
      this.#node.onLeader((term) => this.#startLeading(term));
      this.#node.onFollower(() => this.#leading?.abort());
      this.#sayHello();
      this.#helloTimer = setInterval(() => {
        if (!this.#admitted) this.#sayHello();
        if (performance.now() - this.#lastHeardMs > WORKER_SILENCE_MS) {
          this.#fail(
            new TrainingError(
              'supervisor_gave_up',
              `worker ${this.name}: nothing heard from the job for ${WORKER_SILENCE_MS} ms (is it over, or its server gone?)`,
            ),
          );
        }
      }, HELLO_EVERY_MS);
      return await done;
    } finally {
      clearInterval(this.#helloTimer);
      for (const unsubscribe of this.#unsubscribe) unsubscribe();
      await this.#node?.close().catch(() => undefined);
      await this.#transport.close().catch(() => undefined);
    }
  }

  #subscribe(): void {
    const names = subjects(this.cluster);
    this.#unsubscribe.push(
      this.#transport.subscribe(names.bcast, (data) => this.#guard(() => this.#onBroadcast(data))),
      this.#transport.subscribe(names.hello, (data) =>
        this.#guard(() => {
          const message = decode(data);
          if (message?.t === 'hello') this.#leading?.onHello(message as unknown as Status);
        }),
      ),
      this.#transport.subscribe(names.up(this.name), (data) =>
        this.#guard(() => {
          const message = decode(data);
          if (message !== undefined) this.#leading?.onUp(message);
        }),
      ),
    );
  }

  /** A failure while handling a message ends this worker with it (the others go on). */
  #guard(handler: () => void): void {
    if (this.#finished) return;
    try {
      handler();
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#leading?.abort();
    this.#outcome?.reject(error);
  }

  #finish(result: JobResult): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#leading?.abort();
    this.#outcome?.resolve({
      name: this.name,
      module: this.#replica.module,
      result,
      ledAtEnd: result.leader === this.name,
    });
  }

  status(): Status {
    return {
      name: this.name,
      incarnation: this.#node?.self.incarnation ?? 0,
      step: this.#replica.step,
      admitted: this.#admitted,
      stateKey: this.#stateKey,
      leader: this.#leaderName ?? '',
      formerLeader: this.#formerLeader ?? '',
      term: this.#term,
      sinceCommitMs: performance.now() - this.#lastCommitMs,
    };
  }

  #sayHello(): void {
    this.#transport.publish(subjects(this.cluster).hello, encode({ t: 'hello', ...this.status() }));
  }

  #seeTerm(term: unknown, leader: unknown): boolean {
    if (typeof term !== 'number' || term < this.#term) return false;
    if (term > this.#term) {
      this.#term = term;
      this.#commitAssemblies.clear();
    }
    if (typeof leader === 'string' && leader !== this.#leaderName) {
      this.#formerLeader = this.#leaderName;
      this.#leaderName = leader;
    }
    return true;
  }

  #lastHeardMs = performance.now();

  #onBroadcast(data: Uint8Array): void {
    this.#lastHeardMs = performance.now();
    const message = decode(data);
    if (message === undefined) return;
    if (message.t === 'done') {
      this.#finish(message.result as JobResult);
      return;
    }
    if (!this.#seeTerm(message.term, message.leader)) return;
    // The leader acts on its own broadcasts directly.
    if (this.#leaderName === this.name && this.#leading !== undefined) return;
    switch (message.t) {
      case 'sync':
        this.#sayHello();
        return;
      case 'assign':
        this.#onAssign(message);
        return;
      case 'commit':
        this.#onCommit(message);
        return;
      case 'state':
        this.#onState(message);
        return;
      case 'upload':
        if (message.from === this.name) this.uploadState(message.leader as string, message.term as number);
        return;
    }
  }

  #onAssign(message: Message): void {
    const step = message.step as number;
    const owners = message.owners as string[];
    if (!this.#admitted || step !== this.#replica.step) {
      this.#sayHello();
      return;
    }
    const key = `${message.term}:${step}`;
    let done = this.#computed.get(key);
    if (done === undefined) {
      this.#computed.clear();
      done = new Set();
      this.#computed.set(key, done);
    }
    const mine = new Set<number>();
    owners.forEach((owner, shard) => {
      if (owner === this.name && !done.has(shard)) mine.add(shard);
    });
    if (mine.size === 0) return;
    for (const shard of mine) done.add(shard);
    const target = subjects(this.cluster).up(message.leader as string);
    for (const node of coveringNodes(this.#spec.shards, mine)) {
      const { gradient, loss } = this.computeNode(step, node);
      this.sendChunked(
        target,
        { t: 'part', term: message.term, step, name: this.name, lo: node.lo, hi: node.hi, loss },
        bytesOf(gradient),
      );
    }
  }

  /** The sum of a subtree's shard gradients (and losses), by the tree. */
  computeNode(step: number, node: TreeNode): { gradient: Float32Array; loss: number } {
    return this.#replica.computeNode(step, node);
  }

  /** Publishes `header` with `bytes` cut into chunks (fields chunk, chunks, data added). */
  sendChunked(subject: string, header: Message, bytes: Uint8Array): void {
    const chunks = chunksOf(bytes, this.chunkBytes);
    chunks.forEach((data, chunk) => {
      this.#transport.publish(subject, encode({ ...header, chunk, chunks: chunks.length, data }));
    });
  }

  #onCommit(message: Message): void {
    const step = message.step as number;
    const key = `${message.term}:${step}`;
    let assembly = this.#commitAssemblies.get(key);
    if (assembly === undefined) {
      assembly = new Assembly(message.chunks as number);
      this.#commitAssemblies.clear();
      this.#commitAssemblies.set(key, assembly);
    }
    const whole = assembly.add(message.chunk as number, message.data as Uint8Array);
    if (whole === undefined) return;
    this.#commitAssemblies.delete(key);
    this.#lastCommitMs = performance.now();
    if (!this.#admitted) return;
    if (step === this.#replica.step) this.#replica.apply(step, floatsOf(whole), message.loss as number);
    else if (step > this.#replica.step) this.#sayHello(); // a commit was missed: ask for the state
  }

  #onState(message: Message): void {
    if (!(message.to as string[]).includes(this.name)) return;
    const key = `${message.term}:${message.id}`;
    let assembly = this.#stateAssemblies.get(key);
    if (assembly === undefined) {
      assembly = new Assembly(message.chunks as number);
      this.#stateAssemblies.clear();
      this.#stateAssemblies.set(key, assembly);
    }
    const whole = assembly.add(message.chunk as number, message.data as Uint8Array);
    if (whole === undefined) return;
    this.#stateAssemblies.delete(key);
    const state = decodeState(whole);
    if (this.#admitted && state.step < this.#replica.step) return;
    this.#replica.importState(state);
    this.#stateKey = key;
    const joined = !this.#admitted;
    this.#admitted = true;
    this.#lastCommitMs = performance.now();
    this.log(`${joined ? 'joined' : 'caught up'} at step ${state.step}`);
  }

  /** Sends this replica's state to the leader that asked for it. */
  uploadState(leader: string, term: number): void {
    if (!this.#admitted) return;
    this.sendChunked(
      subjects(this.cluster).up(leader),
      { t: 'upload', term, name: this.name, step: this.#replica.step },
      encodeState(this.#replica.exportState()),
    );
  }

  #onNodeEvent(event: NodeEvent): void {
    if (event.kind === 'nodedown')
      this.#leading?.onNodeDown(event.node.name, event.node.incarnation, event.reason);
  }

  #startLeading(term: number): void {
    if (this.#finished) return;
    this.#leading?.abort();
    const previous = this.#leaderName;
    this.#seeTerm(term, this.name);
    const run = new LeaderRun(
      this,
      term,
      previous !== undefined && previous !== this.name ? previous : undefined,
    );
    this.#leading = run;
    this.#everLed = true;
    run
      .main()
      .then((result) => {
        if (result !== undefined) this.#finish(result);
      })
      .catch((error) => {
        if (error instanceof LostLeadership) return;
        this.#fail(error);
      })
      .finally(() => {
        if (this.#leading === run) this.#leading = undefined;
      });
  }

  get everLed(): boolean {
    return this.#everLed;
  }

  get isLeader(): boolean {
    return this.#node.isLeader;
  }

  get initialWorkers(): number {
    return this.options.initialWorkers ?? 1;
  }
}

/** The leader's side of the protocol, for one term. */
class LeaderRun {
  readonly #worker: ElasticWorker;
  readonly #term: number;
  readonly #previousLeader: string | undefined;
  #aborted = false;
  readonly #members = new Map<string, number>();
  readonly #statuses = new Map<string, Status>();
  readonly #pending = new Map<string, number>();
  #inflight: InFlight | undefined;
  #wake: (() => void) | undefined;
  #uploads = new Map<string, Assembly>();
  #uploaded: { step: number; bytes: Uint8Array } | undefined;
  #resync = false;
  #persistedStep = -1;
  #stateId = 0;
  /** The state transfer (`term:id`) each worker admitted at a boundary was sent. */
  readonly #stateSent = new Map<string, string>();

  constructor(worker: ElasticWorker, term: number, previousLeader: string | undefined) {
    this.#worker = worker;
    this.#term = term;
    this.#previousLeader = previousLeader;
  }

  abort(): void {
    if (!this.#aborted && this.#holdsName)
      void this.#worker.node.unregisterGlobal(COORDINATOR_NAME).catch(() => false);
    this.#aborted = true;
    this.#wakeUp();
  }

  #holdsName = false;

  /** Registers the coordinator's global name; an old leader's registration goes once its node is down. */
  async #claimCoordinatorName(): Promise<void> {
    for (let attempt = 0; attempt < 40 && !this.#aborted; attempt++) {
      try {
        await this.#worker.node.registerGlobal(COORDINATOR_NAME, `${this.#worker.name} term ${this.#term}`);
        this.#holdsName = true;
        if (this.#aborted) await this.#worker.node.unregisterGlobal(COORDINATOR_NAME).catch(() => false);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    const inflightWake = this.#inflight?.wake;
    if (this.#inflight !== undefined) this.#inflight.wake = undefined;
    inflightWake?.();
  }

  /** Waits until `ready()` or `ms` passed or the leadership ended; re-checks after every message. */
  async #waitFor(ready: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!ready()) {
      this.#check();
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#check();
    return true;
  }

  #check(): void {
    if (this.#aborted || !this.#worker.isLeader) throw new LostLeadership('no longer leading');
  }

  #event(kind: string, fields: Record<string, unknown>): void {
    this.#worker.transport.publish(
      subjects(this.#worker.cluster).events,
      encode({ t: 'event', kind, leader: this.#worker.name, term: this.#term, ...fields }),
    );
  }

  #broadcast(message: Message): void {
    this.#worker.transport.publish(
      subjects(this.#worker.cluster).bcast,
      encode({ ...message, term: this.#term, leader: this.#worker.name }),
    );
  }

  #broadcastChunked(header: Message, bytes: Uint8Array): void {
    this.#worker.sendChunked(
      subjects(this.#worker.cluster).bcast,
      { ...header, term: this.#term, leader: this.#worker.name },
      bytes,
    );
  }

  onHello(status: Status): void {
    if (status.name === this.#worker.name) return;
    this.#statuses.set(status.name, status);
    const replica = this.#worker.replica;
    if (status.admitted && status.step > replica.step) this.#resync = true;
    const member = this.#members.get(status.name);
    // a hello a joiner sent before the state it was sent reached it
    if (member !== undefined && !status.admitted && this.#stateSent.get(status.name) !== status.stateKey)
      return;
    if (
      member !== undefined &&
      (!status.admitted || status.step !== replica.step) &&
      status.incarnation >= member
    ) {
      // A member that fell behind (a commit lost): its shards go to the others; it gets the state.
      this.#dropMember(status.name, 'fell_behind');
      this.#pending.set(status.name, status.incarnation);
    } else if (member === undefined) this.#pending.set(status.name, status.incarnation);
    this.#wakeUp();
  }

  onNodeDown(name: string, incarnation: number, reason: string): void {
    const cause = reason === 'left' ? 'worker_left' : 'worker_lost';
    const known = this.#pending.has(name) || this.#statuses.has(name);
    this.#pending.delete(name);
    this.#statuses.delete(name);
    const member = this.#members.get(name);
    if (member !== undefined && member <= incarnation) this.#dropMember(name, cause);
    else if (known && member === undefined) {
      // lost before it was admitted (or while this leader synchronized): reported all the same
      this.#event('left', { worker: name, cause, step: this.#worker.replica.step });
    }
  }

  #dropMember(name: string, cause: string): void {
    this.#members.delete(name);
    this.#event('left', { worker: name, cause, step: this.#worker.replica.step });
    this.#worker.log(`${name} left (${cause}) at step ${this.#worker.replica.step}`);
    const inflight = this.#inflight;
    if (inflight === undefined) return;
    const missing = inflight.owners
      .map((owner, shard) => (owner === name && !inflight.covered.has(shard) ? shard : -1))
      .filter((shard) => shard >= 0);
    if (missing.length === 0) return;
    inflight.losses_.push({ worker: name, cause, detectedMs: performance.now(), shards: missing.length });
    this.#reassign(inflight, missing);
  }

  /** Gives `shards` of the step in flight to the members left, and computes the leader's share. */
  #reassign(inflight: InFlight, shards: number[]): void {
    const members = [...this.#members.keys()].sort();
    const owners = assignShards(shards.length, members);
    shards.forEach((shard, index) => {
      inflight.owners[shard] = owners[index];
    });
    this.#broadcast({ t: 'assign', step: inflight.step, owners: inflight.owners });
    setImmediate(() => this.#computeOwn(inflight));
  }

  onUp(message: Message): void {
    if (message.term !== this.#term) return;
    if (message.t === 'part') this.#onPart(message);
    else if (message.t === 'upload') this.#onUpload(message);
  }

  #onPart(message: Message): void {
    const inflight = this.#inflight;
    if (inflight === undefined || message.step !== inflight.step) return;
    const lo = message.lo as number;
    const hi = message.hi as number;
    const key = `${message.name}:${lo}-${hi}`;
    let assembly = inflight.assemblies.get(key);
    if (assembly === undefined) {
      assembly = new Assembly(message.chunks as number);
      inflight.assemblies.set(key, assembly);
    }
    const whole = assembly.add(message.chunk as number, message.data as Uint8Array);
    if (whole === undefined) return;
    inflight.assemblies.delete(key);
    this.#addPart(inflight, { lo, hi }, floatsOf(whole), message.loss as number);
  }

  #addPart(inflight: InFlight, node: TreeNode, gradient: Float32Array, loss: number): void {
    for (let shard = node.lo; shard < node.hi; shard++) if (inflight.covered.has(shard)) return; // a duplicate
    if (gradient.length !== this.#worker.replica.gradientLength) return;
    for (let shard = node.lo; shard < node.hi; shard++) inflight.covered.add(shard);
    inflight.parts.set(nodeKey(node), gradient);
    inflight.losses.set(nodeKey(node), loss);
    if (inflight.covered.size === this.#worker.spec.shards) {
      const wake = inflight.wake;
      inflight.wake = undefined;
      wake?.();
    }
  }

  #onUpload(message: Message): void {
    const key = `${message.name}:${message.step}`;
    let assembly = this.#uploads.get(key);
    if (assembly === undefined) {
      assembly = new Assembly(message.chunks as number);
      this.#uploads.set(key, assembly);
    }
    const whole = assembly.add(message.chunk as number, message.data as Uint8Array);
    if (whole === undefined) return;
    this.#uploads.delete(key);
    this.#uploaded = { step: message.step as number, bytes: whole };
    this.#wakeUp();
  }

  /** Computes the leader's own shards of the step in flight (those not yet covered). */
  #computeOwn(inflight: InFlight): void {
    if (this.#aborted || this.#inflight !== inflight) return;
    const mine = new Set<number>();
    inflight.owners.forEach((owner, shard) => {
      if (owner === this.#worker.name && !inflight.covered.has(shard)) mine.add(shard);
    });
    const started = performance.now();
    for (const node of coveringNodes(this.#worker.spec.shards, mine)) {
      if ([...Array(node.hi - node.lo).keys()].some((offset) => inflight.covered.has(node.lo + offset)))
        continue;
      const { gradient, loss } = this.#worker.computeNode(inflight.step, node);
      this.#addPart(inflight, node, gradient, loss);
    }
    inflight.computeMs += performance.now() - started;
  }

  /** Runs the job from wherever the workers are to its last step; resolves with the result. */
  async main(): Promise<JobResult | undefined> {
    const worker = this.#worker;
    this.#worker.log(`leading, term ${this.#term}`);
    for (;;) {
      try {
        await this.#synchronize();
        await this.#runSteps();
        return await this.#finishJob();
      } catch (error) {
        if (!(error instanceof Resync)) throw error;
        worker.log('a worker is ahead: synchronizing again');
      }
    }
  }

  /** Statuses from every worker, state from the most advanced, the members at one step. */
  async #synchronize(): Promise<void> {
    const worker = this.#worker;
    const replica = worker.replica;
    this.#resync = false;
    this.#members.clear();
    this.#broadcast({ t: 'sync' });
    const expected = () => worker.node.nodes().map((node) => node.name);
    await this.#waitFor(() => expected().every((name) => this.#statuses.has(name)), SYNC_WAIT_MS);
    for (let attempt = 0; attempt < 8; attempt++) {
      const ahead = [...this.#statuses.values()]
        .filter((status) => status.admitted && (!worker.admitted || status.step > replica.step))
        .sort((a, b) => b.step - a.step);
      if (ahead.length === 0) break;
      const source = ahead[0];
      this.#uploaded = undefined;
      this.#broadcast({ t: 'upload', from: source.name });
      const got = await this.#waitFor(() => this.#uploaded !== undefined, UPLOAD_WAIT_MS);
      if (!got) {
        this.#statuses.delete(source.name);
        continue;
      }
      const state = decodeState(this.#uploaded!.bytes);
      if (!worker.admitted || state.step > replica.step) replica.importState(state);
      worker.admitted = true;
      worker.log(`took the state of ${source.name} at step ${state.step}`);
    }
    if (!worker.admitted) await this.#initialize();
    const manifest =
      worker.spec.checkpointDir === undefined ? undefined : await readManifest(worker.spec.checkpointDir);
    this.#persistedStep = manifest?.step ?? -1;
    // The leader before this one: as this worker saw it, else as the workers that answered saw it
    // (a worker that started after the old leader died heard nothing from it).
    const heard = [...this.#statuses.values()]
      .map((status) => ({
        ...status,
        leader: status.leader === worker.name ? status.formerLeader : status.leader,
      }))
      .filter((status) => status.leader !== '' && status.leader !== worker.name)
      .sort((a, b) => b.term - a.term);
    const previous = this.#previousLeader ?? heard[0]?.leader;
    if (previous !== undefined && previous !== worker.name) {
      this.#event('left', { worker: previous, cause: 'leader_lost', step: replica.step });
      const lastCommitAgo = Math.min(
        performance.now() - worker.lastCommitMs,
        ...heard.map((status) => status.sinceCommitMs),
      );
      this.#pendingRecovery = {
        cause: 'leader_lost',
        worker: previous,
        sinceMs: performance.now() - lastCommitAgo,
        step: replica.step,
      };
    }
    void this.#claimCoordinatorName();
    this.#members.set(worker.name, worker.node.self.incarnation);
    for (const status of this.#statuses.values()) {
      if (status.admitted && status.step === replica.step) {
        this.#members.set(status.name, status.incarnation);
        this.#pending.delete(status.name);
      } else this.#pending.set(status.name, status.incarnation);
    }
  }

  /** A leader loss, reported with the first step this leader commits. */
  #pendingRecovery: { cause: string; worker: string; sinceMs: number; step: number } | undefined;

  /** Nobody holds state: the last checkpoint of the job's directory, else the seed's weights. */
  async #initialize(): Promise<void> {
    const worker = this.#worker;
    const replica = worker.replica;
    const directory = worker.spec.checkpointDir;
    const manifest = directory === undefined ? undefined : await readManifest(directory);
    if (manifest !== undefined && directory !== undefined) {
      const copy = await readCheckpoint(directory, replica.identity(), replica.parameterShapes);
      replica.loadCopy(copy);
      worker.log(`starting from the checkpoint at step ${copy.step}`);
      this.#event('initialized', { from: 'checkpoint', step: copy.step });
    } else {
      if (replica.step === 0) {
        // a fresh job: wait a moment for the workers it was started with
        const wanted = worker.initialWorkers - 1;
        await this.#waitFor(() => this.#statuses.size >= wanted, START_WAIT_MS);
      }
      worker.log(`starting from the seed at step ${replica.step}`);
      this.#event('initialized', { from: 'seed', step: replica.step });
    }
    worker.admitted = true;
  }

  /** Sends the state to the workers waiting (at a step boundary); they are members from now on. */
  #admitPending(): void {
    if (this.#pending.size === 0) return;
    const worker = this.#worker;
    const to = [...this.#pending.keys()];
    const incarnations = new Map(this.#pending);
    this.#pending.clear();
    this.#broadcastChunked(
      { t: 'state', to, id: ++this.#stateId, step: worker.replica.step },
      encodeState(worker.replica.exportState()),
    );
    for (const name of to) {
      this.#stateSent.set(name, `${this.#term}:${this.#stateId}`);
      this.#members.set(name, incarnations.get(name)!);
      this.#event('joined', { worker: name, step: worker.replica.step });
      worker.log(`${name} joined at step ${worker.replica.step}`);
    }
  }

  async #runSteps(): Promise<void> {
    const worker = this.#worker;
    const replica = worker.replica;
    const spec = worker.spec;
    while (replica.step < replica.spec.plannedSteps) {
      this.#check();
      if (this.#resync) throw new Resync();
      this.#admitPending();
      const step = replica.step;
      const inflight: InFlight = {
        step,
        owners: assignShards(spec.shards, [...this.#members.keys()].sort()),
        parts: new Map(),
        losses: new Map(),
        covered: new Set(),
        assemblies: new Map(),
        wake: undefined,
        computeMs: 0,
        losses_: [],
      };
      this.#inflight = inflight;
      const startedMs = performance.now();
      this.#broadcast({ t: 'assign', step, owners: inflight.owners });
      this.#computeOwn(inflight);
      for (;;) {
        if (inflight.covered.size === spec.shards) break;
        this.#check();
        if (this.#resync) throw new Resync();
        const arrived = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), spec.stepTimeoutMs);
          inflight.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        if (!arrived && inflight.covered.size < spec.shards) {
          // Parts lost or a worker stuck: the leader computes what is missing itself.
          const missing = inflight.owners
            .map((_, shard) => shard)
            .filter((shard) => !inflight.covered.has(shard));
          inflight.losses_.push({
            worker: 'timeout',
            cause: 'step_timeout',
            detectedMs: performance.now(),
            shards: missing.length,
          });
          // Who did not deliver is no member any more (it is sent the state if it says hello again).
          const silent = new Set(missing.map((shard) => inflight.owners[shard]));
          silent.delete(worker.name);
          for (const name of silent) {
            this.#members.delete(name);
            this.#event('left', { worker: name, cause: 'step_timeout', step });
          }
          for (const shard of missing) inflight.owners[shard] = worker.name;
          this.#broadcast({ t: 'assign', step, owners: inflight.owners });
          this.#computeOwn(inflight);
        }
      }
      this.#check();
      if (!treeComplete(spec.shards, new Set(inflight.parts.keys())))
        throw new TrainingError('lineage_broken', `step ${step}: the parts received do not cover the tree`);
      const gradient = reduceTree(spec.shards, inflight.parts)!;
      const loss = reduceNumbers(spec.shards, inflight.losses);
      this.#broadcastChunked({ t: 'commit', step, loss }, bytesOf(gradient));
      replica.apply(step, gradient, loss);
      this.#inflight = undefined;
      const nowMs = performance.now();
      this.#event('step', {
        step: step + 1,
        loss,
        ms: nowMs - startedMs,
        computeMs: inflight.computeMs,
        workers: this.#members.size,
        gradientBytes: gradient.byteLength,
      });
      for (const lost of inflight.losses_) {
        this.#event('recovery', {
          cause: lost.cause,
          worker: lost.worker,
          step,
          recoveryMs: nowMs - lost.detectedMs,
          reassignedShards: lost.shards,
        });
      }
      if (this.#pendingRecovery !== undefined) {
        const pending = this.#pendingRecovery;
        this.#pendingRecovery = undefined;
        this.#event('recovery', {
          cause: pending.cause,
          worker: pending.worker,
          step: pending.step,
          recoveryMs: nowMs - pending.sinceMs,
          reassignedShards: 0,
        });
      }
      const committed = step + 1;
      if (spec.checkpointDir !== undefined && committed % spec.checkpointIntervalSteps === 0)
        await this.#persist('periodic');
    }
  }

  async #persist(reason: string): Promise<void> {
    const worker = this.#worker;
    const replica = worker.replica;
    const directory = worker.spec.checkpointDir;
    if (directory === undefined || replica.step <= this.#persistedStep) return;
    await writeCheckpoint(directory, replica.snapshotCopy(), replica.identity(), reason, replica.shape);
    this.#persistedStep = replica.step;
    this.#event('checkpoint', { step: replica.step, reason });
  }

  async #finishJob(): Promise<JobResult> {
    const worker = this.#worker;
    const replica = worker.replica;
    this.#check();
    await this.#persist('final');
    const audit = replica.audit();
    const losses = replica.losses;
    const epochs: JobResult['epochs'] = [];
    for (let start = 0; start < replica.spec.plannedSteps; start += replica.stepsPerEpoch) {
      const end = Math.min(replica.spec.plannedSteps, start + replica.stepsPerEpoch);
      let sum = 0;
      for (let step = start; step < end; step++) sum += losses[step];
      epochs.push({
        epoch: start / replica.stepsPerEpoch,
        meanLoss: sum / (end - start),
        steps: end - start,
      });
    }
    const result: JobResult = {
      steps: replica.step,
      loss: losses[replica.step - 1] ?? Number.NaN,
      weightsSha256: replica.weightsSha256(),
      lostSteps: audit.lostSteps,
      repeatedSteps: audit.repeatedSteps,
      finalTestAccuracy: worker.spec.evaluate
        ? evaluateAccuracy(replica.module, replica.data.test)
        : Number.NaN,
      leader: worker.name,
      shards: worker.spec.shards,
      gradientBytes: replica.gradientLength * 4,
      epochs,
    };
    // The final weights (for the launcher's model), then the result: on the events subject, in order.
    const weights = encodeWeights(replica.parameters.map((parameter) => parameter.data));
    const events = subjects(worker.cluster).events;
    worker.sendChunked(events, { t: 'event', kind: 'weights', term: this.#term }, weights);
    worker.transport.publish(events, encode({ t: 'event', kind: 'done', term: this.#term, result }));
    this.#broadcast({ t: 'done', result });
    await worker.transport.flush();
    return result;
  }
}
