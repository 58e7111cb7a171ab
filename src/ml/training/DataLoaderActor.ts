/**
 * The dataloader actor: owns the training set's loader (seeded shuffling, exact position). A
 * restarted loader continues at the snapshot's position, so no batch is skipped or repeated.
 */
import type { CallFrom, Context } from '../../actor/ActorSystem.js';
import { type CallResult, type GenServer, reply } from '../../actor/GenServer.js';
import { DataLoader } from '../data/DataLoader.js';
import { InjectedActorCrash } from './errors.js';
import { CrashRequest } from './messages.js';
import type { TrainingSession } from './TrainingSession.js';

export function createTrainingLoader(session: TrainingSession): DataLoader {
  return new DataLoader(session.data.train, {
    batchSize: session.config.batchSize,
    shuffle: session.config.shuffle,
    seed: session.config.seed,
  });
}

export const DataLoaderActor: GenServer<TrainingSession, TrainingSession> = {
  init(session: TrainingSession, context: Context): TrainingSession {
    const loader = createTrainingLoader(session);
    session.snapshot.restoreLoader(loader);
    session.loader = loader;
    session.register('dataloader', context.self);
    return session;
  },

  handleCall(request: unknown, _from: CallFrom, session: TrainingSession): CallResult<TrainingSession> {
    if (request instanceof CrashRequest) throw new InjectedActorCrash('dataloader', request.step);
    return reply(undefined, session);
  },
};
