import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { InferenceServer } from '../../src/serve/index.js';
import { get, post, startTestServer, TINY_GOLDEN, TINY_ONNX, TYPES_ONNX, tinyRequest } from './helpers.js';

let server: InferenceServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('Open Inference Protocol v2 over HTTP (ONNX through onnxruntime-node)', () => {
  it('answers health, server and model metadata, readiness', async () => {
    ({ server } = await startTestServer({ models: [{ path: TINY_ONNX }] }));
    expect((await get(`${server.url}/v2/health/live`)).status).toBe(200);
    expect((await get(`${server.url}/v2/health/ready`)).body).toEqual({ ready: true });
    expect((await get(`${server.url}/v2`)).body).toMatchObject({
      name: 'zbmd',
      extensions: ['model_repository'],
    });
    const metadata = await get(`${server.url}/v2/models/tiny`);
    expect(metadata.body).toEqual({
      name: 'tiny',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3] }],
    });
    expect((await get(`${server.url}/v2/models/tiny/versions/1/ready`)).body).toEqual({
      name: 'tiny',
      ready: true,
    });
    const unknown = await get(`${server.url}/v2/models/nope`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/unknown model 'nope'/);
    expect((await get(`${server.url}/v2/models/tiny/versions/9`)).status).toBe(404);
  });

  it('infers the logits PyTorch computed, from flat or nested data', async () => {
    ({ server } = await startTestServer({ models: [{ path: TINY_ONNX }] }));
    const golden = JSON.parse(await readFile(TINY_GOLDEN, 'utf8'));
    const flat = await post(`${server.url}/v2/models/tiny/infer`, {
      id: 'a1',
      inputs: [{ name: 'input', shape: golden.shape, datatype: 'FP32', data: golden.input }],
    });
    expect(flat.status).toBe(200);
    expect(flat.body).toMatchObject({ model_name: 'tiny', model_version: '1', id: 'a1' });
    const [output] = flat.body.outputs;
    expect(output).toMatchObject({ name: 'logits', datatype: 'FP32', shape: [3, 3] });
    output.data.forEach((value: number, index: number) => {
      expect(value).toBeCloseTo(golden.logits[index], 5);
    });
    const nestedData = [0, 1, 2].map((row) => golden.input.slice(row * 4, row * 4 + 4));
    const nested = await post(`${server.url}/v2/models/tiny/infer`, {
      inputs: [{ name: 'input', shape: golden.shape, datatype: 'FP32', data: nestedData }],
    });
    expect(nested.body.outputs[0].data).toEqual(output.data);
  });

  it('takes FP16, INT64, INT32, UINT8 and BOOL inputs and returns INT64 and BOOL outputs', async () => {
    ({ server } = await startTestServer({ models: [{ path: TYPES_ONNX, name: 'types' }] }));
    const tensor = (name: string, datatype: string, data: unknown[]) => ({
      name,
      datatype,
      shape: [2, 2],
      data,
    });
    const answer = await post(`${server.url}/v2/models/types/infer`, {
      inputs: [
        tensor('half', 'FP16', [0.5, 1.5, -2, 1024]),
        tensor('long', 'INT64', [1, 2, 3, 2 ** 40]),
        tensor('integer', 'INT32', [10, 20, 30, -40]),
        tensor('byte', 'UINT8', [0, 1, 255, 7]),
        tensor('flag', 'BOOL', [true, false, true, false]),
      ],
      outputs: [{ name: 'doubled' }, { name: 'negated' }, { name: 'sum' }],
    });
    expect(answer.status).toBe(200);
    const byName = Object.fromEntries(answer.body.outputs.map((output: any) => [output.name, output]));
    expect(answer.body.outputs.map((output: any) => output.name)).toEqual(['doubled', 'negated', 'sum']);
    expect(byName.doubled).toEqual({
      name: 'doubled',
      datatype: 'INT64',
      shape: [2, 2],
      data: [2, 4, 6, 2 ** 41],
    });
    expect(byName.negated.data).toEqual([false, true, false, true]);
    // The sum is FP32: 2^40 + 991 rounds to 2^40.
    expect(byName.sum.data).toEqual([12.5, 24.5, 287, Math.fround(2 ** 40 + 1024 - 40 + 7)]);
  });

  it('rejects bad input with 400, saying which input and what was expected against received', async () => {
    ({ server } = await startTestServer({ models: [{ path: TINY_ONNX }], maxBatchSize: 8 }));
    const url = `${server.url}/v2/models/tiny/infer`;
    const cases: Array<[unknown, RegExp]> = [
      [
        { inputs: [{ name: 'input', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] },
        /input 'input': expected shape \[-1, 4\], received \[1, 5\]/,
      ],
      [
        { inputs: [{ name: 'input', shape: [1, 4], datatype: 'INT32', data: [1, 2, 3, 4] }] },
        /input 'input': expected datatype FP32, received "INT32"/,
      ],
      [
        { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3] }] },
        /holds 4 elements, data has 3/,
      ],
      [
        { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 'x', 4] }] },
        /element 2 must be a number/,
      ],
      [
        { inputs: [{ name: 'other', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
        /'other' is not an input of the model; it takes input/,
      ],
      [{ inputs: [] }, /input 'input' is missing/],
      [tinyRequest(9), /9 rows; the server runs batches of at most 8/],
      ['{not json', /JSON/i],
    ];
    for (const [body, pattern] of cases) {
      const answer = await post(url, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error).toMatch(pattern);
    }
    expect((await post(`${server.url}/v2/models/nope/infer`, tinyRequest(1))).status).toBe(404);
  });

  it('limits the request body size (413 with the limit in the error)', async () => {
    ({ server } = await startTestServer({ models: [{ path: TINY_ONNX }], bodyLimitBytes: 2048 }));
    const answer = await post(`${server.url}/v2/models/tiny/infer`, tinyRequest(200));
    expect(answer.status).toBe(413);
    expect(answer.body.error).toMatch(/limit of 2048 bytes/);
  });

  it('exports Prometheus metrics and logs each request through pino', async () => {
    const started = await startTestServer({ models: [{ path: TINY_ONNX }] });
    server = started.server;
    await post(`${server.url}/v2/models/tiny/infer`, tinyRequest(2));
    await post(`${server.url}/v2/models/tiny/infer`, { inputs: [] });
    const metrics = await get(`${server.url}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/);
    expect(metrics.body).toMatch(/zbmd_serve_requests_total\{model="tiny",code="200"\} 1/);
    expect(metrics.body).toMatch(/zbmd_serve_requests_total\{model="tiny",code="400"\} 1/);
    expect(metrics.body).toMatch(/zbmd_serve_batch_size_sum\{model="tiny"\} 2/);
    expect(metrics.body).toMatch(/zbmd_serve_request_duration_seconds_count\{model="tiny"\} 2/);
    expect(metrics.body).toMatch(/zbmd_serve_queue_depth\{model="tiny"\} 0/);
    expect(metrics.body).toMatch(/zbmd_serve_replica_restarts_total/);
    const completed = started.lines.filter((line) => line.msg === 'request completed');
    expect(completed.length).toBeGreaterThanOrEqual(2);
    expect(completed.some((line) => (line.res as { statusCode: number }).statusCode === 400)).toBe(true);
  });

  it('answers 429 with Retry-After when the queue is full, 504 past the request timeout, 503 while shutting down', async () => {
    ({ server } = await startTestServer({
      models: [{ path: TINY_ONNX }],
      maxQueueSize: 1,
      maxQueueDelayUs: 2_000_000,
      requestTimeoutMs: 2000,
    }));
    const url = `${server.url}/v2/models/tiny/infer`;
    const queued = post(url, tinyRequest(1));
    const depth = async () =>
      /zbmd_serve_queue_depth\{model="tiny"\} (\d+)/.exec((await get(`${server!.url}/metrics`)).body)?.[1];
    const deadline = Date.now() + 5000;
    while ((await depth()) !== '1' && Date.now() < deadline)
      await new Promise((resolve) => setImmediate(resolve));
    const full = await post(url, tinyRequest(1));
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toBe('1');
    expect(full.body.error).toMatch(/queue of model 'tiny' is full \(1 requests\)/);
    const timedOut = await queued;
    expect(timedOut.status).toBe(504);
    const closing = server.close();
    server = undefined;
    const refused = await post(url, tinyRequest(1)).catch(() => ({ status: 503 }));
    expect(refused.status).toBe(503);
    await closing;
  });
});
