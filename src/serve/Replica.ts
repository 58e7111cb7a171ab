/**
 * A model replica: an actor that owns one runner of the model and runs one batch at a time
 * (`RunBatch` calls). It lets it crash: a run that throws kills the replica, its supervisor
 * starts a fresh one (a new runner), and the batcher retries that batch on another replica.
 * A replica killed mid-run releases its runner once the abandoned run has settled.
 */
import type { CallFrom, Context } from '../actor/ActorSystem.js';
import { type CallResult, type GenServer, reply } from '../actor/GenServer.js';
import type { Pid } from '../actor/Pid.js';
import type { ModelRunner, ModelSource, TensorMap } from './ModelSource.js';

export class RunBatch {
  constructor(readonly inputs: TensorMap) {}
}

export interface ReplicaArgs {
  readonly source: ModelSource;
  /** Told each time a replica of this slot has started (the first start and every restart). */
  readonly onStart: (pid: Pid) => void;
}

interface ReplicaState {
  readonly runner: ModelRunner;
  inFlight: Promise<unknown> | undefined;
}

export const ReplicaServer: GenServer<ReplicaState, ReplicaArgs> = {
  async init(args: ReplicaArgs, context: Context): Promise<ReplicaState> {
    const runner = await args.source.open();
    const state: ReplicaState = { runner, inFlight: undefined };
    // The signal fires however the replica exits (stopped, crashed, killed while awaiting a run).
    context.signal.addEventListener('abort', () => {
      void (state.inFlight ?? Promise.resolve()).then(() => runner.close());
    });
    args.onStart(context.self);
    return state;
  },

  async handleCall(
    request: unknown,
    _from: CallFrom,
    state: ReplicaState,
  ): Promise<CallResult<ReplicaState>> {
    if (!(request instanceof RunBatch)) return reply(undefined, state);
    const running = state.runner.run(request.inputs);
    state.inFlight = running.catch(() => undefined);
    const outputs = await running;
    state.inFlight = undefined;
    return reply(outputs, state);
  },
};
