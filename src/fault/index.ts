/**
 * Fault tolerance (seeds/001 ch. 5-7): failure detection, circuit breaking, health checks,
 * fault injection, deterministic simulation, checkpoints, event sourcing and sagas.
 */

export * from './actorScenarios.js';
export * from './CheckpointManager.js';
export * from './CheckpointStore.js';
export * from './CircuitBreaker.js';
export * from './Coverage.js';
export * from './checkpointedServer.js';
export * from './EventStore.js';
export * from './FaultConfig.js';
export * from './FaultInjector.js';
export * from './FileEventStore.js';
export * from './fileScenarios.js';
export * from './HealthMonitor.js';
export * from './InMemoryEventStore.js';
export type { CheckpointDefect } from './internal/CheckpointFormat.js';
export type { LockHolder } from './internal/WriterLock.js';
export { FileLocked, isFileLocked } from './internal/WriterLock.js';
export { KNOWN_DEVIATIONS } from './knownDeviations.js';
export * from './PhiAccrualDetector.js';
export * from './runtimeFaults.js';
export * from './Saga.js';
export * from './Simulation.js';
export * from './scenarios.js';
export * from './shrink.js';
export * from './simulate.js';
export * from './supervisorScenarios.js';
