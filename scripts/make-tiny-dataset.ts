/**
 * Regenerates the procedural tiny data set shipped in data/tiny (four gzip IDX files in
 * Fashion-MNIST's format). Deterministic: running it again gives the same pixels.
 *
 *   npx vite-node scripts/make-tiny-dataset.ts [output-directory]
 */
import { fileURLToPath } from 'node:url';
import { writeTinyDataset } from '../src/ml/data/TinyDataset.js';

const directory = process.argv[2] ?? fileURLToPath(new URL('../data/tiny', import.meta.url));
await writeTinyDataset(directory);
console.log(`wrote the tiny data set to ${directory}`);
