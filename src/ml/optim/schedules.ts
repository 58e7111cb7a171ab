/**
 * Learning-rate schedules: functions from the step index (0-based) to a learning rate, equal to
 * the rate PyTorch's scheduler gives after `step` calls of `scheduler.step()`. `applySchedule`
 * sets an optimizer's rate for the coming step (every group's, keeping their ratios).
 * `ReduceLearningRateOnPlateau` is the one schedule with state: it follows a metric.
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

/**
 * Cosine from learningRate down to minimum over totalSteps (PyTorch's CosineAnnealingLR with
 * T_max = totalSteps). After the last step: `afterEnd: 'hold'` (the default) stays at minimum;
 * `'periodic'` goes on along the cosine, back up to learningRate at 2 totalSteps, as PyTorch's
 * CosineAnnealingLR does when stepped past T_max.
 */
export function cosineSchedule(options: {
  learningRate: number;
  totalSteps: number;
  minimum?: number;
  afterEnd?: 'hold' | 'periodic';
}): LearningRateSchedule {
  const { learningRate, totalSteps } = options;
  const minimum = options.minimum ?? 0;
  const periodic = (options.afterEnd ?? 'hold') === 'periodic';
  check(totalSteps > 0, 'invalid_argument', () => 'cosineSchedule: totalSteps must be > 0');
  check(
    options.afterEnd === undefined || options.afterEnd === 'hold' || options.afterEnd === 'periodic',
    'invalid_argument',
    () => `cosineSchedule: afterEnd must be 'hold' or 'periodic', got ${String(options.afterEnd)}`,
  );
  return (step) => {
    const at = periodic ? step : Math.min(step, totalSteps);
    return minimum + ((learningRate - minimum) * (1 + Math.cos((Math.PI * at) / totalSteps))) / 2;
  };
}

/** learningRate * gamma^(milestones reached): PyTorch's MultiStepLR (a repeated milestone counts twice). */
export function multiStepSchedule(options: {
  learningRate: number;
  milestones: readonly number[];
  gamma?: number;
}): LearningRateSchedule {
  const { learningRate } = options;
  const gamma = options.gamma ?? 0.1;
  const milestones = [...options.milestones];
  check(
    milestones.every((milestone) => Number.isInteger(milestone) && milestone >= 0),
    'invalid_argument',
    () => 'multiStepSchedule: milestones must be integers >= 0',
  );
  return (step) => learningRate * gamma ** milestones.filter((milestone) => milestone <= step).length;
}

/** learningRate * gamma^step (PyTorch's ExponentialLR). */
export function exponentialSchedule(options: { learningRate: number; gamma: number }): LearningRateSchedule {
  const { learningRate, gamma } = options;
  check(
    Number.isFinite(gamma) && gamma > 0,
    'invalid_argument',
    () => 'exponentialSchedule: gamma must be > 0',
  );
  return (step) => learningRate * gamma ** step;
}

export interface OneCycleOptions {
  readonly maxLearningRate: number;
  readonly totalSteps: number;
  /** The share of the steps spent rising; default 0.3. */
  readonly pctStart?: number;
  /** Default 'cos'. */
  readonly anneal?: 'cos' | 'linear';
  /** The first rate is maxLearningRate / divFactor; default 25. */
  readonly divFactor?: number;
  /** The last rate is the first / finalDivFactor; default 1e4. */
  readonly finalDivFactor?: number;
  /** Rise, fall back to the first rate, then anneal to the last (fast.ai's shape); default false. */
  readonly threePhase?: boolean;
}

/**
 * PyTorch's OneCycleLR (the learning rate; it does not cycle momentum). Like PyTorch, a step
 * past totalSteps is an error.
 */
