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

export async function threadsScenario(context: SimulationContext): Promise<void> {
  const { random, clock, coverage } = context;
  const between = (low: number, high: number) => low + random.nextInt(high - low + 1);
  const pick = <T>(items: readonly T[]): T => items[random.nextInt(items.length)];
  const threads = between(2, 4);
  const maxDelayMs = between(0, 15);
  const network = new SimulatedNetwork({
    threads,
    clock,
    random,
    maxDelayMs,
    // thread 0 hears of a death at once or only after a while (calls then time out first)
    detectDelayMs: () => (random.chance(0.4) ? between(0, 2) : between(3, 60)),
    bootDelayMs: () => between(0, 30),
    warmModule: THREAD_ACTORS_MODULE,
  });
  const { id: probeId, probe } = openProbe(() => clock.now());
  const code = (name: string) => ({ module: THREAD_ACTORS_MODULE, export: name });
  try {
    await network.start();
    const system0 = network.system0;
    const trace: SupervisionEvent[] = [];
    const live = new Map<string, Pid>();
    onSupervisionEvent(system0, (event) => {
      trace.push(event);
      if ((event.kind === 'child_started' || event.kind === 'child_restarted') && event.pid !== undefined)
        live.set(event.childId!, event.pid);
      if (event.kind === 'child_exited' || event.kind === 'child_terminated') live.delete(event.childId!);
    });

    // a counter server and a watcher on every thread, spawned from thread 0 as a node does
    const servers: Pid[] = [];
    const watchers: Pid[] = [];
    for (let thread = 0; thread < threads; thread++) {
      // registered: every other thread learns the name (and forgets it when the thread is lost)
      servers.push(system0.spawn(code('CounterServer'), [probeId], { thread, name: `srv${thread}` }));
      watchers.push(system0.spawn(code('Watcher'), [probeId, `w${thread}`], { thread, trapExit: true }));
    }
    // Only then the setup: a pid that a cross-thread spawn returns is usable before its process
    // exists there, so a link from a third thread could otherwise overtake the spawn (noproc).
    await network.runUntil(maxDelayMs + 1);
    const pairs: Pair[] = [];
    for (let a = 0; a < threads; a++)
      for (let b = a + 1; b < threads; b++)
        if (random.chance(0.8))
          pairs.push({ a, b, aMonitors: random.chance(0.7), bMonitors: random.chance(0.5) });
    for (let thread = 0; thread < threads; thread++) {
      const setup = pairs.flatMap((pair) =>
        pair.a === thread
          ? [{ name: `w${pair.b}`, pid: watchers[pair.b], link: true, monitor: pair.aMonitors }]
          : pair.b === thread
            ? [{ name: `w${pair.a}`, pid: watchers[pair.a], link: false, monitor: pair.bMonitors }]
            : [],
      );
      system0.send(watchers[thread], { setup, servers });
    }

    // the supervisor on thread 0, its children on the workers (or wherever 'any' places them)
    const model = {
      strategy: pick(STRATEGIES),
      intensity: between(1, 4),
      periodMs: pick([50, 200, 1_000]),
      children: Array.from({ length: between(2, 5) }, (_, index) => ({
        id: `c${index}`,
        restart: pick(RESTARTS),
      })) as ModelChildSpec[],
    };
    coverage.hit(`strategy-${model.strategy}`);
    const placements = model.children.map(() =>
      random.chance(0.3) ? ('any' as const) : between(threads > 2 ? 1 : 0, threads - 1),
    );
    let supervisor: Pid | undefined;
    let supervisorFailed: unknown;
    startSupervisor(system0, {
      strategy: model.strategy,
      intensity: model.intensity,
      periodMs: model.periodMs,
      children: model.children.map((child, index) => ({
        id: child.id,
        restart: child.restart,
        shutdown: 50,
        start: (ctx) => ctx.spawnLink(code('Child'), [probeId, child.id], { thread: placements[index] }),
      })),
    }).then(
      (pid) => {
        supervisor = pid;
      },
      (error: unknown) => {
        supervisorFailed = error;
      },
    );
    const setupEndMs = clock.now() + 2 * maxDelayMs + 5;
    await network.runUntil(setupEndMs);
    if (supervisor === undefined) fail(`the supervisor did not start: ${String(supervisorFailed)}`);

    // a worker dies at a seeded moment (in one seed of ten, none does)
    // Workers die at the milliseconds whose `actor_crash` decision says so (at most
    // MAX_DEATHS; none in some seeds): faults of the seed's trace, so a failing seed shrinks to
    // the deaths it needs. The victim is a live worker (a replacement too), drawn as it dies.
    const deaths: number[] = [];
    for (let ms = 0; ms < ACTIVE_MS && deaths.length < MAX_DEATHS; ms++)
      if (context.faults.shouldCrashActor()) deaths.push(ms);
    for (const ms of deaths)
      network.schedule(ms, () => {
        const alive = network.threads.filter((thread) => thread.index > 0 && thread.alive);
        if (alive.length === 0) return coverage.hit('death-skipped-no-live-worker');
        const victim = pick(alive);
        if (victim.incarnation > 0) coverage.hit('replacement-died');
        network.kill(victim.index);
      });
    const deathMs = deaths[0];
    /**
     * When a conversation starts: anywhere, close to the death, or just before it (so that its
     * reply is on the wire when the server's thread dies).
     */
    const when = (): number => {
      const choice = random.nextInt(3);
      if (deathMs === undefined || choice === 0) return random.nextInt(ACTIVE_MS);
      if (choice === 1) return Math.max(0, deathMs - 20 + random.nextInt(40));
      return Math.max(0, deathMs - random.nextInt(2 * maxDelayMs + 2));
    };

    // conversations: calls across threads, stream messages, children told to exit
    const calls: CallRecord[] = [];
    const callCount = between(10, 40);
    for (let index = 0; index < callCount; index++) {
      network.schedule(when(), () => startCall(index));
    }
    const startCall = (id: number): void => {
      const callerThread = network.threads[between(0, threads - 1)];
      const others = Array.from({ length: threads }, (_, t) => t).filter((t) => t !== callerThread.index);
      const server = pick(others);
      const timeoutMs = pick(CALL_TIMEOUTS_MS);
      const byName = random.chance(0.5);
      // callers are the first incarnations (a replacement never learned the servers' pids)
      if (!callerThread.alive || callerThread.incarnation > 0) {
        coverage.hit('call-skipped-caller-down');
        return;
      }
      const afterLoss = network.lossAt(callerThread.index, callerThread.incarnation, server) !== undefined;
      if (afterLoss && !byName) {
        coverage.hit('call-skipped-server-known-lost'); // its pid names a thread that is gone
        return;
      }
      const start = { at: clock.now(), seq: network.nextSeq() };
      const record: CallRecord = {
        id,
        caller: callerThread.index,
        callerIncarnation: callerThread.incarnation,
        server,
        timeoutMs,
        byName,
        afterLoss,
        start,
        outcome: undefined,
      };
      calls.push(record);
      const pid =
        callerThread.index === 0 ? servers[server] : probe.serverViews.get(callerThread.index)?.[server];
      if (pid === undefined) fail(`thread ${callerThread.index} never got the servers' pids`);
      callerThread.system.call(byName ? `srv${server}` : pid, { tap: 'call', call: id }, timeoutMs).then(
        (value) => {
          record.outcome = { value, at: clock.now() };
        },
        (error: unknown) => {
          record.outcome = { error, at: clock.now() };
        },
      );
    };
    const emits = between(10, 50);
    for (let index = 0; index < emits && pairs.length > 0; index++) {
      const pair = pick(pairs);
      const [from, to] = random.chance(0.5) ? [pair.a, pair.b] : [pair.b, pair.a];
      network.schedule(when(), () => system0.send(watchers[from], { emit: `w${to}` }));
    }
    const exits = between(0, 4);
    for (let index = 0; index < exits; index++) {
      const child = pick(model.children).id;
      const reason = pick(['normal', 'shutdown', 'crashed'] as const);
      network.schedule(random.nextInt(ACTIVE_MS), () => {
        const pid = live.get(child);
        if (pid !== undefined) system0.send(pid, { exit: reason });
      });
    }
    await network.runUntil(setupEndMs + ACTIVE_MS + QUIET_MS);

    // every child the supervisor reports running answers, on a live thread
    const pings = new Map<string, { value?: unknown; error?: unknown }>();
    const supervisorAlive = system0.isAlive(supervisor);
    const running = new Map(supervisorAlive ? live : []);
    for (const [child, pid] of running)
      system0.call(pid, { tap: 'ping' }, 1_000).then(
        (value) => pings.set(child, { value }),
        (error: unknown) => pings.set(child, { error }),
      );
    await network.runUntil(clock.now() + 1_100);
    // stop the tree from outside: every running child terminated, across threads
    if (supervisorAlive) {
      system0.exit(supervisor, 'shutdown');
      await network.runUntil(clock.now() + 1_000);
      if (system0.isAlive(supervisor)) fail('the supervisor did not stop within 1000 ms of a shutdown');
    }

    if (probe.unexpected.length > 0) fail(probe.unexpected[0]);
    const dead = network.incarnations.filter((thread) => !thread.alive);
    coverage.hit(
      dead.length === 0 ? 'no-thread-died' : dead.length === 1 ? 'thread-died' : 'two-threads-died',
    );
    if (network.replacements !== dead.length)
      fail(`${dead.length} threads died; ${network.replacements} replacements were started`);
    if (network.waited > 0) coverage.hit('batch-waited-for-boot');
    /** Threads whose first incarnation (where the servers and watchers live) died, and when. */
    const lost = new Map(
      dead.filter((thread) => thread.incarnation === 0).map((thread) => [thread.index, thread.diedAt!]),
    );
    checkCalls(context, network, probe, calls, lost);
    checkSignals(context, network, probe, pairs, lost);
    checkStreams(context, network, probe, lost);
    checkSupervision(context, network, trace, model, supervisor, running, pings, supervisorAlive);
  } finally {
    network.close();
    closeProbe(probeId);
  }
}

