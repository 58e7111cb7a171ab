/**
 * What the actors of one run share: the configuration, the data, the last snapshot, the
 * devices and their health, and the live objects each actor owns (the model actor's module and
 * parameters, the optimizer actor's optimizer, the dataloader actor's loader). An actor puts
 * its object here in `init` and the model actor's step uses them by plain function calls, so a
 * step costs one message, not one per actor. A restarted actor replaces its object.
 *
 * `whenReady` resolves once every role has a live actor again (after a restart), and rejects
 * once the supervisor gave up (more restarts than its intensity allows).
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import type { Pid } from '../../actor/Pid.js';
import type { Random } from '../../actor/Random.js';
import type { Device as GpuDevice } from '../../gpu/Device.js';
import { DeviceHealthTracker } from '../../gpu/DeviceHealth.js';
import { openDevice } from '../../gpu/detect.js';
import type { OutOfDeviceMemory } from '../../gpu/errors.js';
import type { DeviceInfo } from '../../gpu/types.js';
import type { DataLoader } from '../data/DataLoader.js';
import type { Module, Parameter } from '../nn/Module.js';
import type { RunIdentity } from './checkpointFiles.js';
import { StepFaultHook } from './deviceFaults.js';
import type { DeviceReplica } from './deviceReplica.js';
import { TRAINING_ROLES, TrainingError, type TrainingRole } from './errors.js';
import type { StepTiming } from './messages.js';
import type { StepLineage } from './StepLineage.js';
import type { ModelFactory, ModelShape, ResolvedTrainingConfig, TrainingData } from './TrainingConfig.js';
import type { TrainingParts, TrainingSnapshot } from './TrainingSnapshot.js';
import type { SlotAccess } from './trainingOptimizers.js';

/** Entries kept in `devicesUsed`; later moves still happen but are not listed. */
export const DEVICE_MOVES_KEPT = 1000;

export interface LiveModel {
  readonly module: Module;
  readonly parameters: readonly Parameter[];
  readonly randoms: ReadonlyMap<string, Random>;
}

/** Where a step's tensor math runs: zbmd's host CPU ops, or a GPU-layer backend. */
export type TensorBackend = 'cpu' | 'cpu-reference' | 'webgpu' | 'cuda';

export class TrainingSession {
  model: LiveModel | undefined;
  /** The model's copy on the current device; undefined while training runs on the host. */
  replica: DeviceReplica | undefined;
  optimizer: SlotAccess | undefined;
  /** Where the math of the current device runs (set by the model actor). */
  tensorBackend: TensorBackend = 'cpu';
  /** The device's out-of-memory error behind the last `STEP_OUT_OF_MEMORY` (cleared when read). */
  lastOutOfMemory: OutOfDeviceMemory | undefined;
  /** The run's seeded device faults, struck by the devices' launches (see deviceFaults.ts). */
  readonly stepFaults: StepFaultHook;
  /** Training devices opened so far, by id (closed by `closeDevices`). */
  private readonly openDevices = new Map<string, GpuDevice>();
  loader: DataLoader | undefined;
  /** Where the model's step runs now. */
  deviceId: string;
  /** Devices training has run on, in order (a move appends; at most `DEVICE_MOVES_KEPT`). */
  readonly devicesUsed: string[];
  readonly deviceHealth: DeviceHealthTracker;
  private readonly pids = new Map<TrainingRole, Pid>();
  private readonly waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private failure: TrainingError | undefined;
  /** The last step's timing, for the snapshot policy. */
  readonly timing: StepTiming = { stepMs: 0, captureMs: undefined };
  /** The newest step persisted (-1: none yet); older writes that finish late are dropped. */
  lastPersistedStep = -1;
  /** Manifest commits run one after another, across checkpoint actor restarts. */
  private commits: Promise<void> = Promise.resolve();

  constructor(
    readonly system: ActorSystem,
    readonly config: ResolvedTrainingConfig,
    readonly data: TrainingData,
    readonly shape: ModelShape,
    readonly factory: ModelFactory,
    readonly snapshot: TrainingSnapshot,
    readonly lineage: StepLineage,
    readonly devices: readonly DeviceInfo[],
    /** What a checkpoint of this run must match to be resumed. */
    readonly identity: RunIdentity,
  ) {
    this.deviceId = snapshot.deviceId;
    this.devicesUsed = [snapshot.deviceId];
    this.stepFaults = new StepFaultHook(config.faults.seed);
    this.deviceHealth = new DeviceHealthTracker(devices.map((device) => device.id));
  }

