import { CastRequest, GetStateRequest } from '../Call.js';
import { DownMessage, ExitMessage } from '../ExitReason.js';
import { NotCloneable } from '../errors.js';
import { Pid, Ref } from '../Pid.js';
import { classKey, listedClass } from './classCatalog.js';
import { ForwardedSignal } from './migration.js';

/**
 * Messages that cross threads: checked and encoded at the sender (so a value that cannot cross
 * is a `NotCloneable` error there, never a loss on the way), structured-cloned by the port, and
 * revived at the receiver. Pids, refs, EXIT and DOWN messages, GenServer casts and state requests travel as tagged plain objects
 * and come back as instances, and so do the classes the layers listed (classCatalog.ts: tagged errors, some messages); typed arrays and ArrayBuffers pass as they are (moved when the
 * sender lists them in `transfer`). Plain objects, arrays, Maps and Sets are walked; any other
 * class instance is refused, since structured clone would silently turn it into a plain object.
 */

const TAG = '$zbmd';

/** Most nested levels walked in a message (a deeper one is refused, not overflowed). */
export const MAX_MESSAGE_DEPTH = 64;

export interface PidCodec {
  /** A local pid is leaving the thread: its process must resolve when the pid comes back. */
  exportPid(pid: Pid): void;
  /** A pid arriving from another thread, as this thread's Pid object. */
  importPid(thread: number, id: number, serial: number, node: string): Pid;
}

export function encode(value: unknown, codec: PidCodec, path = 'message', depth = 0): unknown {
  if (typeof value !== 'object') {
    if (typeof value === 'function') throw new NotCloneable(path, 'it is a function');
    if (typeof value === 'symbol') throw new NotCloneable(path, 'it is a symbol');
    return value;
  }
  if (value === null) return value;
  if (depth > MAX_MESSAGE_DEPTH)
    throw new NotCloneable(path, `it is nested deeper than ${MAX_MESSAGE_DEPTH} levels`);
  if (value instanceof Pid) {
    codec.exportPid(value);
    return { [TAG]: 'pid', t: value.thread, i: value.id, s: value.serial, n: value.node };
  }
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index++) {
      const item = value[index];
      const encoded = encode(item, codec, `${path}[${index}]`, depth + 1);
      if (encoded !== item) (copy ??= value.slice())[index] = encoded;
    }
    return copy ?? value;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype === Object.prototype || prototype === null) {
    let copy: Record<string, unknown> | undefined;
    for (const key of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[key];
      const encoded = encode(item, codec, `${path}.${key}`, depth + 1);
      if (encoded !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = encoded;
    }
    if (TAG in value) return { [TAG]: 'escaped', v: copy ?? value };
    return copy ?? value;
  }
  if (value instanceof ExitMessage)
    return { [TAG]: 'exit', f: encode(value.from, codec), r: encodeReason(value.reason, codec) };
  if (value instanceof DownMessage)
    return {
      [TAG]: 'down',
      ref: encode(value.ref, codec),
      p: encode(value.pid, codec),
      r: encodeReason(value.reason, codec),
    };
  if (value instanceof Ref) return { [TAG]: 'ref', n: value.node, i: value.id };
  if (value instanceof CastRequest)
    return { [TAG]: 'cast', r: encode(value.request, codec, `${path}.request`, depth + 1) };
  if (value instanceof GetStateRequest) return { [TAG]: 'getstate' };
  if (value instanceof ForwardedSignal)
    return { [TAG]: 'signal', f: encode(value.from, codec), r: encodeReason(value.reason, codec) };
  if (value instanceof Map) {
    const entries: unknown[] = [];
    let index = 0;
    for (const [key, item] of value)
      entries.push([
        encode(key, codec, `${path}<key ${index}>`, depth + 1),
        encode(item, codec, `${path}<value ${index++}>`, depth + 1),
      ]);
    return { [TAG]: 'map', e: entries };
  }
  if (value instanceof Set) {
    let index = 0;
    return {
      [TAG]: 'set',
      e: [...value].map((item) => encode(item, codec, `${path}<${index++}>`, depth + 1)),
    };
  }
  if (value instanceof Error) return encodeError(value, codec, path, depth);
  if (value instanceof Date || value instanceof RegExp) return value;
  const key = classKey(value);
  if (key !== undefined) return { [TAG]: 'class', k: key, f: encodeFields(value, codec, path, depth) };
  const name = (prototype?.constructor as { name?: string } | undefined)?.name ?? 'an unknown class';
  throw new NotCloneable(path, `it is an instance of ${name}, which would arrive as a plain object`);
}

