/**
 * The messages between the driver of a run and its actors. The per-step request carries the
 * step's faults; everything else is rare (restore after a failure, injected crashes, metrics
 * batches, checkpoint requests).
 */
import type { StepFaults } from './FaultPlan.js';
import type { Recovery } from './TrainingConfig.js';
import type { SnapshotCopy } from './TrainingSnapshot.js';

/** Run step `step` (the steps committed before it) with its injected faults; snapshot after it when `capture`. */
export class StepRequest {
  constructor(
    public step: number,
    public faults: StepFaults,
    public capture: boolean,
  ) {}
}

/** How long the last step's math and its snapshot took (written by the model actor). */
export interface StepTiming {
  stepMs: number;
  /** Undefined when the step took no snapshot. */
  captureMs: number | undefined;
}

/** The step's allocation failed (injected out-of-memory); nothing was committed. */
export const STEP_OUT_OF_MEMORY = Object.freeze({ outOfMemory: true as const });

/** Write the last snapshot back into the live model, optimizer and loader. */
export class RestoreRequest {}

/** Take the first snapshot (step 0) of a fresh run. */
export class CaptureRequest {}

/**
 * Move training to `deviceId` before step `step` (the steps committed): the state is captured
 * from the current device (weights, optimizer state, loader position, generators), and the
 * model and optimizer are rebuilt on the new device from that snapshot.
 */
export class MoveRequest {
  constructor(
    readonly step: number,
    readonly deviceId: string,
  ) {}
}

/** The injected crash of an actor: it throws `InjectedActorCrash` while handling this. */
export class CrashRequest {
  constructor(readonly step: number) {}
}

/** Persist this copy of the snapshot (periodic, emergency after a failure, or final). */
export class PersistRequest {
  constructor(
    readonly copy: SnapshotCopy,
    readonly reason: 'periodic' | 'emergency' | 'final' | 'interrupted',
  ) {}
}

/** Wait until every persist requested so far is written; replies once they are. */
export class FlushRequest {}

/** One committed step, for the metrics actor. */
export interface StepRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  /** performance.now() when it was committed. */
  readonly timeMs: number;
}

export class StepRecords {
  constructor(readonly records: readonly StepRecord[]) {}
}

export class EpochRecord {
  constructor(
    readonly epoch: number,
    readonly meanLoss: number,
    readonly testAccuracy: number | undefined,
    readonly stepsPerSec: number,
    readonly steps: number,
  ) {}
}

export class RecoveryRecord {
  constructor(readonly recovery: Recovery) {}
}