  /** Called by an actor's `init`: it now plays `role`. */
  register(role: TrainingRole, pid: Pid): void {
    this.pids.set(role, pid);
    if (this.ready()) for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  pidOf(role: TrainingRole): Pid {
    const pid = this.pids.get(role);
    if (pid === undefined) throw new TrainingError('supervisor_gave_up', `no ${role} actor is running`);
    return pid;
  }

  ready(): boolean {
    return TRAINING_ROLES.every((role) => {
      const pid = this.pids.get(role);
      return pid !== undefined && this.system.isAlive(pid);
    });
  }

  /** Resolves once every role has a live actor; rejects after `fail`. */
  whenReady(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ready()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The supervisor gave up: training cannot go on. */
  fail(error: TrainingError): void {
    this.failure ??= error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.failure);
  }

  get failed(): TrainingError | undefined {
    return this.failure;
  }

  /** The live objects the snapshot copies from and restores into (the host mirror on a device). */
  parts(): TrainingParts {
    const { model, optimizer, loader } = this;
    if (model === undefined || optimizer === undefined || loader === undefined) {
      throw new TrainingError(
        'supervisor_gave_up',
        'the model, optimizer and dataloader actors are not all running',
      );
    }
    const randoms = this.replica?.randoms ?? model.randoms;
    return { parameters: model.parameters, optimizer, loader, randoms };
  }

  /**
   * The GPU-layer device the current device id computes on, opened once (with the run's memory
   * limit, watchdog and fault hook); undefined when the math runs on the host (`cpu` with
   * `cpuDevice: 'host'`).
   */
  async computeDevice(): Promise<GpuDevice | undefined> {
    const id = this.deviceId;
    const backend = id.slice(0, id.indexOf(':') === -1 ? id.length : id.indexOf(':'));
    if (backend === 'cpu' && this.config.cpuDevice === 'host') return undefined;
    let device = this.openDevices.get(id);
    if (device === undefined || device.isDestroyed) {
      device = await openDevice(id, {
        memoryLimitBytes: this.config.deviceMemoryLimitBytes,
        watchdogDeadlineMs: this.config.deviceWatchdogMs,
        faultHook: this.stepFaults,
      });
      this.openDevices.set(id, device);
    }
    return device;
  }

  /** A device that failed is closed (a hung kernel never completes); it is opened afresh if training comes back. */
  discardDevice(id: string): void {
    const device = this.openDevices.get(id);
    this.openDevices.delete(id);
    device?.destroy();
  }

  /** Closes every device training opened. */
  closeDevices(): void {
    for (const id of [...this.openDevices.keys()]) this.discardDevice(id);
  }

  /**
   * Records an error of the current device and picks where training goes: the healthiest other
   * device that is not critical, else the same device (the only one left).
   */
  deviceFailed(step: number, nowMs: number): string {
    const failed = this.deviceId;
    this.deviceHealth.record(failed, nowMs, `device error at step ${step}`);
    const next = this.deviceHealth.healthiest(nowMs, new Set([failed])) ?? failed;
    this.deviceId = next;
    this.snapshot.deviceId = next;
    if (next !== failed && this.devicesUsed.length < DEVICE_MOVES_KEPT) this.devicesUsed.push(next);
    return next;
  }

  /** A planned move (`moveDevice`): training goes on on `id`. */
  moveTo(id: string): void {
    this.deviceId = id;
    this.snapshot.deviceId = id;
    if (this.devicesUsed.length < DEVICE_MOVES_KEPT) this.devicesUsed.push(id);
  }

  /** Runs `commit` after every earlier one (checkpoint manifests stay in step order). */
  serializeCommit(commit: () => Promise<void>): Promise<void> {
    const next = this.commits.then(commit);
    this.commits = next.catch(() => undefined);
    return next;
  }

  /** Resolves once every queued commit has finished. */
  commitsSettled(): Promise<void> {
    return this.commits;
  }
}
