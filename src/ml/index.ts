/**
 * zbmd's ML core: tensors, autograd, layers, losses, optimizers and a plain training loop, on a
 * CPU backend whose matrix products go through OpenBLAS when it is installed (Debian's
 * libopenblas0-pthread; otherwise a TypeScript fallback, announced once on stderr).
 *
 * @example
 * ```ts
 * import { Adam, DataLoader, Flatten, Linear, ReLU, Sequential, loadFashionMnist, manualSeed, trainPlain } from 'zbmd/ml';
 * manualSeed(42);
 * const { train } = await loadFashionMnist();
 * const model = new Sequential(new Flatten(), new Linear(784, 128), new ReLU(), new Linear(128, 10));
 * const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
 * const loader = new DataLoader(train, { batchSize: 32, shuffle: true, seed: 42 });
 * const { epochLosses } = trainPlain({ model, optimizer, loader, epochs: 5 });
 * ```
 */

export { backward, disposeGraph } from './autograd.js';
export * from './data/index.js';
export { DEVICE_OP_NAMES, type DeviceOpName } from './deviceOps.js';
export {
  bytesPerElement,
  DTYPES,
  type Dtype,
  decodeStorage,
  dequantizeInt8,
  encodeStorage,
  quantizeInt8,
  type Storage,
} from './dtype.js';
export * from './elastic/index.js';
export { isTensorError, TensorError, type TensorErrorReason } from './errors.js';
export {
  type BlasBackendName,
  blasBackend,
  blasInfo,
  setBlasBackend,
  setBlasThreads,
} from './internal/blas.js';
export { clearBufferPools } from './internal/pool.js';
export * from './losses.js';
export * from './lossesExtra.js';
export * from './modelFiles.js';
export * from './nn/activations.js';
export * from './nn/attention.js';
export * from './nn/init.js';
export * from './nn/layers.js';
export * from './nn/Module.js';
export * from './nn/norms.js';
export * from './ops/activations.js';
export * from './ops/broadcast.js';
export * from './ops/compare.js';
export * from './ops/conv.js';
export * from './ops/einsum.js';
export * from './ops/elementwise.js';
export * from './ops/indexing.js';
export * from './ops/math.js';
export * from './ops/matmul.js';
export * from './ops/neural.js';
export * from './ops/reduce.js';
export * from './ops/shape.js';
export * from './ops/softmax.js';
export * from './ops/statistics.js';
export * from './optim/Adam.js';
export * from './optim/clip.js';
export * from './optim/Optimizer.js';
export * from './optim/RMSprop.js';
export * from './optim/SGD.js';
export * from './optim/schedules.js';
export * from './safetensors.js';
export type { DevicePlacement } from './Tensor.js';
export {
  type Device,
  detach,
  dispose,
  fromData,
  full,
  type GradNode,
  isContiguous,
  isGradEnabled,
  item,
  noGrad,
  ones,
  rand,
  randn,
  scalar,
  sizeOf,
  Tensor,
  type TensorOptions,
  tensor,
  to,
  toArray,
  toDtype,
  zeros,
} from './Tensor.js';
export * from './train.js';
export * from './training/index.js';
