/** The observe layer's errors: tagged, with typed fields and a guard. */

/** An option of the observe commands (`--metrics-port`, `--log-level`, a socket path...) is wrong. */
export class InvalidObserveOption extends Error {
  readonly _tag = 'InvalidObserveOption' as const;
  constructor(
    /** The option or variable, e.g. `--metrics-port`. */
    readonly option: string,
    readonly value: unknown,
    /** What it must be. */
    readonly expected: string,
  ) {
    super(`${option}: expected ${expected}, got ${JSON.stringify(value)}`);
    this.name = 'InvalidObserveOption';
  }
  static is(error: unknown): error is InvalidObserveOption {
    return error instanceof InvalidObserveOption;
  }
}

/** A control socket could not be reached, or answered something that is not a snapshot. */
export class ControlSocketError extends Error {
  readonly _tag = 'ControlSocketError' as const;
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`control socket ${path}: ${detail}`);
    this.name = 'ControlSocketError';
  }
  static is(error: unknown): error is ControlSocketError {
    return error instanceof ControlSocketError;
  }
}

export const isInvalidObserveOption = InvalidObserveOption.is;
export const isControlSocketError = ControlSocketError.is;
