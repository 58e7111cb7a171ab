import type { CodeRef } from '../ActorSystem.js';
import { BadArgument } from '../errors.js';
import { Pid } from '../Pid.js';

/** Argument checks shared by the public API and the runtime: each failure names what was wrong. */

export function checkPid(pid: unknown, operation: string): Pid {
  if (!(pid instanceof Pid)) throw new BadArgument(`${operation}: expected a Pid, got ${describe(pid)}`);
  return pid;
}

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new BadArgument(`expected a registered name (a non-empty string), got ${describe(name)}`);
  }
  return name;
}

export function checkTimeout(value: unknown, what: string): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new BadArgument(
      `${what} must be a number of milliseconds >= 0 (or Infinity), got ${describe(value)}`,
    );
  }
}

export function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new BadArgument(`${what} must be a positive integer, got ${describe(value)}`);
  return value;
}

/** A short description of a bad value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object')
    return value instanceof Pid ? `pid ${value}` : `an object (${Object.prototype.toString.call(value)})`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

/** A `{ module, export }` code reference (spawn by module URL), as opposed to a behaviour. */
export function isCodeRef(value: unknown): value is CodeRef {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { handle?: unknown }).handle !== 'function' &&
    'module' in value &&
    'export' in value
  );
}
