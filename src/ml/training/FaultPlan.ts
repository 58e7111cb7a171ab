/**
 * Which faults strike which step, from the seeded `FaultInjector`. Each step index is asked
 * about once, on its first attempt, in a fixed order (actor crash, out-of-memory, device
 * error, kernel timeout), so a run's faults replay from its seed; a retried step is not asked again (its fault
 * already struck). The crashed actor is a pure function of (seed, step), so it needs no state.
 * On resume, `fastForward(step)` makes the same draws for the steps already done, so the faults
 * still to come are those the uninterrupted run would have met.
 */

import { FAULT_ALIASES, type FaultConfig } from '../../fault/FaultConfig.js';
import { FaultInjector } from '../../fault/FaultInjector.js';
import { TRAINING_ROLES, type TrainingRole } from './errors.js';

export interface StepFaults {
  /** The actor that crashes during this step, if any. */
  readonly crash: TrainingRole | undefined;
  readonly outOfMemory: boolean;
  readonly deviceError: boolean;
  /** A kernel of the step hangs past the watchdog (on the host: a device error of cpu:0). */
  readonly kernelTimeout: boolean;
}

export const NO_STEP_FAULTS: StepFaults = Object.freeze({
  crash: undefined,
  outOfMemory: false,
  deviceError: false,
  kernelTimeout: false,
});

/** The fault kinds training acts on (with `seed`); the others are refused for a run. */
export const TRAINING_FAULT_KINDS = [
  'actorCrashRate',
  'oomRate',
  'gpuErrorRate',
  'kernelTimeoutRate',
] as const;

/**
 * Why `config` cannot drive a training run, or undefined: a non-zero rate of a kind training
 * does not act on (message drops and delays, kernel timeouts) would be accepted and do nothing.
 */
export function trainingFaultProblem(config: FaultConfig): string | undefined {
  const idle = (Object.keys(config) as Array<keyof FaultConfig>).filter(
    (key) =>
      key !== 'seed' && config[key] !== 0 && !(TRAINING_FAULT_KINDS as readonly string[]).includes(key),
  );
  if (idle.length === 0) return undefined;
  const shortOf = (key: string) => Object.entries(FAULT_ALIASES).find(([, long]) => long === key)?.[0];
  const acting = TRAINING_FAULT_KINDS.map((key) => `${key} (${shortOf(key)})`).join(', ');
  return `training does not act on ${idle.join(', ')}; the faults it injects are ${acting}, with seed`;
}

export class FaultPlan {
  readonly injector: FaultInjector;
  private nextUndecidedStep = 0;

  constructor(readonly config: FaultConfig) {
    this.injector = new FaultInjector(config);
  }

  get enabled(): boolean {
    return this.injector.enabled;
  }

  /** The faults of `step` (steps committed before it); none for a step already decided. */
  decide(step: number, deviceId: string): StepFaults {
    if (!this.injector.enabled || step < this.nextUndecidedStep) return NO_STEP_FAULTS;
    this.nextUndecidedStep = step + 1;
    const crash = this.injector.shouldCrashActor();
    const outOfMemory = this.injector.shouldOom();
    const deviceError = this.injector.shouldFailGpu(deviceId);
    // Its own random stream: drawing it leaves the other kinds' decisions as they were.
    const kernelTimeout = this.injector.shouldTimeoutKernel();
    if (!crash && !outOfMemory && !deviceError && !kernelTimeout) return NO_STEP_FAULTS;
    return {
      crash: crash ? victimOf(this.config.seed, step) : undefined,
      outOfMemory,
      deviceError,
      kernelTimeout,
    };
  }

  /** Draws the decisions of steps [0, step) without acting on them (resume). */
  fastForward(step: number, deviceId: string): void {
    if (!this.injector.enabled) {
      this.nextUndecidedStep = Math.max(this.nextUndecidedStep, step);
      return;
    }
    while (this.nextUndecidedStep < step) this.decide(this.nextUndecidedStep, deviceId);
  }
}

/** The actor a crash at `step` hits: a 32-bit mix of seed and step, modulo the five roles. */
function victimOf(seed: number, step: number): TrainingRole {
  let hash = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step >>> 0, 0x85ebca6b)) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d) >>> 0;
  hash = (hash ^ (hash >>> 12)) >>> 0;
  return TRAINING_ROLES[hash % TRAINING_ROLES.length];
}
