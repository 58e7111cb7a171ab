/**
 * The design book's Example 5 (seeds/001 ch. 10), its cluster shape: nodes join a cluster on
 * NATS, the first one registers a global name for its coordinator process, the others find that
 * name and their worker processes pull work from it. Each task is a batch of numbers; a worker
 * answers with the batch's sum and sum of squares, and the coordinator combines them into the
 * mean and variance of the whole data set.
 *
 *   node dist/examples/05-cluster.js [nats-url] [nodes]   (after npm run build)
 *
 * Without a URL it starts a nats-server with JetStream on 127.0.0.1 (Debian's `nats-server`)
 * and stops it at the end. Every node here runs in this process on its own NATS connection, as
 * separate machines would; `zbmd node --nats URL --name N` runs one node per process.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActorSystem, type Context, type Pid } from 'zbmd';
import { ClusterNode, type RemoteProcesses, startNatsServer } from 'zbmd/cluster';

export interface ExampleOptions {
  /** NATS server URL; default: start a local nats-server for the run. */
  readonly nats?: string;
  /** Nodes in the cluster (the first coordinates, the others work). Default 3. */
  readonly nodes?: number;
  readonly tasks?: number;
  readonly batchSize?: number;
  readonly write?: (line: string) => void;
}

export interface ExampleResult {
  readonly mean: number;
  readonly variance: number;
  /** Tasks done per worker node. */
  readonly byNode: Record<string, number>;
}

type ToCoordinator =
  | { readonly kind: 'ready'; readonly worker: Pid }
  | {
      readonly kind: 'result';
      readonly worker: Pid;
      readonly node: string;
      readonly sum: number;
      readonly squares: number;
      readonly count: number;
    };

type ToWorker = { readonly kind: 'task'; readonly batch: Float64Array } | { readonly kind: 'stop' };

/** The data set: `tasks` batches of `batchSize` numbers, known on the coordinator's node only. */
function batchOf(task: number, batchSize: number): Float64Array {
  const batch = new Float64Array(batchSize);
  for (let i = 0; i < batchSize; i++) batch[i] = Math.sin(task * batchSize + i) * 10;
  return batch;
}

const WORKERS_PER_NODE = 2;

interface Member {
  readonly node: ClusterNode;
  readonly system: ActorSystem;
  readonly remote: RemoteProcesses;
}

async function join(nats: string, name: string): Promise<Member> {
  const node = await ClusterNode.start({ name, nats, election: false });
  const system = new ActorSystem({ nodeName: name });
  return { node, system, remote: node.attach(system) };
}

export async function main(options: ExampleOptions = {}): Promise<ExampleResult> {
  const write = options.write ?? ((line: string) => console.log(line));
  const count = options.nodes ?? 3;
  const tasks = options.tasks ?? 24;
  const batchSize = options.batchSize ?? 1_000;
  if (!Number.isInteger(count) || count < 2)
    throw new Error(`nodes must be an integer of at least 2 (one coordinator, one worker), not ${count}`);
  const server = options.nats === undefined ? await startNatsServer() : undefined;
  const nats = options.nats ?? server!.url;
  const members: Member[] = [];
  try {
    // nodes join the cluster, each on its own connection
    for (let index = 0; index < count; index++) members.push(await join(nats, `node${index}`));
    await waitForCluster(members, count);
    write(`${count} nodes joined the cluster on ${nats}`);

    // node0: the coordinator, under a global name
    const [first, ...workers] = members;
    const expectedWorkers = workers.length * WORKERS_PER_NODE;
    let finish: (result: ExampleResult) => void = () => {};
    const finished = new Promise<ExampleResult>((done) => {
      finish = done;
    });
    const coordinator = first.system.spawn(async (ctx: Context<ToCoordinator>) => {
      let next = 0;
      let sum = 0;
      let squares = 0;
      let seen = 0;
      let answered = 0;
      const byNode: Record<string, number> = {};
      // the work starts once every worker has said it is ready, so that each node gets a share
      const ready: Pid[] = [];
      while (ready.length < expectedWorkers) {
        const message = (await ctx.receive())!;
        if (message.kind === 'ready') ready.push(message.worker);
      }
      for (const worker of ready) {
        const order: ToWorker =
          next < tasks ? { kind: 'task', batch: batchOf(next++, batchSize) } : { kind: 'stop' };
        ctx.send(worker, order);
      }
      while (answered < tasks) {
        const message = (await ctx.receive())!;
        if (message.kind === 'result') {
          sum += message.sum;
          squares += message.squares;
          seen += message.count;
          answered++;
          byNode[message.node] = (byNode[message.node] ?? 0) + 1;
        }
        // a worker that just answered gets the next task, or is told to stop
        const order: ToWorker =
          next < tasks ? { kind: 'task', batch: batchOf(next++, batchSize) } : { kind: 'stop' };
        ctx.send(message.worker, order);
      }
      const mean = sum / seen;
      finish({ mean, variance: squares / seen - mean * mean, byNode });
    });
    await first.remote.registerGlobal('coordinator', coordinator);
    write("node0 registered the global name 'coordinator'");

    // the other nodes find it by name; their workers pull tasks until told to stop
    for (const member of workers) {
      const found = await member.remote.whereisGlobal('coordinator');
      if (found === undefined) throw new Error(`${member.node.self.name} could not find 'coordinator'`);
      const name = member.node.self.name;
      for (let worker = 0; worker < WORKERS_PER_NODE; worker++) {
        member.system.spawn(async (ctx: Context<ToWorker>) => {
          ctx.send(found, { kind: 'ready', worker: ctx.self } satisfies ToCoordinator);
          for (;;) {
            const order = (await ctx.receive())!;
            if (order.kind === 'stop') return;
            let sum = 0;
            let squares = 0;
            for (const value of order.batch) {
              sum += value;
              squares += value * value;
            }
            const result: ToCoordinator = {
              kind: 'result',
              worker: ctx.self,
              node: name,
              sum,
              squares,
              count: order.batch.length,
            };
            ctx.send(found, result);
          }
        });
      }
      write(`${name} found 'coordinator' on ${found.node} and started ${WORKERS_PER_NODE} workers`);
    }

    const result = await finished;
    for (const [node, done] of Object.entries(result.byNode)) write(`${node}: ${done} tasks`);
    write(
      `mean ${result.mean.toFixed(6)}, variance ${result.variance.toFixed(6)} over ${tasks * batchSize} numbers`,
    );
    return result;
  } finally {
    for (const member of members.reverse()) {
      await member.node.close();
      member.system.shutdown();
    }
    await server?.stop();
  }
}

/** Resolves once every node sees all the others (heartbeats every 100 ms). */
async function waitForCluster(members: readonly Member[], count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!members.every((member) => member.node.nodes().length === count - 1)) {
    if (Date.now() > deadline) throw new Error(`the ${count} nodes did not see each other within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Run as a program (node dist/examples/05-cluster.js), not when a test imports it.
const launcher = process.argv[1] ?? '';
if (resolve(launcher) === fileURLToPath(import.meta.url)) {
  const [nats, nodes] = process.argv.slice(2);
  await main({
    nats: nats === undefined || nats === '' ? undefined : nats,
    nodes: nodes === undefined ? 3 : Number(nodes),
  });
}
