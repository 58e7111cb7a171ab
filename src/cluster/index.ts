/**
 * The cluster layer: zbmd nodes on NATS with JetStream (membership with phi-accrual failure
 * detection, node incarnations, global names and leader election on JetStream KV), and a
 * deterministic simulated network with the same interface for `zbmd simulate`.
 */
export {
  ClusterNode,
  type ClusterNodeOptions,
  type ClusterStatus,
  DEFAULT_LEASE_MS,
  REJOIN_RETRY_MAX_MS,
  SELF_CHECK_MS,
} from './ClusterNode.js';
export {
  AlreadyRegistered,
  ClusterError,
  type ClusterErrorReason,
  isAlreadyRegistered,
  isClusterError,
  isMessageTooLarge,
  isRemoteSpawnError,
  MessageTooLarge,
  RemoteSpawnError,
} from './errors.js';
export {
  describeHolder,
  type GlobalHolder,
  GlobalRegistry,
  MAX_GLOBAL_NAME_LENGTH,
} from './GlobalRegistry.js';
export {
  freePort,
  NATS_SERVER_START_TIMEOUT_MS,
  NatsServer,
  type NatsServerOptions,
  startNatsCluster,
  startNatsServer,
} from './internal/natsServer.js';
export { LeaderElection, type LeaderElectionOptions } from './LeaderElection.js';
export {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  Membership,
  type MembershipOptions,
  type NodeDownReason,
  type NodeEvent,
  type NodeId,
} from './Membership.js';
export { BUCKET_OPERATION_TIMEOUT_MS, NatsTransport, type NatsTransportOptions } from './NatsTransport.js';
export { type AttachOptions, FRAME_SYNC_MS, nodeSubject, RemoteProcesses } from './RemoteProcesses.js';
export { SimulatedNetwork, type SimulatedNetworkOptions } from './SimulatedNetwork.js';
export {
  type Bucket,
  BucketConflict,
  type BucketEntry,
  type ClusterTransport,
  isBucketConflict,
  type MessageHandler,
} from './Transport.js';
