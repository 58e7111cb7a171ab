/**
 * The server's Prometheus metrics, in a registry of its own (two servers in one process do not
 * share counters): requests by model and status code, request latency, formed batch sizes,
 * queue depth, replica restarts and retried batches. `GET /metrics` serves them together with
 * the process's shared registry (src/observe: the runtime's metrics, when a `SystemObserver`
 * watches the server's system, and whatever else the process records).
 */
import { Counter, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import { metricsRegistry } from '../observe/registry.js';

export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'zbmd_serve_requests_total',
    help: 'Inference requests answered, by model and HTTP status code',
    labelNames: ['model', 'code'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'zbmd_serve_request_duration_seconds',
    help: 'Time from receiving an inference request to answering it',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'zbmd_serve_batch_size',
    help: 'Rows in each batch the dynamic batcher sent to a replica',
    labelNames: ['model'] as const,
    buckets: BATCH_SIZE_BUCKETS,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'zbmd_serve_queue_depth',
    help: 'Requests waiting in the batcher queue',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly replicaRestarts = new Counter({
    name: 'zbmd_serve_replica_restarts_total',
    help: 'Replicas restarted by their supervisor',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly batcherRestarts = new Counter({
    name: 'zbmd_serve_batcher_restarts_total',
    help: 'Batchers restarted by their supervisor',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly resentRequests = new Counter({
    name: 'zbmd_serve_resent_requests_total',
    help: 'Requests sent again to a restarted batcher after the one holding them crashed',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly retriedBatches = new Counter({
    name: 'zbmd_serve_retried_batches_total',
    help: 'Batches whose replica failed, requeued to run once more on another replica',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });

  /**
   * This server's metrics and the shared registry's, in one exposition (combined at each
   * scrape: prom-client's `Registry.merge`). A family in both (a `zbmd_serve_*` metric someone
   * registered in the shared registry too) is served once, this server's.
   */
  async exposition(): Promise<string> {
    const own = new Set(this.registry.getMetricsAsArray().map((metric) => metric.name));
    const shared = new Registry();
    for (const metric of metricsRegistry.getMetricsAsArray())
      if (!own.has(metric.name)) shared.registerMetric(metric as unknown as Metric);
    return Registry.merge([this.registry, shared]).metrics();
  }
}