export function oneCycleSchedule(options: OneCycleOptions): LearningRateSchedule {
  const { maxLearningRate, totalSteps } = options;
  const pctStart = options.pctStart ?? 0.3;
  const anneal = options.anneal ?? 'cos';
  const initial = maxLearningRate / (options.divFactor ?? 25);
  const last = initial / (options.finalDivFactor ?? 1e4);
  check(
    Number.isInteger(totalSteps) && totalSteps > 0,
    'invalid_argument',
    () => 'oneCycleSchedule: totalSteps must be a positive integer',
  );
  check(
    pctStart >= 0 && pctStart <= 1,
    'invalid_argument',
    () => 'oneCycleSchedule: pctStart must be in [0, 1]',
  );
  check(
    anneal === 'cos' || anneal === 'linear',
    'invalid_argument',
    () => `oneCycleSchedule: anneal must be 'cos' or 'linear', got ${String(anneal)}`,
  );
  const phases = options.threePhase
    ? [
        { end: pctStart * totalSteps - 1, from: initial, to: maxLearningRate },
        { end: 2 * pctStart * totalSteps - 2, from: maxLearningRate, to: initial },
        { end: totalSteps - 1, from: initial, to: last },
      ]
    : [
        { end: pctStart * totalSteps - 1, from: initial, to: maxLearningRate },
        { end: totalSteps - 1, from: maxLearningRate, to: last },
      ];
  const between = (from: number, to: number, fraction: number): number =>
    anneal === 'cos'
      ? to + ((from - to) / 2) * (Math.cos(Math.PI * fraction) + 1)
      : (to - from) * fraction + from;
  return (step) => {
    check(step <= totalSteps, 'invalid_argument', () => {
      return `oneCycleSchedule: step ${step} is past totalSteps ${totalSteps}; make totalSteps cover the run`;
    });
    let start = 0;
    for (let number = 0; number < phases.length; number++) {
      const phase = phases[number];
      if (step <= phase.end || number === phases.length - 1)
        return between(phase.from, phase.to, (step - start) / (phase.end - start));
      start = phase.end;
    }
    return last;
  };
}

/**
 * Cosine annealing with warm restarts (SGDR; PyTorch's CosineAnnealingWarmRestarts stepped once
 * per step): from learningRate down towards minimum over `period` steps, then restart, each
 * period `periodMultiplier` times the one before.
 */
