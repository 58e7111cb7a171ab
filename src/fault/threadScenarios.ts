/**
 * The `threads` scenario: a scheduler thread dying mid-conversation. The node's threads are
 * real `ActorSystem`s with their real cross-thread runtime (Remote.ts), run in one JS thread
 * over a seeded simulated transport (`internal/SimulatedThreads.ts`): per-pair order kept, the
 * delays and so the interleavings chosen by the seed, a worker killed at a seeded moment, thread
 * 0 learning it after a seeded delay and replacing it as ThreadPool.ts does.
 *
 * On that node: a counter server on every thread, called across threads from every thread with
 * seeded timeouts; a watcher process on every thread, linked to and monitoring watchers on other
 * threads and streaming numbered messages to them; a supervisor on thread 0 whose children
 * (seeded strategy, intensity, restart types, placement) live on the workers.
 *
 * The oracle is a reference model fed what the network did (every batch, when posted, delivered
 * or dropped, the payloads in it; when each thread ran `lost`), never the runtime's state:
 * - each call has the one outcome the wire allows, at the exact simulated time: the reply when
 *   the reply batch arrived before the deadline, `CallExit('noconnection')` when the caller's
 *   thread learned of the loss first, `CallTimeout` otherwise; the server handled a request iff
 *   its batch reached the server's live thread, and exactly once;
 * - every link and monitor across the dead thread fired `noconnection` exactly once, when the
 *   surviving side's thread learned of the loss; nothing fired across live threads;
 * - every stream message the wire delivered was received, in order, none invented; between live
 *   threads the wire delivered every one;
 * - the supervisor's event trace follows OTP's rules (`internal/SupervisorModel.ts`), and every
 *   child it reports running answers a call on a live thread.
 */
import type { ActorSystem } from '../actor/ActorSystem.js';
import { isCallExit, isCallTimeout } from '../actor/errors.js';
import type { Pid } from '../actor/Pid.js';
import type { SupervisionEvent } from '../supervision/index.js';
import { onSupervisionEvent, startSupervisor } from '../supervision/index.js';
import { before, type Moment, SimulatedNetwork, type WireBatch } from './internal/SimulatedThreads.js';
import {
  type ModelChildSpec,
  ModelMismatch,
  type ModelRestart,
  type ModelStrategy,
  SupervisorModel,
  type SupervisorModelConfig,
} from './internal/SupervisorModel.js';
import { closeProbe, openProbe, THREAD_ACTORS_MODULE, type ThreadProbe } from './internal/threadActors.js';
import { KNOWN_DEVIATIONS } from './knownDeviations.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const SCENARIO = 'threads';
const STRATEGIES: readonly ModelStrategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const RESTARTS: readonly ModelRestart[] = ['permanent', 'transient', 'temporary'];
const CALL_TIMEOUTS_MS: readonly number[] = [15, 40, 100, 250];
/** How long the node runs its conversations, after the setup. */
const ACTIVE_MS = 300;
/** Quiet time at the end: every detection, boot, restart and timeout is over by then. */
const QUIET_MS = 1_500;
/** Most workers that die in one run (a replacement may be one of them). */
const MAX_DEATHS = 2;

function fail(invariant: string): never {
  throw new InvariantViolation(SCENARIO, invariant);
}

interface CallRecord {
  readonly id: number;
  readonly caller: number;
  readonly callerIncarnation: number;
  readonly server: number;
  readonly timeoutMs: number;
  /** Called by its registered name rather than its pid. */
  readonly byName: boolean;
  /** By name after the caller's thread learned the server's thread was lost (the name is gone). */
  readonly afterLoss: boolean;
  readonly start: Moment;
  outcome: { value: unknown; at: number } | { error: unknown; at: number } | undefined;
}

interface Pair {
  readonly a: number;
  readonly b: number;
  /** a monitors b / b monitors a (both are linked). */
  readonly aMonitors: boolean;
  readonly bMonitors: boolean;
}

