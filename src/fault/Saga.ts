import { guardOf, TaggedError } from '../internal/errors.js';
/**
 * A saga: a sequence of steps, each with an action and a compensation that undoes it. When a
 * step fails, the compensations of the steps that completed run in reverse order (seeds/001
 * ch. 7, `TrainingSaga`).
 */
export interface SagaStep<Context> {
  readonly name: string;
  readonly action: (context: Context) => Promise<void> | void;
  /** Undoes `action`. Steps without one (reads, notifications) are skipped when compensating. */
  readonly compensate?: (context: Context) => Promise<void> | void;
}

export type SagaState = 'pending' | 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';

export interface SagaResult {
  /**
   * `completed`: every step ran. `compensated`: a step failed and every completed step was
   * undone. `failed`: a step failed and some compensation failed too (see `compensationErrors`);
   * the system may need a person.
   */
  readonly status: 'completed' | 'compensated' | 'failed';
  /** Steps whose action completed, in order. */
  readonly completed: readonly string[];
  readonly failedStep: string | undefined;
  readonly error: unknown;
  /** Steps whose compensation completed, in the order they ran (reverse of `completed`). */
  readonly compensated: readonly string[];
  readonly compensationErrors: readonly {
    readonly step: string;
    readonly error: unknown;
    readonly attempts: number;
  }[];
}

export interface SagaOptions {
  /** Attempts per compensation before it is reported as failed. Default 3, at most 100. */
  readonly compensationAttempts?: number;
  readonly onStateChange?: (change: { readonly from: SagaState; readonly to: SagaState }) => void;
}

export class InvalidSaga extends TaggedError('InvalidSaga') {
  constructor(
    readonly saga: string,
    readonly detail: string,
  ) {
    super(`saga '${saga}': ${detail}`);
  }
}

export const isInvalidSaga = guardOf(InvalidSaga);

/** Most steps in one saga. */
export const SAGA_MAX_STEPS = 1000;

/**
 * Runs steps in order; on the first failure, compensates completed steps in reverse order.
 * A saga object runs once (`run` a second time throws `InvalidSaga`); its `state` shows where it
 * is while it runs.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { Saga } from 'zbmd/fault';
 *
 * const context = { devices: [] as string[] };
 * const saga = new Saga<typeof context>('train', [
 *   { name: 'allocate', action: (c) => void c.devices.push('gpu0'), compensate: (c) => void c.devices.pop() },
 *   { name: 'train', action: () => { throw new Error('OOM'); } },
 * ]);
 * const result = await saga.run(context);
 * assert.equal(result.status, 'compensated');
 * assert.deepEqual(context.devices, []); // the allocation was undone
 * ```
 */
export class Saga<Context> {
  private current: SagaState = 'pending';
  private readonly compensationAttempts: number;

  constructor(
    readonly name: string,
    private readonly steps: readonly SagaStep<Context>[],
    private readonly options: SagaOptions = {},
  ) {
    if (steps.length === 0 || steps.length > SAGA_MAX_STEPS)
      throw new InvalidSaga(name, `needs 1 to ${SAGA_MAX_STEPS} steps`);
    const names = new Set<string>();
    for (const step of steps) {
      if (typeof step.action !== 'function') throw new InvalidSaga(name, `step '${step.name}' has no action`);
      if (names.has(step.name)) throw new InvalidSaga(name, `step name '${step.name}' is used twice`);
      names.add(step.name);
    }
    this.compensationAttempts = options.compensationAttempts ?? 3;
    if (
      !Number.isInteger(this.compensationAttempts) ||
      this.compensationAttempts < 1 ||
      this.compensationAttempts > 100
    ) {
      throw new InvalidSaga(
        name,
        `compensationAttempts must be an integer in [1, 100], got ${this.compensationAttempts}`,
      );
    }
  }

  get state(): SagaState {
    return this.current;
  }

  async run(context: Context): Promise<SagaResult> {
    if (this.current !== 'pending')
      throw new InvalidSaga(this.name, `already ${this.current}; a saga runs once`);
    this.moveTo('running');
    const completed: SagaStep<Context>[] = [];
    for (const step of this.steps) {
      try {
        await step.action(context);
      } catch (error) {
        return this.compensate(context, completed, step.name, error);
      }
      completed.push(step);
    }
    this.moveTo('completed');
    return {
      status: 'completed',
      completed: completed.map((step) => step.name),
      failedStep: undefined,
      error: undefined,
      compensated: [],
      compensationErrors: [],
    };
  }

  private async compensate(
    context: Context,
    completed: readonly SagaStep<Context>[],
    failedStep: string,
    error: unknown,
  ): Promise<SagaResult> {
    this.moveTo('compensating');
    const compensated: string[] = [];
    const compensationErrors: { step: string; error: unknown; attempts: number }[] = [];
    for (const step of [...completed].reverse()) {
      if (step.compensate === undefined) continue;
      const failure = await this.tryCompensation(step, context);
      if (failure === undefined) compensated.push(step.name);
      else compensationErrors.push({ step: step.name, error: failure, attempts: this.compensationAttempts });
    }
    const status = compensationErrors.length === 0 ? 'compensated' : 'failed';
    this.moveTo(status);
    return {
      status,
      completed: completed.map((step) => step.name),
      failedStep,
      error,
      compensated,
      compensationErrors,
    };
  }

  /** Runs one compensation up to `compensationAttempts` times; returns the last error, if any. */
  private async tryCompensation(step: SagaStep<Context>, context: Context): Promise<unknown> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.compensationAttempts; attempt++) {
      try {
        await step.compensate!(context);
        return undefined;
      } catch (error) {
        lastError = error ?? new Error(`compensation of '${step.name}' failed`);
      }
    }
    return lastError;
  }

  private moveTo(to: SagaState): void {
    const from = this.current;
    this.current = to;
    this.options.onStateChange?.({ from, to });
  }
}
