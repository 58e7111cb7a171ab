/**
 * The optimizers a training run uses: zbmd's SGD, Adam and AdamW, with access to their state
 * buffers in place, so a snapshot copies them into buffers it owns (no allocation per step)
 * and a restore copies them back. `stateDict()` would allocate a copy of every buffer per step.
 */
import { Adam, AdamW } from '../optim/Adam.js';
import type { Optimizer } from '../optim/Optimizer.js';
import { SGD } from '../optim/SGD.js';
import type { Tensor } from '../Tensor.js';
import type { OptimizerName } from './TrainingConfig.js';

/** An optimizer whose per-parameter state buffers can be read and written in place. */
export interface SlotAccess {
  readonly optimizer: Optimizer;
  /** Names of the slots allocated so far (e.g. 'm', 'v'; 'momentum'). */
  slotNames(): string[];
  /** The buffers of a slot, one per parameter, allocated (zeroed) on first use. */
  slotBuffers(name: string): Float32Array[];
}

/** The slot view of one of zbmd's optimizers (`Optimizer.slotNames` / `slotBuffers`). */
function slotAccess(optimizer: Optimizer): SlotAccess {
  return {
    optimizer,
    slotNames: () => optimizer.slotNames(),
    slotBuffers: (name) => optimizer.slotBuffers(name),
  };
}

/** SGD with momentum 0.9; Adam and AdamW with PyTorch's defaults. */
export function createOptimizer(
  name: OptimizerName,
  parameters: readonly Tensor[],
  learningRate: number,
): SlotAccess {
  switch (name) {
    case 'sgd':
      return slotAccess(new SGD(parameters, { learningRate, momentum: 0.9 }));
    case 'adam':
      return slotAccess(new Adam(parameters, { learningRate }));
    case 'adamw':
      return slotAccess(new AdamW(parameters, { learningRate }));
  }
}