/** What the supervision tree looked like at the end, before it was stopped. */
interface TreeEnd {
  readonly supervisorAlive: boolean;
  /** Child id -> pid of each child the supervisor reported running. */
  readonly running: ReadonlyMap<string, Pid>;
  readonly pings: ReadonlyMap<string, { value?: unknown; error?: unknown }>;
}

export async function threadsScenario(context: SimulationContext): Promise<void> {
  const run = new ThreadsRun(context);
  try {
    await run.setUp();
    run.scheduleConversations(run.scheduleDeaths());
    await run.network.runUntil(run.setupEndMs + ACTIVE_MS + QUIET_MS);
    run.check(await run.pingAndStopTree());
  } finally {
    run.close();
  }
}

/** One run of the scenario: the node, its processes, and what the driver did. */
class ThreadsRun {
  readonly network: SimulatedNetwork;
  readonly threads: number;
  readonly maxDelayMs: number;
  readonly probeId: number;
  readonly probe: ThreadProbe;
  readonly servers: Pid[] = [];
  readonly watchers: Pid[] = [];
  readonly pairs: Pair[] = [];
  readonly calls: CallRecord[] = [];
  readonly trace: SupervisionEvent[] = [];
  /** Child id -> its pid, from the supervisor's events. */
  readonly live = new Map<string, Pid>();
  readonly tree: SupervisorModelConfig;
  supervisor: Pid | undefined = undefined;
  setupEndMs = 0;

  constructor(readonly context: SimulationContext) {
    this.threads = this.between(2, 4);
    this.maxDelayMs = this.between(0, 15);
    this.network = new SimulatedNetwork({
      threads: this.threads,
      clock: context.clock,
      random: context.random,
      maxDelayMs: this.maxDelayMs,
      // thread 0 hears of a death at once or only after a while (calls then time out first)
      detectDelayMs: () => (context.random.chance(0.4) ? this.between(0, 2) : this.between(3, 60)),
      bootDelayMs: () => this.between(0, 30),
      warmModule: THREAD_ACTORS_MODULE,
    });
    const { id, probe } = openProbe(() => context.clock.now());
    this.probeId = id;
    this.probe = probe;
    this.tree = {
      strategy: this.pick(STRATEGIES),
      intensity: this.between(1, 4),
      periodMs: this.pick([50, 200, 1_000]),
      children: Array.from({ length: this.between(2, 5) }, (_, index) => ({
        id: `c${index}`,
        restart: this.pick(RESTARTS),
      })) as ModelChildSpec[],
    };
  }

