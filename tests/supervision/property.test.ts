/**
 * Crash storms on random supervision trees, run twice (describe.each): on one thread (200 runs),
 * and with every worker on thread 1 of a two-thread system while the supervisors and the
 * simulated clock are on thread 0 (50 runs, to keep the suite fast). Between threads the storm
 * waits for quiet (round trips to thread 1 until nothing changes) instead of `settle()`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ActorSystem,
  type Context,
  type ExitReason,
  isNormalOrShutdown,
  isPid,
  type Pid,
  SimulatedClock,
  startGenServer,
} from '../../src/actor/index.js';
import {
  type ChildSpec,
  onSupervisionEvent,
  type RestartType,
  type Strategy,
  type SupervisionEvent,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../../src/supervision/index.js';
import { inbox } from '../actor/helpers.js';
import { WorkerServer } from './fixtures/worker.js';
import { fileTwoThreadSystem, testSystem, workerHandler } from './helpers.js';

interface WorkerNode {
  readonly kind: 'worker';
  readonly restart: RestartType;
  /** A GenServer started with startGenServer (an async start) rather than a plain handler. */
  readonly server: boolean;
}
interface SupervisorNode {
  readonly kind: 'supervisor';
  readonly strategy: Exclude<Strategy, 'simple_one_for_one'>;
  readonly intensity: number;
  readonly children: TreeNode[];
}
type TreeNode = WorkerNode | SupervisorNode;

const PERIOD_MS = 1000;

const workerNode = fc.record({
  kind: fc.constant('worker' as const),
  restart: fc.constantFrom<RestartType>('permanent', 'transient', 'temporary'),
  server: fc.boolean(),
});

const treeNode = fc.letrec<{ node: TreeNode; supervisor: SupervisorNode }>((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, workerNode, tie('supervisor')),
  supervisor: fc.record({
    kind: fc.constant('supervisor' as const),
    strategy: fc.constantFrom<SupervisorNode['strategy']>('one_for_one', 'one_for_all', 'rest_for_one'),
    intensity: fc.integer({ min: 0, max: 4 }),
    children: fc.array(tie('node'), { minLength: 1, maxLength: 4 }),
  }),
})).supervisor;

type Blow = 'crash' | 'normal' | 'shutdown' | 'shutdown_detail' | 'kill';
const step = fc.record({
  target: fc.nat(),
  blow: fc.constantFrom<Blow>('crash', 'normal', 'shutdown', 'shutdown_detail', 'kill', 'kill', 'crash'),
  waitMs: fc.constantFrom(0, 0, 10, 100, 400, 1000),
});

const fixtures = new URL('./fixtures/worker.ts', import.meta.url).href;

/** Where the workers run: here, or on `thread` (started by module URL). */
type Placement = { readonly thread: number | undefined };

/** Child ids are paths in the shape ('root.1.0'), so a test can find a child's spec from its id. */
function specFor(node: TreeNode, id: string, where: Placement): ChildSpec {
  if (node.kind === 'worker') {
    const thread = where.thread;
    let start: ChildSpec['start'];
    if (thread === undefined)
      start = node.server
        ? (ctx: Context) => startGenServer(ctx, WorkerServer, undefined, { link: true })
        : (ctx: Context) => ctx.spawnLink(workerHandler());
    else {
      const code = { module: fixtures, export: node.server ? 'workerServer' : 'Worker' };
      start = (ctx: Context) => ctx.spawnLink(code, [], { thread });
    }
    return { id, restart: node.restart, start };
  }
  return {
    id,
    type: 'supervisor',
    start: (ctx: Context) => startSupervisor(ctx, optionsFor(node, id, where)),
  };
}

function optionsFor(node: SupervisorNode, prefix: string, where: Placement) {
  return {
    strategy: node.strategy,
    intensity: node.intensity,
    periodMs: PERIOD_MS,
    children: node.children.map((child, index) => specFor(child, `${prefix}.${index}`, where)),
  };
}

/** Every live process of the tree below `supervisor` (supervisors and workers, on any thread). */
async function treeProcesses(system: ActorSystem, supervisor: Pid): Promise<Pid[]> {
  const found: Pid[] = [];
  for (const child of await whichChildren(system, supervisor).catch(() => [])) {
    if (!isPid(child.pid)) continue;
    found.push(child.pid);
    if (child.type === 'supervisor') found.push(...(await treeProcesses(system, child.pid)));
  }
  return found;
}

function restartTypeOf(root: SupervisorNode, id: string): RestartType {
  let node: TreeNode = root;
  for (const part of id.split('.').slice(1)) node = (node as SupervisorNode).children[Number(part)];
  return node.kind === 'worker' ? node.restart : 'permanent';
}

function intensityOf(root: SupervisorNode, supervisorId: string): number {
  let node: TreeNode = root;
  for (const part of supervisorId.split('.').slice(1)) node = (node as SupervisorNode).children[Number(part)];
  return (node as SupervisorNode).intensity;
}

function strike(system: ActorSystem, pid: Pid, blow: Blow): void {
  if (blow === 'kill') system.exit(pid, 'kill');
  else if (blow === 'crash') system.send(pid, 'crash');
  else system.send(pid, { exit: blow === 'shutdown_detail' ? { shutdown: 'detail' } : blow });
}

