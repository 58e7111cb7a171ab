/**
 * zbmd's model server: Open Inference Protocol v2 over HTTP, dynamic batching, replicas under a
 * supervisor with a circuit breaker each, rolling upgrades, Prometheus metrics, graceful shutdown.
 * See README.md in this folder.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { startInferenceServer } from 'zbmd/serve';
 *
 * const server = await startInferenceServer({ models: [{ path: 'data/models/mlp784.onnx' }], port: 0, replicas: 2 });
 * const stop = () => void server.close().then(() => process.exit(0));
 * process.once('SIGTERM', stop); // finish what is in flight, then exit
 * assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
 * process.off('SIGTERM', stop);
 * await server.close();
 * ```
 */
export {
  BatchCall,
  Batcher,
  type BatcherConfig,
  DrainCall,
  type InferOutcome,
  type InferResult,
  type ReplicaSlot,
} from './Batcher.js';
export { DATATYPE_NAMES, DATATYPES, type Datatype, isDatatype, type TensorData } from './datatypes.js';
export * from './errors.js';
export {
  type InferenceServer,
  type InferenceServerOptions,
  type ModelStatus,
  SERVE_DEFAULTS,
  SERVE_LIMITS,
  SERVER_NAME,
  SERVER_VERSION,
  type ServedModel,
  startInferenceServer,
} from './InferenceServer.js';
export {
  defaultModelName,
  type HostTensor,
  type ModelPlatform,
  type ModelRunner,
  type ModelSource,
  moduleSource,
  openModelSource,
  type SourceOptions,
  type TensorMap,
  type TensorSpec,
} from './ModelSource.js';
export { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_SECONDS, ServeMetrics } from './metrics.js';
export { type InferRequest, inferResponse, MAX_TENSOR_RANK, parseInferRequest } from './protocol.js';
export { type ReplicaArgs, ReplicaServer, RunBatch } from './Replica.js';
