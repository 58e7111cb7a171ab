/**
 * The seeded fault plan, delivered by the device. The plan decides per step (from the run's
 * seed, as for host training) that a device error, an out-of-memory or a hung kernel strikes;
 * on a GPU-layer device the step then does not fake it: this fault hook (the device's
 * `FaultHook`, asked by `DeviceCore.enqueue` before every launch) is armed, and one launch in
 * the middle of the step fails the way a real one does:
 *
 * - `'error'`: the launch throws `DeviceError` (`injected device error`, naming the kernel);
 * - `'oom'`: the launch throws `OutOfDeviceMemory`;
 * - `'timeout'`: the kernel hangs; the step's read-back reports `KernelTimeout` once the
 *   device's watchdog deadline (`deviceWatchdogMs`) has passed.
 *
 * Training receives the typed error and recovers from it as from a real device's. Which launch
 * fails is a pure function of (seed, step) and the launch count of the step before, so a run
 * replays.
 */
import type { FaultDecision, FaultHook } from '../../gpu/types.js';

export class StepFaultHook implements FaultHook {
  private armed: FaultDecision = 'ok';
  private strikeAt = 0;
  private launches = 0;
  private launchesLastStep = 0;
  /** Launches the armed fault struck, by decision (for the run's fault counts). */
  readonly struck: Record<'error' | 'oom' | 'timeout', number> = { error: 0, oom: 0, timeout: 0 };
  /** The kernel the last fault struck (`matmul`, `unary.relu`). */
  lastKernel: string | undefined;

  constructor(private readonly seed: number) {}

  /** A step begins: its launches are counted from zero, and `decision` (if any) will strike one of them. */
  beginStep(step: number, decision: FaultDecision): void {
    if (this.launches > 0) this.launchesLastStep = this.launches;
    this.launches = 0;
    this.armed = decision;
    // Any of the previous step's launches, the optimizer's included (a real GPU fails the fused
    // adamStep as readily as a matmul). A step that launches fewer (a micro-batch that doubled
    // halves the forward and backward launches) gets the fault at its read-back (`strikeLate`).
    this.strikeAt = decision === 'ok' ? 0 : mix(this.seed, step) % Math.max(1, this.launchesLastStep);
  }

  /** True when the armed fault has not struck yet. */
  get pending(): boolean {
    return this.armed !== 'ok';
  }

  /**
   * The step ended with its fault not struck (it launched fewer kernels than its offset): it
   * strikes now, at the step's read-back, as the named decision's typed error would.
   */
  strikeLate(): FaultDecision {
    const decision = this.armed;
    this.armed = 'ok';
    if (decision !== 'ok') this.struck[decision]++;
    return decision;
  }

  beforeLaunch(_deviceId: string, kernelName: string): FaultDecision {
    const index = this.launches++;
    if (this.armed === 'ok' || index < this.strikeAt) return 'ok';
    const decision = this.armed;
    this.armed = 'ok';
    this.struck[decision as 'error' | 'oom' | 'timeout']++;
    this.lastKernel = kernelName;
    return decision;
  }
}

function mix(seed: number, step: number): number {
  let hash = (Math.imul(seed >>> 0, 0x27d4eb2d) ^ Math.imul(step >>> 0, 0x165667b1)) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 15), 0x85ebca6b) >>> 0;
  return (hash ^ (hash >>> 13)) >>> 0;
}
