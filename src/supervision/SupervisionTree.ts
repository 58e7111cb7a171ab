import { type ActorSystem, isPid, type Pid } from '../actor/index.js';
import { parentOf, supervisorView } from './internal/registry.js';
import type { ChildInfo } from './SupervisorResults.js';

/**
 * Tools over the live supervision tree (seed 002's `children_of`, `kill_tree`, `depth`,
 * `tree_view`). They read the supervisors' state directly, between their turns, so they are
 * synchronous and see one consistent tree.
 */

/** Deepest tree these tools walk; deeper levels are cut (a guard against a cycle, which is a bug). */
export const MAX_TREE_DEPTH = 64;

/** True when `pid` is a live supervisor. */
export function isSupervisor(system: ActorSystem, pid: Pid): boolean {
  return supervisorView(system, pid) !== undefined;
}

/** The running children of a supervisor, in start order (empty for a worker or a dead pid). */
export function childrenOf(system: ActorSystem, pid: Pid): Pid[] {
  const view = supervisorView(system, pid);
  if (view === undefined) return [];
  const pids: Pid[] = [];
  for (const child of view.children()) if (isPid(child.pid)) pids.push(child.pid);
  return pids;
}

/**
 * A live supervisor's strategy and children (id, pid or 'restarting', type, restart), read
 * synchronously between its turns (for observers: `zbmd top`, the web view); undefined for a
 * worker or a dead pid.
 */
export function supervisorChildren(
  system: ActorSystem,
  pid: Pid,
): { readonly strategy: string; readonly children: ChildInfo[] } | undefined {
  const view = supervisorView(system, pid);
  return view === undefined ? undefined : { strategy: view.strategy, children: [...view.children()] };
}

/** The supervisor of a running child, or undefined for a root (or a process nobody supervises). */
export function supervisorOf(system: ActorSystem, pid: Pid): Pid | undefined {
  const parent = parentOf(pid);
  return parent !== undefined && system.isAlive(parent) ? parent : undefined;
}

/** Levels of supervisors above `pid`: 0 for a root, 1 for its children... */
export function depth(system: ActorSystem, pid: Pid): number {
  let levels = 0;
  for (
    let parent = supervisorOf(system, pid);
    parent !== undefined && levels < MAX_TREE_DEPTH;
    parent = supervisorOf(system, parent)
  ) {
    levels++;
  }
  return levels;
}

/**
 * Kills `root` and everything below it, depth-first, children before parents, with an
 * untrappable `kill`; returns the pids in the order they were killed. The whole walk happens
 * within one synchronous step, so no supervisor of the subtree runs (and restarts anything) in
 * between. The supervisor above `root`, if any, sees `root` die as `killed`.
 */
export function killTree(system: ActorSystem, root: Pid): Pid[] {
  const order: Pid[] = [];
  collectPostOrder(system, root, order, 0);
  for (const pid of order) system.exit(pid, 'kill');
  return order;
}

function collectPostOrder(system: ActorSystem, pid: Pid, order: Pid[], level: number): void {
  if (level < MAX_TREE_DEPTH)
    for (const child of childrenOf(system, pid)) collectPostOrder(system, child, order, level + 1);
  if (system.isAlive(pid)) order.push(pid);
}

/**
 * A text picture of the tree under `root` (seed 002's `tree_view`):
 *
 * ```text
 * <0.1.0> supervisor one_for_one
 * ├── counter <0.2.0> worker permanent
 * └── pool <0.3.0> supervisor permanent one_for_all
 *     ├── a <0.4.0> worker transient
 *     └── b restarting worker permanent
 * ```
 */
export function treeView(system: ActorSystem, root: Pid): string {
  const view = supervisorView(system, root);
  // (a root on another thread prints its thread in the pid; its name is known only there)
  const name = root.thread === system.thread ? system.processInfo(root)?.name : undefined;
  const title = `${root}${name === undefined ? '' : ` (${name})`}`;
  if (view === undefined) return `${title} ${system.isAlive(root) ? 'worker' : 'dead'}`;
  const lines = [`${title} supervisor ${view.strategy}`];
  appendChildren(system, root, '', lines, 0);
  return lines.join('\n');
}

function appendChildren(
  system: ActorSystem,
  supervisor: Pid,
  indent: string,
  lines: string[],
  level: number,
): void {
  const children = supervisorView(system, supervisor)?.children() ?? [];
  children.forEach((child, index) => {
    const last = index === children.length - 1;
    lines.push(`${indent}${last ? '└── ' : '├── '}${describeChild(system, child)}`);
    if (isPid(child.pid) && level < MAX_TREE_DEPTH) {
      appendChildren(system, child.pid, `${indent}${last ? '    ' : '│   '}`, lines, level + 1);
    }
  });
}

function describeChild(system: ActorSystem, child: ChildInfo): string {
  const state = child.pid === undefined ? 'stopped' : String(child.pid);
  const parts = [child.id, state, child.type, child.restart];
  if (isPid(child.pid)) {
    const view = supervisorView(system, child.pid);
    if (view !== undefined) parts.push(view.strategy);
  }
  return parts.join(' ');
}
