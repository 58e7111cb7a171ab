/**
 * The node's shared name table (src/actor/internal/SharedNames.ts), the one authority for
 * register with several threads: its rules and its two documented limits, on one thread (the
 * race between threads is in registry.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { isBadArgument } from '../../src/actor/index.js';
import {
  NAME_CHARS,
  NAME_SLOTS,
  nameTableMemory,
  ownerId,
  ownerThread,
  ownerWord,
  SharedNames,
} from '../../src/actor/internal/SharedNames.js';

describe('SharedNames', () => {
  it('a name has one holder: a second claim is told who, a release by another owner does nothing', () => {
    const table = new SharedNames(nameTableMemory());
    const a = ownerWord(0, 7);
    const b = ownerWord(3, 2 ** 31 - 1);
    expect([ownerThread(b), ownerId(b)]).toEqual([3, 2 ** 31 - 1]);
    expect(table.holder('db')).toBeUndefined();
    expect(table.claim('db', a)).toBeUndefined();
    expect(table.claim('db', a)).toBeUndefined(); // (the holder claiming again: still its)
    expect(table.claim('db', b)).toBe(a);
    expect(table.release('db', b)).toBe(false);
    expect(table.holder('db')).toBe(a);
    expect(table.release('db', a)).toBe(true);
    expect(table.holder('db')).toBeUndefined();
    expect(table.claim('db', b)).toBeUndefined();
    expect(table.holder('db')).toBe(b);
    expect(table.release('never-registered', a)).toBe(false);
  });

  it('names are compared whole: prefixes, other cases and non-ASCII names are distinct names', () => {
    const table = new SharedNames(nameTableMemory());
    const names = ['a', 'ab', 'A', 'ä', 'a\u0000', '名前', '😀'];
    expect(names.map((name, index) => table.claim(name, ownerWord(0, index + 1)))).toEqual(
      names.map(() => undefined),
    );
    expect(names.map((name) => table.holder(name))).toEqual(names.map((_, index) => ownerWord(0, index + 1)));
  });

  it('releaseThread frees the names of one thread only (a lost thread)', () => {
    const table = new SharedNames(nameTableMemory());
    table.claim('on-1', ownerWord(1, 5));
    table.claim('on-2', ownerWord(2, 5));
    table.releaseThread(1);
    expect(table.holder('on-1')).toBeUndefined();
    expect(table.holder('on-2')).toBe(ownerWord(2, 5));
  });

  it(`refuses a name beyond ${NAME_SLOTS} distinct names with a BadArgument that says why; known names still work`, () => {
    const table = new SharedNames(nameTableMemory());
    for (let index = 0; index < NAME_SLOTS; index++) table.claim(`n${index}`, ownerWord(0, index + 1));
    let refused: unknown;
    try {
      table.claim('one-too-many', ownerWord(0, 1));
    } catch (error) {
      refused = error;
    }
    expect(isBadArgument(refused)).toBe(true);
    expect(String(refused)).toMatch(/16384 distinct names/);
    expect(table.holder('one-too-many')).toBeUndefined();
    expect(table.release('n5', ownerWord(0, 6))).toBe(true);
    expect(table.claim('n5', ownerWord(1, 1))).toBeUndefined(); // a known name is reused
  });

  it(`refuses names beyond ${NAME_CHARS} characters in all, and the table goes on`, () => {
    const table = new SharedNames(nameTableMemory());
    const long = 'x'.repeat(NAME_CHARS / 4);
    for (let index = 0; index < 4; index++) table.claim(`${index}${long.slice(1)}`, ownerWord(0, index + 1));
    expect(() => table.claim('y', ownerWord(0, 9))).toThrow(/characters together/);
    expect(table.holder(`0${long.slice(1)}`)).toBe(ownerWord(0, 1));
  });
});
