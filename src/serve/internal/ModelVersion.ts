/**
 * One loaded version of a model: N replicas under a one_for_one supervisor, one circuit
 * breaker per replica, and the batcher in front of them. Started whole, drained whole.
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import { startGenServer } from '../../actor/GenServer.js';
import type { Pid } from '../../actor/Pid.js';
import { CircuitBreaker } from '../../fault/CircuitBreaker.js';
import { startSupervisor, stopSupervisor } from '../../supervision/Supervisor.js';
import {
  Batcher,
  type BatcherConfig,
  DrainCall,
  type ReplicaSlot,
  ReplicaStarted,
  ReplicasGone,
} from '../Batcher.js';
import { InjectedReplicaCrash } from '../errors.js';
import type { ModelSource } from '../ModelSource.js';
import type { ServeMetrics } from '../metrics.js';
import { ReplicaServer } from '../Replica.js';

export interface VersionSettings {
  readonly replicas: number;
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSize: number;
  readonly replicaCallTimeoutMs: number;
  readonly restartIntensity: number;
  readonly restartPeriodMs: number;
  readonly breakerFailureThreshold: number;
  readonly breakerResetTimeoutMs: number;
  readonly onBatch?: (rows: number) => void;
}

export class ModelVersion {
  private constructor(
    readonly system: ActorSystem,
    readonly model: string,
    readonly version: string,
    readonly source: ModelSource,
    readonly slots: readonly ReplicaSlot[],
    readonly supervisor: Pid,
    readonly batcher: Pid,
    /** Each slot's replica once its init finished (a replica still starting is not listed). */
    private readonly running: ReadonlyArray<Pid | undefined>,
  ) {}

  static async start(
    system: ActorSystem,
    model: string,
    version: string,
    source: ModelSource,
    settings: VersionSettings,
    metrics: ServeMetrics,
  ): Promise<ModelVersion> {
    const slots: ReplicaSlot[] = Array.from({ length: settings.replicas }, (_, index) => ({
      index,
      name: `zbmd.serve/${model}/${version}/replica-${index}`,
      breaker: new CircuitBreaker({
        name: `${model}/${version}/replica-${index}`,
        failureThreshold: settings.breakerFailureThreshold,
        successThreshold: 1,
        resetTimeoutMs: settings.breakerResetTimeoutMs,
        clock: system.clock,
      }),
      busy: false,
    }));
    const starts = slots.map(() => 0);
    const running: Array<Pid | undefined> = slots.map(() => undefined);
    let batcher: Pid | undefined;
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: settings.restartIntensity,
      periodMs: settings.restartPeriodMs,
      children: slots.map((slot) => ({
        id: `replica-${slot.index}`,
        start: (context) =>
          startGenServer(
            context,
            ReplicaServer,
            {
              source,
              onStart: (pid) => {
                running[slot.index] = pid;
                if (starts[slot.index]++ > 0) metrics.replicaRestarts.inc({ model });
                if (batcher !== undefined) system.send(batcher, new ReplicaStarted());
              },
            },
            { link: true, name: slot.name },
          ),
      })),
    });
    const config: BatcherConfig = {
      model,
      maxBatchSize: source.batchable ? settings.maxBatchSize : 1,
      maxQueueDelayMs: settings.maxQueueDelayMs,
      maxQueueSize: settings.maxQueueSize,
      replicaCallTimeoutMs: settings.replicaCallTimeoutMs,
      slots,
      metrics,
      onBatch: settings.onBatch,
    };
    batcher = await startGenServer(system, Batcher, config);
    const started = batcher;
    void system.whenExited(supervisor).then(() => system.send(started, new ReplicasGone()));
    return new ModelVersion(system, model, version, source, slots, supervisor, started, running);
  }

  /** Serving: the batcher and the replicas' supervisor run (a replica being restarted will take requests). */
  get serving(): boolean {
    return this.system.isAlive(this.batcher) && this.system.isAlive(this.supervisor);
  }

  /** Ready: the batcher runs and at least one replica is up. */
  get ready(): boolean {
    return (
      this.system.isAlive(this.batcher) &&
      this.system.isAlive(this.supervisor) &&
      this.slots.some((slot) => this.system.whereis(slot.name) !== undefined)
    );
  }

  /**
   * Kills replica `index` (fault injection): its supervisor restarts it. False when it was not
   * running. A replica still in its init is left alone: `startGenServer` does not settle when
   * its process is killed during an async init, which would stall the supervisor.
   */
  crashReplica(index: number): boolean {
    const slot = this.slots[index];
    const pid = slot === undefined ? undefined : this.system.whereis(slot.name);
    if (pid === undefined || pid !== this.running[index]) return false;
    this.system.exit(pid, new InjectedReplicaCrash(this.model, index));
    return true;
  }

  /** Runs what is queued (without waiting for the queue delay), then stops the replicas and the batcher. */
  async drain(timeoutMs: number): Promise<boolean> {
    let drained = true;
    if (this.system.isAlive(this.batcher)) {
      drained = await this.system.call(this.batcher, new DrainCall(), timeoutMs).then(
        () => true,
        () => false,
      );
    }
    if (this.system.isAlive(this.supervisor)) await stopSupervisor(this.system, this.supervisor);
    if (this.system.isAlive(this.batcher)) this.system.exit(this.batcher, 'shutdown');
    return drained;
  }
}
