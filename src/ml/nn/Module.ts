/**
 * Modules own parameters and sub-modules as plain fields; `namedParameters` finds them by
 * walking the fields in declaration order (arrays of modules too), so names are stable:
 * `layers.0.weight`. State dicts map those names to a copy of the values and their shape.
 */
import { Device as GpuDevice } from '../../gpu/Device.js';
import { check } from '../errors.js';
import {
  type Device,
  type DevicePlacement,
  dispose,
  type PendingMove,
  prepareMove,
  Tensor,
} from '../Tensor.js';

/**
 * A tensor that a module trains: requires a gradient and is never pooled. On a GPU-layer
 * device (`module.to(device)`) it holds a device buffer and its gradient is `deviceGrad`.
 */
export class Parameter extends Tensor {
  constructor(data: Float32Array, shape: readonly number[], placement?: DevicePlacement) {
    super(data, [...shape], 'f32', undefined, 0, true, { requiresGrad: true }, placement);
  }
}

/**
 * A tensor a module keeps but does not train (BatchNorm's running statistics): carried in state
 * dicts beside the parameters, never returned by `parameters()`, so optimizers never see it.
 * It stays on the CPU (`to(device)` leaves it there) and never requires a gradient.
 */
export class ModuleBuffer extends Tensor {
  constructor(data: Float32Array, shape: readonly number[]) {
    super(data, [...shape], 'f32', undefined, 0, true, { requiresGrad: false });
  }
}

export interface TensorState {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Parameter and buffer name -> values; loads back exactly. */
export type StateDict = Record<string, TensorState>;

export abstract class Module {
  /** Training mode (dropout active). `eval()` turns it off for the whole tree. */
  training = true;

  abstract forward(input: Tensor): Tensor;

  /** Parameters with dotted names, in field declaration order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [name, value] of this.namedMembers()) {
      if (value instanceof Parameter) out.push([prefix + name, value]);
      else out.push(...value.namedParameters(`${prefix}${name}.`));
    }
    return out;
  }

  /** Buffers (`ModuleBuffer` fields) with dotted names, in field declaration order. */
  namedBuffers(prefix = ''): Array<[string, ModuleBuffer]> {
    const out: Array<[string, ModuleBuffer]> = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof ModuleBuffer) out.push([prefix + key, value]);
    }
    for (const [name, child] of this.children()) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, parameter]) => parameter);
  }

  /** Direct sub-modules with their names. */
  children(): Array<[string, Module]> {
    return this.namedMembers().filter((entry): entry is [string, Module] => entry[1] instanceof Module);
  }

  private namedMembers(): Array<[string, Parameter | Module]> {
    const out: Array<[string, Parameter | Module]> = [];
    for (const [key, value] of Object.entries(this)) {
      if (value instanceof Parameter || value instanceof Module) out.push([key, value]);
      else if (Array.isArray(value)) {
        value.forEach((item, index) => {
          if (item instanceof Parameter || item instanceof Module) out.push([`${key}.${index}`, item]);
        });
      }
    }
    return out;
  }

  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.children()) child.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Zeroes every parameter's gradient: in place on the CPU (the buffers are kept for the next
   * step); on a device the gradient tensor is given back (the next backward makes a new one).
   */
  zeroGrad(): void {
    for (const parameter of this.parameters()) zeroGradient(parameter);
  }

  /**
   * Moves every parameter to `device` (`'cpu'` or a GPU-layer device) in place, as PyTorch's
   * `module.to` does: the module keeps the same Parameter objects (an optimizer made before the
   * move holds the moved ones), their values and gradients now live on `device`. All or
   * nothing: the copies are made first, so a failure (out of device memory) leaves every
   * parameter where it was. Resolves to the module. Buffers (`ModuleBuffer`) stay on the CPU.
   */
  async to(device: Device): Promise<this> {
    check(device === 'cpu' || device instanceof GpuDevice, 'invalid_argument', () => {
      return `Module.to: expected 'cpu' or a Device from openDevice(), got ${String(device)}`;
    });
    const moves: PendingMove[] = [];
    try {
      // (a parameter a module shares between two places moves once)
      for (const parameter of new Set(this.parameters())) moves.push(await prepareMove(parameter, device));
    } catch (error) {
      for (const move of moves) move.abort();
      throw error;
    }
    for (const move of moves) move.commit();
    return this;
  }

  /** A copy of every parameter's values, read from whichever device they live on. */
  async readStateDict(): Promise<StateDict> {
    const state: StateDict = {};
    for (const [name, parameter] of this.namedParameters()) {
      const data =
        parameter.device === 'cpu'
          ? Float32Array.from(parameter.data)
          : await parameter.device.readFloat32(parameter.deviceBuffer!);
      state[name] = { shape: [...parameter.shape], data };
    }
    addBuffers(this, state);
    return state;
  }

  parameterCount(): number {
    return this.parameters().reduce((total, parameter) => total + parameter.size, 0);
  }

  /** A copy of every parameter's values (CPU parameters; `readStateDict` reads any device). */
  stateDict(): StateDict {
    const state: StateDict = {};
    for (const [name, parameter] of this.namedParameters()) {
      state[name] = { shape: [...parameter.shape], data: Float32Array.from(parameter.data) };
    }
    addBuffers(this, state);
    return state;
  }

  /**
   * Copies values in (parameters and buffers); every name must be present with the same shape
   * (extra names are an error when strict).
   */
  loadStateDict(state: StateDict, options: { strict?: boolean } = {}): void {
    const strict = options.strict ?? true;
    const named: Array<[string, Tensor]> = [...this.namedParameters(), ...this.namedBuffers()];
    for (const [name, parameter] of named) {
      const entry = state[name];
      if (entry === undefined) {
        check(!strict, 'invalid_argument', () => `loadStateDict: missing parameter '${name}'`);
        continue;
      }
      const sameShape =
        entry.shape.length === parameter.rank && entry.shape.every((n, d) => n === parameter.shape[d]);
      check(sameShape && entry.data.length === parameter.size, 'shape_mismatch', () => {
        return `loadStateDict: '${name}' has shape [${entry.shape.join(', ')}], the module expects [${parameter.shape.join(', ')}]`;
      });
      if (parameter.device === 'cpu') parameter.data.set(entry.data);
      else parameter.device.copyIn(parameter.deviceBuffer!, Float32Array.from(entry.data));
    }
    if (strict) {
      const known = new Set(named.map(([name]) => name));
      const extra = Object.keys(state).filter((name) => !known.has(name));
      check(
        extra.length === 0,
        'invalid_argument',
        () => `loadStateDict: unexpected parameters ${extra.join(', ')}`,
      );
    }
  }
}

/** Every buffer's values copied into `state` under its name. */
function addBuffers(module: Module, state: StateDict): void {
  for (const [name, buffer] of module.namedBuffers()) {
    state[name] = { shape: [...buffer.shape], data: Float32Array.from(buffer.data) };
  }
}

/** A parameter's gradient zeroed: filled in place on the CPU, given back on a device. */
export function zeroGradient(parameter: Tensor): void {
  parameter.grad?.fill(0);
  if (parameter.deviceGrad !== null) {
    dispose(parameter.deviceGrad);
    parameter.deviceGrad = null;
  }
}