/**
 * An error whose class its layer listed (classCatalog.ts) crosses with its class and fields (a
 * field that cannot cross is sent as its text); any other error as structured clone keeps it
 * (message, name of the standard error types, cause).
 */
function encodeError(error: Error, codec: PidCodec, path: string, depth: number): unknown {
  const key = classKey(error);
  if (key === undefined) return error;
  const fields = encodeFields(error, codec, path, depth);
  return { [TAG]: 'error', k: key, m: error.message, s: error.stack, f: fields };
}

function encodeFields(value: object, codec: PidCodec, path: string, depth: number): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const field of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[field];
    if (value instanceof Error) {
      try {
        fields[field] = encode(item, codec, `${path}.${field}`, depth + 1);
      } catch {
        fields[field] = String(item); // an error's detail that cannot cross: its text
      }
    } else fields[field] = encode(item, codec, `${path}.${field}`, depth + 1);
  }
  return fields;
}

function reviveError(record: Record<string, any>, codec: PidCodec): Error {
  const errorClass = listedClass(record.k);
  const error: Error =
    errorClass === undefined ? new Error(record.m) : Object.create(errorClass.prototype as object);
  Object.defineProperty(error, 'message', { value: record.m, writable: true, configurable: true });
  Object.defineProperty(error, 'stack', { value: record.s, writable: true, configurable: true });
  for (const field of Object.keys(record.f)) (error as any)[field] = revive(record.f[field], codec);
  return error;
}

/** A listed class's instance; one whose layer is not loaded on this thread comes as its fields. */
function reviveInstance(record: Record<string, any>, codec: PidCodec): object {
  const listed = listedClass(record.k);
  const instance: Record<string, unknown> = listed === undefined ? {} : Object.create(listed.prototype);
  for (const field of Object.keys(record.f)) instance[field] = revive(record.f[field], codec);
  return instance;
}

/** Exit reasons cross as well as they can: one that cannot is sent as its text. */
export function encodeReason(reason: unknown, codec: PidCodec): unknown {
  try {
    return encode(reason, codec, 'reason');
  } catch {
    return String(reason);
  }
}

export function revive(value: unknown, codec: PidCodec): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) value[index] = revive(value[index], codec);
    return value;
  }
  if (value instanceof Error || value instanceof Date || value instanceof RegExp) return value;
  const record = value as Record<string, any>;
  const tag = record[TAG];
  if (tag === undefined) {
    for (const key of Object.keys(record)) record[key] = revive(record[key], codec);
    return record;
  }
  switch (tag) {
    case 'pid':
      return codec.importPid(record.t, record.i, record.s, record.n);
    case 'ref':
      return new Ref(record.n, record.i);
    case 'exit':
      return new ExitMessage(revive(record.f, codec) as Pid, revive(record.r, codec) as never);
    case 'down':
      return new DownMessage(
        revive(record.ref, codec) as Ref,
        revive(record.p, codec) as Pid,
        revive(record.r, codec) as never,
      );
    case 'cast':
      return new CastRequest(revive(record.r, codec));
    case 'getstate':
      return new GetStateRequest();
    case 'signal':
      return new ForwardedSignal(revive(record.f, codec) as Pid, revive(record.r, codec) as never);
    case 'error':
      return reviveError(record, codec);
    case 'class':
      return reviveInstance(record, codec);
    case 'map':
      return new Map(
        (record.e as [unknown, unknown][]).map(([k, v]) => [revive(k, codec), revive(v, codec)]),
      );
    case 'set':
      return new Set((record.e as unknown[]).map((item) => revive(item, codec)));
    case 'escaped': {
      const inner = record.v as Record<string, unknown>;
      for (const key of Object.keys(inner)) if (key !== TAG) inner[key] = revive(inner[key], codec);
      return inner;
    }
    default:
      return record;
  }
}
