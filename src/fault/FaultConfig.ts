import { guardOf, TaggedError } from '../internal/errors.js';
/**
 * Fault-injection settings, set in code or from the `ZBMD_FAULTS` environment variable.
 *
 * `ZBMD_FAULTS` holds either JSON (`{"actorCrashRate":0.01,"seed":7}`) or a comma-separated
 * `key=value` list (`actorCrashRate=0.01,messageDropRate=0.05,seed=7`). Every field is optional;
 * missing ones are 0 (no faults), so an empty string means "no faults".
 */
export interface FaultConfig {
  /** Probability that an actor crashes when the runtime asks (per message handled). [0, 1]. */
  readonly actorCrashRate: number;
  /** Probability that a message is dropped instead of delivered. [0, 1]. */
  readonly messageDropRate: number;
  /** Probability that a message is delayed. [0, 1]. */
  readonly messageDelayRate: number;
  /** Longest injected delay; a delayed message waits a uniform 1..messageDelayMs ms. [0, 3_600_000]. */
  readonly messageDelayMs: number;
  /** Probability that a GPU operation fails with a device error. [0, 1]. */
  readonly gpuErrorRate: number;
  /** Probability that an allocation fails with out-of-memory. [0, 1]. */
  readonly oomRate: number;
  /** Probability that a kernel launch hangs until its timeout. [0, 1]. */
  readonly kernelTimeoutRate: number;
  /** Seed of every fault decision: the same seed and the same calls give the same faults. */
  readonly seed: number;
}

export const NO_FAULTS: FaultConfig = Object.freeze({
  actorCrashRate: 0,
  messageDropRate: 0,
  messageDelayRate: 0,
  messageDelayMs: 0,
  gpuErrorRate: 0,
  oomRate: 0,
  kernelTimeoutRate: 0,
  seed: 0,
});

/** Longest accepted `messageDelayMs` (one hour). */
export const FAULT_MAX_DELAY_MS = 3_600_000;
/** Longest accepted `ZBMD_FAULTS` string, so a stray huge variable is refused rather than parsed. */
export const FAULT_MAX_CONFIG_LENGTH = 4096;

type FaultKey = keyof FaultConfig;

interface FieldRule {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
}

const RATE: FieldRule = { min: 0, max: 1, integer: false };
const FIELD_RULES: Readonly<Record<FaultKey, FieldRule>> = {
  actorCrashRate: RATE,
  messageDropRate: RATE,
  messageDelayRate: RATE,
  messageDelayMs: { min: 0, max: FAULT_MAX_DELAY_MS, integer: true },
  gpuErrorRate: RATE,
  oomRate: RATE,
  kernelTimeoutRate: RATE,
  seed: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
};

export const FAULT_KEYS = Object.keys(FIELD_RULES) as readonly FaultKey[];

/**
 * The short form of each key, accepted wherever a long one is (`ZBMD_FAULTS`, `--faults`,
 * `train({ faults })`, `faultConfig`): `crash=0.01,oom=0.001,seed=7`.
 */
export const FAULT_ALIASES = Object.freeze({
  crash: 'actorCrashRate',
  drop: 'messageDropRate',
  delay: 'messageDelayRate',
  delayMs: 'messageDelayMs',
  device: 'gpuErrorRate',
  gpu: 'gpuErrorRate',
  oom: 'oomRate',
  timeout: 'kernelTimeoutRate',
} as const satisfies Readonly<Record<string, FaultKey>>);

export type FaultAlias = keyof typeof FAULT_ALIASES;

/** Fault settings as users write them: long keys or their short forms. */
export type FaultSettings = Partial<FaultConfig> & Partial<Readonly<Record<FaultAlias, number>>>;

/** The long key a key names (itself when it is long), or undefined for an unknown key. */
export function faultKeyOf(key: string): FaultKey | undefined {
  if (Object.hasOwn(FIELD_RULES, key)) return key as FaultKey;
  return Object.hasOwn(FAULT_ALIASES, key) ? FAULT_ALIASES[key as FaultAlias] : undefined;
}

function keysText(): string {
  const short = Object.entries(FAULT_ALIASES).map(([alias, key]) => `${alias} (${key})`);
  return `one of ${FAULT_KEYS.join(', ')}, or the short forms ${short.join(', ')}`;
}

