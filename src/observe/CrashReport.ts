/**
 * Crash reports as OTP writes them: who crashed, the reason, the last message it handled and
 * what its supervisor did, not a raw stack. Plain data in, lines out; this recording side
 * imports no other layer (the show side fills the fields from supervision events).
 */

/** What a supervisor did about a crashed child. */
export type SupervisorAction =
  | 'restarted'
  | 'restart_scheduled'
  | 'restart_failed'
  | 'not_restarted'
  | 'gave_up'
  | 'unsupervised';

export interface CrashReport {
  /** The process that crashed, e.g. `<0.4.0>`. */
  readonly pid: string;
  /** Its child id or registered name, when it has one. */
  readonly name: string | undefined;
  /** The supervisor above it, when there is one. */
  readonly supervisor: string | undefined;
  /** The exit reason, formatted (an error's name and message, not its stack). */
  readonly reason: string;
  /** The message it was handling, formatted; undefined when not known. */
  readonly lastMessage: string | undefined;
  readonly action: SupervisorAction;
  /** The new pid after a restart, or the wait of a scheduled restart. */
  readonly actionDetail: string | undefined;
}

/** Longest formatted message or reason kept in a report. */
export const CRASH_REPORT_FIELD_CHARS = 300;

/** OTP-like lines: `crasher: <0.4.0> (model)`, `reason: ...`, `last message: ...`, `supervisor: ...`. */
export function crashReportLines(report: CrashReport): string[] {
  const who = report.name === undefined ? report.pid : `${report.pid} (${report.name})`;
  const lines = [`crasher: ${who}`, `reason: ${clip(report.reason)}`];
  if (report.lastMessage !== undefined) lines.push(`last message: ${clip(report.lastMessage)}`);
  const action = ACTION_TEXT[report.action];
  const detail = report.actionDetail === undefined ? '' : ` ${report.actionDetail}`;
  lines.push(
    report.supervisor === undefined
      ? `supervisor: none (${action})`
      : `supervisor ${report.supervisor}: ${action}${detail}`,
  );
  return lines;
}

const ACTION_TEXT: Readonly<Record<SupervisorAction, string>> = {
  restarted: 'restarted it as',
  restart_scheduled: 'will restart it in',
  restart_failed: 'failed to restart it:',
  not_restarted: 'did not restart it (its restart type says so)',
  gave_up: 'gave up (restart intensity reached) and shut down',
  unsupervised: 'nobody restarts it',
};

/** Cuts `text` to `CRASH_REPORT_FIELD_CHARS`, saying how much went. */
export function clip(text: string, limit = CRASH_REPORT_FIELD_CHARS): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}... (${text.length - limit} more chars)`;
}
