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
 *   remote_pingpong_us         a process on node a sends to a process on node b, which sends it
 *                              back (ClusterNode.attach, one connection per node; median round
 *                              trip; target <= 1.3x nats_request_us)
 *   remote_msgs_per_sec        one sender on node a, 100-byte messages (Uint8Array) to one process
 *                              on node b, until all arrive (target >= 0.7x nats_publish_msgs_per_sec)
 *
 *   zbmd bench cluster --json [--quick]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { ActorSystem, type Context } from '../src/actor/ActorSystem.js';
import type { Pid } from '../src/actor/Pid.js';
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

/** Two nodes in this process, each with an attached actor system: ping-pong and a one-way flood. */
async function remoteProcesses(
  url: string,
  quick: boolean,
): Promise<{ pingpongUs: number; msgsPerSec: number }> {
  const start = async (name: string) => {
    const node = await ClusterNode.start({ name, nats: url, election: false, cluster: 'remote' });
    const system = new ActorSystem({ nodeName: name });
    return { node, system, remote: node.attach(system) };
  };
  const a = await start('bench-a');
  const b = await start('bench-b');
  try {
    while (
      !a.node.nodes().some((n) => n.name === 'bench-b') ||
      !b.node.nodes().some((n) => n.name === 'bench-a')
    )
      await new Promise((resolve) => setTimeout(resolve, 20));
    const echo = b.remote.pid(
      b.system.spawn(async (ctx: Context) => {
        for (;;) {
          const [from, value] = (await ctx.receive()) as [Pid, unknown];
          ctx.send(from, value);
        }
      }),
    );
    const rounds = quick ? 2_000 : 10_000;
    const payload = new Uint8Array(100);
    const times: number[] = [];
    await new Promise<void>((resolve) =>
      a.system.spawn(async (ctx: Context) => {
        for (let i = 0; i < rounds; i++) {
          const begin = performance.now();
          ctx.send(echo, [ctx.self, payload]);
          await ctx.receive();
          times.push(performance.now() - begin);
        }
        resolve();
      }),
    );
    const count = quick ? 200_000 : 1_000_000;
    let received = 0;
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => (done = resolve));
    const sink = b.remote.pid(
      b.system.spawn(
        async (ctx: Context) => {
          for (;;) {
            await ctx.receive();
            if (++received === count) done();
          }
        },
        { mailbox: { capacity: count + 1 } },
      ),
    );
    const begin = performance.now();
    // batched: the sender yields every 10,000 sends (a process' time slice would do the same)
    for (let i = 0; i < count; i++) {
      a.system.send(sink, payload);
      if (i % 10_000 === 9_999) await new Promise((resolve) => setImmediate(resolve));
    }
    let timer: NodeJS.Timeout | undefined;
    const lost = new Promise<void>((resolve) => (timer = setTimeout(resolve, 60_000)));
    await Promise.race([all, lost]);
    clearTimeout(timer);
    if (received < count)
      throw new Error(`remote_msgs_per_sec: ${received} of ${count} messages arrived within 60 s`);
    const msgsPerSec = count / ((performance.now() - begin) / 1000);
    return { pingpongUs: median(times) * 1000, msgsPerSec };
  } finally {
    await a.node.close();
    await b.node.close();
    a.system.shutdown();
    b.system.shutdown();
  }
}

export async function run(options: BenchOptions): Promise<Record<string, number | string>> {
  const server = await startNatsServer();
  try {
    const raw = await rawNats(server.url, options.quick);
    const detect = await nodedownDetection(server.url, options.quick ? 1 : 3);
    const failover = await leaderFailover(server.url);
    const register = await globalRegister(server.url, options.quick ? 100 : 500);
    const remote = await remoteProcesses(server.url, options.quick);
    return {
      nats_request_us: round(raw.requestUs),
      nats_publish_msgs_per_sec: Math.round(raw.publishPerSec),
      nodedown_detect_ms: round(detect),
      leader_failover_ms: round(failover),
      global_register_us: round(register),
      remote_pingpong_us: round(remote.pingpongUs),
      remote_msgs_per_sec: Math.round(remote.msgsPerSec),
      remote_pingpong_vs_nats_request: round(remote.pingpongUs / raw.requestUs, 2),
      remote_msgs_vs_nats_publish: round(remote.msgsPerSec / raw.publishPerSec, 2),
      nats_server: 'nats-server on 127.0.0.1 (Debian package)',
      node: process.version,
    };
  } finally {
    await server.stop();
  }
}
