import { BadArgument } from '../errors.js';

/**
 * The node's registered names when it runs several scheduler threads: one table in shared memory
 * that every thread reads and claims with Atomics, so that a name is taken by exactly one process
 * of the node even when two threads register it in the same instant (erlang:register/2's
 * uniqueness; Erlang has one name table per node too). Each thread still keeps its own names in
 * its Registry and tells the others (Remote's NameAdd/NameRemove) for sends by name; this table
 * only decides who holds a name.
 *
 * An open-addressing hash table (linear probing) of `NAME_SLOTS` slots. A slot, once given a name,
 * keeps that name for the node's life, as Erlang's atom table keeps every atom: only its holder
 * changes (0 when free), by compare-and-exchange on one 64-bit word, so a claim is one atomic step.
 * The names live in a shared character arena (`NAME_CHARS` UTF-16 units). Both limits are
 * documented (README "Actors on every core"): registering more distinct names than that fails
 * with a BadArgument that says so.
 */

/** Distinct names a multi-thread node can register over its life. */
export const NAME_SLOTS = 16_384;
/** UTF-16 code units all those distinct names may take together. */
export const NAME_CHARS = 1 << 20;

const HEADER_WORDS = 2; // [0]: characters used in the arena, [1]: spare
const META_WORDS = 3; // per slot: state, offset, length
const EMPTY = 0;
const WRITING = 1;
const NAMED = 2;
const UNUSABLE = 3; // claimed when the arena was full: skipped
/** Spins on a slot being written before giving up (its writer's thread died mid-write). */
const WRITING_SPINS = 1 << 24;

/** The shared memory of a node's name table: made once by thread 0, handed to every thread. */
export function nameTableMemory(): SharedArrayBuffer {
  return new SharedArrayBuffer(
    NAME_SLOTS * 8 + (HEADER_WORDS + NAME_SLOTS * META_WORDS) * 4 + NAME_CHARS * 2,
  );
}

/** A holder: its thread and process number, as one nonzero 64-bit word (ids start at 1). */
export function ownerWord(thread: number, id: number): bigint {
  return (BigInt(thread) << 32n) | BigInt(id);
}

export function ownerThread(owner: bigint): number {
  return Number(owner >> 32n);
}

export function ownerId(owner: bigint): number {
  return Number(owner & 0xffff_ffffn);
}

export class SharedNames {
  private readonly owners: BigInt64Array;
  private readonly header: Int32Array;
  private readonly meta: Int32Array;
  private readonly chars: Uint16Array;

  constructor(readonly memory: SharedArrayBuffer) {
    this.owners = new BigInt64Array(memory, 0, NAME_SLOTS);
    const metaStart = NAME_SLOTS * 8;
    this.header = new Int32Array(memory, metaStart, HEADER_WORDS);
    this.meta = new Int32Array(memory, metaStart + HEADER_WORDS * 4, NAME_SLOTS * META_WORDS);
    const charStart = metaStart + (HEADER_WORDS + NAME_SLOTS * META_WORDS) * 4;
    this.chars = new Uint16Array(memory, charStart, NAME_CHARS);
  }

  /** Takes `name` for `owner`; returns undefined when it is now `owner`'s, else the holder. */
  claim(name: string, owner: bigint): bigint | undefined {
    const slot = this.slotOf(name, true);
    const previous = Atomics.compareExchange(this.owners, slot, 0n, owner);
    return previous === 0n || previous === owner ? undefined : previous;
  }

  /** The holder of `name`, if any. */
  holder(name: string): bigint | undefined {
    const slot = this.slotOf(name, false);
    if (slot < 0) return undefined;
    const owner = Atomics.load(this.owners, slot);
    return owner === 0n ? undefined : owner;
  }

  /** Frees `name` if `owner` holds it (a later holder is left alone); true if it did. */
  release(name: string, owner: bigint): boolean {
    const slot = this.slotOf(name, false);
    return slot >= 0 && Atomics.compareExchange(this.owners, slot, owner, 0n) === owner;
  }

  /** Frees every name held by a process of `thread` (a lost thread: its processes are gone). */
  releaseThread(thread: number): void {
    for (let slot = 0; slot < NAME_SLOTS; slot++) {
      const owner = Atomics.load(this.owners, slot);
      if (owner !== 0n && ownerThread(owner) === thread)
        Atomics.compareExchange(this.owners, slot, owner, 0n);
    }
  }

  /** The slot that has `name` (made for it when `create`); -1 if there is none and not `create`. */
  private slotOf(name: string, create: boolean): number {
    const meta = this.meta;
    let slot = hash(name) & (NAME_SLOTS - 1);
    for (let probe = 0; probe < NAME_SLOTS; probe++, slot = (slot + 1) & (NAME_SLOTS - 1)) {
      const at = slot * META_WORDS;
      let state = Atomics.load(meta, at);
      if (state === EMPTY) {
        if (!create) return -1;
        if (Atomics.compareExchange(meta, at, EMPTY, WRITING) === EMPTY) {
          this.write(at, name);
          return slot;
        }
        state = Atomics.load(meta, at); // another thread took this slot first: whose name is it?
      }
      for (let spins = 0; state === WRITING; spins++) {
        if (spins === WRITING_SPINS)
          throw new Error(`zbmd: the name table's slot ${slot} stays half-written (a runtime bug)`);
        state = Atomics.load(meta, at);
      }
      if (state === NAMED && this.holds(at, name)) return slot;
    }
    if (!create) return -1;
    throw new BadArgument(
      `cannot register '${name}': this node has registered ${NAME_SLOTS} distinct names, its limit with several threads (names are kept for the node's life, as Erlang's atoms: reuse names rather than making new ones)`,
    );
  }

  private write(at: number, name: string): void {
    const length = name.length;
    const offset = Atomics.add(this.header, 0, length);
    if (offset + length > NAME_CHARS) {
      Atomics.store(this.meta, at, UNUSABLE);
      throw new BadArgument(
        `cannot register '${name}': the names registered on this node take more than ${NAME_CHARS} characters together, its limit with several threads (reuse names rather than making new ones)`,
      );
    }
    for (let index = 0; index < length; index++) this.chars[offset + index] = name.charCodeAt(index);
    this.meta[at + 1] = offset;
    this.meta[at + 2] = length;
    Atomics.store(this.meta, at, NAMED); // publishes the name written above (Atomics are seq-cst)
  }

  private holds(at: number, name: string): boolean {
    const length = this.meta[at + 2];
    if (length !== name.length) return false;
    const offset = this.meta[at + 1];
    for (let index = 0; index < length; index++)
      if (this.chars[offset + index] !== name.charCodeAt(index)) return false;
    return true;
  }
}

/** FNV-1a over the name's UTF-16 code units. */
function hash(name: string): number {
  let value = 0x811c9dc5;
  for (let index = 0; index < name.length; index++) {
    value ^= name.charCodeAt(index);
    value = Math.imul(value, 0x01000193);
  }
  return value >>> 0;
}
