/**
 * Where the data of a run comes from: loaded splits, a directory, or the default (Fashion-MNIST
 * at Debian's path when installed, else the tiny set shipped in data/tiny). A directory holds
 * the four MNIST-format IDX files (plain or .gz), or `train.csv` and `test.csv` (label in the
 * first column; a square number of features is read as a one-channel image).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvDataset } from '../data/Csv.js';
import type { Dataset } from '../data/Dataset.js';
import { hasMnistFiles, loadDefaultDataset, loadMnistFormat } from '../data/FashionMnist.js';
import { DEFAULT_TEXT_CORPUS, readTextCorpus } from '../data/TextCorpus.js';
import { TrainingError } from './errors.js';
import type { ResolvedGptOptions, TrainingData } from './TrainingConfig.js';

/**
 * Loads the splits a configuration names; every failure is a `TrainingError` `invalid_data`.
 * For the gpt model (`gpt` given), `data` names a text file (default data/shakespeare.txt), read
 * as a character-level corpus in windows of `gpt.blockSize`.
 */
export async function loadTrainingData(
  data: TrainingData | string | undefined,
  gpt?: ResolvedGptOptions,
): Promise<TrainingData> {
  try {
    const loaded =
      gpt !== undefined && (data === undefined || typeof data === 'string')
        ? await loadCorpus(data ?? DEFAULT_TEXT_CORPUS, gpt.blockSize)
        : await loadSplits(data);
    checkSplits(loaded);
    return loaded;
  } catch (error) {
    if (error instanceof TrainingError) throw error;
    throw new TrainingError('invalid_data', (error as Error).message, { cause: error });
  }
}

async function loadCorpus(path: string, blockSize: number): Promise<TrainingData> {
  const corpus = await readTextCorpus(path, blockSize);
  return {
    train: corpus.train,
    test: corpus.test,
    name: `${path} (${corpus.characters} characters, vocabulary ${corpus.tokenizer.size})`,
    vocabulary: corpus.tokenizer.vocabulary,
  };
}

async function loadSplits(data: TrainingData | string | undefined): Promise<TrainingData> {
  if (data === undefined) {
    const found = await loadDefaultDataset();
    return { train: found.train, test: found.test, name: found.name };
  }
  if (typeof data !== 'string') return data;
  if (!existsSync(data) || !statSync(data).isDirectory()) {
    throw new TrainingError('invalid_data', `${data} is not a directory`);
  }
  if (await hasMnistFiles(data)) return { ...(await loadMnistFormat(data)), name: data };
  const trainCsv = join(data, 'train.csv');
  const testCsv = join(data, 'test.csv');
  if (existsSync(trainCsv) && existsSync(testCsv)) {
    const [train, test] = await Promise.all([readCsvDataset(trainCsv), readCsvDataset(testCsv)]);
    return { train: asImages(train), test: asImages(test), name: data };
  }
  throw new TrainingError(
    'invalid_data',
    `${data} holds neither the four MNIST-format IDX files (train-images-idx3-ubyte...) nor train.csv and test.csv`,
  );
}

/** A CSV set of n*n features becomes [1, n, n] images, so the cnn model can read it. */
function asImages(dataset: Dataset): Dataset {
  const [count] = dataset.featureShape;
  const side = Math.round(Math.sqrt(count));
  if (dataset.featureShape.length !== 1 || side * side !== count) return dataset;
  const { length, numClasses, features, labels } = dataset;
  return { length, numClasses, features, labels, featureShape: [1, side, side] };
}

function checkSplits(data: TrainingData): void {
  const { train, test } = data;
  if (train.length < 1 || test.length < 1) {
    throw new TrainingError(
      'invalid_data',
      `the training and test sets must not be empty (${train.length}, ${test.length} samples)`,
    );
  }
  const same =
    train.featureShape.length === test.featureShape.length &&
    train.featureShape.every((dimension, index) => dimension === test.featureShape[index]);
  if (!same) {
    throw new TrainingError(
      'invalid_data',
      `train samples have shape [${train.featureShape.join(', ')}], test samples [${test.featureShape.join(', ')}]`,
    );
  }
  if (test.numClasses > train.numClasses) {
    throw new TrainingError(
      'invalid_data',
      `the test set has ${test.numClasses} classes, the training set ${train.numClasses}`,
    );
  }
}
