/**
 * Global names (OTP's `global`) on a JetStream KV bucket: a name is one key, written with
 * create-if-absent, so of two processes registering the same name at once exactly one wins and
 * the other gets `AlreadyRegistered` naming the holder. A name goes when its holder unregisters
 * it, when its process exits (the node calls `releaseProcess`), or when its node goes down
 * (every node that sees the nodedown deletes that incarnation's names, compare-and-set by
 * revision, so a newer registration is never removed).
 *
 * Partitions: the bucket is replicated by Raft, so only the side holding a majority of the
 * JetStream servers can write; a name is never held twice in the bucket. A node on the other
 * side cannot register (its bucket operations fail) and is declared down by the majority, which
 * removes its names. When the partition heals and that node learns it was quarantined, it
 * re-checks the names it believed it held; each one now held by another process, or by nobody,
 * is lost locally and reported (`onNameLost`), and the node exits the losing process, as OTP's
 * default resolution (`random_exit_name`) exits one of the two holders.
 */
import { Packr } from 'msgpackr';
import { AlreadyRegistered, ClusterError } from './errors.js';
import type { Membership, NodeId } from './Membership.js';
import { type Bucket, isBucketConflict } from './Transport.js';

/** Who holds a name: a process (its id on its node) on one incarnation of a node. */
export interface GlobalHolder {
  readonly node: string;
  readonly incarnation: number;
  readonly process: string;
}

/** Longest global name, in UTF-16 code units. */
export const MAX_GLOBAL_NAME_LENGTH = 255;

const packer = new Packr({ useRecords: false });

function keyOf(name: string): string {
  return `n.${Buffer.from(name, 'utf8').toString('base64url')}`;
}

function nameOf(key: string): string {
  return Buffer.from(key.slice(2), 'base64url').toString('utf8');
}

function decodeHolder(data: Uint8Array): GlobalHolder | undefined {
  try {
    const value = packer.unpack(data) as Partial<GlobalHolder> | null;
    if (
      value !== null &&
      typeof value === 'object' &&
      typeof value.node === 'string' &&
      Number.isSafeInteger(value.incarnation) &&
      typeof value.process === 'string'
    ) {
      return { node: value.node, incarnation: value.incarnation!, process: value.process };
    }
  } catch {
    // a value this version cannot read is treated as absent
  }
  return undefined;
}

export function describeHolder(holder: GlobalHolder): string {
  return `${holder.process} on ${holder.node}#${holder.incarnation}`;
}

function checkGlobalName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_GLOBAL_NAME_LENGTH) {
    throw new ClusterError(
      'invalid_option',
      `a global name is a string of 1 to ${MAX_GLOBAL_NAME_LENGTH} characters, not ${JSON.stringify(name)}`,
    );
  }
  return name;
}

export interface GlobalRegistryOptions {
  readonly bucket: Bucket;
  readonly membership: Membership;
  /** Told when a name this node believed it held turned out to be another's (after a partition). */
  readonly onNameLost?: (name: string, process: string) => void;
  /**
   * Whether the holder's node incarnation is known to be down, so that its record may be taken
   * (ClusterNode asks the cluster's nodes bucket: a later incarnation, or a down mark). Default:
   * this node declared it down. A holder this node has never heard of (one that started while
   * partitioned from it) is not down unless this says so.
   */
  readonly isDown?: (node: NodeId) => Promise<boolean>;
}

export class GlobalRegistry {
  /** Names this node holds: name -> (process, revision). */
  readonly #held = new Map<string, { process: string; revision: number }>();
  readonly #bucket: Bucket;
  #membership: Membership;

  constructor(private readonly options: GlobalRegistryOptions) {
    this.#bucket = options.bucket;
    this.#membership = options.membership;
  }

  /** The node rejoined as a new incarnation: membership answers for that one from now on. */
  useMembership(membership: Membership): void {
    this.#membership = membership;
  }

