import type { ActorSystem, Pid } from '../../actor/index.js';
import type { ChildInfo, Strategy } from '../SupervisorResults.js';

/** What the tree tools may read of a live supervisor (synchronously, between its turns). */
export interface SupervisorView {
  readonly strategy: Strategy;
  children(): ChildInfo[];
}

// Keyed by Pid objects: a process keeps one Pid object for its life, and dead ones are collected.
const supervisors = new WeakMap<Pid, SupervisorView>();
const parents = new WeakMap<Pid, Pid>();

export function registerSupervisor(pid: Pid, view: SupervisorView): void {
  supervisors.set(pid, view);
}

export function unregisterSupervisor(pid: Pid): void {
  supervisors.delete(pid);
}

/** The view of a live supervisor, or undefined (not a supervisor, or dead). */
export function supervisorView(system: ActorSystem, pid: Pid): SupervisorView | undefined {
  const view = supervisors.get(pid);
  if (view === undefined) return undefined;
  if (system.isAlive(pid)) return view;
  supervisors.delete(pid); // killed: it never ran its cleanup
  return undefined;
}

export function setParent(child: Pid, supervisor: Pid): void {
  parents.set(child, supervisor);
}

export function clearParent(child: Pid): void {
  parents.delete(child);
}

export function parentOf(child: Pid): Pid | undefined {
  return parents.get(child);
}
