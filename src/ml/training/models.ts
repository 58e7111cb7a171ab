/**
 * The built-in models of `zbmd train`, built from a seeded generator so a run replays:
 * - mlp: flatten -> 128 -> relu -> classes;
 * - cnn: conv(C->16, 3x3) relu pool -> conv(16->32, 3x3) relu pool -> 128 -> relu -> classes,
 *   for images [C, H, W] with H and W divisible by 4 (Fashion-MNIST: [1, 28, 28]).
 */
import type { Random } from '../../actor/Random.js';
import { Gpt } from '../nn/gpt.js';
import { Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import type { Module } from '../nn/Module.js';
import { TrainingError } from './errors.js';
import type { ModelFactory, ModelShape, ResolvedGptOptions } from './TrainingConfig.js';

/** Hidden units of the built-in MLP. */
export const MLP_HIDDEN_UNITS = 128;

export function buildMlp(shape: ModelShape, random: Random): Module {
  const features = shape.featureShape.reduce((product, dimension) => product * dimension, 1);
  return new Sequential(
    new Flatten(),
    new Linear(features, MLP_HIDDEN_UNITS, { random }),
    new ReLU(),
    new Linear(MLP_HIDDEN_UNITS, shape.numClasses, { random }),
  );
}

export function buildCnn(shape: ModelShape, random: Random): Module {
  const [channels, height, width] = shape.featureShape;
  if (shape.featureShape.length !== 3 || height % 4 !== 0 || width % 4 !== 0) {
    throw new TrainingError(
      'invalid_config',
      `the cnn model needs images [C, H, W] with H and W divisible by 4; the data has samples of shape [${shape.featureShape.join(', ')}]`,
    );
  }
  return new Sequential(
    new Conv2d(channels, 16, 3, { padding: 1, random }),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(16, 32, 3, { padding: 1, random }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(32 * (height / 4) * (width / 4), 128, { random }),
    new ReLU(),
    new Linear(128, shape.numClasses, { random }),
  );
}

/**
 * The gpt model of `zbmd train --model gpt`: token windows [T] in, logits (T, V) out per
 * sample, V the corpus's vocabulary (the data set's classes).
 */
export function buildGpt(shape: ModelShape, random: Random, options: ResolvedGptOptions): Gpt {
  const [blockSize] = shape.featureShape;
  if (shape.featureShape.length !== 1 || blockSize !== options.blockSize) {
    throw new TrainingError(
      'invalid_config',
      `the gpt model needs token windows [${options.blockSize}] (a text corpus); the data has samples of shape [${shape.featureShape.join(', ')}]`,
    );
  }
  const { layers, heads, dimension, dropout } = options;
  return new Gpt({ vocabSize: shape.numClasses, blockSize, layers, heads, dimension, dropout }, { random });
}

export function modelFactoryOf(
  model: 'mlp' | 'cnn' | 'gpt' | ModelFactory,
  gpt?: ResolvedGptOptions,
): ModelFactory {
  if (model === 'mlp') return buildMlp;
  if (model === 'cnn') return buildCnn;
  if (model === 'gpt') {
    if (gpt === undefined) throw new TrainingError('invalid_config', 'the gpt model needs its gpt options');
    return (shape, random) => buildGpt(shape, random, gpt);
  }
  return model;
}
