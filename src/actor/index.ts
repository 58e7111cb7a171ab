export * from './ActorSystem.js';
export * from './Clock.js';
export * from './ExitReason.js';
export * from './errors.js';
export * from './GenServer.js';
export * from './Pid.js';
export * from './Random.js';
export * from './StateMachine.js';
