import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actor/ActorSystem.js';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { Random } from '../../src/actor/Random.js';
import { fromData, noGrad } from '../../src/ml/Tensor.js';
import { buildMlp } from '../../src/ml/training/models.js';
import {
  BatchCall,
  type InferOutcome,
  type InferResult,
  isRequestRejected,
  moduleSource,
  ServeMetrics,
} from '../../src/serve/index.js';
import {
  MAX_BATCHER_RESENDS,
  ModelVersion,
  type VersionSettings,
} from '../../src/serve/internal/ModelVersion.js';
import type { ModelSource } from '../../src/serve/ModelSource.js';
import { batchKey, parseInferRequest } from '../../src/serve/protocol.js';

const SPEC = { model: 'mlp' as const, featureShape: [3], numClasses: 2 };
const module = buildMlp(SPEC, new Random(11)).eval();
const source = moduleSource(module, SPEC);

/** The real model, made to take `runMs` of simulated time per batch, so a test can kill a replica mid-batch. */
function slowSource(clock: SimulatedClock, runMs: number): ModelSource {
  return {
    ...source,
    open: async () => {
      const runner = await source.open();
      return {
        run: (inputs) =>
          new Promise((resolve, reject) =>
            clock.setTimer(runMs, () => runner.run(inputs).then(resolve, reject)),
          ),
        close: () => runner.close(),
      };
    },
  };
}

function expectedLogits(row: number[]): number[] {
  return noGrad(() => Array.from(module.forward(fromData(Float32Array.from(row), [1, 3])).data));
}

function rowOf(index: number): number[] {
  return [index / 7, -index / 3, index % 5];
}

function settings(overrides: Partial<VersionSettings> = {}): VersionSettings {
  return {
    replicas: 1,
    maxBatchSize: 4,
    maxQueueDelayMs: 2,
    maxQueueSize: 100,
    replicaCallTimeoutMs: 60_000,
    restartIntensity: 1000,
    restartPeriodMs: 10_000,
    breakerFailureThreshold: 3,
    breakerResetTimeoutMs: 1000,
    ...overrides,
  };
}

let system: ActorSystem;
afterEach(() => system?.shutdown());

interface Harness {
  readonly clock: SimulatedClock;
  readonly version: ModelVersion;
  readonly batches: number[];
  readonly metrics: ServeMetrics;
  /** Replies sent to each caller handle: every accepted request must get exactly one. */
  readonly replies: Map<object, number>;
  submit(index: number, deadlineMs?: number): Promise<InferOutcome>;
  /** Through `ModelVersion.infer`, the HTTP handler's path (resends after a batcher crash). */
  infer(index: number): Promise<InferOutcome>;
}

async function harness(options: Partial<VersionSettings> = {}, runMs = 0): Promise<Harness> {
  const clock = new SimulatedClock();
  system = new ActorSystem({ clock, onCrash: () => {} });
  const batches: number[] = [];
  const metrics = new ServeMetrics();
  const replies = new Map<object, number>();
  const reply = system.reply.bind(system);
  system.reply = (from, value) => {
    if (isRequestRejected(value) || (value as InferResult)?.outputs !== undefined)
      replies.set(from, (replies.get(from) ?? 0) + 1);
    return reply(from, value);
  };
  const chosen = runMs > 0 ? slowSource(clock, runMs) : source;
  const version = await ModelVersion.start(
    system,
    'm',
    '1',
    chosen,
    settings({ ...options, onBatch: (rows) => batches.push(rows) }),
    metrics,
  );
  const callOf = (index: number, deadlineMs: number) => {
    const request = parseInferRequest(
      { inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: rowOf(index) }] },
      chosen.inputs,
      chosen.outputs,
      true,
    );
    if (isRequestRejected(request)) throw new Error(request.message);
    return new BatchCall(request, batchKey(request), clock.now() + deadlineMs);
  };
  const submit = (index: number, deadlineMs = 1e9) =>
    system.call<InferOutcome>(version.batcher, callOf(index, deadlineMs), 1e9);
  const infer = (index: number) => version.infer(callOf(index, 1e9), 1e9);
  return { clock, version, batches, metrics, replies, submit, infer };
}

