/**
 * Running a PyTorch reference script beside a bench (bench/ml_pytorch.py, bench/gpt_pytorch.py):
 * finding the script and the interpreter, the OpenBLAS settings PyTorch is measured under, and one
 * bounded run that returns the script's JSON or why there is none.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `ZBMD_PYTHON`, else Debian's /usr/bin/python3 when it exists, else python3 on the PATH. */
export function pythonExecutable(): string {
  return process.env.ZBMD_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
}

/** A script of bench/, beside this file in the sources and two levels up from dist/bench. */
export function benchScript(name: string): string | undefined {
  return [new URL(`./${name}`, import.meta.url), new URL(`../../bench/${name}`, import.meta.url)]
    .map((url) => fileURLToPath(url))
    .find((path) => existsSync(path));
}

/**
 * The OpenBLAS settings PyTorch runs under, each with torch.set_num_threads 1 and 2, so that the
 * reference is PyTorch at its best. On two cores PyTorch's intra-op OpenMP threads and OpenBLAS's
 * own threads oversubscribe them. Measured here (2026-12-02, load 0.4-2.7), two torch threads ran
 * the bench CNN at 53-72 steps/s with OpenBLAS at its default and at 94-105 with
 * OPENBLAS_NUM_THREADS=1; the 784-128-10 MLP at 474-1,059 against 1,523-2,476. So both settings
 * are measured and the best counts. `suffix` names the second setting's figures.
 */
export const PYTORCH_BLAS_SETTINGS: readonly { suffix: string; env: Record<string, string> }[] = [
  { suffix: '', env: {} },
  { suffix: '_blas1', env: { OPENBLAS_NUM_THREADS: '1' } },
];

/**
 * Runs `script` with `args` under `env` (added to this process's), bounded by `timeoutMs`, and
 * returns its stdout parsed as JSON, or a sentence saying why it did not run.
 */
export function runPytorch<T>(
  script: string,
  args: readonly string[],
  timeoutMs: number,
  env: Record<string, string>,
): T | string {
  const child = spawnSync(pythonExecutable(), [script, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...env },
  });
  if (child.error !== undefined) {
    const timedOut = (child.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return timedOut ? `timed out after ${timeoutMs / 1000} s` : `failed: ${child.error.message}`;
  }
  if (child.status !== 0)
    return `failed (exit ${child.status}): ${child.stderr.trim().split('\n').at(-1) ?? ''}`;
  return JSON.parse(child.stdout) as T;
}