  between(low: number, high: number): number {
    return low + this.context.random.nextInt(high - low + 1);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.context.random.nextInt(items.length)];
  }

  get system0(): ActorSystem {
    return this.network.system0;
  }

  /** The node, a server and a watcher on every thread, the links and monitors, the tree. */
  async setUp(): Promise<void> {
    const { network, threads, probeId } = this;
    await network.start();
    onSupervisionEvent(this.system0, (event) => {
      this.trace.push(event);
      if ((event.kind === 'child_started' || event.kind === 'child_restarted') && event.pid !== undefined)
        this.live.set(event.childId!, event.pid);
      if (event.kind === 'child_exited' || event.kind === 'child_terminated')
        this.live.delete(event.childId!);
    });
    for (let thread = 0; thread < threads; thread++) {
      // registered: every other thread learns the name (and forgets it when the thread is lost)
      this.servers.push(
        this.system0.spawn(code('CounterServer'), [probeId], { thread, name: `srv${thread}` }),
      );
      this.watchers.push(
        this.system0.spawn(code('Watcher'), [probeId, `w${thread}`], { thread, trapExit: true }),
      );
    }
    // Only then the setup: a pid that a cross-thread spawn returns is usable before its process
    // exists there, so a link from a third thread could otherwise overtake the spawn (noproc).
    await network.runUntil(this.maxDelayMs + 1);
    this.linkWatchers();
    this.startTree();
    this.setupEndMs = this.context.clock.now() + 2 * this.maxDelayMs + 5;
    await network.runUntil(this.setupEndMs);
    if (this.supervisor === undefined) fail('the supervisor did not start');
  }

  /** Pairs of watchers on two threads, linked, each maybe monitoring the other. */
  private linkWatchers(): void {
    const random = this.context.random;
    for (let a = 0; a < this.threads; a++)
      for (let b = a + 1; b < this.threads; b++)
        if (random.chance(0.8))
          this.pairs.push({ a, b, aMonitors: random.chance(0.7), bMonitors: random.chance(0.5) });
    for (let thread = 0; thread < this.threads; thread++) {
      const setup = this.pairs.flatMap((pair) =>
        pair.a === thread
          ? [{ name: `w${pair.b}`, pid: this.watchers[pair.b], link: true, monitor: pair.aMonitors }]
          : pair.b === thread
            ? [{ name: `w${pair.a}`, pid: this.watchers[pair.a], link: false, monitor: pair.bMonitors }]
            : [],
      );
      this.system0.send(this.watchers[thread], { setup, servers: this.servers });
    }
  }

  /** The supervisor on thread 0, its children on the workers (or wherever 'any' places them). */
  private startTree(): void {
    const tree = this.tree;
    this.context.coverage.hit(`strategy-${tree.strategy}`);
    const placements = tree.children.map(() =>
      this.context.random.chance(0.3)
        ? ('any' as const)
        : this.between(this.threads > 2 ? 1 : 0, this.threads - 1),
    );
    startSupervisor(this.system0, {
      strategy: tree.strategy,
      intensity: tree.intensity,
      periodMs: tree.periodMs,
      children: tree.children.map((child, index) => ({
        id: child.id,
        restart: child.restart,
        shutdown: 50,
        start: (ctx) => ctx.spawnLink(code('Child'), [this.probeId, child.id], { thread: placements[index] }),
      })),
    }).then(
      (pid) => {
        this.supervisor = pid;
      },
      () => {}, // checked right after the setup: no supervisor
    );
  }

  /**
   * Workers die at the milliseconds whose `actor_crash` decision says so (at most MAX_DEATHS;
   * none in some seeds): faults of the seed's trace, so a failing seed shrinks to the deaths it
   * needs. The victim is a live worker (a replacement too), drawn as it dies. Returns when the
   * first dies, in ms after the setup.
   */
  scheduleDeaths(): number | undefined {
    const { network, context } = this;
    const deaths: number[] = [];
    for (let ms = 0; ms < ACTIVE_MS && deaths.length < MAX_DEATHS; ms++)
      if (context.faults.shouldCrashActor()) deaths.push(ms);
    for (const ms of deaths)
      network.schedule(ms, () => {
        const alive = network.threads.filter((thread) => thread.index > 0 && thread.alive);
        if (alive.length === 0) {
          context.coverage.hit('death-skipped-no-live-worker');
          return;
        }
        const victim = this.pick(alive);
        if (victim.incarnation > 0) context.coverage.hit('replacement-died');
        network.kill(victim.index);
      });
    return deaths[0];
  }

  /** Calls across threads, stream messages, children told to exit. */
  scheduleConversations(deathMs: number | undefined): void {
    const { network, context, maxDelayMs } = this;
    const random = context.random;
    // anywhere, close to the death, or just before it (its reply on the wire when it comes)
    const when = (): number => {
      const choice = random.nextInt(3);
      if (deathMs === undefined || choice === 0) return random.nextInt(ACTIVE_MS);
      if (choice === 1) return Math.max(0, deathMs - 20 + random.nextInt(40));
      return Math.max(0, deathMs - random.nextInt(2 * maxDelayMs + 2));
    };
    const calls = this.between(10, 40);
    for (let id = 0; id < calls; id++) network.schedule(when(), () => this.startCall(id));
    const emits = this.between(10, 50);
    for (let index = 0; index < emits && this.pairs.length > 0; index++) {
      const pair = this.pick(this.pairs);
      const [from, to] = random.chance(0.5) ? [pair.a, pair.b] : [pair.b, pair.a];
      const count = this.between(1, 4);
      network.schedule(when(), () => this.system0.send(this.watchers[from], { emit: `w${to}`, count }));
    }
    const exits = this.between(0, 4);
    for (let index = 0; index < exits; index++) {
      const child = this.pick(this.tree.children).id;
      const reason = this.pick(['normal', 'shutdown', 'crashed'] as const);
      network.schedule(random.nextInt(ACTIVE_MS), () => {
        const pid = this.live.get(child);
        if (pid !== undefined) this.system0.send(pid, { exit: reason });
      });
    }
  }

  /** A call from a random thread to the server of another, by pid or by name. */
  private startCall(id: number): void {
    const { network, context } = this;
    const caller = network.threads[this.between(0, this.threads - 1)];
    const server = this.pick(
      Array.from({ length: this.threads }, (_, t) => t).filter((t) => t !== caller.index),
    );
    const timeoutMs = this.pick(CALL_TIMEOUTS_MS);
    const byName = context.random.chance(0.5);
    // callers are the first incarnations (a replacement never learned the servers' pids)
    if (!caller.alive || caller.incarnation > 0) {
      context.coverage.hit('call-skipped-caller-down');
      return;
    }
    const afterLoss = network.lossAt(caller.index, caller.incarnation, server) !== undefined;
    if (afterLoss && !byName) {
      context.coverage.hit('call-skipped-server-known-lost'); // its pid names a thread that is gone
      return;
    }
    const pid =
      caller.index === 0 ? this.servers[server] : this.probe.serverViews.get(caller.index)?.[server];
    if (pid === undefined) fail(`thread ${caller.index} never got the servers' pids`);
    const record: CallRecord = {
      id,
      caller: caller.index,
      callerIncarnation: caller.incarnation,
      server,
      timeoutMs,
      byName,
      afterLoss,
      start: { at: context.clock.now(), seq: network.nextSeq() }, // before the call sets its timer
      outcome: undefined,
    };
    this.calls.push(record);
    caller.system.call(byName ? `srv${server}` : pid, { tap: 'call', call: id }, timeoutMs).then(
      (value) => {
        record.outcome = { value, at: context.clock.now() };
      },
      (error: unknown) => {
        record.outcome = { error, at: context.clock.now() };
      },
    );
  }

  /** Every child the supervisor reports running is called; then the tree is stopped from outside. */
  async pingAndStopTree(): Promise<TreeEnd> {
    const { network, context, system0 } = this;
    const supervisor = this.supervisor!;
    const supervisorAlive = system0.isAlive(supervisor);
    const running = new Map(supervisorAlive ? this.live : []);
    const pings = new Map<string, { value?: unknown; error?: unknown }>();
    for (const [child, pid] of running)
      system0.call(pid, { tap: 'ping' }, 1_000).then(
        (value) => pings.set(child, { value }),
        (error: unknown) => pings.set(child, { error }),
      );
    await network.runUntil(context.clock.now() + 1_100);
    if (supervisorAlive) {
      // every running child terminated, across threads, in reverse start order (the model checks)
      system0.exit(supervisor, 'shutdown');
      await network.runUntil(context.clock.now() + 1_000);
      if (system0.isAlive(supervisor)) fail('the supervisor did not stop within 1000 ms of a shutdown');
    }
    return { supervisorAlive, running, pings };
  }

  check(tree: TreeEnd): void {
    const { network, context, probe } = this;
    if (probe.unexpected.length > 0) fail(probe.unexpected[0]);
    const dead = network.incarnations.filter((thread) => !thread.alive);
    context.coverage.hit(
      dead.length === 0 ? 'no-thread-died' : dead.length === 1 ? 'thread-died' : 'two-threads-died',
    );
    if (network.replacements !== dead.length)
      fail(`${dead.length} threads died; ${network.replacements} replacements were started`);
    if (network.waited > 0) context.coverage.hit('batch-waited-for-boot');
    /** Threads whose first incarnation (where the servers and watchers live) died, and when. */
    const lost = new Map(
      dead.filter((thread) => thread.incarnation === 0).map((thread) => [thread.index, thread.diedAt!]),
    );
    checkCalls(context, network, probe, this.calls, lost);
    checkSignals(context, network, probe, this.pairs, lost);
    checkStreams(context, network, probe, lost);
    checkSupervision(context, network, this.trace, this.tree, this.supervisor!, tree);
  }

  close(): void {
    this.network.close();
    closeProbe(this.probeId);
  }
}

