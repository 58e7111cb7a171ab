/**
 * ML benchmark: matrix product speed against OpenBLAS called directly, training steps per second
 * for the MLPs and a small CNN on Fashion-MNIST, and test accuracy after 5 epochs.
 *
 *   zbmd bench ml --json            all figures (accuracy runs take a few minutes)
 *   zbmd bench ml --json --quick    speed figures on shorter runs, no accuracy runs
 *   ZBMD_BENCH_ML=accuracy zbmd bench ml --json   only the accuracy runs
 *
 * Fashion-MNIST comes from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist);
 * without it the bench runs on the small data set shipped in data/tiny and says so (`dataset`).
 *
 * PyTorch in the same run: when python3 can import torch (Debian's python3-torch), each training
 * workload is measured between two zbmd measurements by bench/ml_pytorch.py (same model, batch,
 * optimizer, data, step counts), with torch.set_num_threads(1) and (2);
 * `pytorch_<workload>_steps_per_sec` is the faster, `<workload>_steps_per_sec` zbmd's better
 * one, `<workload>_vs_pytorch_ratio` zbmd over PyTorch, against `<workload>_target_ratio`.
 * Without torch, `pytorch` says why. ZBMD_PYTHON names the interpreter (default /usr/bin/python3
 * when it exists, else python3). PyTorch on Debian runs its matrix products on the same OpenBLAS:
 * it gets the kernel family zbmd loaded (`blas_core`, OPENBLAS_CORETYPE), so both run the same
 * gemm kernels.
 */

import { spawnSync } from 'node:child_process';
import { Random } from '../src/actor/Random.js';
import {
  Adam,
  blasInfo,
  Conv2d,
  cosineSchedule,
  DataLoader,
  type Dataset,
  dispose,
  evaluateAccuracy,
  Flatten,
  fromData,
  Linear,
  loadDefaultDataset,
  MaxPool2d,
  type Module,
  manualSeed,
  matmul,
  noGrad,
  ReLU,
  Sequential,
  type TrainTestDatasets,
  trainPlain,
} from '../src/ml/index.js';
import { rawOpenBlasSgemm } from '../src/ml/internal/blas.js';
import { gptFigures } from './gpt.js';
import { benchScript, PYTORCH_BLAS_SETTINGS, pythonExecutable, runPytorch } from './pytorch.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

/** Shuffled batches, a new seeded order each epoch, the last partial batch dropped. */
function loaderOf(dataset: Dataset, batchSize: number, seed: number): DataLoader {
  return new DataLoader(dataset, { batchSize, shuffle: true, seed, dropLast: true });
}

function mlp(hidden: number): Module {
  return new Sequential(new Flatten(), new Linear(784, hidden), new ReLU(), new Linear(hidden, 10));
}

/**
 * conv(1->16, 3x3) pool relu -> conv(16->32, 3x3) pool relu -> 1568 -> 128 -> 10. Pooling before
 * the ReLU computes the same function with the same gradients as ReLU then pooling (max and
 * ReLU commute), on a quarter of the elements. zbmd's Sequential runs each conv, pool, ReLU
 * triple as one fused op (ops/conv.ts `conv2dMaxPoolRelu`); PyTorch's model runs the three ops.
 */
function cnn(): Module {
  return new Sequential(
    new Conv2d(1, 16, 3, { padding: 1 }),
    new MaxPool2d(2),
    new ReLU(),
    new Conv2d(16, 32, 3, { padding: 1 }),
    new MaxPool2d(2),
    new ReLU(),
    new Flatten(),
    new Linear(32 * 7 * 7, 128),
    new ReLU(),
    new Linear(128, 10),
  );
}

function seconds(body: () => void): number {
  const started = performance.now();
  body();
  return (performance.now() - started) / 1000;
}

/**
 * 1024 x 1024 products through `matmul` and through cblas_sgemm called directly, alternated so
 * both see the same machine load; the best time of each.
 */
function matmulFigures(quick: boolean): Record<string, number | string> {
  const n = 1024;
  const random = new Random(1);
  const a = fromData(
    Float32Array.from({ length: n * n }, () => random.next() - 0.5),
    [n, n],
  );
  const b = fromData(
    Float32Array.from({ length: n * n }, () => random.next() - 0.5),
    [n, n],
  );
  const c = new Float32Array(n * n);
  const flops = 2 * n * n * n;
  const sgemm = rawOpenBlasSgemm();
  let ours = Number.POSITIVE_INFINITY;
  let direct = Number.POSITIVE_INFINITY;
  for (let r = 0; r < (quick ? 8 : 30); r++) {
    ours = Math.min(
      ours,
      seconds(() => noGrad(() => dispose(matmul(a, b)))),
    );
    if (sgemm !== null)
      direct = Math.min(
        direct,
        seconds(() => sgemm(101, 111, 111, n, n, n, 1, a.data, n, b.data, n, 0, c, n)),
      );
  }
  const figures: Record<string, number | string> = { matmul_1024_gflops: round(flops / ours / 1e9) };
  if (sgemm !== null) {
    figures.openblas_direct_1024_gflops = round(flops / direct / 1e9);
    figures.matmul_vs_openblas_ratio = round(direct / ours, 3);
  }
  return figures;
}

