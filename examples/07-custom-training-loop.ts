/**
 * Example 7 (design book ch. 10): a hand-written training loop whose helpers are supervised
 * actors (a rest_for_one supervisor over a checkpointer and a metrics recorder), with a retried
 * forward pass, gradient accumulation over 4 micro-batches, and a checkpoint every
 * `checkpointEvery` steps written in the background while training goes on. Started again on
 * the same directory, it resumes from the last checkpoint (weights, optimizer state, loader
 * position and step), so the run ends with the weights it would have had without the stop.
 * Run: `node dist/examples/07-custom-training-loop.js [DIR]`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActorSystem, castTo, type GenServer, Random, reply, startGenServer } from 'zbmd';
import {
  Adam,
  backward,
  crossEntropy,
  DataLoader,
  disposeGraph,
  fromData,
  item,
  Linear,
  type LoaderState,
  loadDefaultDataset,
  ReLU,
  readSafetensorsFile,
  Sequential,
  type StateDict,
  safetensorsEntryToFloat32,
  type Tensor,
  writeSafetensorsFile,
} from 'zbmd/ml';
import { startSupervisor } from 'zbmd/supervision';

const ACCUMULATE = 4;

/** What the checkpoint's metadata holds besides the tensors. */
interface Saved {
  readonly step: number;
  readonly loader: LoaderState;
  readonly optimizer: { readonly kind: string; readonly stepCount: number; readonly learningRate: number };
}

interface CheckpointCall {
  readonly save: { readonly tensors: StateDict; readonly saved: Saved };
}

/** Writes `weights.*` and `optimizer.*` tensors plus the metadata, atomically, as one safetensors file. */
function checkpointer(path: string): GenServer<number> {
  return {
    init: () => 0,
    async handleCall(request: CheckpointCall, _from, count) {
      const tensors = Object.fromEntries(
        Object.entries(request.save.tensors).map(([name, { shape, data }]) => [
          name,
          {
            dtype: 'F32' as const,
            shape: [...shape],
            data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
          },
        ]),
      );
      await writeSafetensorsFile(path, tensors, { zbmd: JSON.stringify(request.save.saved) });
      return reply(path, count + 1);
    },
  };
}

function prefixed(state: StateDict, prefix: string): StateDict {
  return Object.fromEntries(Object.entries(state).map(([name, entry]) => [prefix + name, entry]));
}

function unprefixed(state: StateDict, prefix: string): StateDict {
  return Object.fromEntries(
    Object.entries(state)
      .filter(([name]) => name.startsWith(prefix))
      .map(([name, entry]) => [name.slice(prefix.length), entry]),
  );
}

/** Keeps the loss of every step; answers with the mean of the last `n`. */
const Metrics: GenServer<number[]> = {
  init: () => [],
  handleCast: (record: { readonly step: number; readonly loss: number }, losses) => {
    losses.push(record.loss);
    return losses;
  },
  handleCall: (request: { readonly meanOfLast: number }, _from, losses) => {
    const last = losses.slice(-request.meanOfLast);
    return reply(last.reduce((a, b) => a + b, 0) / Math.max(1, last.length), losses);
  },
};

async function withRetry<T>(attempts: number, body: () => T, write: (line: string) => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return body();
    } catch (error) {
      if (attempt >= attempts) throw error;
      write(`forward pass failed (${(error as Error).message}), retrying`);
    }
  }
}

export async function main(
  write: (line: string) => void = console.log,
  options: { dir?: string; steps?: number; checkpointEvery?: number } = {},
): Promise<{ step: number; meanLoss: number; resumedFrom: number }> {
  const dir = options.dir ?? process.argv[2] ?? join(tmpdir(), 'zbmd-example-7');
  const totalSteps = options.steps ?? 200;
  const checkpointEvery = options.checkpointEvery ?? 50;
  await mkdir(dir, { recursive: true });
  const latest = join(dir, 'latest.safetensors');
  const system = new ActorSystem();
  await startSupervisor(system, {
    strategy: 'rest_for_one',
    intensity: 5,
    periodMs: 10_000,
    children: [
      {
        id: 'checkpointer',
        start: (ctx) =>
          startGenServer(ctx, checkpointer(latest), undefined, { link: true, name: 'checkpointer' }),
      },
      {
        id: 'metrics',
        start: (ctx) => startGenServer(ctx, Metrics, undefined, { link: true, name: 'metrics' }),
      },
    ],
  });

  const data = await loadDefaultDataset();
  const features = data.train.featureShape.reduce((a, b) => a * b, 1);
  const random = new Random(1);
  const model = new Sequential(
    new Linear(features, 128, { random }),
    new ReLU(),
    new Linear(128, 10, { random }),
  );
  const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
  const loader = new DataLoader(data.train, { batchSize: 16, shuffle: true, seed: 1 });

  let step = 0;
  const existing = await readFile(latest).then(
    () => true,
    () => false,
  );
  if (existing) {
    const file = await readSafetensorsFile(latest);
    const saved = JSON.parse(file.metadata?.zbmd ?? 'null') as Saved;
    const state: StateDict = Object.fromEntries(
      Object.entries(file.tensors).map(([name, entry]) => [
        name,
        { shape: entry.shape, data: safetensorsEntryToFloat32(entry) },
      ]),
    );
    model.loadStateDict(unprefixed(state, 'weights.'));
    optimizer.loadStateDict({ ...saved.optimizer, buffers: unprefixed(state, 'optimizer.') });
    loader.restore(saved.loader);
    step = saved.step;
    write(`resumed from step ${step}`);
  }
  const resumedFrom = step;

  let pending: Promise<unknown> | undefined;
  let micro = 0;
  while (step < totalSteps) {
    const batch = loader.next() ?? loader.next()!; // undefined once at an epoch's end
    const inputs = fromData(batch.inputs.slice(), [batch.size, features]);
    const logits: Tensor = await withRetry(3, () => model.forward(inputs), write);
    const loss = crossEntropy(logits, batch.labels.slice());
    backward(loss); // gradients accumulate until the optimizer steps
    castTo(system, 'metrics', { step, loss: item(loss) });
    disposeGraph(loss);
    micro += 1;
    if (micro % ACCUMULATE !== 0) continue;
    optimizer.step();
    optimizer.zeroGrad();
    step += 1;
    if (step % checkpointEvery === 0) {
      await pending; // one checkpoint in flight at a time; training went on meanwhile
      const { buffers, ...scalars } = optimizer.stateDict();
      const save: CheckpointCall = {
        save: {
          tensors: { ...prefixed(model.stateDict(), 'weights.'), ...prefixed(buffers, 'optimizer.') },
          saved: { step, loader: loader.state(), optimizer: scalars },
        },
      };
      pending = system
        .call('checkpointer', save, 10_000)
        .catch((error) => write(`checkpoint failed: ${error}`));
    }
  }
  await pending;
  const meanLoss = await system.call<number>('metrics', { meanOfLast: 50 }, 1000);
  write(
    `step ${step}: mean loss of the last 50 micro-batches ${meanLoss.toFixed(4)}; checkpoint in ${latest}`,
  );
  system.shutdown();
  return { step, meanLoss, resumedFrom };
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
