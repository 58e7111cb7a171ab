import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { fromData, noGrad } from '../../src/ml/index.js';
import { saveModel } from '../../src/ml/modelFiles.js';
import type { Module } from '../../src/ml/nn/Module.js';
import { buildMlp } from '../../src/ml/training/models.js';
import type { InferenceServer } from '../../src/serve/index.js';
import { get, post, startTestServer, TINY_ONNX, tinyRequest } from './helpers.js';

let server: InferenceServer | undefined;
let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-serve-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(directory, { recursive: true, force: true });
});

/** `clients` loops each sending `perClient` requests one after another; returns every answer. */
async function load(
  url: string,
  clients: number,
  perClient: number,
  body: (client: number, index: number) => unknown,
) {
  const answers: Array<{ status: number; body: any; sent: unknown }> = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let index = 0; index < perClient; index++) {
        const sent = body(client, index);
        const answer = await post(url, sent);
        answers.push({ ...answer, sent });
      }
    }),
  );
  return answers;
}

const SPEC = { model: 'mlp' as const, featureShape: [4], numClasses: 3 };

function logitsOf(module: Module, row: number[]): number[] {
  return noGrad(() => Array.from(module.forward(fromData(Float32Array.from(row), [1, 4])).data));
}

describe('replicas under a supervisor, behind HTTP', () => {
  it('answers every request once through replica crashes under load, and counts the restarts', async () => {
    ({ server } = await startTestServer({
      models: [{ path: TINY_ONNX }],
      replicas: 2,
      maxBatchSize: 8,
      maxQueueDelayUs: 500,
    }));
    const reference = await post(`${server.url}/v2/models/tiny/infer`, tinyRequest(1, 3));
    const crasher = setInterval(() => server?.crashReplica('tiny', Math.floor(Math.random() * 2)), 50);
    let answers: Awaited<ReturnType<typeof load>>;
    try {
      answers = await load(`${server.url}/v2/models/tiny/infer`, 16, 10, (client) =>
        tinyRequest(1, client % 4 === 0 ? 3 : client),
      );
    } finally {
      clearInterval(crasher);
    }
    // A request fails only when both of its tries were struck by a crash (500, saying so); none is
    // lost (504) or refused (503), and every answer holds the model's output for its own input.
    const failed = answers.filter((answer) => answer.status !== 200);
    for (const answer of failed) expect(answer.body.error).toMatch(/the model failed on two replicas/);
    expect(failed.length).toBeLessThan(answers.length / 10);
    for (const answer of answers.filter((a) => a.status === 200 && (a.sent as any).inputs[0].data[0] === 0.3))
      expect(answer.body.outputs[0].data).toEqual(reference.body.outputs[0].data);
    const metrics = await get(`${server.url}/metrics`);
    const restarts = Number(
      /zbmd_serve_replica_restarts_total\{model="tiny"\} (\d+)/.exec(metrics.body)?.[1],
    );
    expect(restarts).toBeGreaterThan(0);
  });

  it('keeps serving through batcher crashes under load: every request answered 200 with its own output', async () => {
    ({ server } = await startTestServer({
      models: [{ path: TINY_ONNX }],
      replicas: 2,
      maxBatchSize: 8,
      maxQueueDelayUs: 500,
    }));
    const url = `${server.url}/v2/models/tiny/infer`;
    const reference = await post(url, tinyRequest(1, 3));
    let crashes = 0;
    const crasher = setInterval(() => {
      if (server?.crashBatcher('tiny')) crashes++;
    }, 50);
    let answers: Awaited<ReturnType<typeof load>>;
    try {
      answers = await load(url, 16, 10, (client) => tinyRequest(1, client % 4 === 0 ? 3 : client));
    } finally {
      clearInterval(crasher);
    }
    expect(crashes).toBeGreaterThan(0);
    expect(answers.filter((answer) => answer.status !== 200).map((a) => a.body.error)).toEqual([]);
    for (const answer of answers.filter((a) => (a.sent as any).inputs[0].data[0] === 0.3))
      expect(answer.body.outputs[0].data).toEqual(reference.body.outputs[0].data);
    const metrics = (await get(`${server.url}/metrics`)).body;
    expect(Number(/zbmd_serve_batcher_restarts_total\{model="tiny"\} (\d+)/.exec(metrics)?.[1])).toBe(
      crashes,
    );
    expect((await get(`${server.url}/v2/health/ready`)).status).toBe(200);
  });

  it('upgrades a model by a rolling load, replacing replicas one by one, dropping no request under load', async () => {
    const first = buildMlp(SPEC, new Random(1)).eval();
    const second = buildMlp(SPEC, new Random(2)).eval();
    const path = join(directory, 'model');
    await saveModel(first, path, SPEC);
    const replicas = 3;
    let lines: Record<string, unknown>[];
    ({ server, lines } = await startTestServer({ models: [{ path, name: 'm' }], replicas }));
    const running = server;
    const url = `${server.url}/v2/models/m/infer`;
    const row = [0.5, -1, 2, 0.25];
    const body = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: row }] };
    await saveModel(second, path, SPEC);
    // The replicas running, by version, sampled on every turn of the event loop during the upgrade.
    const replicaCounts: Array<Record<string, number>> = [];
    let sampling = true;
    const sample = () => {
      const counts: Record<string, number> = {};
      for (const name of running.system.registered()) {
        const match = /^zbmd\.serve\/m\/(\d+)\/replica-/.exec(name);
        if (match) counts[match[1]] = (counts[match[1]] ?? 0) + 1;
      }
      replicaCounts.push(counts);
      if (sampling) setImmediate(sample);
    };
    sample();
    const during = load(url, 8, 40, () => body);
    const upgraded = await post(`${server.url}/v2/repository/models/m/load`, {});
    const answers = await during;
    sampling = false;
    expect(upgraded).toMatchObject({ status: 200, body: { model_name: 'm', model_version: '2' } });
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    const versions = new Set(answers.map((answer) => answer.body.model_version));
    expect([...versions].every((version) => version === '1' || version === '2')).toBe(true);
    for (const answer of answers) {
      const expected = logitsOf(answer.body.model_version === '1' ? first : second, row);
      for (const [index, value] of expected.entries())
        expect(answer.body.outputs[0].data[index]).toBeCloseTo(value, 5);
    }
    // Never the whole set swapped at once: one replica at a time, at most replicas + 1 running
    // (the server's log of each step, and the registry sampled on every event-loop turn).
    const steps = lines
      .filter((line) => line.msg === 'rolling upgrade step')
      .map((line) => [line.action, line.replicas, line.processes]);
    expect(steps).toEqual([
      ['started', { '1': 3, '2': 1 }, 3 + 1 + 2],
      ['retired', { '1': 2, '2': 1 }, 2 + 1 + 2],
      ['added', { '1': 2, '2': 2 }, 2 + 2 + 2],
      ['retired', { '1': 1, '2': 2 }, 1 + 2 + 2],
      ['added', { '1': 1, '2': 3 }, 1 + 3 + 2],
    ]);
    const totals = replicaCounts.map((counts) => Object.values(counts).reduce((a, b) => a + b, 0));
    expect(Math.max(...totals)).toBeLessThanOrEqual(replicas + 1);
    expect(replicaCounts.at(-1)).toEqual({ '2': replicas });
    const after = await post(url, body);
    expect(after.body.model_version).toBe('2');
    for (const [index, value] of logitsOf(second, row).entries())
      expect(after.body.outputs[0].data[index]).toBeCloseTo(value, 5);
    expect((await get(`${server.url}/v2/models/m`)).body.versions).toEqual(['2']);
    expect((await get(`${server.url}/v2/models/m/versions/1`)).status).toBe(404);
    expect((await post(`${server.url}/v2/repository/models/nope/load`, {})).status).toBe(404);
  });

  it('keeps the old version serving when the new one cannot load', async () => {
    const path = join(directory, 'model');
    await saveModel(buildMlp(SPEC, new Random(1)), path, SPEC);
    ({ server } = await startTestServer({ models: [{ path, name: 'm' }] }));
    await rm(join(path, 'model.json'));
    const failed = await post(`${server.url}/v2/repository/models/m/load`, {});
    expect(failed.status).toBe(400);
    expect(failed.body.error).toMatch(/holds neither model.json/);
    const still = await post(`${server.url}/v2/models/m/infer`, {
      inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
    });
    expect(still).toMatchObject({ status: 200, body: { model_version: '1' } });
  });
});
