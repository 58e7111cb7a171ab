/**
 * What `migrate` needs to know of a behaviour before it copies it to another thread.
 *
 * - A behaviour made by a function export (a factory called with spawn args) is re-made on the
 *   target by calling that export with the same args; its state then has to be carried
 *   explicitly: it implements `[EXPLICIT_STATE]` (the GenServer handler does: its state is the
 *   value its callbacks return). Closures the factory made are made afresh on the target.
 * - A class instance is re-made from the class prototype and its own enumerable fields. Anything
 *   else it holds would be lost, so it is refused: `#private` members (no instance made without
 *   the constructor has them, so its methods would throw), non-enumerable or symbol-keyed own
 *   properties.
 */

/** The protocol of a behaviour that hands its state over explicitly. */
export const EXPLICIT_STATE: unique symbol = Symbol('zbmd.explicitState');

export interface ExplicitState {
  /** The state to carry (copied like a message: it must survive structured clone). */
  checkpoint(): unknown;
  /** Takes over `state` in a behaviour just made by the same export with the same args. */
  restore(state: unknown): void;
}

export function explicitStateOf(behavior: unknown): ExplicitState | undefined {
  if (typeof behavior !== 'object' || behavior === null) return undefined;
  return (behavior as { [EXPLICIT_STATE]?: ExplicitState })[EXPLICIT_STATE];
}

/** Why a class instance cannot be re-made from its prototype and fields, or undefined if it can. */
export function hiddenStateOf(
  behavior: object,
): { kind: 'private-fields' | 'hidden-fields'; detail: string } | undefined {
  // each class of the chain has its own source (a base class may declare the private members)
  let prototype = Object.getPrototypeOf(behavior);
  while (prototype !== null && prototype !== Object.prototype) {
    const declaring = (prototype as { constructor?: unknown }).constructor;
    if (
      typeof declaring === 'function' &&
      declaresPrivateMembers(Function.prototype.toString.call(declaring))
    )
      return {
        kind: 'private-fields',
        detail: `class ${declaring.name || '(anonymous)'} declares #private members`,
      };
    prototype = Object.getPrototypeOf(prototype);
  }
  const hidden = Object.getOwnPropertyNames(behavior).filter(
    (key) => !Object.prototype.propertyIsEnumerable.call(behavior, key),
  );
  const symbols = Object.getOwnPropertySymbols(behavior);
  if (hidden.length > 0 || symbols.length > 0) {
    const names = [...hidden, ...symbols.map(String)].join(', ');
    return {
      kind: 'hidden-fields',
      detail: `it has own properties that are not enumerable fields (${names})`,
    };
  }
  return undefined;
}

/**
 * True when a class's source uses a private name (`#x`) outside comments, strings and template
 * text (a private member is always declared in the class body, outside those). Conservative: a
 * `#x` that only a regular expression literal holds, or a `static #x`, is taken for one too (the
 * move is refused, never made with state left behind).
 */
export function declaresPrivateMembers(source: string): boolean {
  let index = 0;
  while (index < source.length) {
    const char = source[index];
    const next = source[index + 1];
    if (char === '/' && next === '/') index = lineEnd(source, index);
    else if (char === '/' && next === '*') index = commentEnd(source, index);
    else if (char === "'" || char === '"' || char === '`') index = stringEnd(source, index, char);
    else if (char === '#' && next !== undefined && /[A-Za-z_$\u0080-\uffff]/.test(next)) return true;
    else index++;
  }
  return false;
}

function commentEnd(source: string, from: number): number {
  const end = source.indexOf('*/', from + 2);
  return end === -1 ? source.length : end + 2;
}

function lineEnd(source: string, from: number): number {
  const end = source.indexOf('\n', from);
  return end === -1 ? source.length : end + 1;
}

/** The index after a string or template literal starting at `from` (template `${}` parts skipped as text). */
function stringEnd(source: string, from: number, quote: string): number {
  let index = from + 1;
  while (index < source.length) {
    if (source[index] === '\\') index += 2;
    else if (source[index] === quote) return index + 1;
    else index++;
  }
  return source.length;
}
