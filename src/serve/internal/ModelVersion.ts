/**
 * One loaded version of a model: N replicas under a one_for_one supervisor, one circuit
 * breaker per replica, and the batcher in front of them under a supervisor of its own. Started
 * whole, drained whole.
 *
 * A batcher crash loses its queue; the callers' calls fail with `CallExit` and `infer` sends
 * each request again, to the restarted batcher (at most `MAX_BATCHER_RESENDS` times; then the
 * request is answered 503 saying so, and counted in `zbmd_serve_requests_total{code="503"}`).
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import type { Clock } from '../../actor/Clock.js';
import { CallExit, CallTimeout } from '../../actor/errors.js';
import { startGenServer } from '../../actor/GenServer.js';
import type { Pid } from '../../actor/Pid.js';
import { CircuitBreaker } from '../../fault/CircuitBreaker.js';
import type { ChildSpec } from '../../supervision/index.js';
import {
  deleteChild,
  startChild,
  startSupervisor,
  stopSupervisor,
  terminateChild,
} from '../../supervision/Supervisor.js';
import {
  type BatchCall,
  Batcher,
  type BatcherConfig,
  DrainCall,
  type InferOutcome,
  type ReplicaSlot,
  ReplicaStarted,
  ReplicasGone,
  RetireSlot,
} from '../Batcher.js';
import { InjectedBatcherCrash, InjectedReplicaCrash, RequestRejected, ServeError } from '../errors.js';
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

/** How many times one request is sent again after the batcher holding it crashed. */
export const MAX_BATCHER_RESENDS = 5;

/** Wakes the requests waiting for a restarted batcher. */
class BatcherWatch {
  private waiters: Array<() => void> = [];
  constructor(private readonly clock: Clock) {}
  started(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
  /** Resolves at the next batcher start, when `stopped` settles, or after `timeoutMs` of the clock. */
  next(timeoutMs: number, stopped: Promise<unknown>): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(Math.max(0, timeoutMs), resolve);
      const wake = () => {
        this.clock.cancelTimer(timer);
        resolve();
      };
      this.waiters.push(wake);
      void stopped.then(wake);
    });
  }
}

export class ModelVersion {
  /** Set by `drain`: a batcher gone from here on was stopped, not crashed, and requests are not resent. */
  private stopping = false;

  private constructor(
    readonly system: ActorSystem,
    readonly model: string,
    readonly version: string,
    readonly source: ModelSource,
    readonly slots: ReplicaSlot[],
    readonly supervisor: Pid,
    /** The supervisor of the batcher. */
    readonly batcherSupervisor: Pid,
    /** The batcher's registered name (a restarted batcher takes it over). */
    readonly batcher: string,
    /** Each slot's replica once its init finished (a replica still starting is not listed). */
    private readonly running: Map<number, Pid>,
    private readonly watch: BatcherWatch,
    private readonly metrics: ServeMetrics,
    private readonly makeSlot: (index: number) => ReplicaSlot,
    private readonly childSpec: (slot: ReplicaSlot) => ChildSpec,
  ) {}

