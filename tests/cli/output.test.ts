import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { zbmdVersion } from '../../src/cli/main.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';

const CLI = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
const PACKAGE = fileURLToPath(new URL('../../package.json', import.meta.url));

describe('zbmd --version', () => {
  it("prints zbmd's version inside another project too", async () => {
    const { version } = JSON.parse(await readFile(PACKAGE, 'utf8'));
    expect(zbmdVersion()).toBe(version);
    const project = await mkdtemp(join(tmpdir(), 'zbmd-other-project-'));
    try {
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'other', version: '9.9.9' }));
      const run = spawnSync(process.execPath, [CLI, '--version'], {
        cwd: project,
        encoding: 'utf8',
        env: { ...process.env, npm_package_version: '9.9.9', npm_package_name: 'other' },
        timeout: 20_000,
      });
      expect(run.status).toBe(0);
      expect(run.stdout.trim()).toBe(version);
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });
});

describe('zbmd train into a pipe', () => {
  it('writes each line as it happens, the header first, epochs numbered as in --json', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'train', '--data', TINY_DATASET_DIR, '--epochs', '4', '--batch-size', '64'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const header = (await lines.next()).value as string;
    expect(header).toMatch(/^training mlp with adam on .*: 500 steps \(125 per epoch\)/);
    // The header came while the run was still going: it was not held back to the end.
    expect(child.exitCode).toBeNull();
    const first = (await lines.next()).value as string;
    expect(first).toMatch(/^epoch 1: /);
    expect(child.exitCode).toBeNull();
    const rest: string[] = [];
    for await (const line of lines) rest.push(line);
    expect(rest[0]).toMatch(/^epoch 2: /);
    expect(await exited).toBe(0);
  }, 60_000);
});