/**
 * Steady-state steps per second of `trainPlain` (sample a batch, forward, loss, backward, Adam
 * update): `warmup` steps first, then the best of five timed runs of `steps` steps (the machine
 * is shared: the best run is the least disturbed).
 */
function stepsPerSecond(model: Module, loader: DataLoader, steps: number, warmup: number): number {
  const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
  const epochs = Number.MAX_SAFE_INTEGER;
  trainPlain({ model, optimizer, loader, epochs, maxSteps: warmup });
  let best = 0;
  for (let run = 0; run < 5; run++) {
    const { elapsedMs } = trainPlain({ model, optimizer, loader, epochs, maxSteps: steps });
    best = Math.max(best, steps / (elapsedMs / 1000));
  }
  return round(best, 1);
}

/**
 * Standardises pixels with the training set's mean and standard deviation (as torchvision's
 * Normalize((0.2860,), (0.3530,)) does for Fashion-MNIST), in place, train and test alike.
 */
function standardize(data: TrainTestDatasets): void {
  const train = data.train.features;
  let total = 0;
  for (let i = 0; i < train.length; i++) total += train[i];
  const mean = total / train.length;
  let squares = 0;
  for (let i = 0; i < train.length; i++) squares += (train[i] - mean) ** 2;
  const deviation = Math.sqrt(squares / train.length);
  for (const features of [data.train.features, data.test.features]) {
    for (let i = 0; i < features.length; i++) features[i] = (features[i] - mean) / deviation;
  }
}

/**
 * Test accuracy after `epochs` epochs of Adam 1e-3 (seeded model and shuffling); with `cosine`
 * the rate decays to 0 over the run (the CNN's setting), otherwise it stays constant.
 */
function trainedAccuracy(
  model: Module,
  data: TrainTestDatasets,
  batchSize: number,
  epochs: number,
  cosine: boolean,
): number {
  const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
  const loader = loaderOf(data.train, batchSize, 7);
  const totalSteps = epochs * loader.batchesPerEpoch;
  const schedule = cosine ? cosineSchedule({ learningRate: 1e-3, totalSteps }) : undefined;
  trainPlain({ model, optimizer, loader, epochs, schedule });
  return round(evaluateAccuracy(model, data.test), 4);
}

function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A training workload of the bench: zbmd's model and loader, and PyTorch's name and target. */
interface Workload {
  readonly key: 'mlp' | 'mlp512_b128' | 'cnn';
  readonly pytorchName: 'mlp' | 'mlp512' | 'cnn';
  readonly model: () => Module;
  readonly batchSize: number;
  readonly seed: number;
  readonly steps: number;
  readonly warmup: number;
  /** zbmd's steps/s over PyTorch's best, at least (issue 16). */
  readonly targetRatio: number;
}

const WORKLOADS: readonly Workload[] = [
  {
    key: 'mlp',
    pytorchName: 'mlp',
    model: () => mlp(128),
    batchSize: 32,
    seed: 1,
    steps: 2000,
    warmup: 200,
    targetRatio: 1.5,
  },
  {
    key: 'mlp512_b128',
    pytorchName: 'mlp512',
    model: () => mlp(512),
    batchSize: 128,
    seed: 2,
    steps: 300,
    warmup: 30,
    targetRatio: 1.2,
  },
  {
    key: 'cnn',
    pytorchName: 'cnn',
    model: cnn,
    batchSize: 64,
    seed: 3,
    steps: 60,
    warmup: 5,
    targetRatio: 1.5,
  },
];

/** How long one PyTorch run may take (both thread counts, import and data loading included). */
const PYTORCH_TIMEOUT_MS = 300_000;

const PYTORCH_SCRIPT = benchScript('ml_pytorch.py');

