export * from './Backoff.js';
export * from './ChildSpec.js';
export * from './DynamicSupervisor.js';
export * from './errors.js';
export * from './Heartbeat.js';
export * from './RestartIntensity.js';
export * from './RollingUpgrade.js';
export * from './SupervisionEvent.js';
export * from './SupervisionTree.js';
export {
  countChildren,
  DEFAULT_INTENSITY,
  DEFAULT_MAX_CHILDREN,
  DEFAULT_PERIOD_MS,
  DEFAULT_SUPERVISOR_CALL_TIMEOUT_MS,
  deleteChild,
  getChildSpec,
  MAX_INTENSITY,
  MAX_PERIOD_MS,
  restartChild,
  Supervisor,
  type SupervisorOptions,
  startChild,
  startSupervisor,
  stopSupervisor,
  terminateChild,
  type Where,
  whichChildren,
} from './Supervisor.js';
export * from './SupervisorResults.js';
