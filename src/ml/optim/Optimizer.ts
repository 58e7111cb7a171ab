/**
 * Optimizers update parameters in place from their `grad`, with per-parameter state buffers
 * (momentum, moments) allocated once. Their state dict holds the step count, the learning rate,
 * the parameter groups with their options, each parameter's own step count and every buffer
 * (named `<parameter index>.<slot>`), and loads back exactly.
 *
 * Parameters come as a list or as PyTorch's parameter groups,
 * `[{ params, learningRate?, weightDecay? }, ...]` (e.g. no weight decay on biases and norms):
 * a group without its own option takes the optimizer's. Parameters are numbered in the order
 * the groups list them. A parameter whose `grad` is null (no backward reached it yet: PyTorch's
 * `p.grad is None`) is skipped by a step and its own step count does not advance.
 */
import { check } from '../errors.js';
import { type StateDict, zeroGradient } from '../nn/Module.js';
import { type Device, deviceName, type Tensor } from '../Tensor.js';
import { DeviceSlots } from './deviceState.js';

export interface OptimizerState {
  readonly kind: string;
  readonly stepCount: number;
  /** The learning rate of the first group. */
  readonly learningRate: number;
  readonly buffers: StateDict;
  /** Per group: its options and the indices of its parameters (absent in older states: one group). */
  readonly groups?: readonly GroupState[];
  /** Each parameter's own step count (absent in older states: all equal to `stepCount`). */
  readonly parameterSteps?: readonly number[];
}

/** A parameter group as given to an optimizer (PyTorch's `{ 'params': ..., 'lr': ... }`). */
export interface ParameterGroupSpec {
  readonly params: Iterable<Tensor>;
  readonly learningRate?: number;
  readonly weightDecay?: number;
}

/** What an optimizer is given: a list of parameters or a list of parameter groups. */
export type OptimizerParameters = Iterable<Tensor> | readonly ParameterGroupSpec[];

/** A group's options as an optimizer holds them (the learning rate changes under schedules). */
export interface ParameterGroup {
  learningRate: number;
  weightDecay: number;
  /** The learning rate the group started with (schedules keep the groups' ratios). */
  readonly initialLearningRate: number;
  /** Indices into `Optimizer.parameters`. */
  readonly indices: readonly number[];
}

export interface GroupState {
  readonly learningRate: number;
  readonly weightDecay: number;
  readonly initialLearningRate: number;
  readonly parameters: readonly number[];
}

function isGroupList(parameters: OptimizerParameters): parameters is readonly ParameterGroupSpec[] {
  if (!Array.isArray(parameters) || parameters.length === 0) return false;
  const first: unknown = parameters[0];
  return typeof first === 'object' && first !== null && 'params' in first;
}

export abstract class Optimizer {
  private steps = 0;
  readonly parameters: readonly Tensor[];
  readonly groups: readonly ParameterGroup[];
  /** Each parameter's own step count: the steps that found a gradient on it. */
  readonly parameterSteps: number[];
  /** The group of each parameter. */
  protected readonly groupOf: readonly ParameterGroup[];
  private readonly defaultLearningRate: number;
  protected readonly slots: Map<string, Float32Array[]> = new Map();
  /** The slots of parameters on a GPU-layer device, as device tensors. */
  protected readonly deviceSlots = new DeviceSlots();
  /** Where each parameter's state lives: where it was at the last step (or the last load). */
  private readonly placements: Device[];
  /** Whether a state was loaded (then even a parameter that never stepped may hold state). */
  private loaded = false;

