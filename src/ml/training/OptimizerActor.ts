/**
 * The optimizer actor: owns the optimizer over the model actor's parameters. Started after the
 * model (rest_for_one), so a restarted model gets a new optimizer too: the optimizer holds the
 * parameters, and Adam moves their storage into its own kernel memory. Its state (moments,
 * step count, learning rate) comes back from the last snapshot.
 */
import type { CallFrom, Context } from '../../actor/ActorSystem.js';
import { type CallResult, type GenServer, reply } from '../../actor/GenServer.js';
import { createDeviceOptimizer } from './deviceReplica.js';
import { InjectedActorCrash, TrainingError } from './errors.js';
import { CrashRequest } from './messages.js';
import type { LiveModel, TrainingSession } from './TrainingSession.js';
import { createOptimizer } from './trainingOptimizers.js';

/**
 * Builds the run's optimizer where the model computes (host, or the replica's device, whose
 * state is then a host mirror copied to the device) and restores it from the snapshot.
 */
export function attachOptimizer(session: TrainingSession, model: LiveModel): void {
  const replica = session.replica;
  if (replica === undefined) {
    const optimizer = createOptimizer(
      session.config.optimizer,
      model.parameters,
      session.config.learningRate,
    );
    session.snapshot.restoreOptimizer(optimizer);
    session.optimizer = optimizer;
    return;
  }
  const optimizer = createDeviceOptimizer(session, replica);
  session.snapshot.restoreOptimizer(optimizer);
  optimizer.push();
  session.optimizer = optimizer;
}

export const OptimizerActor: GenServer<TrainingSession, TrainingSession> = {
  init(session: TrainingSession, context: Context): TrainingSession {
    const model = session.model;
    if (model === undefined)
      throw new TrainingError('supervisor_gave_up', 'the optimizer started before the model');
    attachOptimizer(session, model);
    session.register('optimizer', context.self);
    return session;
  },

  handleCall(request: unknown, _from: CallFrom, session: TrainingSession): CallResult<TrainingSession> {
    if (request instanceof CrashRequest) throw new InjectedActorCrash('optimizer', request.step);
    return reply(undefined, session);
  },
};
