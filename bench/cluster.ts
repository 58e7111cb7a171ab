/**
 * Cluster benchmark on 127.0.0.1 against a real nats-server started for the run, raw NATS
 * measured in the same run:
 *
 *   nats_request_us            raw NATS request/reply round trip (median)
 *   nats_publish_msgs_per_sec  raw NATS, one publisher of 100-byte messages to one subscriber
 *   nodedown_detect_ms         SIGKILL of a `zbmd node` process -> nodedown here (default 100 ms
 *                              heartbeat; target <= 1,000), median of the runs
 *   leader_failover_ms         SIGKILL of the leading node process -> this node leads (2 s lease;
 *                              target <= 3,000)
 *   global_register_us         registerGlobal + unregisterGlobal of a fresh name, mean
 *
 *   zbmd bench cluster --json [--quick]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { ClusterNode } from '../src/cluster/ClusterNode.js';
import { startNatsServer } from '../src/cluster/internal/natsServer.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const BIN = fileURLToPath(new URL('../../bin/zbmd.js', import.meta.url));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

async function rawNats(url: string, quick: boolean): Promise<{ requestUs: number; publishPerSec: number }> {
  const responder = await connect({ servers: url });
  const client = await connect({ servers: url });
  responder.subscribe('bench.echo', {
    callback: (_error, message) => {
      message.respond(message.data);
    },
  });
  await responder.flush();
  const rounds = quick ? 2_000 : 10_000;
  const payload = new Uint8Array(100);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await client.request('bench.echo', payload, { timeout: 5000 });
    times.push(performance.now() - start);
  }
  const count = quick ? 200_000 : 1_000_000;
  let received = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => (done = resolve));
  responder.subscribe('bench.flood', {
    callback: () => {
      if (++received === count) done();
    },
  });
  await responder.flush();
  const start = performance.now();
  for (let i = 0; i < count; i++) client.publish('bench.flood', payload);
  await client.flush();
  await all;
  const publishPerSec = count / ((performance.now() - start) / 1000);
  await client.close();
  await responder.close();
  return { requestUs: median(times) * 1000, publishPerSec };
}

function spawnNode(
  url: string,
  name: string,
): { child: ChildProcess; started: Promise<void>; leading: Promise<void> } {
  const child = spawn(process.execPath, [BIN, 'node', '--nats', url, '--name', name, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buffer = '';
  let onStarted: () => void = () => {};
  let onLeader: () => void = () => {};
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const leading = new Promise<void>((resolve) => (onLeader = resolve));
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    if (buffer.includes('"kind":"started"')) onStarted();
    if (buffer.includes('"kind":"leader"')) onLeader();
  });
  return { child, started, leading };
}

async function nodedownDetection(url: string, runs: number): Promise<number> {
  const observer = await ClusterNode.start({ name: 'bench-observer', nats: url, election: false });
  const times: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const name = `bench-victim-${run}`;
      const victim = spawnNode(url, name);
      await new Promise<void>((resolve) => {
        const off = observer.monitorNodes((event) => {
          if (event.kind === 'nodeup' && event.node.name === name) {
            off();
            resolve();
          }
        });
      });
      await new Promise((resolve) => setTimeout(resolve, 2000)); // a heartbeat history
      const down = new Promise<number>((resolve) => {
        const off = observer.monitorNodes((event) => {
          if (event.kind === 'nodedown' && event.node.name === name) {
            off();
            resolve(performance.now());
          }
        });
      });
      const killedAt = performance.now();
      victim.child.kill('SIGKILL');
      times.push((await down) - killedAt);
    }
  } finally {
    await observer.close();
  }
  return median(times);
}

async function leaderFailover(url: string): Promise<number> {
  const first = spawnNode(url, 'bench-leader');
  await first.leading;
  const follower = await ClusterNode.start({ name: 'bench-follower', nats: url, cluster: 'zbmd' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const leads = new Promise<number>((resolve) => follower.onLeader(() => resolve(performance.now())));
    const killedAt = performance.now();
    first.child.kill('SIGKILL');
    return (await leads) - killedAt;
  } finally {
    await follower.close();
  }
}

async function globalRegister(url: string, count: number): Promise<number> {
  const node = await ClusterNode.start({
    name: 'bench-registrar',
    nats: url,
    election: false,
    cluster: 'registry',
  });
  try {
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      await node.registerGlobal(`name-${i}`, '<0.1.0>');
      await node.unregisterGlobal(`name-${i}`);
    }
    return ((performance.now() - start) * 1000) / count;
  } finally {
    await node.close();
  }
}

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const server = await startNatsServer();
  try {
    const raw = await rawNats(server.url, options.quick);
    const detect = await nodedownDetection(server.url, options.quick ? 1 : 3);
    const failover = await leaderFailover(server.url);
    const register = await globalRegister(server.url, options.quick ? 100 : 500);
    return {
      nats_request_us: round(raw.requestUs),
      nats_publish_msgs_per_sec: Math.round(raw.publishPerSec),
      nodedown_detect_ms: round(detect),
      leader_failover_ms: round(failover),
      global_register_us: round(register),
      remote_pingpong_us: 'not measured: remote processes need the ActorSystem transport (issue 13, open)',
      nats_server: 'nats-server on 127.0.0.1 (Debian package)',
      node: process.version,
    };
  } finally {
    await server.stop();
  }
}