  static async start(
    system: ActorSystem,
    model: string,
    version: string,
    source: ModelSource,
    settings: VersionSettings,
    metrics: ServeMetrics,
    /** Replicas to start with (a rolling upgrade starts with 1 and adds the rest one by one). */
    initialReplicas = settings.replicas,
  ): Promise<ModelVersion> {
    const batcher = `zbmd.serve/${model}/${version}/batcher`;
    // A batcher being restarted is not registered: it reads the replicas' state in its init.
    const tell = (message: unknown) => {
      const pid = system.whereis(batcher);
      if (pid !== undefined) system.send(pid, message);
    };
    const starts = new Map<number, number>();
    const running = new Map<number, Pid>();
    const makeSlot = (index: number): ReplicaSlot => ({
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
      retiring: false,
    });
    const childSpec = (slot: ReplicaSlot): ChildSpec => ({
      id: `replica-${slot.index}`,
      start: (context) =>
        startGenServer(
          context,
          ReplicaServer,
          {
            source,
            onStart: (pid) => {
              running.set(slot.index, pid);
              const count = starts.get(slot.index) ?? 0;
              starts.set(slot.index, count + 1);
              if (count > 0) metrics.replicaRestarts.inc({ model });
              tell(new ReplicaStarted());
            },
          },
          { link: true, name: slot.name },
        ),
    });
    const slots: ReplicaSlot[] = Array.from({ length: initialReplicas }, (_, index) => makeSlot(index));
    const supervisor = await startSupervisor(system, {
      strategy: 'one_for_one',
      intensity: settings.restartIntensity,
      periodMs: settings.restartPeriodMs,
      children: slots.map(childSpec),
    });
    const watch = new BatcherWatch(system.clock);
    let batcherStarts = 0;
    const config: BatcherConfig = {
      model,
      maxBatchSize: source.batchable ? settings.maxBatchSize : 1,
      maxQueueDelayMs: settings.maxQueueDelayMs,
      maxQueueSize: settings.maxQueueSize,
      replicaCallTimeoutMs: settings.replicaCallTimeoutMs,
      slots,
      metrics,
      onBatch: settings.onBatch,
      replicasGone: () => !system.isAlive(supervisor),
      onStart: () => {
        if (batcherStarts++ > 0) metrics.batcherRestarts.inc({ model });
        watch.started();
      },
    };
    let batcherSupervisor: Pid;
    try {
      batcherSupervisor = await startSupervisor(system, {
        strategy: 'one_for_one',
        intensity: settings.restartIntensity,
        periodMs: settings.restartPeriodMs,
        children: [
          {
            id: 'batcher',
            start: (context) => startGenServer(context, Batcher, config, { link: true, name: batcher }),
          },
        ],
      });
    } catch (error) {
      await stopSupervisor(system, supervisor);
      throw error;
    }
    void system.whenExited(supervisor).then(() => tell(new ReplicasGone()));
    return new ModelVersion(
      system,
      model,
      version,
      source,
      slots,
      supervisor,
      batcherSupervisor,
      batcher,
      running,
      watch,
      metrics,
      makeSlot,
      childSpec,
    );
  }

  /** Replicas taking batches (started and not retiring). */
  get replicaCount(): number {
    return this.slots.filter((slot) => !slot.retiring).length;
  }

  /** Starts one more replica (a rolling upgrade's step); resolves once it is up. */
  async addReplica(): Promise<void> {
    const index = this.slots.reduce((most, slot) => Math.max(most, slot.index + 1), 0);
    const slot = this.makeSlot(index);
    const started = await startChild(this.system, this.supervisor, this.childSpec(slot));
    if ('error' in started)
      throw new ServeError(
        'model_load_failed',
        `replica ${index} of model '${this.model}' version ${this.version} did not start: ${String(started.error)}`,
      );
    this.slots.push(slot); // the batcher reads the same array
    const pid = this.system.whereis(this.batcher);
    if (pid !== undefined) this.system.send(pid, new ReplicaStarted());
  }

  /**
   * Takes one replica out (a rolling upgrade's step): the batcher sends it nothing more, the
   * batch it runs finishes and is answered, then the replica is stopped. False when only one
   * replica is left (a version keeps one until it is drained).
   */
  async retireReplica(timeoutMs: number): Promise<boolean> {
    const slot = [...this.slots].reverse().find((candidate) => !candidate.retiring);
    if (slot === undefined || this.replicaCount <= 1) return false;
    slot.retiring = true;
    for (let attempt = 0; attempt <= MAX_BATCHER_RESENDS; attempt++) {
      try {
        await this.system.call(this.batcher, new RetireSlot(slot), timeoutMs);
        break;
      } catch (error) {
        if (!(error instanceof CallExit) || !this.system.isAlive(this.batcherSupervisor)) throw error;
        // The batcher crashed: its successor does not use a retiring slot either.
        if (this.system.whereis(this.batcher) === undefined)
          await this.watch.next(timeoutMs, this.system.whenExited(this.batcherSupervisor));
      }
    }
    const id = `replica-${slot.index}`;
    await terminateChild(this.system, this.supervisor, id);
    await deleteChild(this.system, this.supervisor, id);
    const position = this.slots.indexOf(slot);
    if (position >= 0) this.slots.splice(position, 1);
    this.running.delete(slot.index);
    return true;
  }

