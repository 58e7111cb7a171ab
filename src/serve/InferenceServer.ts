/**
 * The model server: Open Inference Protocol v2 over HTTP (fastify), a dynamic batcher per model
 * version, N supervised replicas behind it, Prometheus metrics and pino request logs.
 *
 * Endpoints: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2`,
 * `GET /v2/models/{name}[/versions/{v}]`, `GET .../ready`, `POST .../infer`,
 * `POST /v2/repository/models/{name}/load` (rolling upgrade: the model is read again from its
 * path, the new version starts with one replica beside the old one, replicas are replaced one
 * at a time while both versions take traffic in proportion to their replicas, and the old one
 * drains what it had queued), `GET /metrics`. Errors are `{"error": "..."}`.
 *
 * `close()` stops accepting (new requests get 503, the listener closes), lets what is in flight
 * finish, and gives up after `shutdownTimeoutMs` (then open connections are cut).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { startInferenceServer } from 'zbmd/serve';
 *
 * // the small ONNX model shipped in the repository: input [N, 1, 28, 28], 10 logits
 * const server = await startInferenceServer({ models: [{ name: 'tiny', path: 'data/models/mlp784.onnx' }], port: 0 });
 * const input = { name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.5) };
 * const response = await fetch(`${server.url}/v2/models/tiny/infer`, {
 *   method: 'POST',
 *   headers: { 'content-type': 'application/json' },
 *   body: JSON.stringify({ inputs: [input] }),
 * });
 * assert.equal(response.status, 200);
 * const { outputs } = (await response.json()) as { outputs: { shape: number[] }[] };
 * assert.deepEqual(outputs[0]?.shape, [1, 10]);
 * await server.close();
 * ```
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type Logger, pino } from 'pino';
import { ActorSystem } from '../actor/ActorSystem.js';
import { formatReason } from '../actor/ExitReason.js';
import { CallExit, CallTimeout } from '../actor/errors.js';
import { BatchCall } from './Batcher.js';
import { isRequestRejected, isServeError, RequestRejected, ServeError } from './errors.js';
import { ModelVersion, type VersionSettings } from './internal/ModelVersion.js';
import { SERVE_DEFAULTS, SERVE_LIMITS } from './limits.js';
import { defaultModelName, type ModelSource, openModelSource } from './ModelSource.js';
import { ServeMetrics } from './metrics.js';
import { batchKey, inferResponse, parseInferRequest } from './protocol.js';

export const SERVER_NAME = 'zbmd';
export const SERVER_VERSION = '0.1.0';

export { SERVE_DEFAULTS, SERVE_LIMITS } from './limits.js';

export interface ServedModel {
  /** The name in URLs. Default: the path's file or directory name. */
  readonly name?: string;
  /** An .onnx file or a zbmd model directory; reloaded from here by a rolling upgrade. */
  readonly path?: string;
  /** A model already opened (for example `moduleSource(module, spec)`); cannot be reloaded. */
  readonly source?: ModelSource;
}

export interface InferenceServerOptions {
  readonly models: readonly ServedModel[];
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly replicas?: number;
  readonly maxBatchSize?: number;
  readonly maxQueueDelayUs?: number;
  readonly maxQueueSize?: number;
  readonly requestTimeoutMs?: number;
  readonly bodyLimitBytes?: number;
  readonly shutdownTimeoutMs?: number;
  readonly device?: string;
  readonly restartIntensity?: number;
  readonly restartPeriodMs?: number;
  readonly breakerFailureThreshold?: number;
  readonly breakerResetTimeoutMs?: number;
  /** Request logs and events. Default: pino at 'info' on stderr. */
  readonly logger?: Logger;
  /** Told the rows of every batch formed. */
  readonly onBatch?: (rows: number) => void;
}

export interface ModelStatus {
  readonly name: string;
  readonly version: string;
  readonly ready: boolean;
  readonly platform: string;
}

export interface InferenceServer {
  readonly url: string;
  readonly port: number;
  readonly metrics: ServeMetrics;
  readonly system: ActorSystem;
  models(): ModelStatus[];
  /** Rolling upgrade of `name` from its path; resolves with the new version once the old one drained. */
  reloadModel(name: string): Promise<string>;
  /** Fault injection: kills replica `index` of the current version of `name`. */
  crashReplica(name: string, index: number): boolean;
  /** Fault injection: kills the batcher of the current version of `name` (its queued requests are resent). */
  crashBatcher(name: string): boolean;
  /** Stops accepting, finishes what is in flight; `drained` is false when the deadline cut it short. */
  close(): Promise<{ readonly drained: boolean }>;
}

