import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import type { HealthCheckChange, HealthStatusChange } from '../../src/fault/index.js';
import {
  aggregateStatus,
  HealthMonitor,
  isHealthCheckError,
  settleCallbacks,
} from '../../src/fault/index.js';

function setup() {
  const clock = new SimulatedClock();
  const monitor = new HealthMonitor({ clock });
  return { clock, monitor };
}

async function advance(clock: SimulatedClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settleCallbacks();
}

describe('HealthMonitor', () => {
  it('is healthy with no checks, and pending checks do not count', async () => {
    const { monitor } = setup();
    expect(monitor.report()).toEqual({ status: 'healthy', checks: [] });
    monitor.register('gpu', { check: () => 'healthy' });
    expect(monitor.report().checks[0].status).toBe('pending');
    expect(monitor.status).toBe('healthy');
  });

  it('runs each check at start and then every intervalMs after it settles', async () => {
    const { clock, monitor } = setup();
    const runsAt: number[] = [];
    monitor.register('disk', { intervalMs: 1000, check: () => void runsAt.push(clock.now()) });
    monitor.start();
    await settleCallbacks();
    await advance(clock, 1000);
    await advance(clock, 1000);
    await advance(clock, 500);
    expect(runsAt).toEqual([0, 1000, 2000]);
    monitor.stop();
    await advance(clock, 5000);
    expect(runsAt).toHaveLength(3);
  });

  it('aggregates: critical unhealthy -> unhealthy, non-critical unhealthy or degraded -> degraded', async () => {
    const { monitor } = setup();
    let gpu: 'healthy' | 'degraded' | 'unhealthy' = 'healthy';
    let cache: 'healthy' | 'unhealthy' = 'healthy';
    monitor.register('gpu', { check: () => gpu });
    monitor.register('cache', { check: () => cache, critical: false });
    expect((await monitor.checkAll()).status).toBe('healthy');
    cache = 'unhealthy';
    expect((await monitor.checkAll()).status).toBe('degraded');
    gpu = 'degraded';
    cache = 'healthy';
    expect((await monitor.checkAll()).status).toBe('degraded');
    gpu = 'unhealthy';
    expect((await monitor.checkAll()).status).toBe('unhealthy');
  });

  it('fails a check that times out, aborting its signal, and ignores its late answer', async () => {
    const { clock, monitor } = setup();
    let aborted = false;
    let answer: (value: 'healthy') => void = () => {};
    monitor.register('network', {
      timeoutMs: 200,
      check: (signal) => {
        signal.addEventListener('abort', () => {
          aborted = true;
        });
        return new Promise((resolve) => (answer = resolve));
      },
    });
    const run = monitor.runCheck('network');
    await advance(clock, 200);
    const state = await run;
    expect(state.status).toBe('unhealthy');
    expect(state.message).toMatch(/timed out after 200 ms/);
    expect(aborted).toBe(true);
    answer('healthy');
    await settleCallbacks();
    expect(monitor.report().checks[0].status).toBe('unhealthy');
  });

  it('treats a thrown error as a failure and keeps its message', async () => {
    const { monitor } = setup();
    monitor.register('db', {
      check: () => {
        throw new Error('connection refused');
      },
    });
    const state = await monitor.runCheck('db');
    expect(state).toMatchObject({
      status: 'unhealthy',
      consecutiveFailures: 1,
      message: 'Error: connection refused',
    });
  });

  it('is degraded below failureThreshold consecutive failures, unhealthy at it, healthy after a success', async () => {
    const { monitor } = setup();
    let ok = false;
    monitor.register('api', { failureThreshold: 3, check: () => (ok ? 'healthy' : 'unhealthy') });
    expect((await monitor.runCheck('api')).status).toBe('degraded');
    expect((await monitor.runCheck('api')).status).toBe('degraded');
    expect((await monitor.runCheck('api')).status).toBe('unhealthy');
    ok = true;
    expect(await monitor.runCheck('api')).toMatchObject({
      status: 'healthy',
      consecutiveFailures: 0,
      runs: 4,
    });
  });

  it('tells listeners about check and aggregate changes, only on change', async () => {
    const { monitor } = setup();
    const checkChanges: HealthCheckChange[] = [];
    const statusChanges: HealthStatusChange[] = [];
    monitor.onCheckChange((change) => checkChanges.push(change));
    const unsubscribe = monitor.onStatusChange((change) => statusChanges.push(change));
    let status: 'healthy' | 'unhealthy' = 'healthy';
    monitor.register('gpu', { check: () => ({ status, message: `gpu is ${status}` }) });
    await monitor.runCheck('gpu');
    await monitor.runCheck('gpu');
    status = 'unhealthy';
    await monitor.runCheck('gpu');
    expect(checkChanges.map((change) => `${change.from}>${change.to}`)).toEqual([
      'pending>healthy',
      'healthy>unhealthy',
    ]);
    expect(statusChanges.map((change) => `${change.from}>${change.to}`)).toEqual(['healthy>unhealthy']);
    expect(statusChanges[0].report.checks[0].message).toBe('gpu is unhealthy');
    unsubscribe();
    status = 'healthy';
    await monitor.runCheck('gpu');
    expect(statusChanges).toHaveLength(1);
  });

  it('never overlaps runs of one check', async () => {
    const { monitor } = setup();
    let running = 0;
    let maxRunning = 0;
    let finish: () => void = () => {};
    monitor.register('slow', {
      check: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((resolve) => (finish = resolve));
        running--;
      },
    });
    const first = monitor.runCheck('slow');
    const second = monitor.runCheck('slow');
    await settleCallbacks();
    finish();
    expect(await first).toBe(await second);
    expect(maxRunning).toBe(1);
  });

  it('unregister removes a check from the aggregate', async () => {
    const { monitor } = setup();
    monitor.register('gpu', { check: () => 'unhealthy' });
    await monitor.runCheck('gpu');
    expect(monitor.status).toBe('unhealthy');
    expect(monitor.unregister('gpu')).toBe(true);
    expect(monitor.status).toBe('healthy');
    expect(monitor.unregister('gpu')).toBe(false);
  });

  it('rejects duplicate names, unknown checks and bad options with typed errors', async () => {
    const { monitor } = setup();
    monitor.register('gpu', { check: () => 'healthy' });
    expect(() => monitor.register('gpu', { check: () => 'healthy' })).toThrow(/duplicate_check/);
    expect(() => monitor.register('x', { check: () => 'healthy', intervalMs: 0 })).toThrow(/intervalMs/);
    expect(() => monitor.register('y', { check: () => 'healthy', failureThreshold: 0 })).toThrow(
      /failureThreshold/,
    );
    const error = await monitor.runCheck('nope').catch((caught) => caught);
    expect(isHealthCheckError(error) && error.reason).toBe('unknown_check');
  });

  it('reports an invalid outcome as a failure', async () => {
    const { monitor } = setup();
    monitor.register('weird', { check: () => 'fine' as never });
    expect((await monitor.runCheck('weird')).status).toBe('unhealthy');
  });

  it('aggregateStatus is the documented rule', () => {
    const base = {
      critical: true,
      message: undefined,
      consecutiveFailures: 0,
      runs: 1,
      lastCheckedAtMs: 0,
      lastDurationMs: 0,
    };
    expect(aggregateStatus([{ ...base, name: 'a', status: 'pending' }])).toBe('healthy');
    expect(aggregateStatus([{ ...base, name: 'a', status: 'degraded' }])).toBe('degraded');
    expect(aggregateStatus([{ ...base, name: 'a', status: 'unhealthy', critical: false }])).toBe('degraded');
    expect(aggregateStatus([{ ...base, name: 'a', status: 'unhealthy' }])).toBe('unhealthy');
  });
});