function expectAnsweredOnce(h: Harness, requests: number): void {
  expect(h.replies.size).toBe(requests);
  expect([...h.replies.values()].every((count) => count === 1)).toBe(true);
}

describe('dynamic batcher (Triton semantics) on a simulated clock', () => {
  it('sends a batch as soon as it holds max batch rows, the rest after the queue delay', async () => {
    const h = await harness();
    const answers = [0, 1, 2, 3, 4, 5].map((index) => h.submit(index));
    await system.settle();
    expect(h.batches).toEqual([4]);
    await system.advance(1.5);
    expect(h.batches).toEqual([4]);
    await system.advance(0.5);
    expect(h.batches).toEqual([4, 2]);
    const results = (await Promise.all(answers)) as InferResult[];
    results.forEach((result, index) => {
      expect(result.batchRows).toBe(index < 4 ? 4 : 2);
      const logits = Array.from(result.outputs.get('logits')!.data as Float32Array);
      expectedLogits(rowOf(index)).forEach((value, column) => {
        expect(logits[column]).toBeCloseTo(value, 5);
      });
    });
  });

  it('answers 429 with Retry-After when the queue is full, and 504 for a request still queued at its deadline', async () => {
    const h = await harness({ maxQueueSize: 2, maxBatchSize: 64, maxQueueDelayMs: 100 });
    const early = h.submit(0, 5);
    const second = h.submit(1);
    const thirdCall = h.submit(2);
    await system.settle();
    const third = await thirdCall;
    expect(isRequestRejected(third) && third.status).toBe(429);
    expect(isRequestRejected(third) && third.retryAfterSeconds).toBe(1);
    await system.advance(5);
    const timedOut = await early;
    expect(isRequestRejected(timedOut) && timedOut.status).toBe(504);
    await system.advance(100);
    expect(((await second) as InferResult).batchRows).toBe(1);
    expect(h.batches).toEqual([1]);
  });

  it('retries the batch of a replica killed mid-batch once, on another replica; every request answered once', async () => {
    const h = await harness({ replicas: 2 }, 10);
    const answers = [0, 1, 2, 3].map((index) => h.submit(index));
    await system.advance(5);
    expect(h.batches).toEqual([4]);
    const busy = h.version.slots.findIndex((slot) => slot.busy);
    expect(h.version.crashReplica(busy)).toBe(true);
    await system.advance(10);
    const results = (await Promise.all(answers)) as InferResult[];
    expect(h.batches).toEqual([4, 4]);
    results.forEach((result, index) => {
      expect(result.attempts).toBe(2);
      const logits = Array.from(result.outputs.get('logits')!.data as Float32Array);
      expectedLogits(rowOf(index)).forEach((value, column) => {
        expect(logits[column]).toBeCloseTo(value, 5);
      });
    });
    expect((await h.metrics.replicaRestarts.get()).values[0].value).toBe(1);
    expect((await h.metrics.retriedBatches.get()).values[0].value).toBe(1);
    expectAnsweredOnce(h, 4);
  });

  it("opens a replica's circuit breaker after repeated failures and routes around it", async () => {
    const h = await harness(
      { replicas: 2, maxBatchSize: 1, breakerFailureThreshold: 2, breakerResetTimeoutMs: 1000 },
      10,
    );
    for (let round = 0; round < 2; round++) {
      const answer = h.submit(round);
      await system.advance(5);
      h.version.crashReplica(0);
      await system.advance(20);
      expect(((await answer) as InferResult).attempts).toBe(2);
    }
    expect(h.version.slots[0].breaker.state).toBe('open');
    const before = h.batches.length;
    const answers = [10, 11, 12].map((index) => h.submit(index));
    for (let step = 0; step < 6; step++) {
      expect(h.version.slots[0].busy).toBe(false);
      await system.advance(5);
    }
    for (const answer of answers) expect(((await answer) as InferResult).attempts).toBe(1);
    expect(h.batches.length - before).toBe(3);
    await system.advance(1000);
    expect(h.version.slots[0].breaker.state).toBe('half-open');
  });
});