function describeOutcome(outcome: CallRecord['outcome']): string {
  if (outcome === undefined) return 'no outcome';
  if ('value' in outcome) return `reply ${JSON.stringify(outcome.value)} at ${outcome.at} ms`;
  const error = outcome.error;
  return `${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} at ${outcome.at} ms`;
}

/** Index of the wire: the batch that carried each call's request and each reply. */
function callBatches(wire: readonly WireBatch[]): {
  requests: Map<number, WireBatch[]>;
  replies: Map<number, WireBatch[]>;
} {
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

function checkCalls(
  context: SimulationContext,
  network: SimulatedNetwork,
  probe: ThreadProbe,
  calls: readonly CallRecord[],
  lost: ReadonlyMap<number, number>,
): void {
  const { coverage } = context;
  const { requests, replies } = callBatches(network.wire);
  for (const call of calls) {
    const say = (what: string): never =>
      fail(
        `call ${call.id} from thread ${call.caller} to the server on thread ${call.server} at ${call.start.at} ms (timeout ${call.timeoutMs} ms): ${what}`,
      );
    const caller = network.incarnations.find(
      (t) => t.index === call.caller && t.incarnation === call.callerIncarnation,
    )!;
    const sent = requests.get(call.id) ?? [];
    if (call.afterLoss) {
      // the name went with its thread: noproc at once, nothing posted
      coverage.hit('call-by-name-after-loss-noproc');
      const error = call.outcome !== undefined && 'error' in call.outcome ? call.outcome.error : undefined;
      if (
        sent.length > 0 ||
        !isCallExit(error) ||
        error.reason !== 'noproc' ||
        call.outcome!.at !== call.start.at
      )
        say(
          `by name after its thread was lost: expected CallExit(noproc) at once, got ${describeOutcome(call.outcome)} (its request was posted ${sent.length} times)`,
        );
      continue;
    }
    if (call.byName) coverage.hit('call-by-name');
    if (sent.length !== 1) say(`its request was posted ${sent.length} times`);
    const request = sent[0];
    const handled = probe.handled.get(call.id) ?? [];
    const reachedServer = request.fate === 'delivered' && request.toIncarnation === 0;
    if (handled.length !== (reachedServer ? 1 : 0))
      say(`the server handled it ${handled.length} times; its request was ${request.fate}`);
    if (reachedServer && handled[0].at !== request.delivered!.at)
      say(`handled at ${handled[0].at} ms, its request arrived at ${request.delivered!.at} ms`);
    const deadline: Moment = { at: call.start.at + call.timeoutMs, seq: call.start.seq };
    const loss = network.lossAt(call.caller, call.callerIncarnation, call.server);
    const reply = (replies.get(call.id) ?? [])[0];
    if (reachedServer && reply === undefined) say('the server handled it and no reply was posted');
    const outcome = call.outcome;
    const error = outcome !== undefined && 'error' in outcome ? outcome.error : undefined;
    let expected: string;
    let at: number;
    let ok: boolean;
    const branches: string[] = [];
    if (reachedServer && reply.fate === 'delivered' && before(reply.delivered!, deadline)) {
      const count = handled[0].count;
      at = reply.delivered!.at;
      expected = `reply ${count} at ${at} ms`;
      branches.push('call-reply');
      if ((lost.get(call.server) ?? Number.POSITIVE_INFINITY) < at)
        branches.push('call-reply-from-dead-thread');
      const value =
        outcome !== undefined && 'value' in outcome
          ? (outcome.value as { call?: number; count?: number })
          : undefined;
      ok = value?.call === call.id && value.count === count && outcome!.at === at;
    } else if (loss !== undefined && before(loss, deadline)) {
      at = loss.at;
      expected = `CallExit(noconnection) at ${at} ms`;
      branches.push(reachedServer ? 'call-noconnection-reply-lost' : 'call-noconnection');
      if (call.caller !== 0) branches.push('call-noconnection-told-by-thread-0');
      ok = isCallExit(error) && error.reason === 'noconnection' && outcome!.at === at;
    } else {
      at = deadline.at;
      expected = `CallTimeout at ${at} ms`;
      branches.push(
        request.fate === 'delivered' && (reply === undefined || reply.fate === 'delivered')
          ? 'call-timeout-slow-network'
          : 'call-timeout-loss-not-yet-known',
      );
      ok = isCallTimeout(error) && outcome!.at === at;
    }
    if (caller.diedAt !== undefined && caller.diedAt <= at) {
      coverage.hit('call-caller-died'); // the caller is gone: nobody is owed an outcome
      continue;
    }
    for (const branch of branches) coverage.hit(branch);
    if (!ok)
      say(
        `expected ${expected}, got ${describeOutcome(outcome)} (request ${request.fate}${reply === undefined ? '' : `, reply ${reply.fate}`})`,
      );
  }
  // a server's count is the number of requests it handled
  const byThread = new Map<number, number[]>();
  for (const list of probe.handled.values())
    for (const entry of list) {
      const counts = byThread.get(entry.thread) ?? [];
      counts.push(entry.count);
      byThread.set(entry.thread, counts);
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
  config: ConstructorParameters<typeof SupervisorModel>[0],
  supervisor: Pid,
  running: ReadonlyMap<string, Pid>,
  pings: ReadonlyMap<string, { value?: unknown; error?: unknown }>,
  supervisorAlive: boolean,
): void {
  const { coverage } = context;
  const model = new SupervisorModel(config, KNOWN_DEVIATIONS, (branch) => coverage.hit(branch));
  try {
    for (const event of trace) {
      if (event.supervisor !== supervisor) continue;
      if (event.kind === 'child_exited' && event.reason === 'noconnection')
        coverage.hit('child-lost-with-thread');
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
      'child-restarted-on-replacement',
      'child-answers',
      'supervisor-gave-up',
      'strategy-one_for_one',
      'strategy-one_for_all',
      'strategy-rest_for_one',
    ],
  },
];
