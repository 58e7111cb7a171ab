import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // examples/ import the package by name; tests run them against the source
    alias: [
      { find: /^zbmd$/, replacement: source('index.ts') },
      { find: /^zbmd\/([a-z]+)$/, replacement: source('$1/index.ts') },
    ],
  },
  test: {
    include: ['tests/**/*.test.ts'],
    // The machine has 2 cores; forks keep native addons (koffi, Dawn) isolated per file.
    pool: 'forks',
    testTimeout: 30_000,
  },
});
