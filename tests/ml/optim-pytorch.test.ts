/**
 * Optimizers and schedules against PyTorch's own values (tests/ml/fixtures/optim_goldens.json,
 * made by make_optim_goldens.py with Debian's PyTorch): parameters after each of 5 steps, with a
 * parameter whose first gradient comes at step 3 and with parameter groups; each schedule's rate
 * over 30 steps.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ml from '../../src/ml/index.js';

interface OptimizerCase {
  name: string;
  zbmd: Record<string, unknown> & { kind: string };
  groups: Array<{ indices: number[]; learningRate?: number; weightDecay?: number }> | null;
  expected: number[][][];
}
interface ScheduleCase {
  name: string;
  zbmd: Record<string, unknown> & { kind: string };
  rates: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/optim_goldens.json', import.meta.url), 'utf8'),
) as {
  shapes: number[][];
  initial: number[][];
  grads: Array<Array<number[] | null>>;
  optimizers: OptimizerCase[];
  schedules: ScheduleCase[];
};

const RTOL = 1e-5;
const ATOL = 1e-7;

function expectNear(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tolerance = ATOL + RTOL * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance))
      expect.fail(`${what}[${i}]: ${actual[i]} vs PyTorch ${expected[i]} (tolerance ${tolerance})`);
  }
}

function freshParameters(): ml.Parameter[] {
  return fixture.initial.map(
    (values, index) => new ml.Parameter(Float32Array.from(values), fixture.shapes[index]),
  );
}

function build(testCase: OptimizerCase, parameters: ml.Parameter[], simd: boolean): ml.Optimizer {
  const { kind, ...options } = testCase.zbmd;
  const given: ml.OptimizerParameters =
    testCase.groups === null
      ? parameters
      : testCase.groups.map(({ indices, ...groupOptions }) => ({
          params: indices.map((index) => parameters[index]),
          ...groupOptions,
        }));
  switch (kind) {
    case 'sgd':
      return new ml.SGD(given, options as unknown as ml.SgdOptions);
    case 'adam':
      return new ml.Adam(given, { ...options, simd });
    case 'adamw':
      return new ml.AdamW(given, { ...options, simd });
    case 'rmsprop':
      return new ml.RMSprop(given, options);
    case 'adagrad':
      return new ml.Adagrad(given, options);
  }
  throw new Error(`unknown optimizer ${kind}`);
}

function setGradients(parameters: ml.Parameter[], step: number): void {
  fixture.grads[step].forEach((grad, index) => {
    parameters[index].grad = grad === null ? null : Float32Array.from(grad);
  });
}

describe('optimizers match PyTorch', () => {
  for (const testCase of fixture.optimizers) {
    const variants =
      testCase.zbmd.kind.startsWith('adam') && !testCase.zbmd.amsgrad ? [true, false] : [false];
    for (const simd of variants) {
      it(`${testCase.name}${simd ? ' (SIMD kernel)' : ''}`, () => {
        const parameters = freshParameters();
        const optimizer = build(testCase, parameters, simd);
        testCase.expected.forEach((after, step) => {
          setGradients(parameters, step);
          optimizer.step();
          after.forEach((values, index) => {
            expectNear(parameters[index].data, values, `step ${step} p${index}`);
          });
        });
        // The late parameter missed two steps: its own count is two behind.
        expect(optimizer.parameterSteps).toEqual([5, 5, 3]);
      });
    }
  }

  for (const testCase of fixture.optimizers) {
    it(`${testCase.name}: a state dict after 3 steps continues bit-identically (through JSON)`, () => {
      const original = freshParameters();
      const optimizer = build(testCase, original, false);
      for (let step = 0; step < 3; step++) {
        setGradients(original, step);
        optimizer.step();
      }
      const saved = optimizer.stateDict();
      const serialised = JSON.parse(
        JSON.stringify(saved, (_, value) => (value instanceof Float32Array ? Array.from(value) : value)),
      ) as ml.OptimizerState;
      for (const entry of Object.values(serialised.buffers))
        (entry as { data: Float32Array }).data = Float32Array.from(entry.data as unknown as number[]);
      const copy = original.map((p) => new ml.Parameter(Float32Array.from(p.data), p.shape));
      const restored = build(testCase, copy, false);
      restored.loadStateDict(serialised);
      expect(restored.parameterSteps).toEqual(optimizer.parameterSteps);
      expect(restored.groups.map((g) => g.learningRate)).toEqual(optimizer.groups.map((g) => g.learningRate));
      for (let step = 3; step < 5; step++) {
        setGradients(original, step);
        setGradients(copy, step);
        optimizer.step();
        restored.step();
      }
      copy.forEach((p, index) => {
        expect(Array.from(p.data)).toEqual(Array.from(original[index].data));
      });
    });
  }
});

describe('parameter groups and step counts', () => {
  it('a rate set on the optimizer keeps the groups in proportion; a plain list is one group', () => {
    const [a, b, c] = freshParameters();
    const optimizer = new ml.SGD(
      [{ params: [a] }, { params: [b, c], learningRate: 0.05, weightDecay: 0.1 }],
      {
        learningRate: 0.1,
      },
    );
    expect(optimizer.parameters).toEqual([a, b, c]);
    optimizer.learningRate = 0.01;
    expect(optimizer.groups.map((g) => g.learningRate)).toEqual([0.01, 0.005]);
    expect(optimizer.groups.map((g) => g.weightDecay)).toEqual([0, 0.1]);
    expect(new ml.Adam([a, b]).groups).toHaveLength(1);
  });

  it('refuses a parameter in two groups, a negative group rate, and a state with other groups', () => {
    const [a, b] = freshParameters();
    expect(() => new ml.SGD([{ params: [a] }, { params: [a, b] }], { learningRate: 0.1 })).toThrow(
      /more than one group/,
    );
    expect(() => new ml.Adam([{ params: [a], learningRate: -1 }])).toThrow(
      /group 0 learning rate must be >= 0/,
    );
    const two = new ml.Adam([{ params: [a] }, { params: [b] }]);
    expect(() => new ml.Adam([a, b]).loadStateDict(two.stateDict())).toThrow(/parameter groups do not match/);
  });

  it("moving stepCount (an in-place snapshot restore) moves each parameter's count with it", () => {
    const parameters = freshParameters();
    const optimizer = new ml.Adam(parameters, { simd: false });
    for (let step = 0; step < 4; step++) {
      setGradients(parameters, step);
      optimizer.step();
    }
    expect(optimizer.parameterSteps).toEqual([4, 4, 2]);
    optimizer.stepCount = 3;
    expect(optimizer.parameterSteps).toEqual([3, 3, 1]);
    expect(() => {
      optimizer.stepCount = -1;
    }).toThrow(/integer >= 0/);
  });

  it('an older state without groups or parameter steps loads as one group at the global count', () => {
    const parameters = freshParameters();
    const optimizer = new ml.SGD(parameters, { learningRate: 0.1, momentum: 0.9 });
    optimizer.loadStateDict({ kind: 'sgd', stepCount: 7, learningRate: 0.02, buffers: {} });
    expect(optimizer.parameterSteps).toEqual([7, 7, 7]);
    expect(optimizer.learningRate).toBe(0.02);
  });
});

function schedule(zbmd: ScheduleCase['zbmd']): ml.LearningRateSchedule {
  const learningRate = 0.1;
  switch (zbmd.kind) {
    case 'step':
      return ml.stepSchedule({
        learningRate,
        stepSize: zbmd.stepSize as number,
        gamma: zbmd.gamma as number,
      });
    case 'multiStep':
      return ml.multiStepSchedule({
        learningRate,
        milestones: zbmd.milestones as number[],
        gamma: zbmd.gamma as number,
      });
    case 'exponential':
      return ml.exponentialSchedule({ learningRate, gamma: zbmd.gamma as number });
    case 'oneCycle': {
      const { kind: _, ...options } = zbmd;
      return ml.oneCycleSchedule({ maxLearningRate: learningRate, ...(options as { totalSteps: number }) });
    }
    case 'cosine':
      return ml.cosineSchedule({
        learningRate,
        totalSteps: zbmd.totalSteps as number,
        minimum: zbmd.minimum as number,
        afterEnd: 'periodic',
      });
    case 'warmRestarts':
      return ml.warmRestartsSchedule({
        learningRate,
        period: zbmd.period as number,
        periodMultiplier: zbmd.periodMultiplier as number | undefined,
        minimum: zbmd.minimum as number | undefined,
      });
  }
  throw new Error(`unknown schedule ${zbmd.kind}`);
}

describe('schedules match PyTorch', () => {
  for (const testCase of fixture.schedules) {
    it(testCase.name, () => {
      if (testCase.zbmd.kind === 'plateau') {
        const { kind: _, metrics, ...options } = testCase.zbmd;
        const optimizer = new ml.SGD([new ml.Parameter(new Float32Array(1), [1])], { learningRate: 0.1 });
        const plateau = new ml.ReduceLearningRateOnPlateau(optimizer, options as ml.PlateauOptions);
        const rates = (metrics as number[]).map((metric) => {
          const rate = optimizer.learningRate;
          plateau.step(metric);
          return rate;
        });
        expectNear(rates, testCase.rates, 'rate');
        return;
      }
      const rates = testCase.rates.map((_, step) => schedule(testCase.zbmd)(step));
      expectNear(rates, testCase.rates, 'rate');
    });
  }

  it("cosine holds its minimum after the last step by default (PyTorch's rises again)", () => {
    const cosine = fixture.schedules.find((s) => s.zbmd.kind === 'cosine') as ScheduleCase;
    const hold = ml.cosineSchedule({ learningRate: 0.1, totalSteps: 10, minimum: 0.01 });
    expectNear(
      [0, 5, 10].map(hold),
      [0, 5, 10].map((step) => cosine.rates[step]),
      'rate',
    );
    expect([11, 15, 29].map(hold)).toEqual([0.01, 0.01, 0.01]);
    expect(cosine.rates[15]).toBeGreaterThan(0.05);
  });

  it('a plateau schedule restored mid-run cuts at the same steps as the original', () => {
    const plateauCase = fixture.schedules.find((s) => s.name === 'plateau min rel') as ScheduleCase;
    const { kind: _, metrics, ...options } = plateauCase.zbmd;
    const losses = metrics as number[];
    const make = () => new ml.SGD([new ml.Parameter(new Float32Array(1), [1])], { learningRate: 0.1 });
    const first = make();
    const original = new ml.ReduceLearningRateOnPlateau(first, options as ml.PlateauOptions);
    for (const loss of losses.slice(0, 13)) original.step(loss);
    const second = make();
    second.loadStateDict(first.stateDict());
    const restored = new ml.ReduceLearningRateOnPlateau(second, options as ml.PlateauOptions);
    restored.loadStateDict(original.stateDict());
    for (const loss of losses.slice(13)) expect(restored.step(loss)).toBe(original.step(loss));
    expect(() => restored.loadStateDict({ best: 1, badSteps: -1, cooldownLeft: 0, steps: 0 })).toThrow(
      /badSteps/,
    );
  });

  it('one-cycle refuses a step past totalSteps, like PyTorch', () => {
    const oneCycle = ml.oneCycleSchedule({ maxLearningRate: 0.1, totalSteps: 30 });
    expect(() => oneCycle(31)).toThrow(/past totalSteps/);
  });
});
