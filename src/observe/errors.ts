import { guardOf, TaggedError } from '../internal/errors.js';
/** The observe layer's errors: tagged, with typed fields and a guard. */

/** An option of the observe commands (`--metrics-port`, `--log-level`, a socket path...) is wrong. */
export class InvalidObserveOption extends TaggedError('InvalidObserveOption') {
  constructor(
    /** The option or variable, e.g. `--metrics-port`. */
    readonly option: string,
    readonly value: unknown,
    /** What it must be. */
    readonly expected: string,
  ) {
    super(`${option}: expected ${expected}, got ${JSON.stringify(value)}`);
  }
}

/** A control socket could not be reached, or answered something that is not a snapshot. */
export class ControlSocketError extends TaggedError('ControlSocketError') {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`control socket ${path}: ${detail}`);
  }
}

export const isInvalidObserveOption = guardOf(InvalidObserveOption);
export const isControlSocketError = guardOf(ControlSocketError);
