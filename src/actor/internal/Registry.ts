import { AlreadyRegistered, BadArgument } from '../errors.js';
import type { Pid } from '../Pid.js';
import { extraOf, type ProcessRecord } from './Process.js';
import type { Remote } from './Remote.js';

/**
 * Registered names (Erlang's register/whereis): one name per process, one process per name.
 * A name leaves the registry when its process exits (signals.ts calls `release`).
 */
export class Registry {
  private readonly names = new Map<string, ProcessRecord>();
  /**
   * With several threads, names are node-wide: the node's shared name table (SharedNames.ts)
   * decides who holds a name; each thread also tells the others of its names, which keep them in
   * `remote.remoteNames` for sends by name.
   */
  remote: Remote | undefined = undefined;

  holder(name: string): ProcessRecord | undefined {
    return this.names.get(name);
  }

  /**
   * The pid registered as `name` on any thread of this node. With several threads the shared
   * name table answers for names held elsewhere, so a name freed there is free here at once.
   */
  whereis(name: string): Pid | undefined {
    const local = this.names.get(name)?.pid;
    if (local !== undefined || this.remote === undefined) return local;
    return this.remote.nameHolder(name);
  }

  /**
   * Registers `record` as `name` (erlang:register/2's rules); throws `AlreadyRegistered` (the
   * holder) or `BadArgument` (already named). With several threads the name is claimed in the
   * node's shared table in one atomic step, so two threads registering one name in the same
   * instant cannot both succeed: the loser gets `AlreadyRegistered` naming the winner.
   */
  add(name: string, record: ProcessRecord): void {
    const remote = this.remote;
    const local = this.names.get(name);
    if (local !== undefined) throw new AlreadyRegistered(name, local.pid);
    const holder = remote?.nameHolder(name);
    if (holder !== undefined && !(holder.thread === record.pid.thread && holder.id === record.pid.id))
      throw new AlreadyRegistered(name, holder);
    if (record.extra?.name !== undefined) {
      throw new BadArgument(
        `cannot register '${name}': ${record.pid} is already registered as '${record.extra.name}'`,
      );
    }
    if (remote !== undefined) {
      const winner = remote.claimName(name, record);
      if (winner !== undefined) throw new AlreadyRegistered(name, winner);
    }
    extraOf(record).name = name;
    this.names.set(name, record);
    remote?.nameAdded(name, record);
  }

  /** Removes a name; false if it was not registered. */
  remove(name: string): boolean {
    const holder = this.names.get(name);
    if (holder === undefined) return false;
    holder.extra!.name = undefined;
    this.names.delete(name);
    this.remote?.nameRemoved(name, holder);
    return true;
  }

  /** Drops the name of a process that exited. */
  release(name: string, record: ProcessRecord): void {
    this.names.delete(name);
    this.remote?.nameRemoved(name, record);
  }

  list(): string[] {
    const names = [...this.names.keys()];
    if (this.remote !== undefined) names.push(...this.remote.remoteNames.keys());
    return names;
  }
}
