/**
 * Supervision tree tools (seed 002), run twice (describe.each): on one thread, and with the
 * workers on thread 1 while the supervisors run on thread 0 (treeView shows each worker's thread
 * in its pid). Only the "nothing left alive" count (`stats().alive`, the calling thread's) is
 * one-thread.
 */
import { describe, expect, it } from 'vitest';
import type { Context, Pid } from '../../src/actor/index.js';
import {
  childrenOf,
  depth,
  isSupervisor,
  killTree,
  startSupervisor,
  supervisorOf,
  treeView,
} from '../../src/supervision/index.js';
import {
  fileTwoThreadSystem,
  pidOf,
  type SpawnWorker,
  StartLog,
  spawnLocalWorker,
  spawnWorkerOn,
  testSystem,
  workerSpec,
} from './helpers.js';

const twoThreads = fileTwoThreadSystem();

async function tree(threads: 1 | 2, spawn: SpawnWorker) {
  const system = threads === 1 ? testSystem().system : twoThreads().system;
  const log = new StartLog();
  const root = await startSupervisor(system, {
    name: threads === 1 ? 'root' : `root${++roots}`,
    children: [
      workerSpec('counter', log, {}, spawn),
      {
        id: 'pool',
        type: 'supervisor',
        start: (ctx: Context) =>
          startSupervisor(ctx, {
            strategy: 'one_for_all',
            children: [
              workerSpec('a', log, { restart: 'transient' }, spawn),
              workerSpec('b', log, {}, spawn),
            ],
          }),
      },
    ],
  });
  const counter = (await pidOf(system, root, 'counter')) as Pid;
  const pool = (await pidOf(system, root, 'pool')) as Pid;
  const a = (await pidOf(system, pool, 'a')) as Pid;
  const b = (await pidOf(system, pool, 'b')) as Pid;
  return { system, root, counter, pool, a, b, log };
}

let roots = 0;

describe.each([
  { name: 'one thread', threads: 1, spawn: spawnLocalWorker },
  { name: 'workers on another thread', threads: 2, spawn: spawnWorkerOn(1) },
] as const)('supervision tree tools (seed 002), $name', ({ threads, spawn }) => {
  it('childrenOf, supervisorOf, depth, isSupervisor', async () => {
    const { system, root, counter, pool, a, b } = await tree(threads, spawn);
    expect(childrenOf(system, root)).toEqual([counter, pool]);
    expect(childrenOf(system, pool)).toEqual([a, b]);
    expect(childrenOf(system, a)).toEqual([]);
    expect(supervisorOf(system, a)).toBe(pool);
    expect(supervisorOf(system, root)).toBeUndefined();
    expect([depth(system, root), depth(system, pool), depth(system, b)]).toEqual([0, 1, 2]);
    expect([isSupervisor(system, pool), isSupervisor(system, a)]).toEqual([true, false]);
  });

  it('treeView draws the nested tree', async () => {
    const { system, root, counter, pool, a, b } = await tree(threads, spawn);
    expect(treeView(system, root)).toBe(
      [
        `${root} (${threads === 1 ? 'root' : `root${roots}`}) supervisor one_for_one`,
        `├── counter ${counter} worker permanent`,
        `└── pool ${pool} supervisor permanent one_for_all`,
        `    ├── a ${a} worker transient`,
        `    └── b ${b} worker permanent`,
      ].join('\n'),
    );
  });

  it('killTree kills depth-first, children before parents, and nothing restarts in between', async () => {
    const { system, root, counter, pool, a, b, log } = await tree(threads, spawn);
    const exits = [counter, a, b, pool, root].map((pid) => system.whenExited(pid));
    expect(killTree(system, root)).toEqual([counter, a, b, pool, root]);
    expect(await Promise.all(exits)).toEqual(['killed', 'killed', 'killed', 'killed', 'killed']);
    await system.settle();
    if (threads === 1) expect(system.stats().alive).toBe(0);
    expect(log.order).toEqual(['counter', 'a', 'b']);
  });

  it('killTree of a subtree: its supervisor sees it die and restarts it', async () => {
    const { system, root, pool, log } = await tree(threads, spawn);
    const exited = system.whenExited(pool);
    killTree(system, pool);
    await exited;
    const newPool = (await pidOf(system, root, 'pool')) as Pid; // queued behind the pool's EXIT
    expect(newPool).not.toBe(pool);
    expect(childrenOf(system, newPool)).toHaveLength(2);
    expect(log.order).toEqual(['counter', 'a', 'b', 'a', 'b']);
  });
});