function code(name: string): { module: string; export: string } {
  return { module: THREAD_ACTORS_MODULE, export: name };
}

function describeOutcome(outcome: CallRecord['outcome']): string {
  if (outcome === undefined) return 'no outcome';
  if ('value' in outcome) return `reply ${JSON.stringify(outcome.value)} at ${outcome.at} ms`;
  const error = outcome.error;
  return `${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} at ${outcome.at} ms`;
}

/** Index of the wire: the batches that carried each call's request and each reply. */
interface CallWire {
  readonly requests: Map<number, WireBatch[]>;
  readonly replies: Map<number, WireBatch[]>;
}

function callWire(wire: readonly WireBatch[]): CallWire {
  const requests = new Map<number, WireBatch[]>();
  const replies = new Map<number, WireBatch[]>();
  for (const batch of wire)
    for (const payload of batch.payloads) {
      const map = payload.tap === 'call' ? requests : payload.tap === 'reply' ? replies : undefined;
      if (map === undefined || typeof payload.call !== 'number') continue;
      const list = map.get(payload.call);
      if (list === undefined) map.set(payload.call, [batch]);
      else list.push(batch);
    }
  return { requests, replies };
}

/** The one outcome the wire allows a call: what, when, and the branches it takes. */
interface ExpectedOutcome {
  readonly text: string;
  readonly at: number;
  readonly branches: readonly string[];
  readonly matches: (outcome: NonNullable<CallRecord['outcome']>) => boolean;
}

