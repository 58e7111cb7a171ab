/** The @example blocks of src/fault, run as written (with the names they assume defined). */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import type { SimulationContext } from '../../src/fault/index.js';
import {
  CheckpointManager,
  CircuitBreaker,
  FaultInjector,
  InMemoryCheckpointStore,
  PhiAccrualDetector,
  runSimulation,
  Saga,
} from '../../src/fault/index.js';

describe('documentation examples', () => {
  it('PhiAccrualDetector', () => {
    const clock = new SimulatedClock();
    const detector = new PhiAccrualDetector({ clock });
    for (let i = 0; i < 10; i++) {
      detector.heartbeat();
      clock.advance(1000);
    }
    expect(detector.isAvailable()).toBe(true);
    clock.advance(10_000);
    expect(detector.isAvailable()).toBe(false);
  });

  it('CircuitBreaker', async () => {
    const clock = new SimulatedClock();
    const fetchModel = async () => ({ name: 'mnist' });
    const breaker = new CircuitBreaker({ failureThreshold: 3, clock });
    const value = await breaker.call(() => fetchModel());
    expect(value).toEqual({ name: 'mnist' });
  });

  it('FaultInjector', () => {
    const faults = new FaultInjector({ messageDropRate: 0.1, seed: 7 });
    const delivered: number[] = [];
    const deliver = (message: number): void => {
      if (faults.shouldDropMessage()) return; // the runtime drops the message
      delivered.push(message);
    };
    for (let message = 0; message < 1000; message++) deliver(message);
    expect(delivered.length + faults.counts().message_drop).toBe(1000);
  });

  it('Saga', async () => {
    const released: string[] = [];
    const release = (devices: string[]) => released.push(...devices);
    const context = { devices: [] as string[] };
    const saga = new Saga<typeof context>('train', [
      {
        name: 'allocate',
        action: (c) => void c.devices.push('gpu0'),
        compensate: (c) => void release(c.devices),
      },
      {
        name: 'train',
        action: () => {
          throw new Error('OOM');
        },
      },
    ]);
    const result = await saga.run(context);
    expect(result.status).toBe('compensated');
    expect(released).toEqual(['gpu0']);
  });

  it('runSimulation', async () => {
    const scenario = async ({ faults }: SimulationContext) => {
      if (faults.shouldCrashActor()) throw new Error('crashed');
    };
    const report = await runSimulation({ scenario, seeds: 1000, faults: { actorCrashRate: 0.01 } });
    const lines: string[] = [];
    for (const failure of report.failures) lines.push(`replay with seed ${failure.seed}`);
    expect(lines.length).toBe(report.failedRuns);
  });

  it('CheckpointManager', async () => {
    const store = new InMemoryCheckpointStore();
    const serialize = (state: { count: number }) => Buffer.from(JSON.stringify(state));
    const deserialize = (bytes: Uint8Array) => JSON.parse(Buffer.from(bytes).toString()) as { count: number };
    const state = { count: 3 };
    const mailbox = [{ add: 1 }];
    const manager = new CheckpointManager({ store, serialize, deserialize });
    await manager.checkpoint('counter', { state, messages: mailbox });
    const restored = await manager.restore('counter'); // { state, messages, metadata }
    expect(restored).toMatchObject({
      state: { count: 3 },
      messages: [{ add: 1 }],
      metadata: { messageCount: 1 },
    });
  });
});
