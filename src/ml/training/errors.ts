/**
 * Errors of supervised training. Operating errors (a bad option, a checkpoint that does not fit
 * the run, a failure the supervisor could not repair) are `TrainingError`s whose `code` says
 * which rule was broken. The faults injected into a run are errors too, because an actor dies
 * of them: `InjectedActorCrash` (an actor's code threw), `DeviceFailure` (the device the model
 * runs on failed), and `OutOfMemory` (an allocation for the step failed).
 */
import type { DeviceError } from '../../gpu/errors.js';
import { TaggedError } from '../../internal/errors.js';

export type TrainingErrorCode =
  | 'invalid_config'
  | 'invalid_data'
  | 'no_checkpoint'
  | 'run_exists'
  | 'checkpoint_locked'
  | 'checkpoint_corrupt'
  | 'checkpoint_invalid'
  | 'checkpoint_mismatch'
  | 'supervisor_gave_up'
  | 'step_failed_repeatedly'
  | 'out_of_memory_at_minimum'
  | 'unavailable_on_device'
  | 'lineage_broken';

export class TrainingError extends TaggedError('TrainingError') {
  /** The field at fault, for `checkpoint_invalid` (a path such as `optimizer.stepCount`). */
  readonly field: string | undefined;
  constructor(
    readonly code: TrainingErrorCode,
    message: string,
    options?: { cause?: unknown; field?: string },
  ) {
    super(`${message} (${code})`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = options?.field;
  }
}

export function isTrainingError(value: unknown, code?: TrainingErrorCode): value is TrainingError {
  return value instanceof TrainingError && (code === undefined || value.code === code);
}

/** The actors of a training run, in the order the supervisor starts them. */
export type TrainingRole = 'model' | 'optimizer' | 'dataloader' | 'checkpoint' | 'metrics';

export const TRAINING_ROLES: readonly TrainingRole[] = [
  'model',
  'optimizer',
  'dataloader',
  'checkpoint',
  'metrics',
];

/** An actor crash injected by the fault plan at `step`: the actor's own code throws it. */
export class InjectedActorCrash extends TaggedError('InjectedActorCrash') {
  constructor(
    readonly role: TrainingRole,
    readonly step: number,
  ) {
    super(`injected crash of the ${role} actor at step ${step}`);
  }
}

export function isInjectedActorCrash(value: unknown): value is InjectedActorCrash {
  return value instanceof InjectedActorCrash;
}

/** The device the model runs on failed during `step`; the model actor dies of it. */
export class DeviceFailure extends TaggedError('DeviceFailure') {
  constructor(
    readonly deviceId: string,
    readonly step: number,
    /** Where training goes next (the same device when no other healthy one exists). */
    readonly nextDeviceId: string,
    /** The error the device raised (absent for a failure the fault plan injected into host training). */
    readonly deviceError?: DeviceError,
  ) {
    super(
      `device ${deviceId} failed at step ${step}${deviceError === undefined ? '' : ` (${deviceError.name}: ${deviceError.message})`}; training moves to ${nextDeviceId}`,
    );
  }
}

export function isDeviceFailure(value: unknown): value is DeviceFailure {
  return value instanceof DeviceFailure;
}

/** An allocation for `step` failed at micro-batch size `microBatchSize`. */
export class OutOfMemory extends TaggedError('OutOfMemory') {
  constructor(
    readonly step: number,
    readonly microBatchSize: number,
    /** The device's error when a device ran out (absent for one the fault plan injected into host training). */
    readonly deviceError?: DeviceError,
  ) {
    super(
      `out of memory at step ${step} with micro-batch ${microBatchSize}${deviceError === undefined ? '' : ` (${deviceError.name}: ${deviceError.message})`}`,
    );
  }
}

export function isOutOfMemory(value: unknown): value is OutOfMemory {
  return value instanceof OutOfMemory;
}