describe('batcher property: crashes at random times lose no request and answer none twice', () => {
  it('holds for random arrivals and crash times', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 24 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 4 }),
        fc.integer({ min: 1, max: 3 }),
        async (gapsMs, crashTimesMs, replicas) => {
          const h = await harness({ replicas, maxBatchSize: 4, restartIntensity: 1000 }, 7);
          const answers: Array<Promise<InferOutcome>> = [];
          const crashes = new Set(crashTimesMs);
          let now = 0;
          for (const [index, gap] of gapsMs.entries()) {
            for (let step = 0; step < gap; step++) {
              await system.advance(1);
              now++;
              if (crashes.has(now)) h.version.crashReplica(now % replicas);
            }
            answers.push(h.submit(index));
          }
          await system.advance(200);
          const results = await Promise.all(answers);
          expectAnsweredOnce(h, answers.length);
          results.forEach((result, index) => {
            // A request may fail twice only when both its tries were hit by a crash.
            if (isRequestRejected(result)) {
              expect(result.status).toBe(500);
              return;
            }
            const logits = Array.from(result.outputs.get('logits')!.data as Float32Array);
            for (const [column, value] of expectedLogits(rowOf(index)).entries())
              expect(logits[column]).toBeCloseTo(value, 5);
          });
          system.shutdown();
        },
      ),
      { numRuns: 25, seed: 15 },
    );
  });

  it('a batcher killed with a batch running and requests queued is restarted; every request is resent and answered once', async () => {
    const h = await harness({ replicas: 1, maxBatchSize: 2 }, 10);
    const answers = [0, 1, 2, 3, 4].map((index) => h.infer(index));
    await system.advance(1);
    expect(h.batches).toEqual([2]); // rows 0-1 run on the replica; 2-4 wait in the queue
    const before = system.whereis(h.version.batcher);
    expect(h.version.crashBatcher()).toBe(true);
    await system.settle();
    const after = system.whereis(h.version.batcher);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    for (let step = 0; step < 10 && h.batches.length < 5; step++) await system.advance(10);
    const results = (await Promise.all(answers)) as InferResult[];
    results.forEach((result, index) => {
      expect(isRequestRejected(result)).toBe(false);
      const logits = Array.from(result.outputs.get('logits')!.data as Float32Array);
      expectedLogits(rowOf(index)).forEach((value, column) => {
        expect(logits[column]).toBeCloseTo(value, 5);
      });
    });
    // The abandoned batch (rows 0-1) ran once more on the new batcher: 2 + 2 + 2 + 1 rows.
    expect(h.batches.slice(1).reduce((a, b) => a + b, 0)).toBe(5);
    expect((await h.metrics.batcherRestarts.get()).values[0].value).toBe(1);
    expect((await h.metrics.resentRequests.get()).values[0].value).toBe(5);
    expect(h.version.ready).toBe(true);
    // Each caller got one reply from the batcher that answered it (the dead one replied to nobody).
    expectAnsweredOnce(h, 5);
    const next = h.infer(9);
    await system.advance(20);
    expect(((await next) as InferResult).batchRows).toBe(1);
  });

  it('a request whose batcher crashes on every try is answered 503 saying so, and the version keeps serving', async () => {
    const h = await harness({ replicas: 1, maxBatchSize: 4, maxQueueDelayMs: 5 });
    const answer = h.infer(0);
    for (let crash = 0; crash <= MAX_BATCHER_RESENDS; crash++) {
      await system.settle();
      expect(h.version.crashBatcher()).toBe(true);
    }
    const outcome = await answer;
    expect(isRequestRejected(outcome) && outcome.status).toBe(503);
    expect(isRequestRejected(outcome) && outcome.message).toContain(
      `batcher of model 'm' crashed ${MAX_BATCHER_RESENDS + 1} times`,
    );
    await system.settle();
    const next = h.infer(1);
    await system.advance(5);
    expect(((await next) as InferResult).batchRows).toBe(1);
    expect((await h.metrics.batcherRestarts.get()).values[0].value).toBe(MAX_BATCHER_RESENDS + 1);
  });
});
