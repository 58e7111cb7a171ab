/**
 * The metrics actor: appends JSON lines (one per step, epoch and recovery) to the metrics file
 * and draws the live progress line (epoch, step, loss, steps/s, ETA, recoveries), at most every
 * `PROGRESS_INTERVAL_MS`. Steps arrive in batches of `METRICS_BATCH_STEPS`, so metrics cost one
 * message per batch, not per step. A restarted metrics actor appends to the same file.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CallFrom, Context } from '../../actor/ActorSystem.js';
import { type CallResult, type GenServer, reply } from '../../actor/GenServer.js';
import { InjectedActorCrash } from './errors.js';
import { CrashRequest, EpochRecord, RecoveryRecord, type StepRecord, StepRecords } from './messages.js';
import type { TrainingSession } from './TrainingSession.js';

/** Steps per metrics message. */
export const METRICS_BATCH_STEPS = 50;
/** Shortest time between two progress lines. */
export const PROGRESS_INTERVAL_MS = 250;

/** What survives a restart of the metrics actor: the run's totals, kept in the session. */
export interface MetricsTotals {
  readonly startedMs: number;
  readonly plannedSteps: number;
  readonly stepsPerEpoch: number;
  recoveries: number;
  lastProgressMs: number;
}

interface MetricsState {
  readonly session: TrainingSession;
  readonly totals: MetricsTotals;
}

function append(session: TrainingSession, lines: string[]): void {
  const path = session.config.metricsPath;
  if (path === undefined || lines.length === 0) return;
  appendFileSync(path, `${lines.join('\n')}\n`);
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}

/** `epoch 2/5 step 1234/4690 loss 0.4123 812.4 steps/s ETA 4s recoveries 3` */
export function progressLine(totals: MetricsTotals, epochs: number, last: StepRecord, nowMs: number): string {
  const elapsedSeconds = (nowMs - totals.startedMs) / 1000;
  const stepsPerSec = elapsedSeconds > 0 ? last.step / elapsedSeconds : 0;
  const remaining = totals.plannedSteps - last.step;
  const eta = stepsPerSec > 0 ? remaining / stepsPerSec : Number.POSITIVE_INFINITY;
  return (
    `epoch ${last.epoch + 1}/${epochs} step ${last.step}/${totals.plannedSteps} loss ${last.loss.toFixed(4)} ` +
    `${stepsPerSec.toFixed(1)} steps/s ETA ${formatDuration(eta)} recoveries ${totals.recoveries}`
  );
}

function handleSteps(state: MetricsState, message: StepRecords): void {
  const { session, totals } = state;
  append(
    session,
    message.records.map((record) =>
      JSON.stringify({
        kind: 'step',
        step: record.step,
        epoch: record.epoch,
        loss: record.loss,
        time_ms: record.timeMs,
      }),
    ),
  );
  const last = message.records[message.records.length - 1];
  const progress = session.config.progress;
  const nowMs = performance.now();
  if (progress === undefined || last === undefined || nowMs - totals.lastProgressMs < PROGRESS_INTERVAL_MS)
    return;
  totals.lastProgressMs = nowMs;
  progress(progressLine(totals, session.config.epochs, last, nowMs));
}

function handleOther(state: MetricsState, message: unknown): void {
  if (message instanceof EpochRecord) {
    append(state.session, [
      JSON.stringify({
        kind: 'epoch',
        epoch: message.epoch,
        mean_loss: message.meanLoss,
        test_accuracy: message.testAccuracy ?? null,
        steps_per_sec: message.stepsPerSec,
        steps: message.steps,
      }),
    ]);
  } else if (message instanceof RecoveryRecord) {
    state.totals.recoveries++;
    const { cause, recoveryMs, step, detail } = message.recovery;
    append(state.session, [
      JSON.stringify({ kind: 'recovery', cause, recovery_ms: recoveryMs, step, detail }),
    ]);
  }
}

export const MetricsActor: GenServer<MetricsState, { session: TrainingSession; totals: MetricsTotals }> = {
  init(args: { session: TrainingSession; totals: MetricsTotals }, context: Context): MetricsState {
    const path = args.session.config.metricsPath;
    if (path !== undefined) mkdirSync(dirname(path), { recursive: true });
    args.session.register('metrics', context.self);
    return args;
  },

  handleCast(message: unknown, state: MetricsState): MetricsState {
    if (message instanceof StepRecords) handleSteps(state, message);
    else handleOther(state, message);
    return state;
  },

  handleCall(request: unknown, _from: CallFrom, state: MetricsState): CallResult<MetricsState> {
    if (request instanceof CrashRequest) throw new InjectedActorCrash('metrics', request.step);
    return reply(undefined, state);
  },
};
