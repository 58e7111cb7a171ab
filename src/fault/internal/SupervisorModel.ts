import { TaggedError } from '../../internal/errors.js';
/**
 * A reference model of an OTP supervisor (supervisor.erl's rules), fed the events a real
 * supervisor emitted and checking each one against what OTP would do next:
 *
 * - a child that exits is restarted unless it is temporary, or transient and the reason is
 *   `normal`, `shutdown` or `{shutdown, _}`;
 * - each restart counts against the intensity: more than `intensity` restarts R with
 *   R >= Now - Period and the supervisor gives up: `restart_intensity_reached`, every running
 *   child terminated in reverse start order, then `supervisor_shutdown` with `shutdown`;
 * - one_for_one restarts the child; one_for_all stops every other running child (reverse start
 *   order), forgets the temporary ones, and starts all the others in start order; rest_for_one
 *   does the same for the child and those started after it;
 * - a stop from outside (the parent) terminates the running children in reverse order.
 *
 * The model is written from OTP's documentation, not from the runtime's code; it shares no
 * helper with it (its own reading of exit reasons included), so a bug planted in the runtime
 * cannot hide in the model.
 */

export type ModelRestart = 'permanent' | 'transient' | 'temporary';
export type ModelStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

export interface ModelChildSpec {
  readonly id: string;
  readonly restart: ModelRestart;
}

export interface SupervisorModelConfig {
  readonly strategy: ModelStrategy;
  readonly intensity: number;
  readonly periodMs: number;
  readonly children: readonly ModelChildSpec[];
}

/** What the model reads of one supervision event. */
export interface ObservedEvent {
  readonly kind: string;
  readonly childId: string | undefined;
  readonly reason: unknown;
  readonly timeMs: number;
}

interface Expected {
  readonly kind: string;
  readonly childId: string | undefined;
  /** For `supervisor_shutdown` and `restart_intensity_reached`: the reason OTP gives. */
  readonly reason?: 'shutdown';
}

export class ModelMismatch extends TaggedError('ModelMismatch') {
  constructor(readonly detail: string) {
    super(detail);
  }
}

/** OTP: a transient child is not restarted for these. */
function isNormalOrShutdownReason(reason: unknown): boolean {
  if (reason === 'normal' || reason === 'shutdown') return true;
  return (
    typeof reason === 'object' &&
    reason !== null &&
    !(reason instanceof Error) &&
    Object.hasOwn(reason, 'shutdown')
  );
}

export class SupervisorModel {
  private readonly children: { spec: ModelChildSpec; running: boolean }[];
  private readonly restartTimes: number[] = [];
  private expected: Expected[] = [];
  /** Two possible continuations after an intensity decision that a known deviation makes ambiguous. */
  private fork: { otp: Expected[]; deviation: () => Expected[]; deviationName: string } | undefined;
  private stopped = false;

  constructor(
    private readonly config: SupervisorModelConfig,
    private readonly knownDeviations: ReadonlySet<string>,
    private readonly hit: (branch: string) => void,
  ) {
    this.children = config.children.map((spec) => ({ spec, running: false }));
    this.expected = config.children.map((spec) => ({ kind: 'child_started', childId: spec.id }));
  }

  get hasStopped(): boolean {
    return this.stopped;
  }

  /** Checks the next event; throws `ModelMismatch` when OTP would not have done it. */
  observe(event: ObservedEvent): void {
    if (this.fork !== undefined) this.resolveFork(event);
    if (this.stopped) throw new ModelMismatch(`${describe(event)} after the supervisor stopped`);
    if (this.expected.length === 0) this.spontaneous(event);
    const next = this.expected.shift();
    if (next === undefined) return; // a spontaneous event with no consequence (a kept transient)
    if (next.kind !== event.kind || next.childId !== event.childId) {
      throw new ModelMismatch(`expected ${describe(next)}, the supervisor did ${describe(event)}`);
    }
    if (next.reason !== undefined && event.reason !== next.reason) {
      throw new ModelMismatch(
        `${describe(event)} with reason ${String(event.reason)}, OTP gives '${next.reason}'`,
      );
    }
    this.apply(event);
  }

  /** At the end of a run: nothing OTP requires may still be missing. */
  finish(): void {
    const pending = this.fork?.otp ?? this.expected;
    if (pending.length > 0) {
      throw new ModelMismatch(`the supervisor never did ${pending.map(describe).join(', ')}`);
    }
  }

  private resolveFork(event: ObservedEvent): void {
    const fork = this.fork!;
    this.fork = undefined;
    const head = fork.otp[0];
    if (head !== undefined && head.kind === event.kind && head.childId === event.childId) {
      this.expected = fork.otp;
      return;
    }
    this.hit(`known:${fork.deviationName}`);
    this.expected = fork.deviation();
  }

