/**
 * Parsers of option values shared by the commands. Each accepts only the plain spelling of a
 * value (digits for an integer: no sign, exponent, spaces or empty string, so `--seed ''` is not
 * seed 0) within a stated range, and otherwise throws commander's `InvalidArgumentError`, which
 * commander reports in one line naming the flag: `option '--seed <n>' argument '' is invalid.
 * expected an integer from 0 to 9007199254740991, got ''`. zbmd exits 2 on it.
 */
import { InvalidArgumentError } from 'commander';
import { TaggedError } from '../internal/errors.js';

/** A value as an error shows it: at most 80 characters. */
function shown(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}

/** An integer from `min` to `max`, written in decimal digits. */
export function integerOption(min: number, max: number = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const parsed = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got '${shown(value)}'`);
    return parsed;
  };
}

/** A decimal number (`0.01`, `1e-3`) greater than `above` and at most `max`. */
export function numberOption(above: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = /^(\d+\.?\d*|\.\d+)(e[+-]?\d{1,3})?$/i.test(value) ? Number(value) : Number.NaN;
    if (!(parsed > above && parsed <= max))
      throw new InvalidArgumentError(`expected a number in (${above}, ${max}], got '${shown(value)}'`);
    return parsed;
  };
}

/** A path or name: not empty, not only spaces, no NUL byte, at most 4,096 characters. */
export function pathOption(value: string): string {
  if (value.trim() === '' || value.includes('\0') || value.length > 4096)
    throw new InvalidArgumentError(
      `expected a non-empty path of at most 4096 characters, got '${shown(value)}'`,
    );
  return value;
}

/** A bad invocation found by a command's action (options that do not go together...): exit 2, one line. */
export class UsageError extends TaggedError('UsageError') {
  constructor(message: string) {
    super(message);
  }
}
