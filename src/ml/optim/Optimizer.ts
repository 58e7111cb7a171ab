/**
 * Optimizers update parameters in place from their `grad`, with per-parameter state buffers
 * (momentum, moments) allocated once. Their state dict holds the step count, the learning rate
 * and every buffer (named `<parameter index>.<slot>`), and loads back exactly.
 */
import { check } from '../errors.js';
import type { StateDict } from '../nn/Module.js';
import type { Tensor } from '../Tensor.js';

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

  /** Zeroes gradients in place. */
  zeroGrad(): void {
    for (const parameter of this.parameters) parameter.grad?.fill(0);
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

  stateDict(): OptimizerState {
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
    for (const { index, name, data } of entries) this.slot(name)[index].set(data);
    this.stepCount = state.stepCount;
    this.learningRate = state.learningRate;
  }
}
