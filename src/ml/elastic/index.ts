/**
 * Elastic data-parallel training (`train({ workers })`, `train({ join, name })`, and the
 * single-process reference `train({ shards })`): see README.md in this folder.
 */
export { COORDINATOR_NAME, type JobResult } from './ElasticWorker.js';
export { DEFAULT_SHARDS, MAX_SHARDS, MAX_WORKERS } from './jobSpec.js';
export type {
  ElasticRecovery,
  ElasticReport,
  ElasticTrainingResult,
  JobEvent,
  WorkerChange,
} from './launch.js';
export { assignShards, coveringNodes, reduceTree, shardRows, type TreeNode } from './shardMath.js';
