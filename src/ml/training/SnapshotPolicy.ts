/**
 * When to take the in-memory snapshot. A snapshot is one copy of the weights and the optimizer
 * state: for a small model whose step takes a millisecond, that copy alone costs ~5% of the
 * step. So by default ('auto') the interval adapts: a snapshot every step while the copy costs
 * under `SNAPSHOT_OVERHEAD_TARGET` of a step, else every k steps, k the smallest interval that
 * meets the target, at most `SNAPSHOT_MAX_INTERVAL_STEPS`. Between snapshots nothing is lost:
 * a step is a deterministic function of the state and the loader position, so a recovery
 * restores the last snapshot and runs the steps since it again, bit for bit (they count once).
 * A snapshot is also taken whenever a checkpoint is due and at the end of every epoch.
 */

/** Largest fraction of a step's time the snapshot copies may take in 'auto' mode. */
export const SNAPSHOT_OVERHEAD_TARGET = 0.01;
/** Most steps between two snapshots in 'auto' mode (the most a recovery replays is one less). */
export const SNAPSHOT_MAX_INTERVAL_STEPS = 8;
/** Weight of a new measurement in the running averages. */
const AVERAGE_WEIGHT = 0.1;

export class SnapshotPolicy {
  private stepMsAverage = 0;
  private captureMsAverage = 0;
  private current: number;

  constructor(private readonly fixedIntervalSteps: number | 'auto') {
    this.current = fixedIntervalSteps === 'auto' ? 1 : fixedIntervalSteps;
  }

  /** Steps between snapshots now. */
  get intervalSteps(): number {
    return this.current;
  }

  /** True when the step that brings the count to `committed` must end with a snapshot. */
  shouldCapture(committed: number, lastSnapshotStep: number, forced: boolean): boolean {
    return forced || committed - lastSnapshotStep >= this.current;
  }

  /** A step's compute time and, when one was taken, its snapshot's copy time. */
  observe(stepMs: number, captureMs: number | undefined): void {
    this.stepMsAverage += AVERAGE_WEIGHT * (stepMs - this.stepMsAverage);
    if (captureMs !== undefined)
      this.captureMsAverage += AVERAGE_WEIGHT * (captureMs - this.captureMsAverage);
    if (this.fixedIntervalSteps !== 'auto' || this.stepMsAverage <= 0) return;
    const needed = Math.ceil(this.captureMsAverage / (SNAPSHOT_OVERHEAD_TARGET * this.stepMsAverage));
    this.current = Math.min(SNAPSHOT_MAX_INTERVAL_STEPS, Math.max(1, needed));
  }
}
