/**
 * One error convention: every error class a layer exports is made by the tagged-error factory
 * (src/internal/errors.ts), so it has a literal `_tag`, a `name` equal to it and a static guard.
 * A hand-written `class X extends Error` in a layer's public API fails here.
 */
import { describe, expect, it } from 'vitest';
import { TaggedError } from '../../src/internal/errors.js';

const LAYERS = ['actor', 'supervision', 'fault', 'gpu', 'ml', 'cluster', 'serve', 'observe'] as const;

describe('exported errors', () => {
  it('the factory gives a tag, a name equal to it, and a guard by class', () => {
    class Example extends TaggedError('Example') {
      constructor(readonly field: number) {
        super(`example ${field}`);
      }
    }
    const error = new Example(3);
    expect([error._tag, error.name, error.message, error.field]).toEqual([
      'Example',
      'Example',
      'example 3',
      3,
    ]);
    expect(Example.is(error)).toBe(true);
    expect(Example.is(Object.assign(new Error('x'), { name: 'Example' }))).toBe(false);
  });

  for (const layer of LAYERS) {
    it(`of ${layer} are all made by the factory`, async () => {
      const exports = (await import(`../../src/${layer}/index.ts`)) as Record<string, unknown>;
      const errors = Object.entries(exports).filter(
        ([, value]) => typeof value === 'function' && value.prototype instanceof Error,
      );
      expect(errors.length).toBeGreaterThan(0);
      const handWritten = errors
        .filter(([, value]) => typeof (value as { tag?: unknown }).tag !== 'string')
        .map(([name]) => name);
      expect(handWritten).toEqual([]);
    });
  }
});
