/**
 * Example 5 (design book ch. 10): distributed training. A job starts two worker processes on a
 * local cluster (a nats-server with JetStream on 127.0.0.1); the workers elect a coordinator,
 * which holds the global name `dp-coordinator`. This process then joins the cluster as a node,
 * finds the coordinator by that name, and joins the job as a third worker: from the next step
 * boundary it holds a replica and computes its share of every step's shards. The weights come out
 * the same, bit for bit, as one process summing the same shards (`shards` alone).
 * Run: `node dist/examples/05-distributed-training.js` (after `npm run build`).
 */
import { ClusterNode } from 'zbmd/cluster';
import { type TrainingResult, train, weightsSha256 } from 'zbmd/ml';

export interface Example5Options {
  readonly maxSteps?: number;
  readonly data?: string;
}

/** Looks the coordinator up by its global name until it is registered (at most `attempts` tries). */
async function findCoordinator(node: ClusterNode, attempts = 100): Promise<string> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const holder = await node.whereisGlobal('dp-coordinator');
    if (holder !== undefined) return `${holder.node} (${holder.process})`;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no coordinator registered dp-coordinator');
}

export async function main(
  write: (line: string) => void = console.log,
  options: Example5Options = {},
): Promise<{ job: TrainingResult; joined: TrainingResult; sameAsOneProcess: boolean }> {
  const common = {
    model: 'mlp' as const,
    data: options.data ?? 'data/tiny',
    maxSteps: options.maxSteps ?? 80,
    shards: 8,
  };
  let announce!: (where: { url: string; cluster: string }) => void;
  const started = new Promise<{ url: string; cluster: string }>((resolve) => (announce = resolve));
  // Two worker processes on a local cluster; the elected leader coordinates the steps.
  const job = train({
    ...common,
    workers: 2,
    onWorkerStarted: ({ url, cluster }) => announce({ url, cluster }),
  });
  const { url, cluster } = await started;

  // This process joins the cluster and finds the coordinator by its global name...
  const node = await ClusterNode.start({ name: 'example5', cluster, nats: url, election: false });
  write(`Joined cluster ${cluster} at ${url}`);
  write(`Coordinator: ${await findCoordinator(node)}`);
  await node.close();

  // ...then takes part in the training as a third worker.
  // (the job's spec, read from its bucket, decides the model and data; `model` is ignored here)
  const joined = await train({ model: 'mlp', join: url, name: 'w3', cluster });
  const result = await job;
  write(`Distributed training complete: ${result.steps} steps, loss ${result.loss.toFixed(4)}`);
  write(`Test accuracy: ${(result.finalTestAccuracy * 100).toFixed(2)}%, lost steps: ${result.lostSteps}`);

  const oneProcess = await train({ ...common, evaluateEachEpoch: false });
  const sameAsOneProcess =
    result.weightsSha256 === oneProcess.weightsSha256 && weightsSha256(joined.model) === result.weightsSha256;
  write(`Same weights as one process summing the same shards: ${sameAsOneProcess}`);
  return { job: result, joined, sameAsOneProcess };
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
