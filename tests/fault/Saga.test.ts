import { describe, expect, it } from 'vitest';
import type { SagaState, SagaStep } from '../../src/fault/index.js';
import { isInvalidSaga, Saga } from '../../src/fault/index.js';

/** seeds/001 ch. 7 `TrainingSaga`, as steps of a `Saga`. */
interface TrainingContext {
  readonly sessionId: string;
  readonly allocatedDevices: string[];
  readonly loadedDatasets: string[];
  checkpointPath: string | undefined;
  readonly released: string[];
  readonly unloaded: string[];
  readonly failure: string | undefined;
}

function trainingSaga(onState: (state: SagaState) => void): Saga<TrainingContext> {
  const steps: SagaStep<TrainingContext>[] = [
    {
      name: 'allocating_resources',
      action: (context) => void context.allocatedDevices.push('gpu0', 'gpu1'),
      compensate: (context) => {
        for (const device of context.allocatedDevices) context.released.push(device);
      },
    },
    {
      name: 'loading_data',
      action: (context) => void context.loadedDatasets.push('dataset1'),
      compensate: (context) => {
        for (const dataset of context.loadedDatasets) context.unloaded.push(dataset);
      },
    },
    { name: 'initializing_model', action: () => {} },
    {
      name: 'training',
      action: (context) => {
        if (context.failure !== undefined) throw new Error(context.failure);
      },
    },
    {
      name: 'checkpointing',
      action: (context) => {
        context.checkpointPath = `/checkpoints/${context.sessionId}`;
      },
    },
  ];
  return new Saga('training', steps, { onStateChange: ({ to }) => onState(to) });
}

function context(failure?: string): TrainingContext {
  return {
    sessionId: 'test',
    allocatedDevices: [],
    loadedDatasets: [],
    checkpointPath: undefined,
    released: [],
    unloaded: [],
    failure,
  };
}

describe('Saga', () => {
  it("seeds/001 'saga compensation on failure': training fails with OOM, resources are released", async () => {
    const states: SagaState[] = [];
    const saga = trainingSaga((state) => states.push(state));
    const training = context('OOM');
    const result = await saga.run(training);
    // Should transition to compensating, then end with everything undone.
    expect(states).toEqual(['running', 'compensating', 'compensated']);
    expect(result.status).toBe('compensated');
    expect(result.failedStep).toBe('training');
    expect((result.error as Error).message).toBe('OOM');
    // Should clean up resources: the devices are released and the dataset unloaded.
    expect(training.released).toEqual(['gpu0', 'gpu1']);
    expect(training.unloaded).toEqual(['dataset1']);
    expect(result.compensated).toEqual(['loading_data', 'allocating_resources']);
    expect(training.checkpointPath).toBeUndefined();
  });

  it('completes when no step fails and compensates nothing', async () => {
    const states: SagaState[] = [];
    const training = context();
    const result = await trainingSaga((state) => states.push(state)).run(training);
    expect(result.status).toBe('completed');
    expect(result.completed).toHaveLength(5);
    expect(training.released).toEqual([]);
    expect(training.checkpointPath).toBe('/checkpoints/test');
    expect(states).toEqual(['running', 'completed']);
  });

  it('runs compensations in reverse order of completion, awaiting each', async () => {
    const order: string[] = [];
    const step = (name: string, fails = false): SagaStep<undefined> => ({
      name,
      action: async () => {
        await Promise.resolve();
        if (fails) throw new Error(`${name} failed`);
        order.push(`do ${name}`);
      },
      compensate: async () => {
        await Promise.resolve();
        order.push(`undo ${name}`);
      },
    });
    const result = await new Saga('order', [step('a'), step('b'), step('c'), step('d', true), step('e')]).run(
      undefined,
    );
    expect(order).toEqual(['do a', 'do b', 'do c', 'undo c', 'undo b', 'undo a']);
    expect(result.completed).toEqual(['a', 'b', 'c']);
  });

  it('retries a failing compensation, then reports it and still compensates the rest', async () => {
    let attempts = 0;
    const undone: string[] = [];
    const result = await new Saga<undefined>(
      'partial',
      [
        { name: 'a', action: () => {}, compensate: () => void undone.push('a') },
        {
          name: 'b',
          action: () => {},
          compensate: () => {
            attempts++;
            throw new Error('device unreachable');
          },
        },
        {
          name: 'c',
          action: () => {
            throw new Error('boom');
          },
        },
      ],
      { compensationAttempts: 3 },
    ).run(undefined);
    expect(attempts).toBe(3);
    expect(undone).toEqual(['a']);
    expect(result.status).toBe('failed');
    expect(result.compensationErrors.map((failure) => [failure.step, failure.attempts])).toEqual([['b', 3]]);
    expect(result.compensated).toEqual(['a']);
  });

  it('succeeds a compensation that fails once then works', async () => {
    let attempts = 0;
    const result = await new Saga<undefined>('retry', [
      {
        name: 'a',
        action: () => {},
        compensate: () => {
          if (++attempts === 1) throw new Error('transient');
        },
      },
      {
        name: 'b',
        action: () => {
          throw new Error('boom');
        },
      },
    ]).run(undefined);
    expect(result.status).toBe('compensated');
    expect(attempts).toBe(2);
  });

  it('runs once, and rejects invalid definitions', async () => {
    const saga = new Saga<undefined>('once', [{ name: 'a', action: () => {} }]);
    await saga.run(undefined);
    await expect(saga.run(undefined)).rejects.toSatisfy(isInvalidSaga);
    expect(() => new Saga('empty', [])).toThrow(/steps/);
    expect(
      () =>
        new Saga('dup', [
          { name: 'a', action: () => {} },
          { name: 'a', action: () => {} },
        ]),
    ).toThrow(/twice/);
    expect(
      () => new Saga('attempts', [{ name: 'a', action: () => {} }], { compensationAttempts: 0 }),
    ).toThrow(/compensationAttempts/);
  });
});
