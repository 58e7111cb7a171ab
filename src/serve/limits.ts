/** The serve layer's option defaults and limits, in one place (imported by the CLI without loading the server). */
/** The documented defaults and limits of every option. */
export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8000,
  replicas: 1,
  maxBatchSize: 64,
  maxQueueDelayUs: 2000,
  /** Requests waiting per model version; one more gets 429. */
  maxQueueSize: 1024,
  /** From receiving a request to answering it; past it the answer is 504. */
  requestTimeoutMs: 30_000,
  /** Largest request body accepted (413 above it). */
  bodyLimitBytes: 16 * 1024 * 1024,
  /** `close()` (SIGTERM) waits this long for requests in flight. */
  shutdownTimeoutMs: 10_000,
  /** Replica restarts allowed per period before the supervisor gives up (the model goes not ready). */
  restartIntensity: 100,
  restartPeriodMs: 10_000,
  /** Failures in a row that open a replica's circuit breaker, and how long it stays open. */
  breakerFailureThreshold: 3,
  breakerResetTimeoutMs: 1000,
} as const;

export const SERVE_LIMITS = {
  replicas: 64,
  maxBatchSize: 4096,
  maxQueueDelayUs: 10_000_000,
  maxQueueSize: 1_000_000,
  models: 64,
} as const;
