/**
 * `zbmd node`, `zbmd cluster up` and `zbmd cluster status`:
 *
 *   zbmd node --nats nats://127.0.0.1:4222 --name n1     one node on this machine (Ctrl-C leaves)
 *   zbmd cluster up --nodes 3                             a local 3-server JetStream cluster and 3 nodes
 *   zbmd cluster status --nats nats://127.0.0.1:4222      nodes and their phi, the leader, global names
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { Packr } from 'msgpackr';
import type { NodeEvent } from '../cluster/Membership.js';
import { addObserveOptions, type ObserveCliOptions } from './observe.js';

interface NodeCommandOptions extends ObserveCliOptions {
  readonly nats: string;
  readonly name: string;
  readonly cluster: string;
  readonly user?: string;
  readonly password?: string;
  readonly replicas: number;
  readonly json: boolean;
}

interface UpOptions {
  readonly nodes: number;
  readonly servers: number;
  readonly cluster: string;
}

interface StatusOptions {
  readonly nats: string;
  readonly cluster: string;
  readonly listenMs: number;
  readonly json: boolean;
}

function integerIn(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${flag} takes an integer from ${min} to ${max}, not '${value}'`);
    }
    return parsed;
  };
}

function token(flag: string): (value: string) => string {
  return (value) => {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
      throw new InvalidArgumentError(`${flag} takes 1 to 64 letters, digits, '-' or '_', not '${value}'`);
    }
    return value;
  };
}

function natsUrls(value: string): string {
  for (const url of value.split(',')) {
    if (!/^(nats|tls):\/\/[^\s/]+:\d{1,5}$/.test(url.trim())) {
      throw new InvalidArgumentError(
        `--nats takes nats://HOST:PORT (several separated by commas), not '${value}'`,
      );
    }
  }
  return value;
}

function describeEvent(event: NodeEvent): string {
  if (event.kind === 'quarantined')
    return `declared down by ${event.by.name}; rejoining as a new incarnation`;
  const node = `${event.node.name}#${event.node.incarnation}`;
  return event.kind === 'nodeup' ? `nodeup ${node}` : `nodedown ${node} (${event.reason})`;
}

async function runNode(options: NodeCommandOptions, write: (line: string) => void): Promise<void> {
  const { ClusterNode } = await import('../cluster/ClusterNode.js');
  process.title = `zbmd node ${options.name}`;
  const node = await ClusterNode.start({
    name: options.name,
    cluster: options.cluster,
    nats: options.nats.split(','),
    credentials:
      options.user === undefined ? undefined : { user: options.user, password: options.password ?? '' },
    replicas: options.replicas,
  });
  const say = (text: string, fields: Record<string, unknown>): void =>
    write(options.json ? JSON.stringify(fields) : `${options.name}: ${text}`);
  say(`joined cluster '${options.cluster}' as ${node.self.name}#${node.self.incarnation}`, {
    kind: 'started',
    self: node.self,
  });
  node.monitorNodes((event) => say(describeEvent(event), event as unknown as Record<string, unknown>));
  // The observer: --metrics-port (zbmd_cluster_* and the runtime's), --control for zbmd top.
  const { ActorSystem } = await import('../actor/ActorSystem.js');
  const { createLogger, resolveLogLevel } = await import('../observe/logger.js');
  const { observeSystem } = await import('./observe.js');
  const system = new ActorSystem({ nodeName: options.name });
  const observation = await observeSystem(
    system,
    options,
    createLogger({ level: resolveLogLevel(options.logLevel, process.env) }),
    (line) => process.stderr.write(`${line}\n`),
  ).catch(async (error: unknown) => {
    system.shutdown();
    await node.close();
    throw error;
  });
  observation.observer.watchCluster(node);
  node.onLeader((term) => say(`leader (term ${term})`, { kind: 'leader', term }));
  node.onFollower((leader) =>
    say(`following ${leader ?? 'nobody yet'}`, { kind: 'follower', leader: leader ?? null }),
  );
  await new Promise<void>((resolve) => {
    const leave = (): void => {
      process.off('SIGINT', leave);
      process.off('SIGTERM', leave);
      resolve();
    };
    process.on('SIGINT', leave);
    process.on('SIGTERM', leave);
  });
  await observation.close();
  system.shutdown();
  await node.close();
  say('left the cluster', { kind: 'left' });
}

async function clusterUp(options: UpOptions, write: (line: string) => void): Promise<void> {
  const { startNatsCluster } = await import('../cluster/internal/natsServer.js');
  const servers = await startNatsCluster(options.servers);
  const urls = servers.map((server) => server.url).join(',');
  write(`nats-server x${servers.length} (JetStream, 127.0.0.1): ${urls}`);
  const bin = fileURLToPath(new URL('../../../bin/zbmd.js', import.meta.url));
  const replicas = options.servers >= 3 ? '3' : '1';
  const children = Array.from({ length: options.nodes }, (_, index) => {
    const name = `n${index + 1}`;
    const child = spawn(
      process.execPath,
      [bin, 'node', '--nats', urls, '--name', name, '--cluster', options.cluster, '--replicas', replicas],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    return child;
  });
  write(
    `${options.nodes} zbmd nodes starting; try: zbmd cluster status --nats ${urls.split(',')[0]}; Ctrl-C stops everything`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
  await Promise.all(servers.map((server) => server.stop()));
  write('stopped');
}

/** Reads a cluster from outside: listens to heartbeats for a moment, then reads the buckets. */
async function clusterStatus(options: StatusOptions, write: (line: string) => void): Promise<void> {
  const { NatsTransport } = await import('../cluster/NatsTransport.js');
  const transport = await NatsTransport.connect({
    servers: options.nats.split(','),
    name: 'zbmd cluster status',
  });
  try {
    const packer = new Packr({ useRecords: false });
    const beats = new Map<string, number[]>();
    const unsubscribe = transport.subscribe(`zbmd.${options.cluster}.heartbeat`, (data) => {
      try {
        const { n, i } = packer.unpack(data) as { n: string; i: number };
        const key = `${n}#${i}`;
        beats.set(key, [...(beats.get(key) ?? []), Date.now()]);
      } catch {
        // not a heartbeat: ignored here, the nodes log it
      }
    });
    await new Promise((resolve) => setTimeout(resolve, options.listenMs));
    unsubscribe();
    const leaderBucket = await transport.openBucket(`zbmd_${options.cluster}_leader`);
    const leaderEntry = await leaderBucket.get('leader');
    const leader = leaderEntry === undefined ? null : new TextDecoder().decode(leaderEntry.value);
    const names: { name: string; holder: unknown }[] = [];
    const namesBucket = await transport.openBucket(`zbmd_${options.cluster}_names`);
    for (const key of await namesBucket.keys()) {
      const entry = await namesBucket.get(key);
      if (entry === undefined || !key.startsWith('n.')) continue;
      names.push({
        name: Buffer.from(key.slice(2), 'base64url').toString('utf8'),
        holder: packer.unpack(entry.value),
      });
    }
    const nodes = [...beats].map(([node, times]) => ({
      node,
      heartbeats: times.length,
      lastSeenMsAgo: Date.now() - times[times.length - 1],
    }));
    if (options.json) {
      write(JSON.stringify({ cluster: options.cluster, nodes, leader, names }));
      return;
    }
    write(
      `cluster '${options.cluster}': ${nodes.length} node(s) heard in ${options.listenMs} ms; leader ${leader ?? 'none'}`,
    );
    for (const node of nodes)
      write(`  ${node.node.padEnd(20)} ${node.heartbeats} heartbeats, last ${node.lastSeenMsAgo} ms ago`);
    for (const entry of names) write(`  name ${entry.name} -> ${JSON.stringify(entry.holder)}`);
  } finally {
    await transport.close();
  }
}

