import { afterEach, describe, expect, it } from 'vitest';
import { counter, metricsRegistry, SystemObserver, serveMetrics } from '../../src/observe/index.js';
import { supervisedFixture } from './helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The value of the sample `name{labels}` in a Prometheus text body. */
function sample(body: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    if (wanted.every((pair) => inside.split(',').includes(pair)))
      return Number(line.slice(line.indexOf('}') + 1));
  }
  return undefined;
}

describe('metrics on --metrics-port', () => {
  it('serves processes, messages, restarts, mailboxes, reductions, training and devices on 127.0.0.1', async () => {
    const fixture = await supervisedFixture('zbmd@metrics');
    const observer = new SystemObserver(fixture.system);
    cleanups.push(
      () => observer.stop(),
      () => fixture.system.shutdown(),
    );
    await fixture.crashCounter();
    await fixture.crashCounter();
    observer.training.step(1, 2.5, 0);
    observer.training.step(2, 2.25, 500);
    observer.training.epoch(2, 0.5);
    observer.training.recovery(2, 'model_crash');
    observer.watchDevices(() => [
      { id: 'cpu:0', memoryBytes: 1024, health: 'degraded', errorCount: 6, lastError: 'x', current: true },
    ]);
    const server = await serveMetrics(0);
    cleanups.push(() => server.close());
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    const body = await response.text();
    const node = { node: 'zbmd@metrics' };
    expect(sample(body, 'zbmd_processes', node)).toBe(fixture.system.stats().alive);
    expect(sample(body, 'zbmd_messages_sent_total', node)).toBe(fixture.system.stats().messagesSent);
    expect(sample(body, 'zbmd_process_crashes_total', node)).toBe(2);
    expect(
      sample(body, 'zbmd_supervisor_restarts_total', { ...node, supervisor: String(fixture.supervisor) }),
    ).toBe(2);
    expect(body).toMatch(/zbmd_mailbox_length\{node="zbmd@metrics",pid="<[\d.]+>",name="[^"]*"\} 0/);
    expect(sample(body, 'zbmd_reductions', node)).toBeGreaterThan(0);
    expect(sample(body, 'zbmd_training_loss', node)).toBe(2.25);
    expect(sample(body, 'zbmd_training_accuracy', node)).toBe(0.5);
    expect(sample(body, 'zbmd_training_steps_total', node)).toBe(2);
    expect(sample(body, 'zbmd_training_steps_per_second', node)).toBe(2);
    expect(sample(body, 'zbmd_training_recoveries_total', { ...node, cause: 'model_crash' })).toBe(1);
    expect(sample(body, 'zbmd_device_memory_bytes', { ...node, device: 'cpu:0' })).toBe(1024);
    expect(sample(body, 'zbmd_device_health', { ...node, device: 'cpu:0' })).toBe(2);
    expect(await (await fetch(`${server.url}/nothing`)).status).toBe(404);
  });

  it('a stopped observer leaves the metrics; other layers register into the same registry', async () => {
    const fixture = await supervisedFixture('zbmd@gone');
    const observer = new SystemObserver(fixture.system);
    observer.stop();
    fixture.system.shutdown();
    const served = counter('zbmd_test_requests_total', 'A metric another layer registers', ['model']);
    served.inc({ model: 'm' }, 3);
    expect(counter('zbmd_test_requests_total', 'again')).toBe(served);
    const body = await metricsRegistry.metrics();
    expect(body).not.toContain('zbmd@gone');
    expect(body).toContain('zbmd_test_requests_total{model="m"} 3');
  });

  it('rejects a port out of range', async () => {
    await expect(serveMetrics(70_000)).rejects.toThrow(/--metrics-port: expected a port in \[0, 65535\]/);
  });
});
