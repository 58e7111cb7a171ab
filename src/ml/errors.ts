import { TaggedError } from '../internal/errors.js';
/**
 * Errors of the ML layer. Bad input (a shape that does not fit, an axis out of range, a dtype an
 * op cannot compute in) is an operating error: it is thrown as a `TensorError` whose `reason`
 * says which rule was broken, so callers can match on it.
 */
export type TensorErrorReason =
  | 'shape_mismatch'
  | 'invalid_shape'
  | 'invalid_axis'
  | 'invalid_dtype'
  | 'invalid_argument'
  | 'disposed'
  | 'graph_consumed'
  | 'device_mismatch'
  | 'unavailable_on_device';

export class TensorError extends TaggedError('TensorError') {
  constructor(
    readonly reason: TensorErrorReason,
    message: string,
  ) {
    super(`${message} (${reason})`);
  }
}

export function isTensorError(value: unknown): value is TensorError {
  return value instanceof TensorError;
}

/** Throws a `TensorError` with `reason` unless `condition` holds. */
export function check(
  condition: boolean,
  reason: TensorErrorReason,
  message: () => string,
): asserts condition {
  if (!condition) throw new TensorError(reason, message());
}
