import { describe, expect, it } from 'vitest';
import { DEFAULT_MODEL, main } from '../../examples/06-inference-server.js';
import type { InferenceServer } from '../../src/serve/index.js';
import { get, post } from './helpers.js';

describe('examples/06-inference-server.ts (the design book, Example 6)', () => {
  it('serves the ONNX model with batching and metrics, then shuts down gracefully', async () => {
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    let listening!: (server: InferenceServer) => void;
    const ready = new Promise<InferenceServer>((resolve) => {
      listening = resolve;
    });
    const lines: string[] = [];
    const finished = main({
      modelPath: DEFAULT_MODEL,
      port: 0,
      stop: stopped,
      onListening: listening,
      write: (line) => lines.push(line),
    });
    const server = await ready;
    expect((await get(`${server.url}/v2/health/ready`)).status).toBe(200);
    const image = Array.from({ length: 784 }, (_, index) => (index % 13) / 13);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        post(`${server.url}/v2/models/model/infer`, {
          inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: image }],
        }),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((answer) => JSON.stringify(answer.body.outputs[0].data))).size).toBe(1);
    expect((await get(`${server.url}/metrics`)).body).toMatch(
      /zbmd_serve_batch_size_count\{model="model"\} \d+/,
    );
    stop();
    expect(await finished).toEqual({ drained: true });
    expect(lines).toEqual([
      `Inference server running on ${server.url}`,
      `Metrics available on ${server.url}/metrics`,
      `Health check on ${server.url}/v2/health/ready`,
      'Shutting down gracefully...',
    ]);
  });
});
