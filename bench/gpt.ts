/**
 * GPT benchmark: training tokens per second of the small character-level GPT of
 * `zbmd train --model gpt` (its default shape: block 64, 2 layers, 4 heads, width 64; batch 32,
 * Adam 1e-3) on data/shakespeare.txt, and PyTorch's on the same model and batches in the same run.
 *
 *   zbmd bench gpt --json            (also part of `zbmd bench ml --json`)
 *   zbmd bench gpt --json --quick    fewer steps
 *
 * `gpt_tokens_per_sec` = steps/s x batch x block over timed steps after a warmup, the best of
 * three runs. When python3 imports torch, bench/gpt_pytorch.py measures the same workload with
 * torch.set_num_threads(1) and (2), each under two OpenBLAS settings (bench/pytorch.ts):
 * `pytorch_gpt_tokens_per_sec` is the fastest and
 * `gpt_vs_pytorch_ratio` zbmd over it. Without torch, `pytorch_gpt` says why.
 */
import { Random } from '../src/actor/Random.js';
import { Adam, DataLoader, DEFAULT_TEXT_CORPUS, Gpt, readTextCorpus, trainStep } from '../src/ml/index.js';
import { benchScript, PYTORCH_BLAS_SETTINGS, runPytorch } from './pytorch.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const SHAPE = { blockSize: 64, layers: 2, heads: 4, dimension: 64 } as const;
const BATCH = 32;
const PYTORCH_TIMEOUT_MS = 180_000;

const PYTORCH_SCRIPT = benchScript('gpt_pytorch.py');

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

interface PytorchGpt {
  readonly torch: string;
  readonly results: readonly { threads: number; tokens_per_sec: number; steps: number }[];
}

function pytorchTokensPerSecond(
  steps: number,
  warmup: number,
  env: Record<string, string>,
): PytorchGpt | string {
  if (PYTORCH_SCRIPT === undefined) return 'absent: bench/gpt_pytorch.py is not installed beside the bench';
  const { blockSize, layers, heads, dimension } = SHAPE;
  const args = [DEFAULT_TEXT_CORPUS, blockSize, layers, heads, dimension, BATCH, steps, warmup, '1,2'];
  return runPytorch<PytorchGpt>(PYTORCH_SCRIPT, args.map(String), PYTORCH_TIMEOUT_MS, env);
}

/** zbmd's GPT training speed, then PyTorch's on the same workload. */
export async function gptFigures(quick: boolean): Promise<Record<string, number | string>> {
  const steps = quick ? 3 : 10;
  const warmup = quick ? 1 : 3;
  const corpus = await readTextCorpus(DEFAULT_TEXT_CORPUS, SHAPE.blockSize);
  const random = new Random(1);
  const model = new Gpt({ ...SHAPE, vocabSize: corpus.tokenizer.size }, { random });
  const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
  const loader = new DataLoader(corpus.train, { batchSize: BATCH, shuffle: true, seed: 1, dropLast: true });
  const step = (): void => {
    const batch = loader.next() ?? loader.next()!;
    trainStep(model, optimizer, batch);
  };
  for (let i = 0; i < warmup; i++) step();
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    for (let i = 0; i < steps; i++) step();
    best = Math.max(best, (steps * BATCH * SHAPE.blockSize * 1000) / (performance.now() - started));
  }
  const figures: Record<string, number | string> = {
    gpt_shape: `block ${SHAPE.blockSize}, ${SHAPE.layers} layers, ${SHAPE.heads} heads, width ${SHAPE.dimension}, batch ${BATCH}, vocabulary ${corpus.tokenizer.size}`,
    gpt_parameters: model.parameterCount(),
    gpt_tokens_per_sec: round(best),
  };
  let fastest = 0;
  for (const { suffix, env } of PYTORCH_BLAS_SETTINGS) {
    const reference = pytorchTokensPerSecond(steps, warmup, env);
    if (typeof reference === 'string') {
      figures[`pytorch_gpt${suffix}`] = reference;
      continue;
    }
    for (const { threads, tokens_per_sec } of reference.results) {
      figures[`pytorch_gpt_threads${threads}${suffix}_tokens_per_sec`] = tokens_per_sec;
      fastest = Math.max(fastest, tokens_per_sec);
    }
  }
  if (fastest === 0) return figures;
  figures.pytorch_gpt_tokens_per_sec = fastest;
  figures.gpt_vs_pytorch_ratio = round(best / fastest, 3);
  return figures;
}

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  return gptFigures(options.quick);
}
