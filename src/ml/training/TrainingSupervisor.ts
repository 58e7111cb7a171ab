/**
 * The training supervisor (seeds/001 ch. 5 `TrainingSupervisor`): rest_for_one over the model,
 * optimizer, dataloader, checkpoint and metrics actors, started in that order. A model failure
 * restarts the optimizer too (it holds the model's parameters) and everything after it; a
 * dataloader failure restarts the loader, checkpoint and metrics actors; an optimizer failure
 * leaves the model running. Every restarted actor reloads its part of the last snapshot in its
 * `init`. More than `restartIntensity` restarts within `restartPeriodMs` and the supervisor gives
 * up, failing the run with `supervisor_gave_up`.
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import { formatReason } from '../../actor/ExitReason.js';
import { startGenServer } from '../../actor/GenServer.js';
import type { Pid } from '../../actor/Pid.js';
import type { ChildSpec } from '../../supervision/ChildSpec.js';
import type { SupervisionEvent } from '../../supervision/SupervisionEvent.js';
import { startSupervisor } from '../../supervision/Supervisor.js';
import { CheckpointActor } from './CheckpointActor.js';
import { DataLoaderActor } from './DataLoaderActor.js';
import { TrainingError } from './errors.js';
import { MetricsActor, type MetricsTotals } from './MetricsActor.js';
import { ModelActor } from './ModelActor.js';
import { OptimizerActor } from './OptimizerActor.js';
import type { TrainingSession } from './TrainingSession.js';

/** How long the checkpoint actor gets to stop before it is killed (a write in flight finishes on its own). */
export const CHECKPOINT_SHUTDOWN_MS = 1000;

function childSpecs(session: TrainingSession, totals: MetricsTotals): ChildSpec[] {
  return [
    { id: 'model', start: (context) => startGenServer(context, ModelActor, session, { link: true }) },
    { id: 'optimizer', start: (context) => startGenServer(context, OptimizerActor, session, { link: true }) },
    {
      id: 'dataloader',
      start: (context) => startGenServer(context, DataLoaderActor, session, { link: true }),
    },
    {
      id: 'checkpoint',
      start: (context) => startGenServer(context, CheckpointActor, session, { link: true }),
      shutdown: CHECKPOINT_SHUTDOWN_MS,
    },
    {
      id: 'metrics',
      start: (context) => startGenServer(context, MetricsActor, { session, totals }, { link: true }),
    },
  ];
}

/** Starts the supervisor and its five actors; resolves once all are running. */
export async function startTrainingSupervisor(
  system: ActorSystem,
  session: TrainingSession,
  totals: MetricsTotals,
  onEvent?: (event: SupervisionEvent) => void,
): Promise<Pid> {
  const supervisor = await startSupervisor(system, {
    strategy: 'rest_for_one',
    intensity: session.config.restartIntensity,
    periodMs: session.config.restartPeriodMs,
    children: childSpecs(session, totals),
    onEvent,
  });
  system.whenExited(supervisor).then((reason) => {
    session.fail(
      new TrainingError('supervisor_gave_up', `the training supervisor exited (${formatReason(reason)})`),
    );
  });
  return supervisor;
}