  /** Serving: the batcher's and the replicas' supervisors run (a batcher or replica being restarted will take requests). */
  get serving(): boolean {
    return this.system.isAlive(this.batcherSupervisor) && this.system.isAlive(this.supervisor);
  }

  /** Ready: the batcher runs and at least one replica is up. */
  get ready(): boolean {
    return (
      this.system.whereis(this.batcher) !== undefined &&
      this.system.isAlive(this.supervisor) &&
      this.slots.some((slot) => this.system.whereis(slot.name) !== undefined)
    );
  }

  /**
   * Runs `call` through the batcher. When the batcher crashes holding it (or is between a crash
   * and its restart), the request is sent again to the restarted batcher, at most
   * `MAX_BATCHER_RESENDS` times, within `timeoutMs` in all. Rejects with `CallTimeout` past
   * `timeoutMs`, and with `CallExit` once the version is stopped (drained) or the batcher's
   * supervisor gave up.
   */
  async infer(call: BatchCall, timeoutMs: number): Promise<InferOutcome> {
    const clock = this.system.clock;
    const deadlineMs = clock.now() + timeoutMs;
    for (let resends = 0; ; resends++) {
      try {
        return await this.system.call<InferOutcome>(
          this.batcher,
          call,
          Math.max(1, deadlineMs - clock.now()),
        );
      } catch (error) {
        if (!(error instanceof CallExit) || this.stopping || !this.system.isAlive(this.batcherSupervisor))
          throw error;
        if (resends >= MAX_BATCHER_RESENDS)
          return new RequestRejected(
            503,
            `the batcher of model '${this.model}' crashed ${resends + 1} times while holding this request; it was not run`,
          );
        this.metrics.resentRequests.inc({ model: this.model });
        if (this.system.whereis(this.batcher) === undefined)
          await this.watch.next(deadlineMs - clock.now(), this.system.whenExited(this.batcherSupervisor));
        if (clock.now() >= deadlineMs) throw new CallTimeout(this.batcher, timeoutMs);
      }
    }
  }

  /** Kills the batcher (fault injection): its supervisor restarts it. False when it was not running. */
  crashBatcher(): boolean {
    const pid = this.system.whereis(this.batcher);
    if (pid === undefined) return false;
    this.system.exit(pid, new InjectedBatcherCrash(this.model));
    return true;
  }

  /**
   * Kills replica `index` (fault injection): its supervisor restarts it. False when it was not
   * running. A replica still in its init is left alone: `startGenServer` does not settle when
   * its process is killed during an async init, which would stall the supervisor.
   */
  crashReplica(index: number): boolean {
    const slot = this.slots[index];
    const pid = slot === undefined ? undefined : this.system.whereis(slot.name);
    if (pid === undefined || slot === undefined || pid !== this.running.get(slot.index)) return false;
    this.system.exit(pid, new InjectedReplicaCrash(this.model, index));
    return true;
  }

  /** Runs what is queued (without waiting for the queue delay), then stops the replicas and the batcher. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    let drained = true;
    if (this.system.whereis(this.batcher) !== undefined) {
      drained = await this.system.call(this.batcher, new DrainCall(), timeoutMs).then(
        () => true,
        () => false,
      );
    }
    if (this.system.isAlive(this.supervisor)) await stopSupervisor(this.system, this.supervisor);
    if (this.system.isAlive(this.batcherSupervisor))
      await stopSupervisor(this.system, this.batcherSupervisor);
    return drained;
  }
}
