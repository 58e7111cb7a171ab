import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The runner patches a copy of dist/ (built by `npm run build`, as scripts/setup.sh does).
const directory = mkdtempSync(join(tmpdir(), 'zbmd-mutants-test-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function runWith(mutants: unknown[]) {
  const catalog = join(directory, `catalog-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(catalog, JSON.stringify({ mutants }));
  return spawnSync(process.execPath, ['scripts/mutants.mjs', '--catalog', catalog, '--seeds', '1'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

const base = {
  id: 'planted',
  description: 'a planted bug',
  file: 'supervision/RestartIntensity.js',
  replace: 'x',
  scenarios: ['supervisor-model'],
};

describe('npm run mutants', () => {
  it('fails (exit 2) when a patch target is not found, never skipping it', () => {
    const result = runWith([{ ...base, search: 'this text is in no file' }]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /planted: the patch's text is not found in dist\/src\/supervision\/RestartIntensity\.js/,
    );
  });

  it('fails when a patch target is ambiguous, or an entry lacks a field', () => {
    const ambiguous = runWith([{ ...base, search: 'this.length' }]);
    expect(ambiguous.status).toBe(2);
    expect(ambiguous.stderr).toMatch(/is found \d+ times/);
    const missing = runWith([{ ...base, search: undefined }]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/mutants\[0\]\.search: expected a non-empty string/);
  });

  it('every patch of the shipped catalog applies to the build exactly once', () => {
    const result = spawnSync(process.execPath, ['scripts/mutants.mjs', '--check'], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/all (\d+) patches apply to dist\/ exactly once/);
    expect(Number(/all (\d+)/.exec(result.stdout)![1])).toBeGreaterThanOrEqual(18);
    expect(result.status).toBe(0);
    const unknown = spawnSync(process.execPath, ['scripts/mutants.mjs', '--only', 'none-such'], {
      encoding: 'utf8',
    });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/no mutant 'none-such'/);
  });
});
