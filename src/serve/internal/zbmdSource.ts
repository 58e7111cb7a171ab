/** zbmd modules (the built-in mlp and cnn): each replica rebuilds the module and loads a copy of the weights. */
import { buildSavedModel, type SavedModelSpec } from '../../ml/modelFiles.js';
import type { Module, StateDict } from '../../ml/nn/Module.js';
import { dispose, fromData, noGrad } from '../../ml/Tensor.js';
import type { HostTensor, ModelRunner, ModelSource, TensorMap } from '../ModelSource.js';

export const ZBMD_INPUT = 'input';
export const ZBMD_OUTPUT = 'logits';

class ModuleRunner implements ModelRunner {
  constructor(
    private readonly module: Module,
    private readonly numClasses: number,
  ) {}

  async run(inputs: TensorMap): Promise<Map<string, HostTensor>> {
    const input = inputs.get(ZBMD_INPUT)!;
    const rows = input.shape[0];
    const logits = noGrad(() => {
      const tensor = fromData(input.data as Float32Array, [...input.shape]);
      const output = this.module.forward(tensor);
      const values = Float32Array.from(output.data.subarray(0, rows * this.numClasses));
      if (output !== tensor) dispose(output);
      return values;
    });
    return new Map([[ZBMD_OUTPUT, { datatype: 'FP32', shape: [rows, this.numClasses], data: logits }]]);
  }

  async close(): Promise<void> {}
}

export function zbmdSource(module: Module, spec: SavedModelSpec, origin: string): ModelSource {
  const state: StateDict = module.stateDict();
  return {
    platform: 'zbmd',
    inputs: [{ name: ZBMD_INPUT, datatype: 'FP32', shape: [-1, ...spec.featureShape] }],
    outputs: [{ name: ZBMD_OUTPUT, datatype: 'FP32', shape: [-1, spec.numClasses] }],
    batchable: true,
    origin,
    open: async () => {
      const copy = buildSavedModel(spec);
      copy.loadStateDict(state);
      return new ModuleRunner(copy.eval(), spec.numClasses);
    },
  };
}