  get #self(): NodeId {
    return this.#membership.self;
  }

  /** Registers `name` for `process` of this node; `AlreadyRegistered` if another live holder has it. */
  async register(name: string, process: string): Promise<void> {
    checkGlobalName(name);
    const key = keyOf(name);
    const self = this.#self;
    const value = packer.pack({ node: self.name, incarnation: self.incarnation, process });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const revision = await this.#bucket.create(key, value);
        await this.#keep(name, process, revision, self);
        return;
      } catch (error) {
        if (!isBucketConflict(error)) throw error;
      }
      const entry = await this.#bucket.get(key);
      const holder = entry === undefined ? undefined : decodeHolder(entry.value);
      if (
        entry !== undefined &&
        holder !== undefined &&
        holder.node === self.name &&
        holder.incarnation === self.incarnation &&
        holder.process === process
      ) {
        // our own create, applied although its answer was lost (a retry after a failover)
        await this.#keep(name, process, entry.revision, self);
        return;
      }
      if (entry !== undefined && holder !== undefined && !(await this.#isDown(holder))) {
        throw new AlreadyRegistered(name, describeHolder(holder));
      }
      // the holder's node is down (its names not yet removed) or the value is unreadable
      if (entry !== undefined) await this.#bucket.delete(key, entry.revision).catch(() => undefined);
    }
    throw new AlreadyRegistered(name, 'another process (it changed while registering)');
  }

  /**
   * Records `name` as held, written for `as`. When the node rejoined as a new incarnation while
   * the write was in flight (its names were revalidated without this one), the record is moved
   * to the new incarnation first; if it cannot be, the registration fails.
   */
  async #keep(name: string, process: string, revision: number, as: NodeId): Promise<void> {
    if (as.incarnation === this.#self.incarnation) {
      this.#held.set(name, { process, revision });
      return;
    }
    const value = packer.pack({ node: this.#self.name, incarnation: this.#self.incarnation, process });
    const moved = await this.#bucket.update(keyOf(name), value, revision).catch(() => undefined);
    if (moved === undefined)
      throw new ClusterError(
        'not_connected',
        `registering '${name}': this node rejoined the cluster meanwhile and the record could not be moved to its new incarnation; register again`,
      );
    this.#held.set(name, { process, revision: moved });
  }

  async #isDown(holder: GlobalHolder): Promise<boolean> {
    const node = { name: holder.node, incarnation: holder.incarnation };
    if (this.#membership.isUp(node)) return false;
    if (this.options.isDown !== undefined) return this.options.isDown(node);
    return this.#membership.isDown(node);
  }

  /** The holder of `name`, if it is held by a live process. */
  async whereis(name: string): Promise<GlobalHolder | undefined> {
    checkGlobalName(name);
    const entry = await this.#bucket.get(keyOf(name));
    const holder = entry === undefined ? undefined : decodeHolder(entry.value);
    return holder !== undefined && this.#isLive(holder) ? holder : undefined;
  }

  /** Removes a name this node holds; false if it does not hold it. */
  async unregister(name: string): Promise<boolean> {
    if (!this.#held.has(name)) return false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const held = this.#held.get(name);
      if (held === undefined) return true; // released meanwhile (lost in a rejoin)
      try {
        await this.#bucket.delete(keyOf(name), held.revision);
      } catch (error) {
        // not deleted (not connected, say): still held, and a retry can release it
        if (!isBucketConflict(error)) throw error;
        // moved to a new incarnation by a rejoin meanwhile: delete that record
        if (this.#held.get(name) !== held) continue;
        // else purged or taken: it is not ours any more
      }
      if (this.#held.get(name) === held) this.#held.delete(name);
      return true;
    }
    throw new ClusterError('not_connected', `unregistering '${name}': its record kept moving; try again`);
  }

  /** Removes every name of a process of this node (it exited). */
  async releaseProcess(process: string): Promise<void> {
    const names = [...this.#held].filter(([, held]) => held.process === process).map(([name]) => name);
    await Promise.all(names.map((name) => this.unregister(name)));
  }

  /** Every live global name, sorted. */
  async registered(): Promise<{ readonly name: string; readonly holder: GlobalHolder }[]> {
    const found: { name: string; holder: GlobalHolder }[] = [];
    for (const key of await this.#bucket.keys()) {
      if (!key.startsWith('n.')) continue;
      const entry = await this.#bucket.get(key);
      const holder = entry === undefined ? undefined : decodeHolder(entry.value);
      if (holder !== undefined && this.#isLive(holder)) found.push({ name: nameOf(key), holder });
    }
    return found.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Names held locally (what this node believes). */
  heldHere(): Map<string, string> {
    return new Map([...this.#held].map(([name, held]) => [name, held.process]));
  }

  /** After a nodedown: removes the names of that incarnation (compare-and-set by revision). */
  async purgeNode(node: NodeId): Promise<void> {
    for (const key of await this.#bucket.keys()) {
      if (!key.startsWith('n.')) continue;
      const entry = await this.#bucket.get(key);
      const holder = entry === undefined ? undefined : decodeHolder(entry.value);
      if (entry === undefined || holder === undefined) continue;
      if (holder.node === node.name && holder.incarnation === node.incarnation) {
        await this.#bucket.delete(key, entry.revision).catch((error) => {
          if (!isBucketConflict(error)) throw error;
        });
      }
    }
  }

  /**
   * This node was declared down (quarantined) and rejoins as `previous`'s successor: each name
   * it held is kept only if the bucket still records it (then it moves to the new incarnation),
   * else it is lost and reported.
   */
  async revalidate(previous: NodeId): Promise<string[]> {
    const lost: string[] = [];
    for (const [name, held] of [...this.#held]) {
      const key = keyOf(name);
      const entry = await this.#bucket.get(key);
      const holder = entry === undefined ? undefined : decodeHolder(entry.value);
      if (
        entry !== undefined &&
        holder?.node === this.#self.name &&
        holder.incarnation === this.#self.incarnation &&
        holder.process === held.process
      ) {
        // moved already (by an earlier try of this rejoin, or a registration finishing)
        this.#held.set(name, { process: held.process, revision: entry.revision });
        continue;
      }
      const stillOurs =
        entry !== undefined &&
        holder?.node === previous.name &&
        holder.incarnation === previous.incarnation &&
        holder.process === held.process;
      if (stillOurs) {
        const value = packer.pack({
          node: this.#self.name,
          incarnation: this.#self.incarnation,
          process: held.process,
        });
        const revision = await this.#bucket.update(key, value, entry.revision).catch(() => undefined);
        if (revision !== undefined) {
          this.#held.set(name, { process: held.process, revision });
          continue;
        }
      }
      this.#held.delete(name);
      lost.push(name);
      this.options.onNameLost?.(name, held.process);
    }
    return lost;
  }

  #isLive(holder: GlobalHolder): boolean {
    return this.#membership.isUp({ name: holder.node, incarnation: holder.incarnation });
  }
}
