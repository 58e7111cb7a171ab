import { AlreadyRegistered, BadArgument } from '../errors.js';
import { extraOf, type ProcessRecord } from './Process.js';

/**
 * Registered names (Erlang's register/whereis): one name per process, one process per name.
 * A name leaves the registry when its process exits (signals.ts calls `release`).
 */
export class Registry {
  private readonly names = new Map<string, ProcessRecord>();

  holder(name: string): ProcessRecord | undefined {
    return this.names.get(name);
  }

  /** Registers `record` as `name`; throws `AlreadyRegistered` or `BadArgument` (already named). */
  add(name: string, record: ProcessRecord): void {
    const holder = this.names.get(name);
    if (holder !== undefined) throw new AlreadyRegistered(name, holder.pid);
    if (record.extra?.name !== undefined) {
      throw new BadArgument(
        `cannot register '${name}': ${record.pid} is already registered as '${record.extra.name}'`,
      );
    }
    extraOf(record).name = name;
    this.names.set(name, record);
  }

  /** Removes a name; false if it was not registered. */
  remove(name: string): boolean {
    const holder = this.names.get(name);
    if (holder === undefined) return false;
    holder.extra!.name = undefined;
    this.names.delete(name);
    return true;
  }

  /** Drops the name of a process that exited. */
  release(name: string): void {
    this.names.delete(name);
  }

  list(): string[] {
    return [...this.names.keys()];
  }
}