/** Every live supervisor reachable from the root has each permanent child running. */
async function checkPermanentChildrenAlive(
  system: ActorSystem,
  supervisor: Pid,
  alive: (pid: Pid) => Promise<boolean>,
): Promise<void> {
  for (const child of await whichChildren(system, supervisor)) {
    if (child.restart === 'permanent') {
      expect(isPid(child.pid) && (await alive(child.pid))).toBe(true);
    }
    if (child.type === 'supervisor' && isPid(child.pid))
      await checkPermanentChildrenAlive(system, child.pid, alive);
  }
}

/**
 * Whether a process on another thread is alive (`isAlive` only knows its thread is up): a watch
 * on it answers `noproc` at once if it is dead, and that answer comes back ahead of a round trip
 * to its thread made after it.
 */
function probeAlive(system: ActorSystem, thread: number): (pid: Pid) => Promise<boolean> {
  return async (pid) => {
    if (pid.thread !== thread) return system.isAlive(pid);
    const watch = new AbortController();
    let exited = false;
    system.whenExited(pid, { signal: watch.signal }).then(
      () => {
        exited = true;
      },
      () => {},
    );
    const box = inbox(system);
    const echo = system.spawn({ module: fixtures, export: 'Worker' }, [], { thread });
    system.send(echo, { ping: box.pid });
    await box.next();
    await system.settle();
    watch.abort();
    system.exit(echo, 'kill');
    system.exit(box.pid, 'kill');
    return !exited;
  };
}

/**
 * Restart decisions per supervisor pid, from its events: a child_exited of a permanent child, or
 * of a transient one with an abnormal reason. More than `intensity` of them within a period must
 * be followed at once by restart_intensity_reached, and the supervisor must have exited shutdown.
 */
function checkIntensity(
  root: SupervisorNode,
  events: SupervisionEvent[],
  exits: Map<Pid, ExitReason>,
  system: ActorSystem,
): void {
  const decisions = new Map<Pid, number[]>();
  const supervisorIds = new Map<Pid, string>();
  for (const event of events) {
    if (event.kind === 'child_started' || event.kind === 'child_restarted') {
      if (event.pid !== undefined && event.childId !== undefined) supervisorIds.set(event.pid, event.childId);
    }
  }
  events.forEach((event, index) => {
    if (event.kind !== 'child_exited' || event.childId === undefined) return;
    const restart = restartTypeOf(root, event.childId);
    if (restart === 'temporary' || (restart === 'transient' && isNormalOrShutdown(event.reason))) return;
    const times = decisions.get(event.supervisor) ?? [];
    times.push(event.timeMs);
    decisions.set(event.supervisor, times);
    const inWindow = times.filter((time) => event.timeMs - time < PERIOD_MS).length;
    const id = supervisorIds.get(event.supervisor) ?? 'root';
    if (inWindow > intensityOf(root, id)) {
      expect(events[index + 1]?.kind).toBe('restart_intensity_reached');
      expect(system.isAlive(event.supervisor)).toBe(false);
      expect(exits.get(event.supervisor)).toBe('shutdown');
    }
  });
}

const twoThreads = fileTwoThreadSystem({ clock: new SimulatedClock() });
const placements = [
  { name: 'one thread', thread: undefined, runs: 200 },
  { name: 'the workers on another thread', thread: 1, runs: 50 },
] as const;

describe.each(placements)('property: crash storms on random trees ($name)', ({ thread, runs }) => {
  it('never leave a permanent child of a live supervisor dead, and never exceed the intensity silently', async () => {
    await fc.assert(
      fc.asyncProperty(treeNode, fc.array(step, { minLength: 1, maxLength: 30 }), async (shape, storm) => {
        const system = thread === undefined ? testSystem().system : twoThreads().system;
        const events: SupervisionEvent[] = [];
        const exits = new Map<Pid, ExitReason>();
        const stopExits = system.onExit((pid, reason) => exits.set(pid, reason));
        const stopEvents = onSupervisionEvent(system, (event) => events.push(event));
        const quiet = thread === undefined ? () => system.settle() : quietness(system, thread, events);
        try {
          const root = await startSupervisor(system, optionsFor(shape, 'root', { thread }));
          for (const { target, blow, waitMs } of storm) {
            const candidates = await treeProcesses(system, root);
            if (candidates.length === 0) break;
            strike(system, candidates[target % candidates.length], blow);
            await system.advance(waitMs);
          }
          await quiet();
          const alive =
            thread === undefined ? async (pid: Pid) => system.isAlive(pid) : probeAlive(system, thread);
          if (system.isAlive(root)) await checkPermanentChildrenAlive(system, root, alive);
          else if (thread === undefined) expect(system.stats().alive).toBe(0);
          checkIntensity(shape, events, exits, system);
          if (system.isAlive(root)) await stopSupervisor(system, root);
        } finally {
          stopExits();
          stopEvents();
        }
      }),
      { numRuns: runs },
    );
  });
});

/**
 * Waits until the storm's effects have all arrived: round trips to a process on `thread` (each
 * travels behind every signal and message sent there before it, and its answer behind what that
 * thread sent back), each followed by a settle of thread 0, until two in a row change nothing.
 */
function quietness(system: ActorSystem, thread: number, events: SupervisionEvent[]): () => Promise<void> {
  return async () => {
    const box = inbox(system);
    const echo = system.spawn({ module: fixtures, export: 'Worker' }, [], { thread });
    let unchanged = 0;
    for (let round = 0; round < 200 && unchanged < 2; round++) {
      const before = events.length;
      system.send(echo, { ping: box.pid });
      await box.next();
      await system.settle();
      unchanged = events.length === before ? unchanged + 1 : 0;
    }
    system.exit(echo, 'kill');
    system.exit(box.pid, 'kill');
  };
}