export function warmRestartsSchedule(options: {
  learningRate: number;
  period: number;
  periodMultiplier?: number;
  minimum?: number;
}): LearningRateSchedule {
  const { learningRate, period } = options;
  const multiplier = options.periodMultiplier ?? 1;
  const minimum = options.minimum ?? 0;
  check(
    Number.isInteger(period) && period > 0,
    'invalid_argument',
    () => 'warmRestartsSchedule: period must be a positive integer',
  );
  check(
    Number.isInteger(multiplier) && multiplier >= 1,
    'invalid_argument',
    () => 'warmRestartsSchedule: periodMultiplier must be an integer >= 1',
  );
  return (step) => {
    let within = step;
    let length = period;
    if (multiplier === 1) within = step % period;
    else
      while (within >= length) {
        within -= length;
        length *= multiplier;
      }
    return minimum + ((learningRate - minimum) * (1 + Math.cos((Math.PI * within) / length))) / 2;
  };
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

export interface PlateauOptions {
  /** 'min': lower is better (a loss); 'max': higher is better (an accuracy). Default 'min'. */
  readonly mode?: 'min' | 'max';
  /** The rate is multiplied by this on a plateau; default 0.1. */
  readonly factor?: number;
  /** Steps without improvement tolerated before a cut; default 10. */
  readonly patience?: number;
  /** How much better counts as better; default 1e-4. */
  readonly threshold?: number;
  /** 'rel': better than best * (1 -/+ threshold); 'abs': than best -/+ threshold. Default 'rel'. */
  readonly thresholdMode?: 'rel' | 'abs';
  /** Steps after a cut during which bad steps are not counted; default 0. */
  readonly cooldown?: number;
  /** The lowest rate, one for all groups or one per group; default 0. */
  readonly minimum?: number | readonly number[];
  /** A cut smaller than this is not made; default 1e-8. */
  readonly epsilon?: number;
}

export interface PlateauState {
  readonly best: number;
  readonly badSteps: number;
  readonly cooldownLeft: number;
  readonly steps: number;
}

/** PyTorch's ReduceLROnPlateau: cuts every group's rate when a metric stops improving. */
export class ReduceLearningRateOnPlateau {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minimums: readonly number[];
  readonly epsilon: number;
  /** The best metric so far (Infinity or -Infinity before the first). */
  best: number;
  badSteps = 0;
  cooldownLeft = 0;
  steps = 0;

  constructor(
    readonly optimizer: Optimizer,
    options: PlateauOptions = {},
  ) {
    this.mode = options.mode ?? 'min';
    this.factor = options.factor ?? 0.1;
    this.patience = options.patience ?? 10;
    this.threshold = options.threshold ?? 1e-4;
    this.thresholdMode = options.thresholdMode ?? 'rel';
    this.cooldown = options.cooldown ?? 0;
    this.epsilon = options.epsilon ?? 1e-8;
    const minimum = options.minimum ?? 0;
    const groups = optimizer.groups.length;
    this.minimums =
      typeof minimum === 'number' ? Array.from({ length: groups }, () => minimum) : [...minimum];
    const fail = (field: string, what: string) => `ReduceLearningRateOnPlateau: ${field} ${what}`;
    check(this.mode === 'min' || this.mode === 'max', 'invalid_argument', () =>
      fail('mode', "must be 'min' or 'max'"),
    );
    check(this.factor >= 0 && this.factor < 1, 'invalid_argument', () => fail('factor', 'must be in [0, 1)'));
    check(Number.isInteger(this.patience) && this.patience >= 0, 'invalid_argument', () => {
      return fail('patience', 'must be an integer >= 0');
    });
    check(Number.isFinite(this.threshold) && this.threshold >= 0, 'invalid_argument', () => {
      return fail('threshold', 'must be >= 0');
    });
    check(this.thresholdMode === 'rel' || this.thresholdMode === 'abs', 'invalid_argument', () => {
      return fail('thresholdMode', "must be 'rel' or 'abs'");
    });
    check(Number.isInteger(this.cooldown) && this.cooldown >= 0, 'invalid_argument', () => {
      return fail('cooldown', 'must be an integer >= 0');
    });
    check(
      this.minimums.length === groups && this.minimums.every((value) => Number.isFinite(value) && value >= 0),
      'invalid_argument',
      () => fail('minimum', `must be >= 0, one number or one per group (${groups})`),
    );
    check(this.epsilon >= 0, 'invalid_argument', () => fail('epsilon', 'must be >= 0'));
    this.best = this.mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  /** Feeds the metric of the step (or epoch) just finished; gives back the first group's rate. */
  step(metric: number): number {
    check(!Number.isNaN(metric), 'invalid_argument', () => 'ReduceLearningRateOnPlateau: the metric is NaN');
    this.steps++;
    if (this.isBetter(metric)) {
      this.best = metric;
      this.badSteps = 0;
    } else this.badSteps++;
    if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
      this.badSteps = 0;
    }
    if (this.badSteps > this.patience) {
      this.optimizer.groups.forEach((group, number) => {
        const cut = Math.max(group.learningRate * this.factor, this.minimums[number]);
        if (group.learningRate - cut > this.epsilon) group.learningRate = cut;
      });
      this.cooldownLeft = this.cooldown;
      this.badSteps = 0;
    }
    return this.optimizer.learningRate;
  }

  private isBetter(metric: number): boolean {
    const { best, threshold } = this;
    if (this.mode === 'min')
      return this.thresholdMode === 'rel' ? metric < best * (1 - threshold) : metric < best - threshold;
    return this.thresholdMode === 'rel' ? metric > best * (threshold + 1) : metric > best + threshold;
  }

  stateDict(): PlateauState {
    return { best: this.best, badSteps: this.badSteps, cooldownLeft: this.cooldownLeft, steps: this.steps };
  }

  loadStateDict(state: PlateauState): void {
    for (const field of ['badSteps', 'cooldownLeft', 'steps'] as const)
      check(Number.isInteger(state[field]) && state[field] >= 0, 'invalid_argument', () => {
        return `ReduceLearningRateOnPlateau.loadStateDict: ${field} must be an integer >= 0`;
      });
    check(typeof state.best === 'number' && !Number.isNaN(state.best), 'invalid_argument', () => {
      return 'ReduceLearningRateOnPlateau.loadStateDict: best must be a number';
    });
    this.best = state.best;
    this.badSteps = state.badSteps;
    this.cooldownLeft = state.cooldownLeft;
    this.steps = state.steps;
  }
}