export function registerClusterCommands(program: Command): void {
  const node = program
    .command('node')
    .description('run one zbmd cluster node on this machine (Ctrl-C leaves the cluster)')
    .requiredOption('--nats <urls>', 'NATS server URL(s), comma-separated', natsUrls)
    .requiredOption('--name <name>', 'this node name (letters, digits, - and _)', token('--name'))
    .option('--cluster <name>', 'cluster name', token('--cluster'), 'zbmd')
    .option('--user <user>', 'nats-server user')
    .option('--password <password>', 'nats-server password')
    .option(
      '--replicas <n>',
      'replicas of the cluster buckets (3 on a 3-server JetStream cluster)',
      integerIn('--replicas', 1, 5),
      1,
    )
    .option('--json', 'one JSON object per event', false);
  addObserveOptions(node, ['metricsPort', 'logLevel', 'control', 'view']).action(
    (options: NodeCommandOptions) => runNode(options, (line) => console.log(line)),
  );

  const cluster = program
    .command('cluster')
    .description('a local cluster to try zbmd on one machine, and its status');
  cluster
    .command('up')
    .description(
      'start a local JetStream cluster (nats-server on 127.0.0.1) and zbmd nodes; Ctrl-C stops them',
    )
    .option('--nodes <n>', 'zbmd nodes', integerIn('--nodes', 1, 16), 3)
    .option('--servers <n>', 'nats-server processes', integerIn('--servers', 1, 9), 3)
    .option('--cluster <name>', 'cluster name', token('--cluster'), 'zbmd')
    .action((options: UpOptions) => clusterUp(options, (line) => console.log(line)));
  cluster
    .command('status')
    .description('the nodes heard, the leader and the global names of a running cluster')
    .requiredOption('--nats <urls>', 'NATS server URL(s), comma-separated', natsUrls)
    .option('--cluster <name>', 'cluster name', token('--cluster'), 'zbmd')
    .option(
      '--listen-ms <ms>',
      'how long to listen for heartbeats',
      integerIn('--listen-ms', 100, 60_000),
      500,
    )
    .option('--json', 'one JSON object', false)
    .action((options: StatusOptions) => clusterStatus(options, (line) => console.log(line)));
}