/** The torch version python imports, or why it cannot (the reason goes into the figures). */
function probeTorch(): { version: string } | { absent: string } {
  if (PYTORCH_SCRIPT === undefined)
    return { absent: 'bench/ml_pytorch.py is not installed beside the bench' };
  const probe = spawnSync(pythonExecutable(), ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (probe.error !== undefined)
    return { absent: `${pythonExecutable()} did not start: ${probe.error.message}` };
  if (probe.status !== 0) {
    const last = probe.stderr.trim().split('\n').at(-1) ?? '';
    return { absent: `${pythonExecutable()} cannot import torch (${last}); install python3-torch` };
  }
  return { version: probe.stdout.trim() };
}

interface PytorchResult {
  readonly results: readonly { threads: number; steps_per_sec: number }[];
}

/** PyTorch's steps/s for one workload with 1 and 2 threads under one BLAS setting, or why not. */
function pytorchStepsPerSecond(
  workload: Workload,
  steps: number,
  datasetDir: string,
  blasEnv: Record<string, string>,
): PytorchResult | string {
  const args = [workload.pytorchName, String(steps), String(workload.warmup), '1,2', datasetDir];
  // The same OpenBLAS kernels as zbmd's (blas.ts chooses them when the library loads).
  const core = blasInfo().core;
  const env = { ...(core === null ? {} : { OPENBLAS_CORETYPE: core }), ...blasEnv };
  return runPytorch<PytorchResult>(PYTORCH_SCRIPT ?? '', args, PYTORCH_TIMEOUT_MS, env);
}

/**
 * zbmd's steps/s for each workload, then PyTorch's on the same workload (when torch is there),
 * then zbmd's again, so that both see about the same machine load: zbmd's figure is the better
 * of its two (`_before_pytorch_` and `_after_pytorch_` beside it).
 */
function speedFigures(
  data: { train: Dataset; dir: string },
  quick: boolean,
): Record<string, number | string> {
  const scale = quick ? 0.25 : 1;
  const torch = probeTorch();
  const figures: Record<string, number | string> = {
    pytorch: 'version' in torch ? `torch ${torch.version}` : `absent: ${torch.absent}`,
  };
  for (const workload of WORKLOADS) {
    const steps = Math.round(workload.steps * scale);
    manualSeed(workload.seed);
    const loader = loaderOf(data.train, workload.batchSize, workload.seed);
    const model = workload.model();
    const before = stepsPerSecond(model, loader, steps, workload.warmup);
    figures[`${workload.key}_steps_per_sec`] = before;
    if (!('version' in torch)) continue;
    let best = 0;
    for (const { suffix, env } of PYTORCH_BLAS_SETTINGS) {
      const reference = pytorchStepsPerSecond(workload, steps, data.dir, env);
      if (typeof reference === 'string') {
        figures[`pytorch_${workload.key}${suffix}`] = reference;
        continue;
      }
      for (const { threads, steps_per_sec } of reference.results) {
        figures[`pytorch_${workload.key}_threads${threads}${suffix}_steps_per_sec`] = steps_per_sec;
        best = Math.max(best, steps_per_sec);
      }
    }
    if (best === 0) continue;
    // zbmd again after PyTorch's runs, so that each side's best comes from the same stretch of
    // machine load (PyTorch's four settings span it; one zbmd measurement before them did not).
    const after = stepsPerSecond(model, loader, steps, workload.warmup);
    const ours = Math.max(before, after);
    figures[`${workload.key}_before_pytorch_steps_per_sec`] = before;
    figures[`${workload.key}_after_pytorch_steps_per_sec`] = after;
    figures[`${workload.key}_steps_per_sec`] = ours;
    figures[`pytorch_${workload.key}_steps_per_sec`] = best;
    figures[`${workload.key}_vs_pytorch_ratio`] = round(ours / best, 3);
    figures[`${workload.key}_target_ratio`] = workload.targetRatio;
  }
  return figures;
}

function accuracyFigures(data: TrainTestDatasets): Record<string, number> {
  const epochs = 5;
  manualSeed(11);
  const mlpAccuracy = trainedAccuracy(mlp(128), data, 32, epochs, false);
  manualSeed(12);
  const cnnAccuracy = trainedAccuracy(cnn(), data, 64, epochs, true);
  return { mlp_test_accuracy_5_epochs: mlpAccuracy, cnn_test_accuracy_5_epochs: cnnAccuracy };
}

/**
 * Modes: 'quick' (speed figures on short runs), 'full' (speed, then 5-epoch accuracy runs) and
 * 'accuracy' (only the accuracy runs), chosen by `quick` or the ZBMD_BENCH_ML variable.
 */
export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const mode = process.env.ZBMD_BENCH_ML ?? (options.quick ? 'quick' : 'full');
  const info = blasInfo();
  const figures: Record<string, number | string> = {
    mode,
    blas: info.backend,
    blas_threads: info.threads,
    blas_core: info.core ?? 'unknown',
  };
  // Fashion-MNIST when installed, else the small data set shipped in data/tiny (figures then
  // measure speed only: the accuracy targets are for Fashion-MNIST).
  const data = await loadDefaultDataset();
  figures.dataset = data.name;
  standardize(data);
  if (mode !== 'accuracy')
    Object.assign(figures, matmulFigures(options.quick), speedFigures(data, options.quick));
  // The small GPT of `zbmd train --model gpt` (bench/gpt.ts): gpt_tokens_per_sec, PyTorch's beside it.
  if (mode !== 'accuracy') Object.assign(figures, await gptFigures(options.quick));
  if (mode === 'full' || mode === 'accuracy') Object.assign(figures, accuracyFigures(data));
  return figures;
}
