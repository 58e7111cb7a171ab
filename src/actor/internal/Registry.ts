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
   * With several threads, names are node-wide: each thread tells the others of its names, and
   * keeps theirs in `remote.remoteNames`.
   */
  remote: Remote | undefined = undefined;

  holder(name: string): ProcessRecord | undefined {
    return this.names.get(name);
  }

  /** The pid registered as `name` on any thread of this node. */
  whereis(name: string): Pid | undefined {
    return this.names.get(name)?.pid ?? this.remote?.remoteNames.get(name);
  }

  /** Registers `record` as `name`; throws `AlreadyRegistered` or `BadArgument` (already named). */
  add(name: string, record: ProcessRecord): void {
    const holder = this.names.get(name)?.pid ?? this.remote?.remoteNames.get(name);
    if (holder !== undefined) throw new AlreadyRegistered(name, holder);
    if (record.extra?.name !== undefined) {
      throw new BadArgument(
        `cannot register '${name}': ${record.pid} is already registered as '${record.extra.name}'`,
      );
    }
    extraOf(record).name = name;
    this.names.set(name, record);
    this.remote?.nameAdded(name, record);
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
