import { workerData } from 'node:worker_threads';
import { ActorSystem } from '../ActorSystem.js';
import { setWorkerBoot } from './ThreadPool.js';

/**
 * Entry of a scheduler worker thread: one ActorSystem that is thread `workerData.thread` of the
 * node. Its MessagePorts keep the thread alive; thread 0 ends it (close) or replaces it (lost).
 */
setWorkerBoot(workerData);
new ActorSystem({ nodeName: workerData.nodeName, ...workerData.options });
