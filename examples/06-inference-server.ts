/**
 * The design book's Example 6 (seeds/001 ch. 10): a production inference server. An ONNX
 * model with 4 replicas under a supervisor, dynamic batching up to 128 rows or 10 ms, Prometheus
 * metrics and health checks, and a graceful shutdown on SIGTERM.
 *
 *   node dist/examples/06-inference-server.js [model.onnx] [port]   (after npm run build)
 *   curl -s localhost:8000/v2/models/model/infer -H 'content-type: application/json' \
 *     -d '{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[...784 numbers]}]}'
 *
 * Where the book listens on three ports (8000 inference, 9090 metrics, 8080 health), this one
 * serves all three on one: `/v2/models/...`, `/metrics`, `/v2/health/ready`.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type InferenceServer, startInferenceServer } from 'zbmd/serve';

/** The small ONNX model shipped in data/models (found from examples/ and from dist/examples/). */
export const DEFAULT_MODEL = ['../data/models/mlp784.onnx', '../../data/models/mlp784.onnx']
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((path) => existsSync(path)) as string;

export interface ExampleOptions {
  readonly modelPath: string;
  readonly port: number;
  /** Resolves when the server should shut down (SIGTERM when run as a program). */
  readonly stop: Promise<unknown>;
  readonly onListening?: (server: InferenceServer) => void;
  readonly write?: (line: string) => void;
}

export async function main(options: ExampleOptions): Promise<{ readonly drained: boolean }> {
  const write = options.write ?? ((line: string) => console.log(line));
  const server = await startInferenceServer({
    models: [{ path: options.modelPath, name: 'model' }],
    port: options.port,
    replicas: 4,
    maxBatchSize: 128,
    maxQueueDelayUs: 10_000,
  });
  write(`Inference server running on ${server.url}`);
  write(`Metrics available on ${server.url}/metrics`);
  write(`Health check on ${server.url}/v2/health/ready`);
  options.onListening?.(server);
  await options.stop;
  write('Shutting down gracefully...');
  return server.close();
}

// Run as a program (node dist/examples/06-inference-server.js), not when a test imports it.
const launcher = process.argv[1] ?? '';
if (resolve(launcher) === fileURLToPath(import.meta.url)) {
  const [modelPath = DEFAULT_MODEL, port = '8000'] = process.argv.slice(2);
  const stop = new Promise((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const { drained } = await main({ modelPath, port: Number(port), stop });
  process.exit(drained ? 0 : 1);
}
