import { Backoff, type BackoffSpec } from '../Backoff.js';
import { type ChildSpec, type ResolvedChildSpec, resolveChildSpec } from '../ChildSpec.js';
import { InvalidChildSpec, InvalidSupervisorOptions } from '../errors.js';
import type { SupervisionListener } from '../SupervisionEvent.js';
import type { AutoShutdown, Strategy } from '../SupervisorResults.js';

/** Supervisor options as users write them (see `startSupervisor`). */
export interface SupervisorOptions {
  /** Default `'one_for_one'`. */
  readonly strategy?: Strategy;
  /** Most restarts within `periodMs`; one more and the supervisor gives up. Default 1 (OTP). */
  readonly intensity?: number;
  /** The window of the intensity, in ms. Default 5000 (OTP's 5 s). */
  readonly periodMs?: number;
  /** Default `'never'`. */
  readonly autoShutdown?: AutoShutdown;
  /** Started in order at init. For simple_one_for_one: exactly one, the template. */
  readonly children?: readonly ChildSpec[];
  /** Wait before restarts; default `{ type: 'none' }` (at once, as OTP). */
  readonly backoff?: BackoffSpec;
  /** Register the supervisor under this name. */
  readonly name?: string;
  /** Most children at once (default 100,000); `startChild` beyond it gets `MaxChildrenReached`. */
  readonly maxChildren?: number;
  /** Told about every supervision action of this supervisor. */
  readonly onEvent?: SupervisionListener;
}

/** The validated options: every default filled in. */
export interface SupervisorConfig {
  readonly strategy: Strategy;
  readonly intensity: number;
  readonly periodMs: number;
  readonly autoShutdown: AutoShutdown;
  readonly specs: readonly ResolvedChildSpec[];
  readonly backoff: Backoff;
  readonly name: string | undefined;
  readonly maxChildren: number;
  readonly onEvent: SupervisionListener | undefined;
}

export const DEFAULT_INTENSITY = 1;
export const DEFAULT_PERIOD_MS = 5000;
/** Default limit on a supervisor's children. */
export const DEFAULT_MAX_CHILDREN = 100_000;
/** Largest intensity accepted: the supervisor keeps intensity + 1 restart times. */
export const MAX_INTENSITY = 1_000_000;
/** Longest period accepted (one day). */
export const MAX_PERIOD_MS = 86_400_000;

const STRATEGIES: readonly Strategy[] = ['one_for_one', 'one_for_all', 'rest_for_one', 'simple_one_for_one'];
const AUTO_SHUTDOWNS: readonly AutoShutdown[] = ['never', 'any_significant', 'all_significant'];

/** Validates supervisor options and their child specs, field by field; throws the first problem. */
export function resolveSupervisorOptions(options: unknown): SupervisorConfig {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidSupervisorOptions('invalid_options', options, 'options must be an object');
  }
  const fields = options as SupervisorOptions;
  const strategy = pick(fields.strategy, 'one_for_one', STRATEGIES, 'invalid_strategy');
  const intensity = integerIn(fields.intensity, DEFAULT_INTENSITY, 0, MAX_INTENSITY, 'invalid_intensity');
  const periodMs = fields.periodMs ?? DEFAULT_PERIOD_MS;
  if (typeof periodMs !== 'number' || !(periodMs > 0 && periodMs <= MAX_PERIOD_MS)) {
    throw new InvalidSupervisorOptions(
      'invalid_period',
      periodMs,
      `periodMs must be a number in (0, ${MAX_PERIOD_MS}]`,
    );
  }
  const autoShutdown = pick(fields.autoShutdown, 'never', AUTO_SHUTDOWNS, 'invalid_auto_shutdown');
  const maxChildren = integerIn(
    fields.maxChildren,
    DEFAULT_MAX_CHILDREN,
    1,
    Number.MAX_SAFE_INTEGER,
    'invalid_max_children',
  );
  if (fields.name !== undefined && (typeof fields.name !== 'string' || fields.name.length === 0)) {
    throw new InvalidSupervisorOptions('invalid_name', fields.name, 'name must be a non-empty string');
  }
  if (fields.onEvent !== undefined && typeof fields.onEvent !== 'function') {
    throw new InvalidSupervisorOptions('invalid_on_event', fields.onEvent, 'onEvent must be a function');
  }
  const specs = resolveChildren(fields.children, strategy, maxChildren);
  const backoff = Backoff.from(fields.backoff, periodMs);
  return {
    strategy,
    intensity,
    periodMs,
    autoShutdown,
    specs,
    backoff,
    name: fields.name,
    maxChildren,
    onEvent: fields.onEvent,
  };
}

function resolveChildren(children: unknown, strategy: Strategy, maxChildren: number): ResolvedChildSpec[] {
  if (children === undefined) children = [];
  if (!Array.isArray(children))
    throw new InvalidSupervisorOptions(
      'invalid_children',
      children,
      'children must be an array of child specs',
    );
  if (strategy === 'simple_one_for_one' && children.length !== 1) {
    throw new InvalidSupervisorOptions(
      'invalid_children',
      children,
      'a simple_one_for_one supervisor takes exactly one child spec (the template)',
    );
  }
  if (strategy !== 'simple_one_for_one' && children.length > maxChildren) {
    throw new InvalidSupervisorOptions(
      'too_many_children',
      children.length,
      `${children.length} children exceed maxChildren ${maxChildren}`,
    );
  }
  const specs = children.map((spec) => resolveChildSpec(spec));
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.id))
      throw new InvalidChildSpec('duplicate_child_id', spec.id, spec.id, 'two children have this id');
    seen.add(spec.id);
  }
  return specs;
}

function pick<T extends string>(
  value: unknown,
  fallback: T,
  allowed: readonly T[],
  problem: 'invalid_strategy' | 'invalid_auto_shutdown',
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T))
    throw new InvalidSupervisorOptions(problem, value, `expected one of ${allowed.join(', ')}`);
  return value as T;
}

function integerIn(
  value: unknown,
  fallback: number,
  min: number,
  max: number,
  problem: 'invalid_intensity' | 'invalid_max_children',
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidSupervisorOptions(problem, value, `expected an integer in [${min}, ${max}]`);
  }
  return value;
}
