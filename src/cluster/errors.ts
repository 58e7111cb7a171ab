import { TaggedError } from '../internal/errors.js';
/** The cluster layer's errors: one tagged class, the reason says which case. */

export type ClusterErrorReason =
  | 'invalid_option'
  | 'server_failed'
  | 'not_connected'
  | 'connection_refused'
  | 'closed';

/** A cluster operation could not be done; `reason` says why, the message what to do. */
export class ClusterError extends TaggedError('ClusterError') {
  constructor(
    readonly reason: ClusterErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isClusterError(error: unknown, reason?: ClusterErrorReason): error is ClusterError {
  return error instanceof ClusterError && (reason === undefined || error.reason === reason);
}

/** `registerGlobal` of a name another process holds. */
export class AlreadyRegistered extends TaggedError('AlreadyRegistered') {
  constructor(
    readonly globalName: string,
    readonly holder: string,
  ) {
    super(
      `the global name '${globalName}' is held by ${holder}; unregister it there first, or pick another name`,
    );
  }
}

export function isAlreadyRegistered(error: unknown): error is AlreadyRegistered {
  return error instanceof AlreadyRegistered;
}

/** A message larger than the transport carries (NATS' max_payload, 1 MiB by default). */
export class MessageTooLarge extends TaggedError('MessageTooLarge') {
  constructor(
    readonly bytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `a message of ${bytes} bytes is over the cluster's limit of ${limitBytes} bytes; send large data (tensors, checkpoints) in parts or through a shared store`,
    );
  }
}

export function isMessageTooLarge(error: unknown): error is MessageTooLarge {
  return error instanceof MessageTooLarge;
}

/** A spawn on another node failed: `reason` is 'noconnection' (the node is not up, or went down) or the other node's refusal. */
export class RemoteSpawnError extends TaggedError('RemoteSpawnError') {
  constructor(
    readonly node: string,
    readonly reason: string,
  ) {
    super(
      reason === 'noconnection'
        ? `spawn on node ${node}: the node is not connected (not up, or it went down before answering)`
        : `spawn on node ${node} failed there: ${reason}`,
    );
  }
}

export function isRemoteSpawnError(error: unknown): error is RemoteSpawnError {
  return error instanceof RemoteSpawnError;
}