/** A rejected fault setting: which key, what was given, what is allowed. */
export class FaultConfigError extends TaggedError('FaultConfigError') {
  constructor(
    readonly key: string,
    readonly value: unknown,
    readonly reason:
      | 'unknown_key'
      | 'not_a_number'
      | 'out_of_range'
      | 'not_an_integer'
      | 'duplicate_key'
      | 'syntax',
    readonly allowed: string,
  ) {
    super(
      `invalid fault setting '${key}' = ${JSON.stringify(value) ?? String(value)}: ${reasonText(reason)}; allowed: ${allowed}`,
    );
  }
}

export const isFaultConfigError = guardOf(FaultConfigError);

function reasonText(reason: FaultConfigError['reason']): string {
  switch (reason) {
    case 'unknown_key':
      return 'unknown key';
    case 'not_a_number':
      return 'not a number';
    case 'out_of_range':
      return 'out of range';
    case 'not_an_integer':
      return 'not an integer';
    case 'duplicate_key':
      return 'given twice';
    case 'syntax':
      return 'cannot parse';
  }
}

function allowedText(key: FaultKey): string {
  const rule = FIELD_RULES[key];
  return `${rule.integer ? 'an integer' : 'a number'} in [${rule.min}, ${rule.max}]`;
}

/** Validates a partial configuration given in code and fills the defaults (0). */
export function faultConfig(partial: FaultSettings | Readonly<Record<string, unknown>> = {}): FaultConfig {
  const result: Record<string, number> = { ...NO_FAULTS };
  const seen = new Set<FaultKey>();
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    const long = faultKeyOf(key);
    if (long !== undefined && seen.has(long))
      throw new FaultConfigError(key, value, 'duplicate_key', `each key once (${key} is ${long})`);
    if (long !== undefined) seen.add(long);
    result[long ?? key] = checkField(key, value);
  }
  return Object.freeze(result) as unknown as FaultConfig;
}

/** Parses `ZBMD_FAULTS`: JSON or `key=value,key=value`. Throws `FaultConfigError`. */
export function parseFaultConfig(text: string): FaultConfig {
  if (text.length > FAULT_MAX_CONFIG_LENGTH) {
    throw new FaultConfigError(
      'ZBMD_FAULTS',
      `${text.slice(0, 32)}...`,
      'syntax',
      `at most ${FAULT_MAX_CONFIG_LENGTH} characters`,
    );
  }
  const trimmed = text.trim();
  if (trimmed === '') return NO_FAULTS;
  return trimmed.startsWith('{') ? parseJson(trimmed) : parsePairs(trimmed);
}

function parseJson(text: string): FaultConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new FaultConfigError(
      'ZBMD_FAULTS',
      text,
      'syntax',
      `a JSON object or key=value pairs (${(error as Error).message})`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new FaultConfigError('ZBMD_FAULTS', text, 'syntax', 'a JSON object or key=value pairs');
  }
  return faultConfig(parsed as Record<string, unknown>);
}

function parsePairs(text: string): FaultConfig {
  const fields: Record<string, unknown> = {};
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue;
    const equals = pair.indexOf('=');
    if (equals < 0) throw new FaultConfigError(pair.trim(), pair, 'syntax', 'key=value');
    const key = pair.slice(0, equals).trim();
    const value = pair.slice(equals + 1).trim();
    if (Object.hasOwn(fields, key)) throw new FaultConfigError(key, value, 'duplicate_key', 'each key once');
    fields[key] = value;
  }
  return faultConfig(fields);
}

function checkField(key: string, raw: unknown): number {
  const faultKey = faultKeyOf(key);
  if (faultKey === undefined) throw new FaultConfigError(key, raw, 'unknown_key', keysText());
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new FaultConfigError(key, raw, 'not_a_number', allowedText(faultKey));
  }
  const rule = FIELD_RULES[faultKey];
  if (value < rule.min || value > rule.max)
    throw new FaultConfigError(key, raw, 'out_of_range', allowedText(faultKey));
  if (rule.integer && !Number.isInteger(value)) {
    throw new FaultConfigError(key, raw, 'not_an_integer', allowedText(faultKey));
  }
  return value;
}

/** Renders a configuration as the `key=value` form `parseFaultConfig` reads (non-zero fields only). */
export function formatFaultConfig(config: FaultConfig): string {
  return FAULT_KEYS.filter((key) => config[key] !== 0 || key === 'seed')
    .map((key) => `${key}=${config[key]}`)
    .join(',');
}