/** What the server logs its own events through (pino's logger, or fastify's per-request child). */
interface EventLogger {
  info(fields: object, message: string): void;
  warn(message: string): void;
}

interface ModelEntry {
  readonly name: string;
  readonly path: string | undefined;
  /** The newest version (metadata, fault injection). */
  current: ModelVersion;
  readonly versions: Map<string, ModelVersion>;
  /** The versions that take new unversioned requests, in proportion to their replicas (two during a rolling upgrade). */
  routing: ModelVersion[];
  /** Requests routed so far (the weighted round robin's position). */
  routed: number;
  lastVersion: number;
  /** Upgrades of one model run one after another. */
  upgrading: Promise<unknown>;
}

interface Resolved extends VersionSettings {
  readonly host: string;
  readonly port: number;
  readonly requestTimeoutMs: number;
  readonly bodyLimitBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly device: string | undefined;
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (typeof chosen !== 'number' || !Number.isInteger(chosen) || chosen < min || chosen > max)
    throw new ServeError(
      'invalid_option',
      `${name} must be an integer in [${min}, ${max}], got ${String(value)}`,
    );
  return chosen;
}

function resolveOptions(options: InferenceServerOptions): Resolved {
  const d = SERVE_DEFAULTS;
  const l = SERVE_LIMITS;
  if (typeof (options.host ?? d.host) !== 'string')
    throw new ServeError('invalid_option', 'host must be a string');
  return {
    host: options.host ?? d.host,
    port: integerOption('port', options.port, d.port, 0, 65535),
    replicas: integerOption('replicas', options.replicas, d.replicas, 1, l.replicas),
    maxBatchSize: integerOption('maxBatchSize', options.maxBatchSize, d.maxBatchSize, 1, l.maxBatchSize),
    maxQueueDelayMs:
      integerOption('maxQueueDelayUs', options.maxQueueDelayUs, d.maxQueueDelayUs, 0, l.maxQueueDelayUs) /
      1000,
    maxQueueSize: integerOption('maxQueueSize', options.maxQueueSize, d.maxQueueSize, 1, l.maxQueueSize),
    requestTimeoutMs: integerOption(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      d.requestTimeoutMs,
      1,
      3_600_000,
    ),
    replicaCallTimeoutMs: integerOption(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      d.requestTimeoutMs,
      1,
      3_600_000,
    ),
    bodyLimitBytes: integerOption('bodyLimitBytes', options.bodyLimitBytes, d.bodyLimitBytes, 1024, 1 << 30),
    shutdownTimeoutMs: integerOption(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs,
      d.shutdownTimeoutMs,
      0,
      3_600_000,
    ),
    restartIntensity: integerOption(
      'restartIntensity',
      options.restartIntensity,
      d.restartIntensity,
      0,
      1_000_000,
    ),
    restartPeriodMs: integerOption(
      'restartPeriodMs',
      options.restartPeriodMs,
      d.restartPeriodMs,
      1,
      86_400_000,
    ),
    breakerFailureThreshold: integerOption(
      'breakerFailureThreshold',
      options.breakerFailureThreshold,
      d.breakerFailureThreshold,
      1,
      1_000_000,
    ),
    breakerResetTimeoutMs: integerOption(
      'breakerResetTimeoutMs',
      options.breakerResetTimeoutMs,
      d.breakerResetTimeoutMs,
      0,
      3_600_000,
    ),
    device: options.device,
    onBatch: options.onBatch,
  };
}

function errorBody(message: string): { error: string } {
  return { error: message };
}

