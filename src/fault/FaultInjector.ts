import { Random } from '../actor/Random.js';
import type { FaultConfig } from './FaultConfig.js';
import { FaultConfigError, faultConfig, NO_FAULTS, parseFaultConfig } from './FaultConfig.js';

export type FaultKind =
  | 'actor_crash'
  | 'message_drop'
  | 'message_delay'
  | 'gpu_error'
  | 'oom'
  | 'kernel_timeout';

export const FAULT_KINDS: readonly FaultKind[] = [
  'actor_crash',
  'message_drop',
  'message_delay',
  'gpu_error',
  'oom',
  'kernel_timeout',
];

/** One injected fault. `sequence` counts injected faults of all kinds from 0. */
export interface InjectedFault {
  readonly sequence: number;
  readonly kind: FaultKind;
  /** The n-th decision of this kind (injected or not) that produced this fault, from 0. */
  readonly decision: number;
  /** Device for `gpu_error`, delay in ms for `message_delay`; otherwise undefined. */
  readonly detail?: string | number;
}

export interface FaultInjectorOptions {
  /** Entries kept in `log`; later faults are still counted and fingerprinted. Default 100_000. */
  readonly maxLogEntries?: number;
  /**
   * Inject only these faults (by kind and decision number), as a shrunk trace does: every other
   * fault the seed would inject is suppressed. A `message_delay` entry may give a shorter
   * `detail` (its delay in ms). The random streams advance exactly as without the list.
   */
  readonly only?: readonly FaultChoice[];
}

/** One fault of a seed's trace, kept by a shrunk replay (`FaultInjectorOptions.only`). */
export interface FaultChoice {
  readonly kind: FaultKind;
  readonly decision: number;
  /** For `message_delay`: the delay in ms to use instead of the drawn one (>= 1). */
  readonly detail?: number;
}

/** Default cap on the fault log, so a long run with faults cannot grow memory without bound. */
export const FAULT_LOG_DEFAULT_MAX_ENTRIES = 100_000;

/**
 * Seeded fault decisions for the runtime's hooks. Each kind of fault draws from its own random
 * stream (derived from the seed and the kind), so asking about GPU errors more or less often
 * never changes which messages are dropped: a run replays its faults as long as each kind's
 * hooks are called in the same order.
 *
 * Every injected fault is appended to a log (kind, global sequence, per-kind decision number)
 * and folded into a fingerprint, so two runs can be compared cheaply (`fingerprint`) or in
 * detail (`log`).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { FaultInjector } from 'zbmd/fault';
 *
 * const drops = (seed: number): boolean[] => {
 *   const faults = new FaultInjector({ messageDropRate: 0.1, seed });
 *   return Array.from({ length: 100 }, () => faults.shouldDropMessage());
 * };
 * assert.deepEqual(drops(7), drops(7)); // the same seed drops the same messages
 * ```
 */
export class FaultInjector {
  readonly config: FaultConfig;
  private readonly streams: Random[];
  private readonly decisions: number[];
  private readonly counters: number[];
  private readonly entries: InjectedFault[] = [];
  private readonly maxLogEntries: number;
  private readonly only: Map<string, FaultChoice> | undefined;
  private sequence = 0;
  private hash = FNV_OFFSET;

