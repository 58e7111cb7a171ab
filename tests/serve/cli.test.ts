import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/observe/index.js';
import { get, post, TINY_ONNX, tinyRequest } from './helpers.js';

const BIN = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));
const TINY_DATA = fileURLToPath(new URL('../../data/tiny', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/src/cli/serve.js', import.meta.url));

let child: ChildProcess | undefined;
afterEach(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
});

function exited(process: ChildProcess): Promise<number | string | null> {
  if (process.exitCode !== null || process.signalCode !== null)
    return Promise.resolve(process.signalCode ?? process.exitCode);
  return new Promise((resolve) => process.once('exit', (code, signal) => resolve(signal ?? code)));
}

/** Starts `zbmd serve` on a free port; resolves with its URL once it listens. */
async function startServe(...args: string[]): Promise<{ url: string; lines: AsyncIterableIterator<string> }> {
  expect(existsSync(BUILT), 'the compiled code is missing: run `npm run build` before the tests').toBe(true);
  child = spawn(process.execPath, [BIN, 'serve', ...args, '--port', '0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  const match = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(String(first.value));
  expect(match, String(first.value)).not.toBeNull();
  return { url: match![1], lines };
}

async function queueDepth(url: string): Promise<number> {
  const metrics = await get(`${url}/metrics`);
  return Number(/zbmd_serve_queue_depth\{model="tiny"\} (\d+)/.exec(metrics.body)?.[1] ?? 0);
}

describe('zbmd serve in a child process', () => {
  it('on SIGTERM stops accepting, answers the requests in flight and exits 0', async () => {
    // A long queue delay keeps the requests queued until the signal comes.
    const { url, lines } = await startServe(TINY_ONNX, '--max-delay-us', '5000000', '--max-batch', '64');
    const inFlight = Array.from({ length: 5 }, (_, index) =>
      post(`${url}/v2/models/tiny/infer`, tinyRequest(1, index)),
    );
    const deadline = Date.now() + 10_000;
    while ((await queueDepth(url)) < 5 && Date.now() < deadline)
      await new Promise((resolve) => setImmediate(resolve));
    expect(await queueDepth(url)).toBe(5);
    const startedMs = performance.now();
    child!.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    expect(await exited(child!)).toBe(0);
    // Answered by the drain, not by the 5 s queue delay.
    expect(performance.now() - startedMs).toBeLessThan(4000);
    const rest: string[] = [];
    for await (const line of lines) rest.push(line);
    expect(rest.join('\n')).toMatch(/SIGTERM: finished the requests in flight/);
    await expect(fetch(`${url}/v2/health/live`)).rejects.toThrow();
  });

  it('on SIGHUP loads the model again as a new version', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-serve-control-'));
    const socket = join(directory, 'serve.sock');
    const { url } = await startServe(TINY_ONNX, '--control', socket);
    child!.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    let versions: string[] = [];
    while (Date.now() < deadline) {
      versions = (await get(`${url}/v2/models/tiny`)).body.versions;
      if (versions.length === 1 && versions[0] === '2') break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(versions).toEqual(['2']);
    expect((await post(`${url}/v2/models/tiny/infer`, tinyRequest(1))).body.model_version).toBe('2');
    // The runtime's metrics (a SystemObserver over the server's system) beside serving's.
    const metrics = (await get(`${url}/metrics`)).body as unknown as string;
    expect(metrics).toMatch(/zbmd_serve_requests_total\{model="tiny",code="200"\} 1/);
    expect(metrics).toMatch(/^zbmd_processes\{node="[^"]+"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^zbmd_process_reductions\{node=/m);
    // zbmd top's view over --control: the server's supervision tree, its processes.
    const client = new ControlClient(socket);
    try {
      const snapshot = await client.snapshot();
      expect(snapshot.tree.length).toBeGreaterThan(0);
      expect(snapshot.processes.length).toBe(Math.min(snapshot.stats.alive, 200));
    } finally {
      client.close();
    }
    child!.kill('SIGTERM');
    expect(await exited(child!)).toBe(0);
    await rm(directory, { recursive: true, force: true });
  });

  it('serves what `zbmd train --checkpoint-dir` wrote, end to end', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'zbmd-train-serve-'));
    try {
      const trainer = spawn(
        process.execPath,
        [
          BIN,
          'train',
          '--data',
          TINY_DATA,
          '--max-steps',
          '3',
          '--batch-size',
          '16',
          '--checkpoint-dir',
          directory,
          '--device',
          'cpu',
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      expect(await exited(trainer)).toBe(0);
      const { url } = await startServe(directory, '--name', 'fashion');
      const metadata = await get(`${url}/v2/models/fashion`);
      expect(metadata.body).toMatchObject({
        platform: 'zbmd',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }],
      });
      const image = Array.from({ length: 784 }, (_, index) => (index % 17) / 17);
      const answer = await post(`${url}/v2/models/fashion/infer`, {
        inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: image }],
      });
      expect(answer.status).toBe(200);
      expect(answer.body.outputs[0]).toMatchObject({ name: 'logits', shape: [1, 10] });
      child!.kill('SIGTERM');
      expect(await exited(child!)).toBe(0);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('exits 2 with one line saying what is wrong for a model it cannot serve', async () => {
    child = spawn(process.execPath, [BIN, 'serve', '/nonexistent/model.onnx', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += String(chunk);
    });
    expect(await exited(child)).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/cannot read the model at \/nonexistent\/model.onnx: ENOENT/);
  });
});
