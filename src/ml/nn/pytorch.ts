/**
 * PyTorch's state-dict names and layouts for zbmd modules, and loading a state dict that PyTorch
 * saved (`safetensors.torch.save_file(model.state_dict(), path)`).
 *
 * The PyTorch name of a zbmd parameter or buffer follows from the module tree:
 * - a field's name in snake case (`runningMean` -> `running_mean`, `numBatchesTracked` ->
 *   `num_batches_tracked`, `selfAttn` -> `self_attn`); fields already named as PyTorch's
 *   (`weight_ih_l0`) stay as they are;
 * - a `Sequential`'s layers are numbered directly (`0.weight`, as `nn.Sequential`), not under
 *   `layers.`; other arrays of modules keep their field name (`blocks.0.weight`, as `nn.ModuleList`);
 * - `MultiHeadAttention` holds PyTorch's `in_proj_weight` (3D, D) as its query, key and value
 *   weights (rows 0..D, D..2D, 2D..3D), `in_proj_bias` likewise, and `out_proj.weight`/`.bias`
 *   as `output`'s; with `kdim`/`vdim` other than D, PyTorch's `q_proj_weight`, `k_proj_weight`
 *   and `v_proj_weight` instead of `in_proj_weight`.
 * Every other layout is PyTorch's already (Linear (out, in), Conv (out, in, k...), ConvTranspose
 * (in, out, k...), LSTM/GRU gate blocks). Values of any dtype the safetensors reader converts
 * become float32 (`num_batches_tracked`, int64 in PyTorch, included).
 */
import { check } from '../errors.js';
import {
  float32ToSafetensorsEntry,
  readSafetensorsFile,
  type SafetensorsEntry,
  safetensorsEntryToFloat32,
  writeSafetensorsFile,
} from '../safetensors.js';
import type { Tensor } from '../Tensor.js';
import { MultiHeadAttention } from './attention.js';
import { Sequential } from './layers.js';
import { Module, ModuleBuffer, Parameter, type StateDict } from './Module.js';

/** One PyTorch tensor and the zbmd tensors it is made of (stacked along axis 0 when several). */
export interface PyTorchName {
  readonly pytorch: string;
  readonly zbmd: readonly string[];
  readonly shape: readonly number[];
}

const snake = (name: string): string => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

/** The PyTorch names of `module`'s parameters and buffers, in the module's order. */
export function pytorchNames(module: Module): PyTorchName[] {
  const out: PyTorchName[] = [];
  walk(module, '', '', out);
  return out;
}

function walk(module: Module, zbmd: string, pytorch: string, out: PyTorchName[]): void {
  if (module instanceof MultiHeadAttention) {
    const d = module.dimension;
    const parts = ['query', 'key', 'value'];
    if (module.sameDimensions)
      out.push({
        pytorch: `${pytorch}in_proj_weight`,
        zbmd: parts.map((p) => `${zbmd}${p}.weight`),
        shape: [3 * d, d],
      });
    else
      for (const [letter, part] of [
        ['q', module.query],
        ['k', module.key],
        ['v', module.value],
      ] as const)
        out.push({
          pytorch: `${pytorch}${letter}_proj_weight`,
          zbmd: [`${zbmd}${letter === 'q' ? 'query' : letter === 'k' ? 'key' : 'value'}.weight`],
          shape: [...part.weight.shape],
        });
    if (module.query.bias !== null)
      out.push({
        pytorch: `${pytorch}in_proj_bias`,
        zbmd: parts.map((p) => `${zbmd}${p}.bias`),
        shape: [3 * d],
      });
    walk(module.output, `${zbmd}output.`, `${pytorch}out_proj.`, out);
    return;
  }
  for (const [key, value] of Object.entries(module)) {
    if (value instanceof Parameter || value instanceof ModuleBuffer) {
      out.push({ pytorch: pytorch + snake(key), zbmd: [zbmd + key], shape: [...value.shape] });
    } else if (value instanceof Module) {
      walk(value, `${zbmd}${key}.`, `${pytorch}${snake(key)}.`, out);
    } else if (Array.isArray(value)) {
      const listName = module instanceof Sequential && key === 'layers' ? '' : `${snake(key)}.`;
      value.forEach((item: unknown, index) => {
        if (item instanceof Parameter || item instanceof ModuleBuffer)
          out.push({
            pytorch: `${pytorch}${listName}${index}`,
            zbmd: [`${zbmd}${key}.${index}`],
            shape: [...item.shape],
          });
        else if (item instanceof Module)
          walk(item, `${zbmd}${key}.${index}.`, `${pytorch}${listName}${index}.`, out);
      });
    }
  }
}

