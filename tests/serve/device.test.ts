/**
 * `--device` for serving: a zbmd model served on real WebGPU (SwiftShader here; skipped, saying
 * why, without an adapter) answers the CPU module's logits; ONNX models and unknown device
 * names are refused with `unsupported_device` (these run everywhere).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { fromData, noGrad } from '../../src/ml/index.js';
import { saveModel } from '../../src/ml/modelFiles.js';
import { buildMlp } from '../../src/ml/training/models.js';
import { isServeError, openModelSource } from '../../src/serve/index.js';
import { probeWebGpu } from '../gpu/support.js';
import { post, startTestServer, TINY_ONNX } from './helpers.js';

const SPEC = { model: 'mlp' as const, featureShape: [6], numClasses: 4 };
let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-serve-device-'));
  await saveModel(buildMlp(SPEC, new Random(5)).eval(), join(directory, 'model'), SPEC);
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('serving devices', () => {
  it('refuses an ONNX model on a GPU device and a name that is not a device, saying why', async () => {
    const onnx = await openModelSource(TINY_ONNX, { device: 'webgpu' }).catch((error) => error);
    expect(isServeError(onnx, 'unsupported_device')).toBe(true);
    expect(onnx.message).toMatch(/ONNX models run on onnxruntime-node's CPU execution provider only/);
    const named = await openModelSource(join(directory, 'model'), { device: 'tpu:0' }).catch((e) => e);
    expect(isServeError(named, 'unsupported_device')).toBe(true);
    expect(named.message).toMatch(/use cpu, webgpu, webgpu:N or cuda:N/);
  });
});

const webgpu = await probeWebGpu();
describe.skipIf(!webgpu.available)(`a zbmd model served on webgpu (${webgpu.reason})`, () => {
  it('answers the CPU logits from two replicas on the device, through a replica crash', async () => {
    const { server } = await startTestServer({
      models: [{ path: join(directory, 'model'), name: 'm' }],
      device: 'webgpu',
      replicas: 2,
      maxBatchSize: 8,
      maxQueueDelayUs: 1000,
    });
    try {
      const module = buildMlp(SPEC, new Random(5)).eval();
      const rows = Array.from({ length: 5 }, (_, row) => Array.from({ length: 6 }, (_, c) => (row - c) / 4));
      const expected = noGrad(() =>
        Array.from(module.forward(fromData(Float32Array.from(rows.flat()), [5, 6])).data),
      );
      const url = `${server.url}/v2/models/m/infer`;
      const body = { inputs: [{ name: 'input', shape: [5, 6], datatype: 'FP32', data: rows.flat() }] };
      const first = await post(url, body);
      expect(first.status).toBe(200);
      expect(first.body.outputs[0].shape).toEqual([5, 4]);
      for (const [index, value] of expected.entries())
        expect(first.body.outputs[0].data[index]).toBeCloseTo(value, 4);
      expect(server.crashReplica('m', 0)).toBe(true);
      const answers = await Promise.all(Array.from({ length: 6 }, () => post(url, body)));
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        expect(answer.body.outputs[0].data).toEqual(first.body.outputs[0].data);
      }
    } finally {
      await server.close();
    }
  });
});