  /** An event nothing asked for: a child exited, or the parent stops the supervisor. */
  private spontaneous(event: ObservedEvent): void {
    if (event.kind === 'child_exited') {
      const child = this.child(event);
      if (!child.running) throw new ModelMismatch(`${describe(event)} for a child that was not running`);
      child.running = false; // before deciding: a give-up stops the others, not this one
      this.expected = [{ kind: 'child_exited', childId: child.spec.id }];
      this.expected.push(...this.afterExit(child, event));
      return;
    }
    if (event.kind === 'child_terminated' || event.kind === 'supervisor_shutdown') {
      this.hit('stopped-by-parent');
      this.expected = this.stopAllEvents();
      return;
    }
    throw new ModelMismatch(`${describe(event)} without a cause (no child exited)`);
  }

  private afterExit(child: { spec: ModelChildSpec; running: boolean }, event: ObservedEvent): Expected[] {
    const { restart } = child.spec;
    if (restart === 'temporary') {
      this.hit('temporary-not-restarted');
      return [];
    }
    if (restart === 'transient' && isNormalOrShutdownReason(event.reason)) {
      this.hit('transient-normal-kept');
      return [];
    }
    this.hit(restart === 'transient' ? 'transient-abnormal-restarted' : 'permanent-restarted');
    this.restartTimes.push(event.timeMs);
    const { intensity, periodMs } = this.config;
    // OTP counts restarts R with R >= Now - Period (a restart exactly one period old counts)
    const otpCount = this.restartTimes.filter((time) => time >= event.timeMs - periodMs).length;
    const strictCount = this.restartTimes.filter((time) => time > event.timeMs - periodMs).length;
    if (otpCount > intensity) {
      const name = 'restart-window-boundary';
      if (strictCount <= intensity && this.knownDeviations.has(name)) {
        // decided by the supervisor's next event (the child_exited itself is expected first)
        this.fork = {
          otp: this.giveUpEvents(child.spec.id),
          deviation: () => this.restartEvents(child),
          deviationName: name,
        };
        return [];
      }
      this.hit('intensity-reached');
      return this.giveUpEvents(child.spec.id);
    }
    if (otpCount === intensity) this.hit('intensity-at-limit');
    return this.restartEvents(child);
  }

  private giveUpEvents(childId: string): Expected[] {
    return [{ kind: 'restart_intensity_reached', childId, reason: 'shutdown' }, ...this.stopAllEvents()];
  }

  private stopAllEvents(): Expected[] {
    const events: Expected[] = [];
    for (let index = this.children.length - 1; index >= 0; index--) {
      const child = this.children[index];
      if (child.running) events.push({ kind: 'child_terminated', childId: child.spec.id });
    }
    events.push({ kind: 'supervisor_shutdown', childId: undefined, reason: 'shutdown' });
    return events;
  }

  private restartEvents(failed: { spec: ModelChildSpec; running: boolean }): Expected[] {
    const { strategy } = this.config;
    this.hit(`restart-${strategy}`);
    const position = this.children.indexOf(failed);
    const group =
      strategy === 'one_for_all'
        ? this.children
        : strategy === 'rest_for_one'
          ? this.children.slice(position)
          : [failed];
    const events: Expected[] = [];
    for (let index = group.length - 1; index >= 0; index--) {
      const member = group[index];
      if (member === failed) continue;
      if (member.running) events.push({ kind: 'child_terminated', childId: member.spec.id });
      if (member.spec.restart === 'temporary' && group.length > 1) this.hit('temporary-sibling-dropped');
    }
    for (const member of group) {
      if (member !== failed && member.spec.restart === 'temporary') continue;
      if (member !== failed && !member.running) this.hit('stopped-sibling-started-with-group');
      events.push({ kind: 'child_restarted', childId: member.spec.id });
    }
    return events;
  }

  /** Moves the model's state by an event that matched. */
  private apply(event: ObservedEvent): void {
    switch (event.kind) {
      case 'child_started':
      case 'child_restarted':
        this.child(event).running = true;
        return;
      case 'child_exited':
      case 'child_terminated': {
        const child = this.child(event);
        child.running = false;
        if (child.spec.restart === 'temporary') this.forgetTemporary(child, event);
        return;
      }
      case 'supervisor_shutdown':
        this.stopped = true;
        return;
    }
  }

  private forgetTemporary(child: { spec: ModelChildSpec; running: boolean }, event: ObservedEvent): void {
    // a temporary child leaves the supervisor when it exits or a group restart stops it; when
    // the whole supervisor stops, its record does not matter any more
    if (
      event.kind === 'child_terminated' &&
      this.expected.some((next) => next.kind === 'supervisor_shutdown')
    )
      return;
    this.children.splice(this.children.indexOf(child), 1);
  }

  private child(event: ObservedEvent): { spec: ModelChildSpec; running: boolean } {
    const child = this.children.find((entry) => entry.spec.id === event.childId);
    if (child === undefined)
      throw new ModelMismatch(`${describe(event)} for a child the supervisor should not have`);
    return child;
  }
}

function describe(event: { kind: string; childId: string | undefined }): string {
  return event.childId === undefined ? event.kind : `${event.kind} ${event.childId}`;
}