/** Starts the server; resolves once it listens and every model's replicas are up. */
export async function startInferenceServer(options: InferenceServerOptions): Promise<InferenceServer> {
  const settings = resolveOptions(options);
  if (
    !Array.isArray(options.models) ||
    options.models.length === 0 ||
    options.models.length > SERVE_LIMITS.models
  )
    throw new ServeError('invalid_option', `models must list 1 to ${SERVE_LIMITS.models} models`);
  const logger = options.logger ?? pino({ level: 'info' }, pino.destination(2));
  const metrics = new ServeMetrics();
  const system = new ActorSystem({
    onCrash: (pid, reason) =>
      logger.error({ pid: String(pid), reason: formatReason(reason) }, 'actor crashed'),
  });
  const models = new Map<string, ModelEntry>();
  try {
    for (const served of options.models) {
      const entry = await loadEntry(system, served, settings, metrics);
      if (models.has(entry.name))
        throw new ServeError('invalid_option', `two models are named '${entry.name}'`);
      models.set(entry.name, entry);
    }
  } catch (error) {
    for (const entry of models.values()) await entry.current.drain(0);
    system.shutdown();
    throw error;
  }
  const state = { shuttingDown: false };
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: settings.bodyLimitBytes,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.addHook('onSend', async (_request, reply, payload) => {
    if (state.shuttingDown) void reply.header('connection', 'close');
    return payload;
  });
  registerRoutes(app, system, models, settings, metrics, state);
  await app.listen({ host: settings.host, port: settings.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : settings.port;
  let closing: Promise<{ drained: boolean }> | undefined;
  return {
    url: `http://${settings.host}:${port}`,
    port,
    metrics,
    system,
    models: () =>
      [...models.values()].map((entry) => ({
        name: entry.name,
        version: entry.current.version,
        ready: entry.current.ready,
        platform: entry.current.source.platform,
      })),
    reloadModel: (name) => reloadModel(system, models, name, settings, metrics, logger),
    crashReplica: (name, index) => models.get(name)?.current.crashReplica(index) ?? false,
    crashBatcher: (name) => models.get(name)?.current.crashBatcher() ?? false,
    close: () => {
      closing ??= shutDown(app, system, models, settings, state, logger);
      return closing;
    },
  };
}

async function loadEntry(
  system: ActorSystem,
  served: ServedModel,
  settings: Resolved,
  metrics: ServeMetrics,
): Promise<ModelEntry> {
  if (served.source === undefined && served.path === undefined)
    throw new ServeError('invalid_option', 'each model needs a path or a source');
  const name = served.name ?? (served.path !== undefined ? defaultModelName(served.path) : 'model');
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name))
    throw new ServeError('invalid_option', `model name '${name}' must be 1 to 128 of A-Z a-z 0-9 _ . -`);
  const source = served.source ?? (await openModelSource(served.path!, { device: settings.device }));
  const current = await ModelVersion.start(system, name, '1', source, settings, metrics);
  return {
    name,
    path: served.source === undefined ? served.path : undefined,
    current,
    versions: new Map([['1', current]]),
    routing: [current],
    routed: 0,
    lastVersion: 1,
    upgrading: Promise.resolve(),
  };
}

function reloadModel(
  system: ActorSystem,
  models: Map<string, ModelEntry>,
  name: string,
  settings: Resolved,
  metrics: ServeMetrics,
  logger: EventLogger,
): Promise<string> {
  const entry = models.get(name);
  if (entry === undefined) return Promise.reject(new RequestRejected(404, `unknown model '${name}'`));
  const upgrade = entry.upgrading.then(async () => {
    if (entry.path === undefined)
      throw new RequestRejected(
        400,
        `model '${name}' was given in memory; there is no path to load it from again`,
      );
    let source: ModelSource;
    try {
      source = await openModelSource(entry.path, { device: settings.device });
    } catch (error) {
      if (isServeError(error)) throw new RequestRejected(400, error.message);
      throw error;
    }
    const version = String(entry.lastVersion + 1);
    // The new version starts with one replica beside the old one; then, one step at a time, an
    // old replica is retired (its batch finishes first) and a new one added, so at most
    // replicas + 1 run and capacity never drops below `replicas`. Requests are routed to both
    // versions in proportion to their replicas; the old version keeps its last replica until
    // it has run what it holds.
    const next = await ModelVersion.start(system, name, version, source, settings, metrics, 1);
    entry.lastVersion++;
    const previous = entry.current;
    entry.versions.set(version, next);
    entry.current = next;
    entry.routing = [previous, next];
    logger.info(
      { model: name, from: previous.version, to: version },
      'rolling upgrade: replacing replicas one by one',
    );
    const step = (action: string) => {
      const prefix = `zbmd.serve/${name}/`;
      const running = system.registered().filter((registered) => registered.startsWith(prefix)).length;
      logger.info(
        {
          model: name,
          action,
          replicas: { [previous.version]: previous.replicaCount, [version]: next.replicaCount },
          // Processes of the model's versions registered now: replicas plus one batcher per version.
          processes: running,
        },
        'rolling upgrade step',
      );
    };
    step('started');
    try {
      while (next.replicaCount < settings.replicas) {
        if (await previous.retireReplica(settings.requestTimeoutMs)) step('retired');
        await next.addReplica();
        step('added');
      }
    } catch (error) {
      // Back to the old version alone, at full strength; the new one is stopped.
      entry.routing = [previous];
      entry.current = previous;
      entry.versions.delete(version);
      await next.drain(settings.requestTimeoutMs);
      while (previous.replicaCount < settings.replicas) await previous.addReplica();
      throw new RequestRejected(
        500,
        `the rolling upgrade of model '${name}' to version ${version} failed and was undone: ${(error as Error).message}`,
      );
    }
    entry.routing = [next]; // new requests go to the new version only from here on
    await previous.drain(settings.requestTimeoutMs);
    entry.versions.delete(previous.version);
    return version;
  });
  entry.upgrading = upgrade.catch(() => undefined);
  return upgrade;
}