function errorOf(outcome: NonNullable<CallRecord['outcome']>): unknown {
  return 'error' in outcome ? outcome.error : undefined;
}

/**
 * The model of one call made by pid or by a name still known: the request is handled iff its
 * batch reached the server's (first) thread, exactly once and when it arrived; then the reply if
 * its batch arrived before the deadline; else `CallExit('noconnection')` if the caller's thread
 * learned of the loss before the deadline; else `CallTimeout` at the deadline.
 */
function expectedOutcome(
  call: CallRecord,
  wire: CallWire,
  network: SimulatedNetwork,
  probe: ThreadProbe,
  lost: ReadonlyMap<number, number>,
  say: (what: string) => never,
): ExpectedOutcome {
  const sent = wire.requests.get(call.id) ?? [];
  if (sent.length !== 1) say(`its request was posted ${sent.length} times`);
  const request = sent[0];
  const handled = probe.handled.get(call.id) ?? [];
  const reachedServer = request.fate === 'delivered' && request.toIncarnation === 0;
  if (handled.length !== (reachedServer ? 1 : 0))
    say(`the server handled it ${handled.length} times; its request was ${request.fate}`);
  if (reachedServer && handled[0].at !== request.delivered!.at)
    say(`handled at ${handled[0].at} ms, its request arrived at ${request.delivered!.at} ms`);
  const reply = (wire.replies.get(call.id) ?? [])[0];
  if (reachedServer && reply === undefined) say('the server handled it and no reply was posted');
  const deadline: Moment = { at: call.start.at + call.timeoutMs, seq: call.start.seq };
  const loss = network.lossAt(call.caller, call.callerIncarnation, call.server);
  if (reachedServer && reply.fate === 'delivered' && before(reply.delivered!, deadline)) {
    const count = handled[0].count;
    const at = reply.delivered!.at;
    const fromDead = (lost.get(call.server) ?? Number.POSITIVE_INFINITY) < at;
    return {
      text: `reply ${count} at ${at} ms`,
      at,
      branches: fromDead ? ['call-reply', 'call-reply-from-dead-thread'] : ['call-reply'],
      matches: (outcome) => {
        const value = 'value' in outcome ? (outcome.value as { call?: number; count?: number }) : undefined;
        return value?.call === call.id && value.count === count && outcome.at === at;
      },
    };
  }
  if (loss !== undefined && before(loss, deadline)) {
    const branches = [reachedServer ? 'call-noconnection-reply-lost' : 'call-noconnection'];
    if (call.caller !== 0) branches.push('call-noconnection-told-by-thread-0');
    return {
      text: `CallExit(noconnection) at ${loss.at} ms`,
      at: loss.at,
      branches,
      matches: (outcome) => {
        const error = errorOf(outcome);
        return isCallExit(error) && error.reason === 'noconnection' && outcome.at === loss.at;
      },
    };
  }
  const slow = request.fate === 'delivered' && (reply === undefined || reply.fate === 'delivered');
  return {
    text: `CallTimeout at ${deadline.at} ms`,
    at: deadline.at,
    branches: [slow ? 'call-timeout-slow-network' : 'call-timeout-loss-not-yet-known'],
    matches: (outcome) => isCallTimeout(errorOf(outcome)) && outcome.at === deadline.at,
  };
}

