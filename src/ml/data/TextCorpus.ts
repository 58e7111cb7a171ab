/**
 * A character-level corpus for a language model: a UTF-8 text file, its vocabulary (every
 * distinct character, in code point order; a token is a character's index in it), and the
 * train and test splits as sequence data sets: sample i is the window of `blockSize` tokens
 * starting at i * blockSize, its labels the `blockSize` tokens one further (the next token at
 * each position). The last 10% of the text is the test split.
 *
 * Limits: a corpus of at most `TEXT_CORPUS_MAX_BYTES` (64 MiB), valid UTF-8, at most 65,536
 * distinct characters, and enough text for one window in each split (blockSize + 1 characters).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dataset } from './Dataset.js';
import { DatasetError } from './DatasetError.js';

/** The corpus shipped with zbmd: `data/shakespeare.txt` at the package root (public domain). */
export const DEFAULT_TEXT_CORPUS = findDefaultCorpus();

function findDefaultCorpus(): string {
  // Works from src/ml/data (tests, vite-node) and from dist/src/ml/data (the built package).
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 6; level++) {
    const candidate = join(directory, 'data', 'shakespeare.txt');
    if (existsSync(candidate)) return candidate;
    directory = dirname(directory);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'data', 'shakespeare.txt');
}

export const TEXT_CORPUS_MAX_BYTES = 64 * 1024 * 1024;
/** The most distinct characters a vocabulary holds (token ids fit in 16 bits). */
export const TEXT_VOCABULARY_MAX = 65_536;
/** The share of the text held out for testing (its end). */
export const TEXT_TEST_FRACTION = 0.1;

/** Characters <-> token ids. */
export class CharTokenizer {
  readonly characters: readonly string[];
  private readonly ids: Map<string, number>;

  /** From a vocabulary as stored in a checkpoint: its distinct characters, in order. */
  constructor(vocabulary: string) {
    const characters = Array.from(vocabulary);
    if (characters.length === 0 || characters.length > TEXT_VOCABULARY_MAX)
      throw new DatasetError(
        'invalid_dataset',
        `a vocabulary needs 1 to ${TEXT_VOCABULARY_MAX} characters, got ${characters.length}`,
      );
    this.ids = new Map(characters.map((character, index) => [character, index]));
    if (this.ids.size !== characters.length)
      throw new DatasetError('invalid_dataset', 'a vocabulary must not repeat a character');
    this.characters = characters;
  }

  /** The vocabulary of `text`: its distinct characters in code point order. */
  static fromText(text: string): CharTokenizer {
    const distinct = [...new Set(Array.from(text))].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    if (distinct.length === 0) throw new DatasetError('invalid_dataset', 'the text is empty');
    return new CharTokenizer(distinct.join(''));
  }

  get vocabulary(): string {
    return this.characters.join('');
  }

  get size(): number {
    return this.characters.length;
  }

  /** Token ids of `text`; a character outside the vocabulary is an error naming it. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const character of text) {
      const id = this.ids.get(character);
      if (id === undefined)
        throw new DatasetError(
          'invalid_dataset',
          `the character ${JSON.stringify(character)} is not in the vocabulary (${this.size} characters of the training text)`,
        );
      out.push(id);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return ids.map((id) => this.characters[id] ?? '').join('');
  }
}

/** A sequence data set: non-overlapping windows of `blockSize` tokens and their next tokens. */
export function sequenceDataset(tokens: Int32Array, blockSize: number, vocabularySize: number): Dataset {
  const length = Math.floor((tokens.length - 1) / blockSize);
  const features = new Float32Array(length * blockSize);
  const labels = new Int32Array(length * blockSize);
  for (let sample = 0; sample < length; sample++) {
    const start = sample * blockSize;
    for (let t = 0; t < blockSize; t++) {
      features[start + t] = tokens[start + t];
      labels[start + t] = tokens[start + t + 1];
    }
  }
  return {
    length,
    featureShape: [blockSize],
    labelShape: [blockSize],
    numClasses: vocabularySize,
    features,
    labels,
  };
}

export interface TextCorpus {
  readonly train: Dataset;
  readonly test: Dataset;
  readonly tokenizer: CharTokenizer;
  /** Characters of the whole text. */
  readonly characters: number;
}

/** Splits `text` into train and test windows of `blockSize` tokens. */
export function textCorpus(text: string, blockSize: number): TextCorpus {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new DatasetError('invalid_dataset', `blockSize must be a positive integer, got ${blockSize}`);
  const tokenizer = CharTokenizer.fromText(text);
  const tokens = Int32Array.from(tokenizer.encode(text));
  const split = Math.floor(tokens.length * (1 - TEXT_TEST_FRACTION));
  const needed = blockSize + 1;
  if (split < needed || tokens.length - split < needed)
    throw new DatasetError(
      'invalid_dataset',
      `the text has ${tokens.length} characters; with blockSize ${blockSize} it needs at least ${Math.ceil(needed / TEXT_TEST_FRACTION)} (${needed} in the test split, its last 10%)`,
    );
  return {
    train: sequenceDataset(tokens.subarray(0, split), blockSize, tokenizer.size),
    test: sequenceDataset(tokens.subarray(split), blockSize, tokenizer.size),
    tokenizer,
    characters: tokens.length,
  };
}

/** Reads a UTF-8 text file as a corpus; every problem is a `DatasetError` saying what is wrong. */
export async function readTextCorpus(path: string, blockSize: number): Promise<TextCorpus> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new DatasetError('invalid_dataset', `${path} is not a file`);
    size = info.size;
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    throw new DatasetError(
      'invalid_dataset',
      `${path} cannot be read (${(error as NodeJS.ErrnoException).code})`,
    );
  }
  if (size > TEXT_CORPUS_MAX_BYTES)
    throw new DatasetError(
      'invalid_dataset',
      `${path} has ${size} bytes; a text corpus may have at most ${TEXT_CORPUS_MAX_BYTES}`,
    );
  const bytes = await readFile(path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DatasetError('invalid_dataset', `${path} is not UTF-8 text`);
  }
  try {
    return textCorpus(text, blockSize);
  } catch (error) {
    if (error instanceof DatasetError) throw new DatasetError('invalid_dataset', `${path}: ${error.message}`);
    throw error;
  }
}
