// What records (imports no other layer: every layer may record into it)

export * from './ControlServer.js';
export * from './CrashReport.js';
export * from './errors.js';
// What shows (reads the layers' public APIs)
export * from './httpServer.js';
export * from './inspect.js';
export type { ObservedCluster, ObservedNodeId, WatchClusterOptions } from './internal/ClusterWatch.js';
export * from './logger.js';
export * from './plot.js';
export * from './registry.js';
export type * from './Snapshot.js';
export * from './SystemObserver.js';
export * from './TraceBuffer.js';
export * from './TrainingSeries.js';
export * from './top.js';
export * from './trace.js';
export * from './webView.js';
