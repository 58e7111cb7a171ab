import { afterEach, describe, expect, it } from 'vitest';
import { SystemObserver } from '../../src/observe/index.js';
import type { InferenceServer } from '../../src/serve/index.js';
import { get, post, startTestServer, TINY_ONNX, tinyRequest } from '../serve/helpers.js';

const servers: InferenceServer[] = [];
const observers: SystemObserver[] = [];
afterEach(async () => {
  for (const observer of observers.splice(0)) observer.stop();
  for (const server of servers.splice(0)) await server.close();
});

async function scrape(server: InferenceServer): Promise<string> {
  const answer = await get(`${server.url}/metrics`);
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/text\/plain/);
  return answer.body as string;
}

describe("serving's metrics in the shared registry", () => {
  it("GET /metrics of a real server shows zbmd_serve_* and the runtime's families of its system", async () => {
    const { server } = await startTestServer({ models: [{ path: TINY_ONNX }], replicas: 2 });
    servers.push(server);
    observers.push(new SystemObserver(server.system));
    expect((await post(`${server.url}/v2/models/tiny/infer`, tinyRequest(2))).status).toBe(200);
    const body = await scrape(server);
    expect(body).toMatch(/zbmd_serve_requests_total\{model="tiny",code="200"\} 1/);
    expect(body).toMatch(/zbmd_serve_batch_size_sum\{model="tiny"\} 2/);
    const node = server.system.nodeName;
    const processes = new RegExp(`^zbmd_processes\\{node="${node}"\\} (\\d+)$`, 'm').exec(body);
    expect(processes, body).not.toBeNull();
    expect(Number(processes![1])).toBe(server.system.stats().alive);
    expect(body).toMatch(new RegExp(`^zbmd_messages_sent_total\\{node="${node}"\\} [1-9]`, 'm'));
    expect(body).toMatch(/^# TYPE zbmd_supervisor_restarts_total counter$/m);
    expect(body).toMatch(/^zbmd_mailbox_length\{node="[^"]+",pid="<[\d.]+>",name="[^"]*"\} \d+$/m);
    // Each family once: the two registries are combined, not concatenated twice.
    expect(body.match(/^# TYPE zbmd_processes gauge$/gm)).toHaveLength(1);
    expect(body.match(/^# TYPE zbmd_serve_requests_total counter$/gm)).toHaveLength(1);
  });

  it("two servers in one process keep their own counters and share the runtime's", async () => {
    const first = (await startTestServer({ models: [{ path: TINY_ONNX }] })).server;
    servers.push(first);
    const second = (await startTestServer({ models: [{ path: TINY_ONNX }] })).server;
    servers.push(second);
    observers.push(new SystemObserver(first.system), new SystemObserver(second.system));
    for (let i = 0; i < 3; i++) await post(`${first.url}/v2/models/tiny/infer`, tinyRequest(1));
    await post(`${second.url}/v2/models/tiny/infer`, tinyRequest(1));
    const firstBody = await scrape(first);
    const secondBody = await scrape(second);
    expect(firstBody).toMatch(/zbmd_serve_requests_total\{model="tiny",code="200"\} 3/);
    expect(secondBody).toMatch(/zbmd_serve_requests_total\{model="tiny",code="200"\} 1/);
    // The shared registry's series of both systems are on both endpoints.
    for (const body of [firstBody, secondBody]) {
      expect(body).toContain(`zbmd_processes{node="${first.system.nodeName}"}`);
      if (second.system.nodeName !== first.system.nodeName)
        expect(body).toContain(`zbmd_processes{node="${second.system.nodeName}"}`);
    }
  });
});
