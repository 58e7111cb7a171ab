import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/main.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';

const CLI = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));

/** Runs the CLI in this process; resolves to the exit code and what it wrote to stderr. */
async function invoke(args: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = '';
  let out = '';
  const consoleError = vi.spyOn(console, 'error').mockImplementation((...parts) => {
    err += `${parts.join(' ')}\n`;
  });
  const consoleLog = vi.spyOn(console, 'log').mockImplementation((...parts) => {
    out += `${parts.join(' ')}\n`;
  });
  process.exitCode = undefined;
  try {
    const code = await runCli(['node', 'zbmd', ...args], {
      out: (text) => (out += text),
      err: (text) => (err += text),
    });
    return { code, err, out };
  } finally {
    consoleError.mockRestore();
    consoleLog.mockRestore();
    process.exitCode = undefined;
  }
}

afterEach(() => {
  process.exitCode = undefined;
});

const train = (...args: string[]) => ['train', '--data', TINY_DATASET_DIR, '--max-steps', '2', ...args];

/** [argv, the flag the error must name, what the error must say is accepted]. */
const BAD: Array<[string[], string, RegExp]> = [
  [train('--seed', ''), '--seed', /integer from 0 to 9007199254740991/],
  [train('--seed', '-1'), '--seed', /integer from 0/],
  [train('--seed', '1.5'), '--seed', /integer from 0/],
  [train('--seed', 'NaN'), '--seed', /integer from 0/],
  [train('--seed', '1e3'), '--seed', /integer from 0/],
  [train('--seed', '99999999999999999999'), '--seed', /integer from 0/],
  [train('--seed', ' 7'), '--seed', /integer from 0/],
  [train('--epochs', '0'), '--epochs', /integer from 1 to 10000/],
  [train('--epochs', '10001'), '--epochs', /integer from 1 to 10000/],
  [train('--epochs', ''), '--epochs', /integer from 1 to 10000/],
  [train('--epochs', 'Infinity'), '--epochs', /integer from 1 to 10000/],
  [train('--batch-size', '0'), '--batch-size', /integer from 1 to 65536/],
  [train('--batch-size', '65537'), '--batch-size', /integer from 1 to 65536/],
  [train('--batch-size', '0x10'), '--batch-size', /integer from 1 to 65536/],
  [train('--lr', ''), '--lr', /number in \(0, 10\]/],
  [train('--lr', '0'), '--lr', /number in \(0, 10\]/],
  [train('--lr', '-0.1'), '--lr', /number in \(0, 10\]/],
  [train('--lr', '11'), '--lr', /number in \(0, 10\]/],
  [train('--lr', 'NaN'), '--lr', /number in \(0, 10\]/],
  [train('--lr', '0x1'), '--lr', /number in \(0, 10\]/],
  [train('--max-steps', '0'), '--max-steps', /integer from 1/],
  [train('--max-steps', ''), '--max-steps', /integer from 1/],
  [train('--checkpoint-interval', '0'), '--checkpoint-interval', /integer from 1 to 1000000/],
  [train('--checkpoint-interval', '1000001'), '--checkpoint-interval', /integer from 1 to 1000000/],
  [train('--snapshot-interval', '0'), '--snapshot-interval', /'auto' or an integer from 1 to 64/],
  [train('--snapshot-interval', '65'), '--snapshot-interval', /'auto' or an integer from 1 to 64/],
  [train('--snapshot-interval', 'Auto'), '--snapshot-interval', /'auto' or an integer from 1 to 64/],
  [train('--model', 'rnn'), '--model', /mlp, cnn/],
  [train('--model', ''), '--model', /mlp, cnn/],
  [train('--optimizer', 'lbfgs'), '--optimizer', /sgd, adam, adamw/],
  [train('--device', 'tpu'), '--device', /cpu, webgpu or cuda/],
  [train('--device', ''), '--device', /cpu, webgpu or cuda/],
  [train('--device', 'cuda:-1'), '--device', /cpu, webgpu or cuda/],
  [train('--device', 'cuda:99999'), '--device', /cpu, webgpu or cuda/],
  [train('--device', 'cuda:7'), 'cuda:7', /devices here: cpu:0/],
  [train('--faults', 'crash=2'), '--faults', /\[0, 1\]/],
  [train('--faults', 'crash=-0.1'), '--faults', /\[0, 1\]/],
  [train('--faults', 'bogus=1'), '--faults', /actorCrashRate/],
  [train('--faults', 'crash'), '--faults', /key=value/],
  [train('--faults', '{"oomRate":'), '--faults', /JSON/],
  [train('--data', ''), '--data', /non-empty path/],
  [['train', '--data', '/nonexistent/zbmd'], '--data', /not a directory/],
  [train('--checkpoint-dir', ''), '--checkpoint-dir', /non-empty path/],
  [train('--checkpoint-dir', ' '), '--checkpoint-dir', /non-empty path/],
  [train('--checkpoint-dir', 'a\0b'), '--checkpoint-dir', /non-empty path/],
  [train('--checkpoint-dir', 'x'.repeat(5000)), '--checkpoint-dir', /at most 4096 characters/],
  [
    train('--checkpoint-dir', fileURLToPath(new URL('../../package.json', import.meta.url))),
    'checkpointDir',
    /not a directory/,
  ],
  [
    ['train', '--data', fileURLToPath(new URL('../../package.json', import.meta.url))],
    '--data',
    /not a directory/,
  ],
  [train('--checkpoint-dir', '/proc/zbmd/ckpt'), 'checkpointDir', /writable directory/],
  [train('--checkpoint-dir', '/proc/self/status/ckpt'), 'checkpointDir', /not a directory/],
  [train('--resume'), '--resume', /--checkpoint-dir/],
  [train('--fresh'), '--fresh', /--checkpoint-dir/],
  [train('--bogus'), '--bogus', /unknown option/],
  [train('--epochs'), '--epochs', /argument missing/],
  [['demo', '--crashes', '0'], '--crashes', /integer from 1 to 100/],
  [['demo', '--crashes', '101'], '--crashes', /integer from 1 to 100/],
  [['demo', '--crashes', ''], '--crashes', /integer from 1 to 100/],
  [['demo', '--seed', ''], '--seed', /integer from 0/],
  [['demo', '--seed', '-5'], '--seed', /integer from 0/],
  [['simulate', 'x', '--seeds', '0'], '--seeds', /integer from 1 to 1000000/],
  [['simulate', 'x', '--seeds', '1000000000'], '--seeds', /integer from 1 to 1000000/],
  [['simulate', 'x', '--first-seed', ''], '--first-seed', /integer from 0/],
  [['simulate', 'x', '--replay', 'abc'], '--replay', /integer from 0/],
  [['bench', 'nothing'], 'nothing', /actors, supervision/],
  [['frobnicate'], 'frobnicate', /unknown command/],
  [[], 'Usage', /zbmd/],
];

