/**
 * The tagged-error factory, below every layer (imports nothing of zbmd). A layer declares an error
 * in a few lines, and every error gets the same four things: a tag (`_tag`, a string literal type
 * to match on), a `name` equal to the tag, its typed fields (constructor parameter properties),
 * and a guard (`X.is(error)`, and a standalone `isX = guardOf(X)` for the layer's API):
 *
 * ```ts
 * export class CircuitOpen extends TaggedError('CircuitOpen') {
 *   constructor(readonly circuit: string, readonly retryAfterMs: number) {
 *     super(`circuit '${circuit}' is open for another ${retryAfterMs} ms`);
 *   }
 * }
 * export const isCircuitOpen = guardOf(CircuitOpen);
 * ```
 *
 * Guards use `instanceof`: an error is what its class says, never what its `name` string says
 * (two layers may have errors of the same name; the tag says which one).
 */

/** What every tagged error is: an `Error` with a literal `_tag`, and `name` the same string. */
export interface TaggedErrorInstance<Tag extends string> extends Error {
  readonly _tag: Tag;
}

/** The base class `TaggedError(tag)` returns. */
export interface TaggedErrorClass<Tag extends string> {
  new (message: string, options?: ErrorOptions): TaggedErrorInstance<Tag>;
  /** The tag of this class's errors. */
  readonly tag: Tag;
  /** True when `error` is an instance of the class it is called on (`CircuitOpen.is(e)`). */
  is<T>(this: abstract new (...args: never[]) => T, error: unknown): error is T;
}

/**
 * A base class for errors tagged `tag`; the subclass adds its typed fields and message. The root
 * of a family of errors (a `DeviceError` with `OutOfDeviceMemory` below it) names the family's
 * tags as `Family`, and each subclass sets its own `tag`, `_tag` and `name`.
 */
export function TaggedError<const Tag extends Family, Family extends string = Tag>(
  tag: Tag,
): TaggedErrorClass<Family> {
  class Tagged extends Error {
    static readonly tag: Family = tag;
    readonly _tag: Family = tag;
    constructor(message: string, options?: ErrorOptions) {
      super(message, options);
      this.name = tag;
    }
    static is<T>(this: abstract new (...args: never[]) => T, error: unknown): error is T {
      // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass `is` is called on, not Tagged
      return error instanceof this;
    }
  }
  return Tagged;
}

/** A standalone guard for an error class (what `isX` exports are made of). */
export function guardOf<T>(errorClass: abstract new (...args: never[]) => T): (error: unknown) => error is T {
  return (error: unknown): error is T => error instanceof errorClass;
}