async function shutDown(
  app: FastifyInstance,
  system: ActorSystem,
  models: Map<string, ModelEntry>,
  settings: Resolved,
  state: { shuttingDown: boolean },
  logger: EventLogger,
): Promise<{ drained: boolean }> {
  state.shuttingDown = true;
  logger.info(
    { deadlineMs: settings.shutdownTimeoutMs },
    'shutting down: no new requests, finishing those in flight',
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), settings.shutdownTimeoutMs);
  });
  const work = (async () => {
    // The listener closes at once; requests in flight are answered (with `connection: close`,
    // so keep-alive clients do not hold the server open), then the batchers drain.
    const closed = app.close();
    for (const entry of models.values())
      for (const version of [...entry.versions.values()]) await version.drain(settings.shutdownTimeoutMs);
    app.server.closeIdleConnections();
    await closed;
    return true;
  })();
  const drained = await Promise.race([work, deadline]);
  clearTimeout(timer);
  if (!drained) {
    app.server.closeAllConnections();
    logger.warn('shutdown deadline passed; open connections were closed');
  }
  system.shutdown();
  return { drained };
}

interface ModelParams {
  name: string;
  version?: string;
}

function registerRoutes(
  app: FastifyInstance,
  system: ActorSystem,
  models: Map<string, ModelEntry>,
  settings: Resolved,
  metrics: ServeMetrics,
  state: { shuttingDown: boolean },
): void {
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    const message =
      status === 413
        ? `the request body is larger than the limit of ${settings.bodyLimitBytes} bytes`
        : error.message;
    void reply.code(status).send(errorBody(message));
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody(`no endpoint ${request.method} ${request.url}`));
  });

  const versionOf = (params: ModelParams): ModelVersion | RequestRejected => {
    const entry = models.get(params.name);
    if (entry === undefined) return new RequestRejected(404, `unknown model '${params.name}'`);
    if (params.version === undefined) return route(entry);
    return (
      entry.versions.get(params.version) ??
      new RequestRejected(
        404,
        `model '${params.name}' has no version '${params.version}' loaded (loaded: ${[...entry.versions.keys()].join(', ')})`,
      )
    );
  };
  const send = (reply: FastifyReply, rejection: RequestRejected): FastifyReply => {
    if (rejection.retryAfterSeconds !== undefined)
      void reply.header('retry-after', String(rejection.retryAfterSeconds));
    return reply.code(rejection.status).send(errorBody(rejection.message));
  };

  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_request, reply) => {
    if (state.shuttingDown) return send(reply, new RequestRejected(503, 'the server is shutting down'));
    const notReady = [...models.values()].filter((entry) => !entry.current.ready).map((entry) => entry.name);
    if (notReady.length > 0)
      return send(reply, new RequestRejected(503, `models not ready: ${notReady.join(', ')}`));
    return { ready: true };
  });
  app.get('/v2', async () => ({
    name: SERVER_NAME,
    version: SERVER_VERSION,
    extensions: ['model_repository'],
  }));
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.exposition();
  });

  const metadata = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const version = versionOf(request.params);
    if (version instanceof RequestRejected) return send(reply, version);
    const entry = models.get(request.params.name)!;
    const { source } = version;
    return {
      name: entry.name,
      versions: [...entry.versions.keys()],
      platform: source.platform,
      inputs: source.inputs.map(({ name, datatype, shape }) => ({ name, datatype, shape })),
      outputs: source.outputs.map(({ name, datatype, shape }) => ({ name, datatype, shape })),
    };
  };
  const ready = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const version = versionOf(request.params);
    if (version instanceof RequestRejected) return send(reply, version);
    if (state.shuttingDown || !version.ready)
      return send(reply, new RequestRejected(503, `model '${request.params.name}' is not ready`));
    return { name: request.params.name, ready: true };
  };
  const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const startedMs = performance.now();
    const name = request.params.name;
    const outcome = await runInfer(system, models, settings, state, versionOf, request.params, request.body);
    const known = models.has(name) ? name : '(unknown)';
    metrics.latency.observe({ model: known }, (performance.now() - startedMs) / 1000);
    if (isRequestRejected(outcome)) {
      metrics.requests.inc({ model: known, code: String(outcome.status) });
      return send(reply, outcome);
    }
    metrics.requests.inc({ model: known, code: '200' });
    return outcome;
  };
  for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(prefix, metadata);
    app.get(`${prefix}/ready`, ready);
    app.post(`${prefix}/infer`, infer);
  }
  app.post(
    '/v2/repository/models/:name/load',
    async (request: FastifyRequest<{ Params: ModelParams }>, reply) => {
      if (state.shuttingDown) return send(reply, new RequestRejected(503, 'the server is shutting down'));
      try {
        const version = await reloadModel(
          system,
          models,
          request.params.name,
          settings,
          metrics,
          request.log,
        );
        return { model_name: request.params.name, model_version: version };
      } catch (error) {
        if (isRequestRejected(error)) return send(reply, error);
        throw error;
      }
    },
  );
}