  constructor(config: Partial<FaultConfig> = {}, options: FaultInjectorOptions = {}) {
    this.config = faultConfig(config);
    this.maxLogEntries = options.maxLogEntries ?? FAULT_LOG_DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(this.maxLogEntries) || this.maxLogEntries < 0) {
      throw new FaultConfigError('maxLogEntries', this.maxLogEntries, 'out_of_range', 'an integer >= 0');
    }
    this.only =
      options.only === undefined
        ? undefined
        : new Map(options.only.map((choice) => [`${choice.kind}#${choice.decision}`, choice]));
    this.streams = FAULT_KINDS.map((_, index) => new Random(streamSeed(this.config.seed, index)));
    this.decisions = FAULT_KINDS.map(() => 0);
    this.counters = FAULT_KINDS.map(() => 0);
  }

  /** An injector that never injects anything. */
  static disabled(): FaultInjector {
    return new FaultInjector(NO_FAULTS);
  }

  /** Reads `ZBMD_FAULTS` (JSON or key=value); no faults when it is unset or empty. */
  static fromEnvironment(
    environment: Readonly<Record<string, string | undefined>> = process.env,
  ): FaultInjector {
    const text = environment.ZBMD_FAULTS;
    return new FaultInjector(text === undefined ? NO_FAULTS : parseFaultConfig(text));
  }

  get seed(): number {
    return this.config.seed;
  }

  /** True when any rate is above zero. */
  get enabled(): boolean {
    const c = this.config;
    return (
      c.actorCrashRate > 0 ||
      c.messageDropRate > 0 ||
      (c.messageDelayRate > 0 && c.messageDelayMs > 0) ||
      c.gpuErrorRate > 0 ||
      c.oomRate > 0 ||
      c.kernelTimeoutRate > 0
    );
  }

  shouldCrashActor(): boolean {
    return this.decide(0, this.config.actorCrashRate);
  }

  shouldDropMessage(): boolean {
    return this.decide(1, this.config.messageDropRate);
  }

  /** Delay to apply to a message in ms: 0 (deliver now) or a uniform 1..messageDelayMs. */
  messageDelayMs(): number {
    const maxMs = this.config.messageDelayMs;
    if (maxMs <= 0) return 0;
    const stream = this.streams[2];
    const decision = this.decisions[2]++;
    if (!stream.chance(this.config.messageDelayRate)) return 0;
    let delayMs = 1 + stream.nextInt(maxMs);
    if (this.only !== undefined) {
      const choice = this.only.get(`message_delay#${decision}`);
      if (choice === undefined) return 0;
      if (typeof choice.detail === 'number' && choice.detail >= 1) delayMs = Math.min(delayMs, choice.detail);
    }
    this.record(2, decision, delayMs);
    return delayMs;
  }

  shouldFailGpu(deviceId: string | number): boolean {
    return this.decide(3, this.config.gpuErrorRate, String(deviceId));
  }

  shouldOom(): boolean {
    return this.decide(4, this.config.oomRate);
  }

  shouldTimeoutKernel(): boolean {
    return this.decide(5, this.config.kernelTimeoutRate);
  }

  /** Injected faults per kind. */
  counts(): Readonly<Record<FaultKind, number>> {
    const result = {} as Record<FaultKind, number>;
    FAULT_KINDS.forEach((kind, index) => {
      result[kind] = this.counters[index];
    });
    return result;
  }

  /** Total injected faults. */
  get total(): number {
    return this.sequence;
  }

  /** The first `maxLogEntries` injected faults, in order. */
  get log(): readonly InjectedFault[] {
    return this.entries;
  }

  /** Faults injected but not kept in `log` because it was full. */
  get droppedLogEntries(): number {
    return this.sequence - this.entries.length;
  }

  /** FNV-1a hash of every injected fault (kept in the log or not), as 8 hex digits. */
  fingerprint(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  private decide(index: number, rate: number, detail?: string): boolean {
    const decision = this.decisions[index]++;
    if (!this.streams[index].chance(rate)) return false;
    if (this.only !== undefined && !this.only.has(`${FAULT_KINDS[index]}#${decision}`)) return false;
    this.record(index, decision, detail);
    return true;
  }

  private record(index: number, decision: number, detail: string | number | undefined): void {
    const fault: InjectedFault =
      detail === undefined
        ? { sequence: this.sequence, kind: FAULT_KINDS[index], decision }
        : { sequence: this.sequence, kind: FAULT_KINDS[index], decision, detail };
    this.sequence++;
    this.counters[index]++;
    this.hash = fnv1a(this.hash, `${fault.kind}:${decision}:${detail ?? ''};`);
    if (this.entries.length < this.maxLogEntries) this.entries.push(fault);
  }
}

const FNV_OFFSET = 0x811c9dc5;

function fnv1a(hash: number, text: string): number {
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** One 64-bit seed per (seed, kind) pair; Random expands it with splitmix. */
function streamSeed(seed: number, kindIndex: number): bigint {
  return BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(kindIndex + 1) * 0xbf58476d1ce4e5b9n);
}
