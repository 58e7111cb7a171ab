import { TaggedError } from '../internal/errors.js';
/**
 * Errors of the serve layer. `ServeError` is an operating error at the edge (a bad option, a
 * model that cannot be served): its `reason` says which rule was broken. `RequestRejected` is
 * the expected outcome of a request that is not answered with outputs: a value with the HTTP
 * status it maps to (400 bad input, 404 unknown model, 429 queue full, 503 not ready, 504 timed
 * out, 500 the model failed twice), returned, never thrown across the batcher.
 */

export type ServeErrorReason =
  | 'invalid_option'
  | 'unsupported_model'
  | 'unsupported_datatype'
  | 'unsupported_device'
  | 'model_load_failed';

export class ServeError extends TaggedError('ServeError') {
  constructor(
    readonly reason: ServeErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${message} (${reason})`, options);
  }
}

export function isServeError(value: unknown, reason?: ServeErrorReason): value is ServeError {
  return value instanceof ServeError && (reason === undefined || value.reason === reason);
}

export type RejectionStatus = 400 | 404 | 429 | 500 | 503 | 504;

export class RequestRejected {
  readonly _tag = 'RequestRejected' as const;
  constructor(
    readonly status: RejectionStatus,
    readonly message: string,
    /** For 429: when to try again, in whole seconds (the Retry-After header). */
    readonly retryAfterSeconds?: number,
  ) {}
}

export function isRequestRejected(value: unknown): value is RequestRejected {
  return value instanceof RequestRejected;
}

/** The reason a replica is killed with by `crashReplica` (fault injection). */
export class InjectedReplicaCrash extends TaggedError('InjectedReplicaCrash') {
  constructor(
    readonly model: string,
    readonly replica: number,
  ) {
    super(`injected crash of replica ${replica} of model '${model}'`);
  }
}

export function isInjectedReplicaCrash(value: unknown): value is InjectedReplicaCrash {
  return value instanceof InjectedReplicaCrash;
}

/** The reason the batcher is killed with by `crashBatcher` (fault injection). */
export class InjectedBatcherCrash extends TaggedError('InjectedBatcherCrash') {
  constructor(readonly model: string) {
    super(`injected crash of the batcher of model '${model}'`);
  }
}

export function isInjectedBatcherCrash(value: unknown): value is InjectedBatcherCrash {
  return value instanceof InjectedBatcherCrash;
}
