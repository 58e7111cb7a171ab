/** Shared set-up of the kernel actor and GPU supervisor tests: cpu devices on a simulated clock. */
import { Random } from '../../src/actor/Random.js';
import {
  CpuBackend,
  Device,
  type DeviceOptions,
  type FaultDecision,
  type FaultHook,
  type GpuEvent,
  GpuSupervisor,
  type GpuSupervisorOptions,
} from '../../src/gpu/index.js';
import { testSystem } from '../actor/helpers.js';

/** A fault hook that answers `decisions` in order (one per launch), then 'ok' forever. */
export function scriptedHook(decisions: readonly FaultDecision[]): FaultHook & { asked: number } {
  const hook = {
    asked: 0,
    beforeLaunch(): FaultDecision {
      return decisions[hook.asked++] ?? 'ok';
    },
  };
  return hook;
}

/** A fault hook that fails every launch with `decision`. */
export function alwaysHook(decision: FaultDecision): FaultHook {
  return { beforeLaunch: () => decision };
}

export interface SupervisedSetup {
  readonly system: ReturnType<typeof testSystem>['system'];
  readonly clock: ReturnType<typeof testSystem>['clock'];
  readonly crashes: ReturnType<typeof testSystem>['crashes'];
  readonly devices: Device[];
  readonly gpu: GpuSupervisor;
  readonly events: GpuEvent[];
}

/**
 * `count` cpu devices (`cpu:0`, `cpu:1`, ...) on one simulated clock, each with its own options
 * (fault hook, memory limit), under a GPU supervisor that records its events.
 */
export async function supervisedCpus(
  deviceOptions: readonly DeviceOptions[] = [{}, {}],
  options: Partial<GpuSupervisorOptions> = {},
): Promise<SupervisedSetup> {
  const { system, clock, crashes } = testSystem();
  const devices = deviceOptions.map((extra, index) => new Device(new CpuBackend(index), { clock, ...extra }));
  const events: GpuEvent[] = [];
  const gpu = await GpuSupervisor.start(system, {
    devices,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { system, clock, crashes, devices, gpu, events };
}

export function randomArray(seed: number, count: number, low = -1, high = 1): Float32Array {
  const random = new Random(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = low + (high - low) * random.next();
  return values;
}

/** Events of one kind, as the fields a test compares. */
export function migrations(events: readonly GpuEvent[]): [string, string, string, string][] {
  return events.flatMap((event) =>
    event.kind === 'kernel_migrated' ? [[event.kernelId, event.from, event.to, event.reason]] : [],
  );
}
