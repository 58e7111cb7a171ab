/**
 * The error classes whose instances cross threads as themselves (codec.ts). Structured clone
 * keeps an Error's message but not its class or fields, so a tagged error sent to another
 * thread (a call's reply, an exit reason) would arrive as a plain `Error` that its `isX` guard
 * rejects. Each layer lists its errors here once (its errors.ts), under a key that is the same on
 * every thread because every thread loads the same modules. Imports nothing, so errors.ts can
 * use it without an import cycle.
 */

// biome-ignore lint/suspicious/noExplicitAny: any error class, whatever its constructor takes
export type ErrorClass = abstract new (...args: any[]) => Error;

const classes = new Map<string, ErrorClass>();
const keys = new Map<ErrorClass, string>();

/** Lists a layer's error classes; each is known as `layer.ClassName` on every thread. */
export function crossThreadErrors(layer: string, list: readonly ErrorClass[]): void {
  for (const errorClass of list) {
    const key = `${layer}.${errorClass.name}`;
    const known = classes.get(key);
    if (known !== undefined && known !== errorClass)
      throw new Error(`zbmd: two error classes are listed as ${key} (a bug in the layer's errors.ts)`);
    classes.set(key, errorClass);
    keys.set(errorClass, key);
  }
}

/** The key of an error's own class, when its layer listed it. */
export function errorKey(error: Error): string | undefined {
  return keys.get(error.constructor as ErrorClass);
}

/** The class listed under `key` on this thread (undefined if its layer is not loaded here). */
export function errorClass(key: string): ErrorClass | undefined {
  return classes.get(key);
}
