/**
 * Learning-rate schedules: functions from the step index (0-based) to a learning rate.
 * `applySchedule` sets an optimizer's rate for the coming step.
 */
import { check } from '../errors.js';
import type { Optimizer } from './Optimizer.js';

export type LearningRateSchedule = (step: number) => number;

export function constantSchedule(learningRate: number): LearningRateSchedule {
  return () => learningRate;
}

/** learningRate * gamma^floor(step / stepSize) (PyTorch's StepLR). */
export function stepSchedule(options: {
  learningRate: number;
  stepSize: number;
  gamma?: number;
}): LearningRateSchedule {
  const { learningRate, stepSize } = options;
  const gamma = options.gamma ?? 0.1;
  check(
    Number.isInteger(stepSize) && stepSize > 0,
    'invalid_argument',
    () => `stepSchedule: stepSize must be a positive integer`,
  );
  return (step) => learningRate * gamma ** Math.floor(step / stepSize);
}

/** Cosine from learningRate down to minimum over totalSteps, then minimum. */
export function cosineSchedule(options: {
  learningRate: number;
  totalSteps: number;
  minimum?: number;
}): LearningRateSchedule {
  const { learningRate, totalSteps } = options;
  const minimum = options.minimum ?? 0;
  check(totalSteps > 0, 'invalid_argument', () => 'cosineSchedule: totalSteps must be > 0');
  return (step) =>
    minimum +
    ((learningRate - minimum) * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps))) / 2;
}

/** Linear warm-up over warmupSteps to after(0), then after(step - warmupSteps). */
export function warmupSchedule(options: {
  warmupSteps: number;
  after: LearningRateSchedule;
}): LearningRateSchedule {
  const { warmupSteps, after } = options;
  check(
    Number.isInteger(warmupSteps) && warmupSteps >= 0,
    'invalid_argument',
    () => 'warmupSchedule: warmupSteps must be an integer >= 0',
  );
  return (step) => (step < warmupSteps ? (after(0) * (step + 1)) / warmupSteps : after(step - warmupSteps));
}

export function applySchedule(optimizer: Optimizer, schedule: LearningRateSchedule): number {
  optimizer.learningRate = schedule(optimizer.stepCount);
  return optimizer.learningRate;
}
