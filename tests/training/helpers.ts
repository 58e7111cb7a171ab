import { Random } from '../../src/actor/Random.js';
import { CpuBackend } from '../../src/gpu/backends/CpuBackend.js';
import type { DeviceInfo } from '../../src/gpu/types.js';
import { loadMnistFormat, sliceDataset, TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import type { TrainingConfig, TrainingData } from '../../src/ml/training/index.js';

let cached: TrainingData | undefined;

/** A slice of the shipped tiny data set: 1,200 training and 300 test images of 28x28. */
export async function tinySlice(): Promise<TrainingData> {
  if (cached === undefined) {
    const tiny = await loadMnistFormat(TINY_DATASET_DIR);
    cached = {
      train: sliceDataset(tiny.train, 0, 1200),
      test: sliceDataset(tiny.test, 0, 300),
      name: 'tiny-slice',
    };
  }
  return cached;
}

/** The cpu device as the GPU layer describes it (tests that need no device detection). */
export const CPU_ONLY: readonly DeviceInfo[] = [new CpuBackend(0).info()];

/** A small MLP run: 2 epochs of 1,200 samples at batch 16 = 150 steps. */
export async function smallRun(overrides: Partial<TrainingConfig> = {}): Promise<TrainingConfig> {
  return {
    model: 'mlp',
    data: await tinySlice(),
    batchSize: 16,
    epochs: 2,
    seed: 5,
    devices: CPU_ONLY,
    evaluateEachEpoch: false,
    ...overrides,
  };
}

export { Random };
