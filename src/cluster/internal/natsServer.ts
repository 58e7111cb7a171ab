/**
 * Starts and stops real `nats-server` processes (Debian's package, 2.9.x) on 127.0.0.1: one
 * server, or a JetStream cluster of several, each in its own store directory. Used by
 * `zbmd cluster up` and by the tests; the servers bind loopback only and do not advertise
 * their addresses, so clients never follow gossip to an address other than 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterError } from '../errors.js';

/** How long a server may take to say it is ready. */
export const NATS_SERVER_START_TIMEOUT_MS = 10_000;
/** How long a server may take to exit after SIGTERM before it is killed. */
export const NATS_SERVER_STOP_TIMEOUT_MS = 5_000;

export interface NatsServerOptions {
  /** Client port; default: a free port. */
  readonly port?: number;
  /** Enable JetStream (default true), storing under `storeDir` (default: a new temp dir). */
  readonly jetstream?: boolean;
  readonly storeDir?: string;
  readonly serverName?: string;
  /** Join a cluster: this server's route port and the routes of the others. */
  readonly cluster?: { readonly name: string; readonly port: number; readonly routes: readonly string[] };
  /** Require this user and password from clients. */
  readonly user?: string;
  readonly password?: string;
  /** The executable (default `nats-server` on PATH). */
  readonly binary?: string;
  /**
   * Lines of a nats-server configuration file (written into the store directory, passed with
   * `-c`), for settings that have no command-line flag, such as `max_pending: 65536`.
   */
  readonly config?: readonly string[];
}

/** A running `nats-server` process. */
export class NatsServer {
  #exited: Promise<number | null>;
  #ownsStore: boolean;

  constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
    readonly storeDir: string,
    ownsStore: boolean,
    readonly name: string,
  ) {
    this.#ownsStore = ownsStore;
    this.#exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT...) without waiting. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Resolves once the process has exited. */
  exited(): Promise<number | null> {
    return this.#exited;
  }

  /** SIGTERM, then SIGKILL after the stop timeout; removes a store directory it created. */
  async stop(options: { keepStore?: boolean } = {}): Promise<void> {
    if (this.running) {
      this.child.kill('SIGCONT'); // a stopped process cannot handle SIGTERM
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), NATS_SERVER_STOP_TIMEOUT_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    if (this.#ownsStore && !options.keepStore) await rm(this.storeDir, { recursive: true, force: true });
  }
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function argumentsOf(options: NatsServerOptions, port: number, storeDir: string, name: string): string[] {
  const args = ['-a', '127.0.0.1', '-p', String(port), '--server_name', name];
  if (options.jetstream ?? true) args.push('-js', '-sd', storeDir);
  if (options.user !== undefined) args.push('--user', options.user, '--pass', options.password ?? '');
  if (options.cluster !== undefined) {
    args.push(
      '--cluster_name',
      options.cluster.name,
      '--cluster',
      `nats://127.0.0.1:${options.cluster.port}`,
    );
    if (options.cluster.routes.length > 0) args.push('--routes', options.cluster.routes.join(','));
    args.push('--no_advertise=true');
  }
  return args;
}

/** Starts one server and resolves once it accepts clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = options.port ?? (await freePort());
  const ownsStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), 'zbmd-nats-')));
  const name = options.serverName ?? `zbmd-${port}`;
  const binary = options.binary ?? 'nats-server';
  const args = argumentsOf(options, port, storeDir, name);
  if (options.config !== undefined) {
    const file = join(storeDir, 'zbmd-nats.conf');
    await writeFile(file, `${options.config.join('\n')}\n`);
    args.unshift('-c', file);
  }
  const child = spawn(binary, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const server = new NatsServer(child, `nats://127.0.0.1:${port}`, port, storeDir, ownsStore, name);
  try {
    await waitUntilReady(child, binary);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

function waitUntilReady(child: ChildProcess, binary: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => {
      fail(`${binary} did not report ready within ${NATS_SERVER_START_TIMEOUT_MS} ms:\n${log.slice(-2000)}`);
    }, NATS_SERVER_START_TIMEOUT_MS);
    const done = (): void => {
      clearTimeout(timer);
      child.stderr?.removeListener('data', onData);
      child.removeListener('error', onError);
      child.removeListener('exit', onExit);
      child.stderr?.resume(); // keep draining the log so the server never blocks on a full pipe
    };
    const fail = (message: string): void => {
      done();
      reject(new ClusterError('server_failed', message));
    };
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8');
      if (log.includes('Server is ready')) {
        done();
        resolve();
      }
    };
    const onError = (error: NodeJS.ErrnoException): void => {
      fail(
        error.code === 'ENOENT'
          ? `${binary} is not installed: install Debian's nats-server package (scripts/setup.sh does)`
          : `${binary} failed to start: ${error.message}`,
      );
    };
    const onExit = (code: number | null): void =>
      fail(`${binary} exited with ${code} before it was ready:\n${log.slice(-2000)}`);
    child.stderr?.on('data', onData);
    child.once('error', onError);
    child.once('exit', onExit);
  });
}

/**
 * Starts `size` JetStream servers routed to each other as one cluster (`name`), all on
 * 127.0.0.1. Resolves once every server accepts clients (JetStream's meta leader may take a
 * moment more: clients retry).
 */
export async function startNatsCluster(
  size: number,
  options: Omit<NatsServerOptions, 'cluster' | 'port' | 'serverName' | 'storeDir'> & {
    readonly name?: string;
  } = {},
): Promise<NatsServer[]> {
  if (!Number.isInteger(size) || size < 1 || size > 9) {
    throw new ClusterError('invalid_option', `a local cluster has 1 to 9 servers, not ${size}`);
  }
  const clusterName = options.name ?? 'zbmd';
  const clientPorts = await Promise.all(Array.from({ length: size }, freePort));
  const routePorts = await Promise.all(Array.from({ length: size }, freePort));
  const routes = routePorts.map((port) => `nats://127.0.0.1:${port}`);
  const started = await Promise.allSettled(
    clientPorts.map((port, index) =>
      startNatsServer({
        ...options,
        port,
        serverName: `n${index + 1}`,
        cluster: {
          name: clusterName,
          port: routePorts[index],
          routes: routes.filter((_, other) => other !== index),
        },
      }),
    ),
  );
  const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failure = started.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await Promise.all(servers.map((server) => server.stop()));
    throw (failure as PromiseRejectedResult).reason;
  }
  return servers;
}
