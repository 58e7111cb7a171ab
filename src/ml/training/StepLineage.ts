/**
 * Proof that no step is lost or repeated: for every committed step, which samples it consumed
 * (the loader's epoch, the start position in that epoch and the batch size). A correct run's
 * steps tile each epoch exactly, batch after batch, from position 0 to the end of the data set;
 * a lost step leaves a gap, a repeated one an overlap, and `audit` counts both.
 */

export interface LineageAudit {
  /** Planned steps never committed, plus breaks in the tiling (gaps or overlaps). */
  readonly lostSteps: number;
  /** Steps committed (each index once). */
  readonly committedSteps: number;
}

export class StepLineage {
  private readonly epochs: Int32Array;
  private readonly starts: Int32Array;
  private readonly sizes: Int32Array;

  constructor(
    /** Steps the run plans in all. */
    readonly plannedSteps: number,
    /** The first step this process runs (0, or the resumed step). */
    readonly firstStep: number,
  ) {
    const length = Math.max(0, plannedSteps - firstStep);
    this.epochs = new Int32Array(length).fill(-1);
    this.starts = new Int32Array(length);
    this.sizes = new Int32Array(length);
  }

  /** Records that `step` consumed samples [start, start + size) of `epoch`. */
  commit(step: number, epoch: number, start: number, size: number): void {
    const index = step - this.firstStep;
    this.epochs[index] = epoch;
    this.starts[index] = start;
    this.sizes[index] = size;
  }

  /**
   * Counts missing steps and breaks in the tiling of each epoch (`epochLength` samples), over
   * the steps up to `lastStep` (default: all planned; an interrupted run audits what it ran).
   */
  audit(
    epochLength: number,
    firstPosition: { epoch: number; position: number },
    lastStep = this.plannedSteps,
  ): LineageAudit {
    let lostSteps = 0;
    let committedSteps = 0;
    let expectedEpoch = firstPosition.epoch;
    let expectedStart = firstPosition.position;
    const end = Math.min(this.epochs.length, Math.max(0, lastStep - this.firstStep));
    for (let index = 0; index < end; index++) {
      if (this.epochs[index] < 0) {
        lostSteps++;
        continue;
      }
      committedSteps++;
      if (expectedStart >= epochLength) {
        expectedEpoch++;
        expectedStart = 0;
      }
      if (this.epochs[index] !== expectedEpoch || this.starts[index] !== expectedStart) lostSteps++;
      expectedEpoch = this.epochs[index];
      expectedStart = this.starts[index] + this.sizes[index];
    }
    return { lostSteps, committedSteps };
  }
}
