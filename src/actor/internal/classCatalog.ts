/**
 * The classes whose instances cross threads as themselves (codec.ts). Structured clone keeps an
 * Error's message but not its class or fields, and turns any other class instance into a plain
 * object, so a tagged error sent to another thread (a call's reply, an exit reason) would arrive
 * as a plain `Error` that its `isX` guard rejects, and a message class (a supervisor's heartbeat)
 * would be refused. Each layer lists such classes here once, under a key that is the same on
 * every thread because every thread loads the same modules. Imports nothing, so errors.ts can
 * use it without an import cycle.
 */

/** A class whose instances are plain data in their own enumerable fields (or an Error class). */
export type CrossThreadClass = abstract new (...args: any[]) => object;

const classes = new Map<string, CrossThreadClass>();
const keys = new Map<CrossThreadClass, string>();

/** Lists a layer's classes; each is known as `layer.ClassName` on every thread. */
export function crossThreadClasses(layer: string, list: readonly CrossThreadClass[]): void {
  for (const listed of list) {
    const key = `${layer}.${listed.name}`;
    const known = classes.get(key);
    if (known !== undefined && known !== listed)
      throw new Error(`zbmd: two classes are listed as ${key} (a bug in the layer's list)`);
    classes.set(key, listed);
    keys.set(listed, key);
  }
}

/** The key of a value's own class, when its layer listed it. */
export function classKey(value: object): string | undefined {
  return keys.get(value.constructor as CrossThreadClass);
}

/** The class listed under `key` on this thread (undefined if its layer is not loaded here). */
export function listedClass(key: string): CrossThreadClass | undefined {
  return classes.get(key);
}