function checkCalls(
  context: SimulationContext,
  network: SimulatedNetwork,
  probe: ThreadProbe,
  calls: readonly CallRecord[],
  lost: ReadonlyMap<number, number>,
): void {
  const { coverage } = context;
  const wire = callWire(network.wire);
  for (const call of calls) {
    const say = (what: string): never =>
      fail(
        `call ${call.id} from thread ${call.caller} to the server on thread ${call.server}${call.byName ? ' by name' : ''} at ${call.start.at} ms (timeout ${call.timeoutMs} ms): ${what}`,
      );
    const outcome = call.outcome;
    if (call.afterLoss) {
      // the name went with its thread: noproc at once, nothing posted
      coverage.hit('call-by-name-after-loss-noproc');
      const error = outcome === undefined ? undefined : errorOf(outcome);
      const posted = wire.requests.get(call.id)?.length ?? 0;
      if (posted > 0 || !isCallExit(error) || error.reason !== 'noproc' || outcome!.at !== call.start.at)
        say(
          `after its thread was lost: expected CallExit(noproc) at once, got ${describeOutcome(outcome)} (its request was posted ${posted} times)`,
        );
      continue;
    }
    if (call.byName) coverage.hit('call-by-name');
    const expected = expectedOutcome(call, wire, network, probe, lost, say);
    const caller = network.incarnations.find(
      (thread) => thread.index === call.caller && thread.incarnation === call.callerIncarnation,
    )!;
    if (caller.diedAt !== undefined && caller.diedAt <= expected.at) {
      coverage.hit('call-caller-died'); // the caller is gone: nobody is owed an outcome
      continue;
    }
    for (const branch of expected.branches) coverage.hit(branch);
    if (outcome === undefined || !expected.matches(outcome))
      say(`expected ${expected.text}, got ${describeOutcome(outcome)}`);
  }
  // a server's count is the number of requests it handled
  const byThread = new Map<number, number[]>();
  for (const list of probe.handled.values())
    for (const entry of list) {
      const counts = byThread.get(entry.thread);
      if (counts === undefined) byThread.set(entry.thread, [entry.count]);
      else counts.push(entry.count);
    }
  for (const [thread, counts] of byThread) {
    counts.sort((x, y) => x - y);
    counts.forEach((count, index) => {
      if (count !== index + 1)
        fail(`the server on thread ${thread} counted ${count} for its request ${index + 1}`);
    });
  }
}