describe('zbmd: bad invocations', () => {
  it.each(BAD)('%j: exit 2, one line naming %s', async (args, flag, accepted) => {
    const { code, err } = await invoke(args);
    expect(code, err).toBe(2);
    const lines = err
      .trim()
      .split('\n')
      .filter((line) => !line.startsWith('(run with --help'));
    if (args.length > 0) expect(lines, err).toHaveLength(1);
    expect(err).toContain(flag);
    expect(err).toMatch(accepted);
    expect(err).not.toMatch(/\n\s+at /);
  });

  it('--help and --version exit 0', async () => {
    for (const args of [['--help'], ['train', '--help'], ['--version']]) {
      const { code, out } = await invoke(args);
      expect(code).toBe(0);
      expect(out.length).toBeGreaterThan(0);
    }
  });

  it('good values still run (seed 0, lr 1e-3, snapshot auto)', async () => {
    const { code, out } = await invoke(train('--seed', '0', '--lr', '1e-3', '--snapshot-interval', 'auto'));
    expect(code).toBe(0);
    expect(out).toContain('steps 2,');
  });

  it('as a real process: exit 2, one line, no stack, no hang (--seed "", --checkpoint-dir under /proc)', () => {
    for (const args of [train('--seed', ''), train('--checkpoint-dir', '/proc/zbmd/ckpt')]) {
      const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(run.status, run.stderr).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')[0]).toMatch(/seed|checkpointDir/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
