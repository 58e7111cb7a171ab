import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataset } from './Dataset.js';
import { DatasetError } from './DatasetError.js';
import { idxDataset, readIdxFile } from './Idx.js';
import { TINY_DATASET_DIR } from './TinyDataset.js';

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST's ten classes, by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** The four files of an MNIST-format directory, by their standard names. */
const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** A train/test pair of data sets. */
export interface TrainTestDatasets {
  train: Dataset;
  test: Dataset;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The path of `name` in `dir`, gzip-compressed (`.gz`) or plain, whichever is there. */
async function locate(dir: string, name: string): Promise<string | undefined> {
  for (const candidate of [join(dir, `${name}.gz`), join(dir, name)]) {
    if (await exists(candidate)) return candidate;
  }
  return undefined;
}

/** True when `dir` holds the four MNIST-format files (plain or `.gz`). */
export async function hasMnistFiles(dir: string): Promise<boolean> {
  const found = await Promise.all(Object.values(MNIST_FILES).map((name) => locate(dir, name)));
  return found.every((path) => path !== undefined);
}

/**
 * Loads an MNIST-format directory (MNIST, Fashion-MNIST, the bundled tiny set): uint8 images
 * [N, H, W] scaled to [0, 1], as samples of shape [1, H, W] (channels first, the layout conv2d
 * takes; an MLP reads the same memory as H * W features), ten classes.
 * Throws `DatasetError` `not_found` naming the missing file, and the IDX errors of `readIdxFile`.
 */
export async function loadMnistFormat(dir: string): Promise<TrainTestDatasets> {
  const paths = await Promise.all(Object.values(MNIST_FILES).map((name) => locate(dir, name)));
  const missing = Object.values(MNIST_FILES).filter((_, i) => paths[i] === undefined);
  if (missing.length > 0) {
    throw new DatasetError(
      'not_found',
      `${dir} lacks ${missing.join(', ')} (plain or .gz); install Debian's dataset-fashion-mnist or pass another directory`,
      dir,
    );
  }
  const [trainImages, trainLabels, testImages, testLabels] = paths as string[];
  const load = async (images: string, labels: string) => {
    const [imageArray, labelArray] = await Promise.all([readIdxFile(images), readIdxFile(labels)]);
    const featureShape = [1, ...imageArray.dimensions.slice(1)];
    return idxDataset(imageArray, labelArray, { numClasses: 10, featureShape }, `${images} and ${labels}`);
  };
  const [train, test] = await Promise.all([load(trainImages, trainLabels), load(testImages, testLabels)]);
  return { train, test };
}

/**
 * Loads Fashion-MNIST (60,000 training and 10,000 test images of 28x28, pixels scaled to [0, 1],
 * feature shape [1, 28, 28], ten classes: `FASHION_MNIST_CLASSES`) from `dir`, by default where
 * Debian's `dataset-fashion-mnist` package puts it.
 */
export function loadFashionMnist(dir: string = FASHION_MNIST_DIR): Promise<TrainTestDatasets> {
  return loadMnistFormat(dir);
}

/** What `loadDefaultDataset` found. */
export interface DefaultDatasets extends TrainTestDatasets {
  /** 'fashion-mnist' when installed, else 'tiny' (the procedural set shipped in data/tiny). */
  name: 'fashion-mnist' | 'tiny';
  dir: string;
}

/**
 * Fashion-MNIST when it is installed, else the small procedural data set shipped with zbmd in
 * `data/tiny` (same format and shapes, so the same model trains on either), so training works on
 * a fresh machine.
 */
export async function loadDefaultDataset(
  fashionMnistDir: string = FASHION_MNIST_DIR,
): Promise<DefaultDatasets> {
  if (await hasMnistFiles(fashionMnistDir)) {
    return { name: 'fashion-mnist', dir: fashionMnistDir, ...(await loadMnistFormat(fashionMnistDir)) };
  }
  return { name: 'tiny', dir: TINY_DATASET_DIR, ...(await loadMnistFormat(TINY_DATASET_DIR)) };
}