/** Links and monitors: across the dead thread, noconnection exactly once; nothing else. */
function checkSignals(
  context: SimulationContext,
  network: SimulatedNetwork,
  probe: ThreadProbe,
  pairs: readonly Pair[],
  lost: ReadonlyMap<number, number>,
): void {
  const expected = new Map<string, number>(); // `${watcher}|${kind}|${partner}` -> time
  for (const pair of pairs) {
    for (const [survivor, dead, monitors] of [
      [pair.a, pair.b, pair.aMonitors],
      [pair.b, pair.a, pair.bMonitors],
    ] as const) {
      if (!lost.has(dead)) continue;
      const loss = network.lossAt(survivor, 0, dead);
      if (loss === undefined) {
        // the survivor's thread died before it heard: nobody there is owed a signal
        if (lost.has(survivor)) continue;
        fail(`thread ${survivor} never learned that thread ${dead} was lost`);
      }
      expected.set(`w${survivor}|exit|w${dead}`, loss.at);
      if (monitors) expected.set(`w${survivor}|down|w${dead}`, loss.at);
    }
  }
  const seen = new Set<string>();
  for (const signal of probe.signals) {
    const key = `${signal.watcher}|${signal.kind}|${signal.partner}`;
    const at = expected.get(key);
    const what = `${signal.watcher} got ${signal.kind === 'exit' ? 'EXIT' : 'DOWN'} from ${signal.partner} (${String(signal.reason)}) at ${signal.at} ms`;
    if (at === undefined) fail(`${what}; nothing was due`);
    if (seen.has(key)) fail(`${what} a second time`);
    seen.add(key);
    if (signal.reason !== 'noconnection' || signal.at !== at)
      fail(`${what}; expected noconnection at ${at} ms, when its thread learned of the loss`);
    context.coverage.hit(signal.kind === 'exit' ? 'link-noconnection' : 'monitor-noconnection');
    if (!signal.watcher.endsWith('0')) context.coverage.hit('signal-on-worker-told-by-thread-0');
  }
  for (const key of expected.keys())
    if (!seen.has(key)) {
      const [watcher, kind, partner] = key.split('|');
      fail(
        `${watcher} never got ${kind === 'exit' ? 'EXIT' : 'DOWN'} noconnection from ${partner}, whose thread was lost`,
      );
    }
}

/** Streams: received = delivered by the wire, in order; between live threads, delivered = sent. */
function checkStreams(
  context: SimulationContext,
  network: SimulatedNetwork,
  probe: ThreadProbe,
  lost: ReadonlyMap<number, number>,
): void {
  const delivered = new Map<string, number[]>();
  for (const batch of network.wire) {
    if (batch.fate === 'receiver-dead') context.coverage.hit('batch-to-dead-thread');
    if (batch.fate === 'sender-lost') context.coverage.hit('batch-from-lost-thread-dropped');
    // the watchers live on the first incarnations; what reaches a replacement finds nobody
    if (batch.fate !== 'delivered' || batch.fromIncarnation !== 0 || batch.toIncarnation !== 0) continue;
    for (const payload of batch.payloads)
      if (payload.tap === 'stream')
        probe.push(delivered, `${payload.from}>${payload.to}`, payload.n as number);
  }
  for (const [key, sent] of probe.sent) {
    const wire = delivered.get(key) ?? [];
    const received = probe.received.get(key) ?? [];
    const [from, to] = key.split('>');
    const touchesDead = lost.has(Number(from.slice(1))) || lost.has(Number(to.slice(1)));
    if (received.join() !== wire.join())
      fail(`stream ${key}: received [${received.join(', ')}], the wire delivered [${wire.join(', ')}]`);
    if (sent.slice(0, wire.length).join() !== wire.join())
      fail(`stream ${key}: the wire delivered [${wire.join(', ')}] of [${sent.join(', ')}] sent`);
    if (!touchesDead && wire.length !== sent.length)
      fail(`stream ${key} between live threads: ${sent.length} sent, ${wire.length} delivered`);
    context.coverage.hit(wire.length < sent.length ? 'stream-cut-by-loss' : 'stream-complete');
  }
  for (const key of probe.received.keys())
    if (!probe.sent.has(key)) fail(`stream ${key}: received messages nobody sent`);
}

