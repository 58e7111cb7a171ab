import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The machine has 2 cores; forks keep native addons (koffi, Dawn) isolated per file.
    pool: 'forks',
    testTimeout: 30_000,
  },
});
