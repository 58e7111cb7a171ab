import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { ActorSystemOptions } from '../ActorSystem.js';
import { BadArgument } from '../errors.js';
import { describe } from './checks.js';
import { Remote, type SharedCounters } from './Remote.js';
import {
  DEFAULT_IDLE_SPIN_US,
  DEFAULT_IDLE_WAIT_US,
  type IdleSettings,
  MAX_IDLE_US,
  pairRings,
  RingHub,
  ringSlots,
  wakeWords,
} from './Ring.js';
import type { Runtime } from './Runtime.js';
import { nameTableMemory } from './SharedNames.js';

/**
 * The scheduler threads of a node: thread 0 is the one that made the `ActorSystem`; threads
 * 1..n-1 are worker threads, each running its own `ActorSystem` (threadMain.ts) with its own run
 * queue. Every pair of threads talks through its own pair of SharedArrayBuffer rings and a
 * MessageChannel beside them (batched operations, see Remote.ts; the transport is Ring.ts). Thread 0 watches the workers: one that dies is a lost node (its processes exit
 * `noconnection` for everyone linked to or monitoring them) and is replaced by a fresh thread.
 */

/** Most scheduler threads a node runs. */
export const MAX_THREADS = 64;

export function threadCount(option: number | 'auto' | undefined): number {
  if (option === undefined) return 1;
  if (option === 'auto') return Math.min(availableParallelism(), MAX_THREADS);
  if (!Number.isInteger(option) || option < 1 || option > MAX_THREADS)
    throw new BadArgument(
      `threads must be 'auto' or an integer in [1, ${MAX_THREADS}], got ${describe(option)}`,
    );
  return option;
}

/** What thread 0 hands a worker thread at start. */
interface WorkerBoot {
  readonly thread: number;
  readonly threads: number;
  readonly counters: SharedCounters;
  /** `counters.ids[thread]` when thread 0 started this thread: ids below belong to earlier incarnations. */
  readonly settledBelow: number;
  /** Every thread's epoch when thread 0 started this one (its ports reach those incarnations). */
  readonly epochs: readonly number[];
  /** Every thread's doorbell and sleeping words (Ring.ts). */
  readonly wake: Int32Array;
  readonly ports: Record<number, MessagePort>;
  /** How the worker waits when it runs out of work (Ring.ts). */
  readonly idle: IdleSettings;
}

let pendingBoot: WorkerBoot | undefined;

/** threadMain.ts: the next ActorSystem made on this worker thread is its scheduler thread. */
export function setWorkerBoot(boot: WorkerBoot): void {
  pendingBoot = boot;
}

/** Makes `runtime` a worker's scheduler thread if one is being booted; false otherwise. */
export function attachWorker(runtime: Runtime): boolean {
  const boot = pendingBoot;
  if (boot === undefined) return false;
  pendingBoot = undefined;
  const remote = new Remote(
    runtime,
    boot.thread,
    boot.threads,
    boot.counters,
    boot.settledBelow,
    boot.epochs,
  );
  const hub = connectRemote(runtime, remote, boot.wake, boot.idle);
  runtime.onCrash = (pid, reason) => remote.reportCrash(pid, reason);
  remote.onPeer = (peer, endpoint) => connect(hub, remote, peer, endpoint as MessagePort, true);
  for (const [peer, port] of Object.entries(boot.ports)) connect(hub, remote, Number(peer), port, true);
  remote.settleBoot(); // spawns allocated for this thread while it booted: coming, or lost
  return true;
}

function connectRemote(runtime: Runtime, remote: Remote, wake: Int32Array, idle: IdleSettings): RingHub {
  runtime.thread = remote.thread;
  runtime.remote = remote;
  runtime.registry.remote = remote;
  const scheduler = runtime.scheduler;
  const hub = new RingHub(remote.thread, wake, remote, () => scheduler.idle, idle, remote.flush);
  scheduler.onIdle = hub.idleSoon;
  const previous = remote.onLost;
  remote.onLost = (peer) => {
    hub.drop(peer);
    previous?.(peer);
  };
  return hub;
}

