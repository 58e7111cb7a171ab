/**
 * Serving under replica crashes: the real dynamic batcher and supervised replicas of one model
 * version (`serve/internal/ModelVersion.ts`, as `zbmd serve` runs them) on the simulated clock,
 * fed a seeded request stream (rows, gaps, deadlines), with replicas killed by injected
 * `actor_crash` faults (one decision per simulated millisecond, so a failing seed shrinks).
 *
 * The oracle: every accepted request is answered exactly once (a result, or a typed rejection:
 * 429 queue full at once, 500 after two failed tries, 503, 504), none lost and none twice; every
 * batch holds at most `maxBatchSize` rows; a result holds exactly the reference model's outputs
 * for that request's own rows; a 504 comes no earlier than the deadline, and no answer comes
 * later than the deadline plus one run of a batch (a batch already running finishes first).
 */
import { ActorSystem } from '../actor/ActorSystem.js';
import type { SimulatedClock } from '../actor/Clock.js';
import { BatchCall, type InferOutcome, type InferResult } from '../serve/Batcher.js';
import { isRequestRejected } from '../serve/errors.js';
import { ModelVersion } from '../serve/internal/ModelVersion.js';
import type { HostTensor, ModelSource } from '../serve/ModelSource.js';
import { ServeMetrics } from '../serve/metrics.js';
import { batchKey, parseInferRequest } from '../serve/protocol.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const SCENARIO = 'serving';
const FEATURES = 2;

/** The reference model: y = 2x + 1, element by element. */
function reference(x: number): number {
  return Math.fround(Math.fround(2 * x) + 1);
}

/** A model that takes `runMs` of simulated time per batch and reports each batch's rows. */
function referenceSource(clock: SimulatedClock, runMs: number, onRun: (rows: number) => void): ModelSource {
  const spec = [{ name: 'input', datatype: 'FP32' as const, shape: [-1, FEATURES] }];
  return {
    platform: 'zbmd',
    inputs: spec,
    outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, FEATURES] }],
    batchable: true,
    origin: 'memory',
    open: async () => ({
      run: (inputs) =>
        new Promise<Map<string, HostTensor>>((resolve) => {
          const input = inputs.get('input')!;
          onRun(input.shape[0]);
          clock.setTimer(runMs, () => {
            const data = Float32Array.from(input.data as Float32Array, reference);
            resolve(new Map([['output', { datatype: 'FP32', shape: input.shape, data }]]));
          });
        }),
      close: async () => {},
    }),
  };
}

interface Sent {
  readonly index: number;
  readonly rows: number[][];
  readonly sentAt: number;
  readonly deadlineMs: number;
  outcome?: InferOutcome;
  answeredAt?: number;
}

async function servingScenario(context: SimulationContext): Promise<void> {
  const { clock, random, coverage, faults } = context;
  const between = (low: number, high: number) => low + random.nextInt(high - low + 1);
  const settings = {
    replicas: between(1, 3),
    maxBatchSize: between(1, 6),
    maxQueueDelayMs: between(0, 4),
    maxQueueSize: between(4, 40),
    replicaCallTimeoutMs: 60_000,
    restartIntensity: 10_000,
    restartPeriodMs: 10_000,
    breakerFailureThreshold: between(1, 4),
    breakerResetTimeoutMs: between(20, 200),
  };
  const runMs = between(1, 8);
  const violations: InvariantViolation[] = [];
  const violate = (invariant: string) => violations.push(new InvariantViolation(SCENARIO, invariant));
  const system = new ActorSystem({ clock, onCrash: () => {} });
  const replies = new Map<object, number>();
  const reply = system.reply.bind(system);
  system.reply = (from, value) => {
    if (isRequestRejected(value) || (value as InferResult)?.outputs !== undefined)
      replies.set(from, (replies.get(from) ?? 0) + 1);
    return reply(from, value);
  };
  const onBatch = (rows: number) => {
    if (rows > settings.maxBatchSize)
      violate(`a batch of ${rows} rows was sent; max batch is ${settings.maxBatchSize}`);
    if (rows === settings.maxBatchSize) coverage.hit('full-batch');
  };
  const source = referenceSource(clock, runMs, onBatch);
  let crashes = 0;
  try {
    const version = await ModelVersion.start(
      system,
      'm',
      '1',
      source,
      { ...settings, onBatch },
      new ServeMetrics(),
    );
    const sent: Sent[] = [];
    const count = between(10, 60);
    for (let index = 0; index < count; index++) {
      const gap = between(0, 4);
      for (let step = 0; step < gap; step++) {
        await system.advance(1);
        if (faults.shouldCrashActor()) {
          const replica = random.nextInt(settings.replicas);
          if (version.crashReplica(replica)) {
            crashes++;
            coverage.hit(version.slots[replica].busy ? 'crash-mid-batch' : 'crash-idle');
          }
        }
      }
      const rowCount = between(1, Math.min(3, settings.maxBatchSize));
      const rows = Array.from({ length: rowCount }, () =>
        Array.from({ length: FEATURES }, () => Math.round(random.next() * 1000) / 8),
      );
      const request = parseInferRequest(
        { inputs: [{ name: 'input', shape: [rowCount, FEATURES], datatype: 'FP32', data: rows.flat() }] },
        source.inputs,
        source.outputs,
        true,
      );
      if (isRequestRejected(request))
        throw new InvariantViolation(SCENARIO, `request refused: ${request.message}`);
      const entry: Sent = { index, rows, sentAt: clock.now(), deadlineMs: clock.now() + between(3, 120) };
      sent.push(entry);
      system
        .call<InferOutcome>(version.batcher, new BatchCall(request, batchKey(request), entry.deadlineMs), 1e9)
        .then(
          (outcome) => {
            entry.outcome = outcome;
            entry.answeredAt = clock.now();
          },
          (error) => violate(`request ${index}: the call failed with ${String(error)}`),
        );
    }
    for (let t = 0; t < 2_000 && sent.some((entry) => entry.outcome === undefined); t++)
      await system.advance(1);
    await system.settle();
    for (const entry of sent) checkAnswer(entry, settings.maxBatchSize, runMs, crashes, violate, coverage);
    if (replies.size !== sent.length || [...replies.values()].some((n) => n !== 1))
      violate(
        `${sent.length} requests, ${replies.size} callers answered, counts ${[...replies.values()].join(',')}`,
      );
    if (violations.length > 0) throw violations[0];
  } finally {
    system.shutdown();
  }
}

