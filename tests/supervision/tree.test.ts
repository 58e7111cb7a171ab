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
import { pidOf, StartLog, testSystem, workerSpec } from './helpers.js';

async function tree() {
  const { system } = testSystem();
  const log = new StartLog();
  const root = await startSupervisor(system, {
    name: 'root',
    children: [
      workerSpec('counter', log),
      {
        id: 'pool',
        type: 'supervisor',
        start: (ctx: Context) =>
          startSupervisor(ctx, {
            strategy: 'one_for_all',
            children: [workerSpec('a', log, { restart: 'transient' }), workerSpec('b', log)],
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

describe('supervision tree tools (seed 002)', () => {
  it('childrenOf, supervisorOf, depth, isSupervisor', async () => {
    const { system, root, counter, pool, a, b } = await tree();
    expect(childrenOf(system, root)).toEqual([counter, pool]);
    expect(childrenOf(system, pool)).toEqual([a, b]);
    expect(childrenOf(system, a)).toEqual([]);
    expect(supervisorOf(system, a)).toBe(pool);
    expect(supervisorOf(system, root)).toBeUndefined();
    expect([depth(system, root), depth(system, pool), depth(system, b)]).toEqual([0, 1, 2]);
    expect([isSupervisor(system, pool), isSupervisor(system, a)]).toEqual([true, false]);
  });

  it('treeView draws the nested tree', async () => {
    const { system, root, counter, pool, a, b } = await tree();
    expect(treeView(system, root)).toBe(
      [
        `${root} (root) supervisor one_for_one`,
        `├── counter ${counter} worker permanent`,
        `└── pool ${pool} supervisor permanent one_for_all`,
        `    ├── a ${a} worker transient`,
        `    └── b ${b} worker permanent`,
      ].join('\n'),
    );
  });

  it('killTree kills depth-first, children before parents, and nothing restarts in between', async () => {
    const { system, root, counter, pool, a, b, log } = await tree();
    expect(killTree(system, root)).toEqual([counter, a, b, pool, root]);
    await system.settle();
    expect(system.stats().alive).toBe(0);
    expect(log.order).toEqual(['counter', 'a', 'b']);
  });

  it('killTree of a subtree: its supervisor sees it die and restarts it', async () => {
    const { system, root, pool, log } = await tree();
    killTree(system, pool);
    await system.settle();
    const newPool = (await pidOf(system, root, 'pool')) as Pid;
    expect(newPool).not.toBe(pool);
    expect(childrenOf(system, newPool)).toHaveLength(2);
    expect(log.order).toEqual(['counter', 'a', 'b', 'a', 'b']);
  });
});
