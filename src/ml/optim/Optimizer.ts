/**
 * Optimizers update parameters in place from their `grad`, with per-parameter state buffers
 * (momentum, moments) allocated once. Their state dict holds the step count, the learning rate
 * and every buffer (named `<parameter index>.<slot>`), and loads back exactly.
 */
import { check } from '../errors.js';
import { type StateDict, zeroGradient } from '../nn/Module.js';
import type { Tensor } from '../Tensor.js';
import { DeviceSlots } from './deviceState.js';

export interface OptimizerState {
  readonly kind: string;
  readonly stepCount: number;
  readonly learningRate: number;
  readonly buffers: StateDict;
}

export abstract class Optimizer {
  /** Steps taken so far. */
  stepCount = 0;
  readonly parameters: readonly Tensor[];
  protected readonly slots: Map<string, Float32Array[]> = new Map();
  /** The slots of parameters on a GPU-layer device, as device tensors. */
  protected readonly deviceSlots = new DeviceSlots();

  constructor(
    parameters: Iterable<Tensor>,
    public learningRate: number,
    readonly kind: string,
  ) {
    this.parameters = [...parameters];
    check(this.parameters.length > 0, 'invalid_argument', () => `${kind}: no parameters to optimise`);
    check(
      Number.isFinite(learningRate) && learningRate >= 0,
      'invalid_argument',
      () => `${kind}: learning rate must be >= 0, got ${learningRate}`,
    );
    for (const parameter of this.parameters) {
      check(
        parameter.dtype === 'f32' && parameter.requiresGrad,
        'invalid_argument',
        () => `${kind}: parameters must be f32 and require gradients`,
      );
    }
  }

  /** Applies one update from the current gradients (parameters without a gradient are skipped). */
  abstract step(): void;

  /** Zeroes gradients: in place on the CPU, given back on a device. */
  zeroGrad(): void {
    for (const parameter of this.parameters) zeroGradient(parameter);
  }

  /** Names of the state slots allocated so far (e.g. 'm', 'v'; 'momentum'), for in-place snapshots. */
  slotNames(): string[] {
    return [...this.slots.keys()];
  }

  /**
   * The buffers of a slot, one per parameter, in place (zeroed on first use): a snapshot copies
   * them into buffers it owns and a restore copies back, without the allocations of `stateDict`.
   */
  slotBuffers(name: string): Float32Array[] {
    return this.slot(name);
  }

  /** Whether any parameter lives on the CPU (host slots are allocated only then). */
  protected hasHostParameters(): boolean {
    return this.parameters.some((parameter) => parameter.device === 'cpu');
  }

  /** A state buffer per parameter, zeroed on first use. */
  protected slot(name: string): Float32Array[] {
    let buffers = this.slots.get(name);
    if (buffers === undefined) {
      buffers = this.allocateSlot(name);
      this.slots.set(name, buffers);
    }
    return buffers;
  }

  /** Where a slot's buffers live (plain arrays; Adam puts its moments in SIMD kernel memory). */
  protected allocateSlot(_name: string): Float32Array[] {
    return this.parameters.map((parameter) => new Float32Array(parameter.size));
  }

  /**
   * The state of an optimizer whose parameters are on the CPU. With parameters on a device
   * it is a `TensorError`: read the state with `await readStateDict()`.
   */
  stateDict(): OptimizerState {
    check(this.deviceSlots.size === 0, 'invalid_argument', () => {
      return `${this.kind}: its state lives on a device; read it with \`await optimizer.readStateDict()\``;
    });
    return this.hostState();
  }

  /** The state, read from whichever device it lives on (the same form as `stateDict`). */
  async readStateDict(): Promise<OptimizerState> {
    const state = this.hostState();
    const buffers = { ...state.buffers };
    for (const name of this.deviceSlots.names()) {
      for (const [index, tensor] of this.deviceSlots.entries(name)) {
        const data = (await tensor.to('cpu')).data;
        buffers[`${index}.${name}`] = { shape: [...this.parameters[index].shape], data };
      }
    }
    return { ...state, buffers };
  }

  private hostState(): OptimizerState {
    const buffers: StateDict = {};
    for (const [name, list] of this.slots) {
      list.forEach((buffer, index) => {
        buffers[`${index}.${name}`] = {
          shape: [...this.parameters[index].shape],
          data: Float32Array.from(buffer),
        };
      });
    }
    return { kind: this.kind, stepCount: this.stepCount, learningRate: this.learningRate, buffers };
  }

  /** Restores a `stateDict` exactly (buffers are copied into this optimizer's own). */
  loadStateDict(state: OptimizerState): void {
    check(
      state.kind === this.kind,
      'invalid_argument',
      () => `loadStateDict: state is for ${state.kind}, optimizer is ${this.kind}`,
    );
    const entries = Object.entries(state.buffers).map(([key, entry]) => {
      const dot = key.indexOf('.');
      const index = Number(key.slice(0, dot));
      const parameter = this.parameters[index];
      check(
        dot > 0 && parameter !== undefined && entry.data.length === parameter.size,
        'shape_mismatch',
        () => {
          return `loadStateDict: buffer '${key}' does not fit a parameter of this optimizer`;
        },
      );
      return { index, name: key.slice(dot + 1), data: entry.data };
    });
    for (const list of this.slots.values()) for (const buffer of list) buffer.fill(0);
    this.deviceSlots.clear();
    for (const { index, name, data } of entries) {
      const parameter = this.parameters[index];
      if (parameter.device === 'cpu') this.slot(name)[index].set(data);
      else this.deviceSlots.set(name, index, parameter, data);
    }
    this.stepCount = state.stepCount;
    this.learningRate = state.learningRate;
  }
}