function checkSupervision(
  context: SimulationContext,
  network: SimulatedNetwork,
  trace: readonly SupervisionEvent[],
  config: SupervisorModelConfig,
  supervisor: Pid,
  { supervisorAlive, running, pings }: TreeEnd,
): void {
  const { coverage } = context;
  const model = new SupervisorModel(config, KNOWN_DEVIATIONS, (branch) => coverage.hit(branch));
  const startedAt = new Map<string, number>(); // pid text -> when the supervisor started it
  try {
    for (const event of trace) {
      if (event.supervisor !== supervisor) continue;
      if ((event.kind === 'child_started' || event.kind === 'child_restarted') && event.pid !== undefined)
        startedAt.set(String(event.pid), event.timeMs);
      if (event.kind === 'child_exited' && event.reason === 'noconnection') {
        // only after thread 0 learned that the child's thread was lost (later if the supervisor
        // was busy, say stopping a group: it takes the EXIT when it gets to it)
        const thread = event.pid?.thread;
        const since = startedAt.get(String(event.pid));
        if (since === undefined) fail(`supervisor: ${event.childId} (${event.pid}) exited but never started`);
        const loss = network.losses.find(
          (entry) =>
            entry.thread === 0 && entry.peer === thread && entry.at >= since && entry.at <= event.timeMs,
        );
        if (loss === undefined)
          fail(
            `supervisor: ${event.childId} exited noconnection at ${event.timeMs} ms; thread 0 lost no thread ${thread} while it ran`,
          );
        coverage.hit(
          loss.at === event.timeMs ? 'child-lost-with-thread' : 'child-lost-while-supervisor-busy',
        );
      }
      if (event.kind === 'child_restarted' && event.pid !== undefined) {
        const incarnation = network.incarnations.filter((t) => t.index === event.pid!.thread).at(-1)!;
        if (incarnation.incarnation > 0) coverage.hit('child-restarted-on-replacement');
      }
      if (event.kind === 'restart_intensity_reached') coverage.hit('supervisor-gave-up');
      model.observe(event);
    }
    model.finish();
  } catch (error) {
    if (error instanceof ModelMismatch) fail(`supervisor: ${error.message}`);
    throw error;
  }
  if (!supervisorAlive) return;
  for (const [child, pid] of running) {
    const ping = pings.get(child);
    const pong = ping?.value as { id?: string; thread?: number } | undefined;
    if (pong?.id !== child || pong.thread !== pid.thread)
      fail(
        `child ${child} (${pid}) is running by the supervisor but its ping got ${ping === undefined ? 'nothing' : 'value' in ping ? JSON.stringify(ping.value) : String(ping.error)}`,
      );
    coverage.hit('child-answers');
  }
}

export const THREAD_SCENARIOS: readonly Scenario[] = [
  {
    name: 'threads',
    description:
      'a scheduler thread dies mid-conversation: calls, links, monitors, streams and supervised children checked against a model of the wire',
    // one decision per millisecond of the conversations: no worker dies in about a fifth of the
    // seeds, one in a third, two in the rest
    faults: { actorCrashRate: 0.005 },
    run: threadsScenario,
    branches: [
      'thread-died',
      'two-threads-died',
      'replacement-died',
      'no-thread-died',
      'batch-waited-for-boot',
      'call-reply',
      'call-reply-from-dead-thread',
      'call-noconnection',
      'call-noconnection-reply-lost',
      'call-noconnection-told-by-thread-0',
      'call-timeout-loss-not-yet-known',
      'call-timeout-slow-network',
      'call-caller-died',
      'call-skipped-server-known-lost',
      'call-by-name',
      'call-by-name-after-loss-noproc',
      'link-noconnection',
      'monitor-noconnection',
      'signal-on-worker-told-by-thread-0',
      'stream-complete',
      'stream-cut-by-loss',
      'batch-to-dead-thread',
      'batch-from-lost-thread-dropped',
      'child-lost-with-thread',
      'child-lost-while-supervisor-busy',
      'child-restarted-on-replacement',
      'child-answers',
      'supervisor-gave-up',
      'strategy-one_for_one',
      'strategy-one_for_all',
      'strategy-rest_for_one',
    ],
  },
];
