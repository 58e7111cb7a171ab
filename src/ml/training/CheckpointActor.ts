/**
 * The checkpoint actor: persists snapshot copies in the background. At most one write is in
 * flight; a request that arrives meanwhile waits, and a newer one replaces it (only the newest
 * state is worth writing). Writes are committed in step order through the session, across
 * restarts of this actor, and a write older than the last committed one is dropped. A write
 * that fails crashes the actor (the supervisor restarts it and the error is reported), and
 * training goes on from memory.
 */
import type { CallFrom, Context } from '../../actor/ActorSystem.js';
import { type CallResult, type GenServer, noreply, reply } from '../../actor/GenServer.js';
import { writeCheckpoint } from './checkpointFiles.js';
import { InjectedActorCrash, TrainingError } from './errors.js';
import { CrashRequest, FlushRequest, PersistRequest } from './messages.js';
import type { TrainingSession } from './TrainingSession.js';

interface CheckpointState {
  readonly session: TrainingSession;
  writing: boolean;
  pending: PersistRequest | undefined;
  readonly flushWaiters: CallFrom[];
}

class WriteDone {}

class WriteFailed {
  constructor(readonly error: unknown) {}
}

function persist(session: TrainingSession, request: PersistRequest): Promise<void> {
  const directory = session.config.checkpointDir;
  if (directory === undefined) return Promise.resolve();
  return session.serializeCommit(async () => {
    if (request.copy.step < session.lastPersistedStep) return;
    await writeCheckpoint(directory, request.copy, session.identity, request.reason, session.shape);
    session.lastPersistedStep = request.copy.step;
  });
}

function startWrite(state: CheckpointState, request: PersistRequest, context: Context): void {
  state.writing = true;
  const { system } = state.session;
  const self = context.self;
  persist(state.session, request).then(
    () => system.send(self, new WriteDone()),
    (error: unknown) => system.send(self, new WriteFailed(error)),
  );
}

function settleFlushes(state: CheckpointState): void {
  if (state.writing || state.pending !== undefined) return;
  for (const from of state.flushWaiters.splice(0))
    state.session.system.reply(from, state.session.lastPersistedStep);
}

export const CheckpointActor: GenServer<CheckpointState, TrainingSession> = {
  init(session: TrainingSession, context: Context): CheckpointState {
    session.register('checkpoint', context.self);
    return { session, writing: false, pending: undefined, flushWaiters: [] };
  },

  handleCast(request: unknown, state: CheckpointState, context: Context): CheckpointState {
    if (!(request instanceof PersistRequest)) return state;
    if (state.writing) state.pending = request;
    else startWrite(state, request, context);
    return state;
  },

  handleInfo(message: unknown, state: CheckpointState, context: Context): CheckpointState {
    if (message instanceof WriteFailed) {
      throw new TrainingError(
        'checkpoint_corrupt',
        `writing a checkpoint failed: ${(message.error as Error).message}`,
        {
          cause: message.error,
        },
      );
    }
    if (!(message instanceof WriteDone)) return state;
    state.writing = false;
    const next = state.pending;
    state.pending = undefined;
    if (next !== undefined) startWrite(state, next, context);
    settleFlushes(state);
    return state;
  },

  handleCall(request: unknown, from: CallFrom, state: CheckpointState): CallResult<CheckpointState> {
    if (request instanceof CrashRequest) throw new InjectedActorCrash('checkpoint', request.step);
    if (request instanceof FlushRequest) {
      state.flushWaiters.push(from);
      settleFlushes(state);
      return noreply(state);
    }
    return reply(undefined, state);
  },
};