function connect(hub: RingHub, remote: Remote, peer: number, port: MessagePort, keepAlive: boolean): void {
  // Thread 0's ports must not keep the process alive after the user is done (close() ends the
  // workers); a worker's ports are what keeps the worker alive.
  remote.setPeer(peer, hub.connect(peer, port, keepAlive));
}

/**
 * Makes `runtime` scheduler thread `remote.thread` of its node, as `connectRemote` does, but
 * without the ring transport: the caller sets each peer's transport (`remote.setPeer`). `zbmd
 * simulate threads` (src/fault/internal/SimulatedThreads.ts) uses it to run several runtimes in
 * one JS thread over a simulated transport.
 */
export function attachRemote(runtime: Runtime, remote: Remote): void {
  runtime.thread = remote.thread;
  runtime.remote = remote;
  runtime.registry.remote = remote;
}

/**
 * A worker cannot run TypeScript sources by itself: in a source checkout it gets a loader, which
 * also resolves `zbmd` and `zbmd/<layer>` to the same sources the calling thread runs.
 */
const LOADER = `
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
let esbuild;
let sourceRoot;
export async function initialize(data) {
  const module = await import(pathToFileURL(data.esbuild).href);
  esbuild = module.default ?? module;
  sourceRoot = data.sourceRoot;
}
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  const self = /^zbmd(?:\\/([a-z]+))?$/.exec(specifier);
  if (self !== null) return { url: new URL(self[1] === undefined ? 'index.ts' : self[1] + '/index.ts', sourceRoot).href, shortCircuit: true };
  if (parent !== undefined && parent.endsWith('.ts') && /^\\.\\.?\\//.test(specifier) && specifier.endsWith('.js')) {
    const js = new URL(specifier, parent);
    if (!existsSync(js)) {
      const ts = new URL(specifier.slice(0, -3) + '.ts', parent);
      if (existsSync(ts)) return { url: ts.href, shortCircuit: true };
    }
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const source = await readFile(new URL(url), 'utf8');
    const result = await esbuild.transform(source, {
      loader: 'ts', format: 'esm', target: 'es2022', sourcefile: fileURLToPath(url),
      tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } },
    });
    return { format: 'module', source: result.code, shortCircuit: true };
  }
  return next(url, context);
}
`;

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
if (workerData.esbuild !== undefined) {
  require('node:module').register('data:text/javascript,' + encodeURIComponent(workerData.loader), { data: { esbuild: workerData.esbuild, sourceRoot: workerData.sourceRoot } });
}
import(workerData.entry).catch((error) => { process.nextTick(() => { throw error; }); });
`;

export class ThreadPool {
  private readonly remote: Remote;
  private readonly hub: RingHub;
  private readonly wake: Int32Array;
  private readonly ringSlots: number;
  private readonly workers: (Worker | undefined)[];
  private closing = false;
  private readonly onThreadExit: (thread: number, cause: unknown) => void;
  private readonly workerOptions: Record<string, number | undefined>;
  private readonly idle: IdleSettings;

  constructor(
    private readonly runtime: Runtime,
    private readonly threads: number,
    options: ActorSystemOptions,
  ) {
    const transport = options.threadTransport ?? 'ring';
    if (transport !== 'ring' && transport !== 'port')
      throw new BadArgument(`threadTransport must be 'ring' or 'port', got ${describe(transport)}`);
    const counters: SharedCounters = {
      ids: new Int32Array(new SharedArrayBuffer(4 * threads)).fill(1),
      loads: new Int32Array(new SharedArrayBuffer(4 * threads)),
      names: nameTableMemory(),
      epochs: new Int32Array(new SharedArrayBuffer(4 * threads)),
    };
    this.remote = new Remote(runtime, 0, threads, counters);
    this.wake = wakeWords(threads);
    this.ringSlots = transport === 'ring' ? ringSlots(threads) : 0;
    this.idle = {
      spinUs: idleMicroseconds(options.idleSpinUs, 'idleSpinUs', DEFAULT_IDLE_SPIN_US),
      waitUs: idleMicroseconds(options.idleWaitUs, 'idleWaitUs', DEFAULT_IDLE_WAIT_US),
    };
    this.hub = connectRemote(runtime, this.remote, this.wake, this.idle);
    this.remote.onRemoteCrash = (pid, reason) => runtime.reportCrash(pid, reason);
    this.onThreadExit = options.onThreadExit ?? defaultThreadExitReport;
    this.workerOptions = {
      reductionBudget: options.reductionBudget,
      timeSliceMs: options.timeSliceMs,
      mailboxCapacity: options.mailboxCapacity,
    };
    this.workers = new Array(threads).fill(undefined);
    for (let thread = 1; thread < threads; thread++) this.start(thread, undefined);
  }

  /** Starts worker thread `thread` (again, after `lost` died) with a channel to every live thread. */
  private start(thread: number, lost: number | undefined): void {
    const ports: Record<number, MessagePort> = {};
    const transfer: MessagePort[] = [];
    for (let peer = 0; peer < this.threads; peer++) {
      if (peer === thread || (peer !== 0 && this.workers[peer] === undefined)) continue;
      const { port1, port2 } = new MessageChannel();
      if (this.ringSlots > 0) pairRings(port1, port2, this.ringSlots);
      ports[peer] = port2;
      transfer.push(port2);
      if (peer === 0) connect(this.hub, this.remote, thread, port1, false);
      else this.remote.announce(peer, lost, thread, port1);
    }
    const here = import.meta.url;
    const source = here.endsWith('.ts');
    const entry = new URL(source ? './threadMain.ts' : './threadMain.js', here).href;
    const esbuild = source ? resolveEsbuild() : undefined;
    const worker = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: {
        thread,
        threads: this.threads,
        counters: this.remote.counters,
        settledBelow: Atomics.load(this.remote.counters.ids, thread),
        epochs: Array.from(this.remote.counters.epochs),
        wake: this.wake,
        ports,
        idle: this.idle,
        entry,
        esbuild,
        loader: LOADER,
        // from a source checkout, a module's `import 'zbmd'` in a worker means these sources too
        sourceRoot: source ? new URL('../../', here).href : undefined,
        nodeName: this.runtime.nodeName,
        options: this.workerOptions,
      },
      transferList: transfer,
    });
    let cause: unknown;
    worker.on('error', (error) => {
      cause = error;
    });
    worker.on('exit', (code) => this.exited(thread, worker, cause ?? `exit code ${code}`));
    this.workers[thread] = worker;
  }

  // src/fault/internal/SimulatedThreads.ts (`detected`) plays these steps for `zbmd simulate
  // threads`: keep the two in step.
  private exited(thread: number, worker: Worker, cause: unknown): void {
    if (this.closing || this.workers[thread] !== worker) return;
    this.workers[thread] = undefined;
    this.onThreadExit(thread, cause);
    Atomics.store(this.remote.counters.loads, thread, 0);
    this.remote.lost(thread);
    this.start(thread, thread); // tells every other thread: lost, then the replacement's port
  }

  /** Ends worker `thread` abruptly (a test aid: a lost thread); resolves once it is replaced. */
  async kill(thread: number): Promise<void> {
    const worker = this.workers[thread];
    if (worker === undefined)
      throw new BadArgument(`killThread: thread ${describe(thread)} is not a running worker thread`);
    await worker.terminate();
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((worker) => worker?.terminate()));
    for (let thread = 1; thread < this.threads; thread++) this.remote.lost(thread);
  }
}

function idleMicroseconds(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_IDLE_US)
    throw new BadArgument(
      `${field} must be a number of microseconds in [0, ${MAX_IDLE_US}], got ${describe(value)}`,
    );
  return value;
}

function resolveEsbuild(): string {
  return createRequireHere().resolve('esbuild');
}

function createRequireHere(): NodeRequire {
  return createRequire(import.meta.url);
}

function defaultThreadExitReport(thread: number, cause: unknown): void {
  const detail = cause instanceof Error && cause.stack ? cause.stack : String(cause);
  process.stderr.write(
    `zbmd: scheduler thread ${thread} died (its processes exit noconnection; a fresh thread replaces it): ${detail}\n`,
  );
}