function checkAnswer(
  entry: Sent,
  maxBatchSize: number,
  runMs: number,
  crashes: number,
  violate: (invariant: string) => void,
  coverage: SimulationContext['coverage'],
): void {
  const { outcome, answeredAt, index } = entry;
  if (outcome === undefined || answeredAt === undefined) {
    violate(
      `request ${index} (sent at ${entry.sentAt} ms, deadline ${entry.deadlineMs} ms) was never answered`,
    );
    return;
  }
  if (answeredAt > entry.deadlineMs + runMs + 1)
    violate(
      `request ${index} answered at ${answeredAt} ms, past its deadline ${entry.deadlineMs} ms plus one run (${runMs} ms)`,
    );
  if (isRequestRejected(outcome)) {
    coverage.hit(`rejected-${outcome.status}`);
    if (outcome.status === 504 && answeredAt < entry.deadlineMs)
      violate(`request ${index} got 504 at ${answeredAt} ms, before its deadline ${entry.deadlineMs} ms`);
    // Without crashes a 504 is a request that waited in the queue: the batcher's deadline timer
    // answers it at its deadline, not at whatever event (a batch done, a new request) comes next.
    if (outcome.status === 504 && crashes === 0 && answeredAt !== entry.deadlineMs) {
      violate(`request ${index} got 504 at ${answeredAt} ms; its deadline was ${entry.deadlineMs} ms`);
    }
    if (outcome.status === 504 && crashes === 0) coverage.hit('rejected-504-on-time');
    if (outcome.status === 429 && answeredAt !== entry.sentAt)
      violate(`request ${index} got 429 at ${answeredAt} ms, not at once (${entry.sentAt} ms)`);
    if (outcome.status === 500 && crashes < 2)
      violate(`request ${index} got 500 (two failed tries) with ${crashes} replica crash(es)`);
    if (![429, 500, 503, 504].includes(outcome.status))
      violate(`request ${index} got ${outcome.status}: ${outcome.message}`);
    return;
  }
  coverage.hit(outcome.attempts === 2 ? 'answered-on-retry' : 'answered');
  if (outcome.batchRows > maxBatchSize || outcome.batchRows < entry.rows.length)
    violate(`request ${index} ran in a batch of ${outcome.batchRows} rows (its own: ${entry.rows.length})`);
  if (outcome.batchRows > entry.rows.length) coverage.hit('shared-batch');
  if (outcome.attempts === 2 && crashes === 0) violate(`request ${index} took two tries without a crash`);
  const output = outcome.outputs.get('output');
  const expected = entry.rows.flat().map(reference);
  const actual = output === undefined ? [] : Array.from(output.data as Float32Array);
  if (expected.length !== actual.length || expected.some((value, i) => value !== actual[i]))
    violate(
      `request ${index} got outputs [${actual.join(', ')}], the reference gives [${expected.join(', ')}]`,
    );
}

export const SERVING_SCENARIOS: readonly Scenario[] = [
  {
    name: SCENARIO,
    description:
      'the batcher and supervised replicas under a request stream with replica crashes: every accepted request answered once, with its own outputs, in bounded time',
    faults: { actorCrashRate: 0.04 },
    run: servingScenario,
    branches: [
      'full-batch',
      'shared-batch',
      'crash-mid-batch',
      'crash-idle',
      'answered',
      'answered-on-retry',
      'rejected-429',
      'rejected-504',
      'rejected-504-on-time',
      'rejected-500',
      'rejected-503',
    ],
  },
];