  constructor(
    parameters: OptimizerParameters,
    learningRate: number,
    readonly kind: string,
    weightDecay = 0,
  ) {
    const specs: readonly ParameterGroupSpec[] = isGroupList(parameters)
      ? parameters
      : [{ params: parameters as Iterable<Tensor> }];
    const all: Tensor[] = [];
    const groups: ParameterGroup[] = [];
    const groupOf: ParameterGroup[] = [];
    specs.forEach((spec, number) => {
      check(
        typeof spec === 'object' && spec !== null && spec.params !== undefined,
        'invalid_argument',
        () => `${kind}: parameter group ${number} has no 'params'`,
      );
      const rate = spec.learningRate ?? learningRate;
      const decay = spec.weightDecay ?? weightDecay;
      checkRate(kind, rate, `group ${number} learning rate`);
      check(
        Number.isFinite(decay) && decay >= 0,
        'invalid_argument',
        () => `${kind}: group ${number} weight decay must be >= 0, got ${decay}`,
      );
      const members = [...spec.params];
      const indices = members.map((_, offset) => all.length + offset);
      const group: ParameterGroup = {
        learningRate: rate,
        weightDecay: decay,
        initialLearningRate: rate,
        indices,
      };
      for (const member of members) {
        check(
          !all.includes(member),
          'invalid_argument',
          () => `${kind}: a parameter appears in more than one group (or twice in one)`,
        );
        all.push(member);
        groupOf.push(group);
      }
      groups.push(group);
    });
    this.parameters = all;
    this.groups = groups;
    this.groupOf = groupOf;
    this.parameterSteps = all.map(() => 0);
    this.placements = all.map((parameter) => parameter.device);
    this.defaultLearningRate = learningRate;
    check(this.parameters.length > 0, 'invalid_argument', () => `${kind}: no parameters to optimise`);
    checkRate(kind, learningRate, 'learning rate');
    for (const parameter of this.parameters) {
      check(
        parameter.dtype === 'f32' && parameter.requiresGrad,
        'invalid_argument',
        () => `${kind}: parameters must be f32 and require gradients`,
      );
    }
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * Moves the step count (a restore of an in-place snapshot does): each parameter's own count
   * moves by as much, so a parameter that missed its first steps stays as far behind.
   */
  set stepCount(count: number) {
    check(Number.isInteger(count) && count >= 0, 'invalid_argument', () => {
      return `${this.kind}: step count must be an integer >= 0, got ${count}`;
    });
    const shift = count - this.steps;
    for (let index = 0; index < this.parameterSteps.length; index++)
      this.parameterSteps[index] = Math.max(0, this.parameterSteps[index] + shift);
    this.steps = count;
  }

  /**
   * Starts a step. A parameter `Module.to` moved since the last step takes its state along:
   * from the CPU to a device the slots are copied there. From a device, where reading them back
   * would have to wait, a parameter that has state there (it stepped there, or a state was
   * loaded) stops the step with a `TensorError` that says how to carry it:
   * `optimizer.loadStateDict(await optimizer.readStateDict())` after the move.
   */
  protected startStep(): void {
    let moved = false;
    for (let index = 0; index < this.parameters.length; index++) {
      const parameter = this.parameters[index];
      const from = this.placements[index];
      if (parameter.device === from) continue;
      if (from === 'cpu') {
        for (const [name, buffers] of this.slots)
          this.deviceSlots.set(name, index, parameter, buffers[index]);
      } else {
        const names = this.deviceSlots.namesOf(index);
        check(names.length === 0 || !this.holdsState(index), 'invalid_argument', () => {
          return (
            `${this.kind}: parameter ${index} moved from ${deviceName(from)} to ` +
            `${deviceName(parameter.device)}, and its state (${names.join(', ')}) is still on ` +
            `${deviceName(from)}; carry it with \`optimizer.loadStateDict(await optimizer.readStateDict())\` ` +
            `after the move, then step`
          );
        });
        this.deviceSlots.drop(index);
      }
      this.placements[index] = parameter.device;
      moved = true;
    }
    if (moved) this.parametersMoved();
  }

  /** Whether parameter `index` may have state other than the initial one (it stepped, or a load). */
  private holdsState(index: number): boolean {
    return this.loaded || this.parameterSteps[index] > 0;
  }

  /** Called by `startStep` once parameters moved (Adam drops its host kernel then). */
  protected parametersMoved(): void {}

  /** Ends a step: the optimizer's count advances (each parameter's was advanced by the update). */
  protected finishStep(): void {
    this.steps++;
  }

  /** The first group's learning rate. */
  get learningRate(): number {
    return this.groups[0].learningRate;
  }

  /**
   * Sets every group's rate, keeping their initial ratios: a group that started at the
   * optimizer's rate gets `rate`, one that started at twice it gets `2 * rate`.
   */
  set learningRate(rate: number) {
    checkRate(this.kind, rate, 'learning rate');
    const reference = this.groups[0].initialLearningRate;
    for (const group of this.groups) {
      group.learningRate =
        group.initialLearningRate === reference || reference === 0
          ? rate
          : (rate * group.initialLearningRate) / reference;
    }
  }

  /** The rate given to the constructor (the default of groups without their own). */
  get baseLearningRate(): number {
    return this.defaultLearningRate;
  }

  /** Applies one update from the current gradients (parameters without a gradient are skipped). */
  abstract step(): void;

  /** Zeroes gradients: in place on the CPU, given back on a device. */
  zeroGrad(): void {
    for (const parameter of this.parameters) zeroGradient(parameter);
  }

  /**
   * `step()` then `zeroGrad()`, the end of a training step: the same parameters, state and
   * (zero) gradients after it. An optimizer may do both in one pass over the gradients (Adam's
   * SIMD kernel clears each gradient as it reads it); the training loops call this.
   */
  stepAndZeroGrad(): void {
    this.step();
    this.zeroGrad();
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

  /** Names of the slots held on a device so far (parameters on a GPU-layer device). */
  deviceSlotNames(): string[] {
    return this.deviceSlots.names();
  }

  /** Reads slot `name` of device parameter `index` into `target` (zeros when it was never used). */
  async readDeviceSlot(name: string, index: number, target: Float32Array): Promise<void> {
    const parameter = this.parameters[index];
    check(parameter !== undefined && parameter.device !== 'cpu', 'invalid_argument', () => {
      return `${this.kind}: parameter ${index} is not on a device`;
    });
    const entry = this.deviceSlots.entries(name).find(([at]) => at === index);
    if (entry === undefined) {
      target.fill(0);
      return;
    }
    target.set((await entry[1].to('cpu')).data);
  }

  /** Writes `values` into slot `name` of device parameter `index` (allocating the slot). */
  writeDeviceSlot(name: string, index: number, values: Float32Array): void {
    const parameter = this.parameters[index];
    check(parameter !== undefined && parameter.device !== 'cpu', 'invalid_argument', () => {
      return `${this.kind}: parameter ${index} is not on a device`;
    });
    this.deviceSlots.set(name, index, parameter, values);
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
    const groups = this.groups.map((group) => ({
      learningRate: group.learningRate,
      weightDecay: group.weightDecay,
      initialLearningRate: group.initialLearningRate,
      parameters: [...group.indices],
    }));
    return {
      kind: this.kind,
      stepCount: this.stepCount,
      learningRate: this.learningRate,
      buffers,
      groups,
      parameterSteps: [...this.parameterSteps],
    };
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
    const groups = state.groups;
    if (groups !== undefined) {
      check(
        groups.length === this.groups.length &&
          groups.every(
            (group, number) =>
              group.parameters.length === this.groups[number].indices.length &&
              group.parameters.every((index, at) => index === this.groups[number].indices[at]),
          ),
        'shape_mismatch',
        () => `loadStateDict: the state's parameter groups do not match this optimizer's`,
      );
      groups.forEach((group, number) => {
        checkRate(this.kind, group.learningRate, `group ${number} learning rate`);
        check(
          Number.isFinite(group.weightDecay) && group.weightDecay >= 0,
          'invalid_argument',
          () => `loadStateDict: group ${number} weight decay must be >= 0`,
        );
      });
    }
    const steps = state.parameterSteps;
    check(
      steps === undefined ||
        (steps.length === this.parameters.length && steps.every((n) => Number.isInteger(n) && n >= 0)),
      'shape_mismatch',
      () => `loadStateDict: parameterSteps must hold one integer >= 0 per parameter`,
    );
    let moved = false;
    for (let index = 0; index < this.parameters.length; index++) {
      // A parameter moved since its last step gets its state where it is now.
      const parameter = this.parameters[index];
      if (parameter.device === this.placements[index]) continue;
      this.deviceSlots.drop(index);
      this.placements[index] = parameter.device;
      moved = true;
    }
    if (moved) this.parametersMoved();
    this.loaded = true;
    this.resetSlots();
    this.deviceSlots.clear();
    for (const { index, name, data } of entries) {
      const parameter = this.parameters[index];
      if (parameter.device === 'cpu') this.slot(name)[index].set(data);
      else this.deviceSlots.set(name, index, parameter, data);
    }
    this.stepCount = state.stepCount;
    if (groups !== undefined) {
      groups.forEach((group, number) => {
        const own = this.groups[number];
        own.learningRate = group.learningRate;
        own.weightDecay = group.weightDecay;
        (own as { initialLearningRate: number }).initialLearningRate = group.initialLearningRate;
      });
    } else this.learningRate = state.learningRate;
    for (let index = 0; index < this.parameters.length; index++)
      this.parameterSteps[index] = steps?.[index] ?? state.stepCount;
  }

  /** Before a load: every slot back to its initial value (zero). */
  protected resetSlots(): void {
    for (const list of this.slots.values()) for (const buffer of list) buffer.fill(0);
  }
}

function checkRate(kind: string, rate: number, what: string): void {
  check(
    Number.isFinite(rate) && rate >= 0,
    'invalid_argument',
    () => `${kind}: ${what} must be >= 0, got ${rate}`,
  );
}
