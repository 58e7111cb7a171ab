/**
 * Training curves as they happen: loss per step, test accuracy per epoch, recoveries. Bounded:
 * past `MAX_SERIES_POINTS` loss points every second one is dropped and only every second step
 * is kept from then on, so a long run keeps its whole shape in fixed memory. Imports no other layer.
 */
import type { RecoveryMark, TrainingView } from './Snapshot.js';

export const MAX_SERIES_POINTS = 10_000;
/** Recoveries kept for the marks (the count stays exact). */
export const MAX_RECOVERY_MARKS = 10_000;

export class TrainingSeries {
  private readonly loss: Array<[number, number]> = [];
  private readonly accuracy: Array<[number, number]> = [];
  private readonly recoveries: RecoveryMark[] = [];
  private stride = 1;
  private seen = 0;
  private steps = 0;
  private lastLoss: number | undefined = undefined;
  private firstStepMs: number | undefined = undefined;
  private firstStep = 0;
  private lastStepMs = 0;
  readonly recoveriesByCause = new Map<string, number>();

  constructor(readonly maxPoints = MAX_SERIES_POINTS) {}

  /** A committed step: `step` steps done in all, `loss` its loss; `nowMs` a monotonic clock. */
  step(step: number, loss: number, nowMs: number): void {
    if (this.firstStepMs === undefined) {
      this.firstStepMs = nowMs;
      this.firstStep = step;
    }
    this.lastStepMs = nowMs;
    this.steps = step;
    this.lastLoss = loss;
    if (this.seen++ % this.stride !== 0) return;
    this.loss.push([step, loss]);
    if (this.loss.length > this.maxPoints) this.thin();
  }

  epoch(step: number, testAccuracy: number | undefined): void {
    if (testAccuracy !== undefined && this.accuracy.length < this.maxPoints)
      this.accuracy.push([step, testAccuracy]);
  }

  recovery(step: number, cause: string): void {
    this.recoveriesByCause.set(cause, (this.recoveriesByCause.get(cause) ?? 0) + 1);
    if (this.recoveries.length < MAX_RECOVERY_MARKS) this.recoveries.push({ step, cause });
  }

  get lastAccuracy(): number | undefined {
    return this.accuracy[this.accuracy.length - 1]?.[1];
  }

  get stepCount(): number {
    return this.steps;
  }

  get latestLoss(): number | undefined {
    return this.lastLoss;
  }

  /** Steps per second since the first step seen. */
  stepsPerSec(): number {
    if (this.firstStepMs === undefined || this.lastStepMs <= this.firstStepMs) return 0;
    return ((this.steps - this.firstStep) / (this.lastStepMs - this.firstStepMs)) * 1000;
  }

  view(): TrainingView {
    return {
      loss: this.loss.map((point) => [point[0], point[1]]),
      accuracy: this.accuracy.map((point) => [point[0], point[1]]),
      recoveries: [...this.recoveries],
      steps: this.steps,
      stepsPerSec: this.stepsPerSec(),
      lastLoss: this.lastLoss,
    };
  }

  private thin(): void {
    let kept = 0;
    for (let index = 0; index < this.loss.length; index += 2) this.loss[kept++] = this.loss[index];
    this.loss.length = kept;
    this.stride *= 2;
  }
}