/** The version an unversioned request goes to: weighted round robin over `entry.routing` by replicas. */
function route(entry: ModelEntry): ModelVersion {
  if (entry.routing.length === 1) return entry.routing[0];
  const weights = entry.routing.map((version) => version.replicaCount);
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  if (total === 0) return entry.current;
  let tick = entry.routed++ % total;
  for (const [index, weight] of weights.entries()) {
    if (tick < weight) return entry.routing[index];
    tick -= weight;
  }
  return entry.current;
}

async function runInfer(
  system: ActorSystem,
  models: Map<string, ModelEntry>,
  settings: Resolved,
  state: { shuttingDown: boolean },
  versionOf: (params: ModelParams) => ModelVersion | RequestRejected,
  params: ModelParams,
  body: unknown,
): Promise<Record<string, unknown> | RequestRejected> {
  if (state.shuttingDown) return new RequestRejected(503, 'the server is shutting down');
  let version = versionOf(params);
  if (version instanceof RequestRejected) return version;
  const { source } = version;
  const request = parseInferRequest(body, source.inputs, source.outputs, source.batchable);
  if (isRequestRejected(request)) return request;
  const maxRows = source.batchable ? settings.maxBatchSize : 1;
  if (request.rows > maxRows) {
    return new RequestRejected(
      400,
      `the request has ${request.rows} rows; the server runs batches of at most ${maxRows} (--max-batch)`,
    );
  }
  if (!version.serving) return new RequestRejected(503, `model '${params.name}' is not ready`);
  const call = new BatchCall(request, batchKey(request), system.clock.now() + settings.requestTimeoutMs);
  for (let attempt = 0; ; attempt++) {
    try {
      const outcome = await version.infer(call, settings.requestTimeoutMs);
      if (isRequestRejected(outcome)) return outcome;
      return inferResponse(params.name, version.version, request.id, request.outputs, outcome.outputs);
    } catch (error) {
      if (error instanceof CallTimeout)
        return new RequestRejected(504, `no answer within ${settings.requestTimeoutMs} ms`);
      // The version was replaced and stopped between choosing it and calling it: the current one answers.
      const current = models.get(params.name)?.current;
      if (
        error instanceof CallExit &&
        attempt === 0 &&
        params.version === undefined &&
        current !== undefined &&
        current !== version
      ) {
        version = current;
        continue;
      }
      if (error instanceof CallExit) return new RequestRejected(503, `model '${params.name}' is not ready`);
      throw error;
    }
  }
}