/** `module`'s state under PyTorch's names and layouts (what `model.state_dict()` would hold). */
export function pytorchStateDict(module: Module): StateDict {
  const own = module.stateDict();
  const state: StateDict = {};
  for (const { pytorch, zbmd, shape } of pytorchNames(module)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    let offset = 0;
    for (const name of zbmd) {
      data.set(own[name].data, offset);
      offset += own[name].data.length;
    }
    state[pytorch] = { shape: [...shape], data };
  }
  return state;
}

/** `state` (PyTorch's names and layouts) converted to `module`'s own names; checked as PyTorch's load_state_dict. */
export function fromPyTorchStateDict(
  module: Module,
  state: StateDict,
  options: { strict?: boolean } = {},
): StateDict {
  const strict = options.strict ?? true;
  const names = pytorchNames(module);
  const own = new Map<string, Tensor>([...module.namedParameters(), ...module.namedBuffers()]);
  const out: StateDict = {};
  const missing: string[] = [];
  for (const { pytorch, zbmd, shape } of names) {
    const entry = state[pytorch];
    if (entry === undefined) {
      missing.push(pytorch);
      continue;
    }
    const sameShape = entry.shape.length === shape.length && entry.shape.every((n, d) => n === shape[d]);
    check(sameShape && entry.data.length === shape.reduce((a, b) => a * b, 1), 'shape_mismatch', () => {
      return `loadPyTorchStateDict: '${pytorch}' has shape [${entry.shape.join(', ')}], the module (${zbmd.join(', ')}) expects [${shape.join(', ')}]`;
    });
    let offset = 0;
    for (const name of zbmd) {
      const target = own.get(name)!;
      out[name] = { shape: [...target.shape], data: entry.data.subarray(offset, offset + target.size) };
      offset += target.size;
    }
  }
  check(!strict || missing.length === 0, 'invalid_argument', () => {
    return `loadPyTorchStateDict: missing ${missing.join(', ')} (PyTorch names; pass strict: false to load the rest)`;
  });
  if (strict) {
    const known = new Set(names.map((name) => name.pytorch));
    const extra = Object.keys(state).filter((name) => !known.has(name));
    check(extra.length === 0, 'invalid_argument', () => {
      return `loadPyTorchStateDict: unexpected ${extra.join(', ')}; this module's PyTorch names are ${[...known].join(', ')}`;
    });
  }
  return out;
}

/** Loads a state dict with PyTorch's names and layouts into `module` (strict by default). */
export function loadPyTorchStateDict(
  module: Module,
  state: StateDict,
  options: { strict?: boolean } = {},
): void {
  const strict = options.strict ?? true;
  module.loadStateDict(fromPyTorchStateDict(module, state, { strict }), { strict });
}

/** A safetensors file's tensors as a state dict of float32 values (any convertible dtype). */
export async function readStateDictFile(path: string): Promise<StateDict> {
  const file = await readSafetensorsFile(path);
  const state: StateDict = {};
  for (const [name, entry] of Object.entries(file.tensors))
    state[name] = { shape: [...entry.shape], data: Float32Array.from(safetensorsEntryToFloat32(entry)) };
  return state;
}

/** Loads a safetensors file PyTorch saved from the equivalent module into `module`. */
export async function loadPyTorchSafetensors(
  module: Module,
  path: string,
  options: { strict?: boolean } = {},
): Promise<void> {
  loadPyTorchStateDict(module, await readStateDictFile(path), options);
}

/** Writes `module`'s state under PyTorch's names (F32; PyTorch's `load_state_dict` casts buffers). */
export async function savePyTorchSafetensors(module: Module, path: string): Promise<void> {
  const tensors: Record<string, SafetensorsEntry> = {};
  for (const [name, { shape, data }] of Object.entries(pytorchStateDict(module)))
    tensors[name] = float32ToSafetensorsEntry(data, shape);
  await writeSafetensorsFile(path, tensors);
}
