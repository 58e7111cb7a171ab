/**
 * The reverse-mode autograd engine, one for every device.
 *
 * `backward(loss)` walks the recorded graph in reverse topological order and runs each node's
 * gradient rule (written beside its op's forward, in `ops/*` and `losses.ts`). A rule returns
 * its inputs' gradients as tensors, computed with ops, so the same rule runs on the CPU and on a
 * GPU-layer device; the engine accumulates them: into `tensor.grad` (a contiguous Float32Array
 * in logical order) for a CPU tensor, into `tensor.deviceGrad` (a tensor on the same device)
 * for a device tensor. Gradients of intermediate tensors are given back once used (unless
 * `retainGrad`); `disposeGraph` gives back the activations too, so a training loop whose shapes
 * repeat allocates nothing after its first step.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { backward, mul, sum, tensor } from 'zbmd/ml';
 *
 * const w = tensor([1, 2, 3], [3], { requiresGrad: true });
 * backward(sum(mul(w, w))); // d(sum w^2)/dw = 2w
 * assert.deepEqual(Array.from(w.grad ?? []), [2, 4, 6]);
 * ```
 */
import { deviceBinary, deviceProduct } from './deviceOps.js';
import { check, TensorError } from './errors.js';
import { accumulateProduct } from './internal/matrixOperands.js';
import { pool } from './internal/pool.js';
import { matmul } from './ops/matmul.js';
import { transpose } from './ops/shape.js';
import {
  contiguousData,
  deviceTensor,
  dispose,
  gradBuffer,
  isContiguous,
  noGrad,
  type ProductGradient,
  releaseGradient,
  releaseNode,
  releaseTemporary,
  sameShape,
  share,
  Tensor,
  topologicalOrder,
} from './Tensor.js';

const EMPTY = new Float32Array(0);

/**
 * Accumulates d(root)/d(leaf) into every leaf's gradient (`grad` on the CPU, `deviceGrad` on a
 * device). `gradient` seeds the root (required unless the root has one element).
 */
export function backward(root: Tensor, gradient?: Float32Array): void {
  check(root.requiresGrad, 'invalid_argument', () => 'backward: the tensor does not require a gradient');
  check(gradient !== undefined || root.size === 1, 'invalid_argument', () => {
    return `backward: a gradient is needed for a non-scalar root of shape [${root.shape.join(', ')}]`;
  });
  check(gradient === undefined || gradient.length === root.size, 'shape_mismatch', () => {
    return `backward: gradient has ${gradient?.length} elements, root has ${root.size}`;
  });
  const order = topologicalOrder(root);
  for (let i = order.length - 1; i >= 0; i--) {
    const tensor = order[i];
    if (tensor.node !== null && tensor.node.backward === null) {
      throw new TensorError(
        'graph_consumed',
        `backward: the graph through '${tensor.node.op}' was already used`,
      );
    }
  }
  seed(root, gradient);
  noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) runNode(order[i]);
  });
}

function seed(root: Tensor, gradient: Float32Array | undefined): void {
  if (root.device === 'cpu') {
    const values = gradBuffer(root);
    if (gradient === undefined) values[0] += 1;
    else for (let i = 0; i < values.length; i++) values[i] += gradient[i];
    return;
  }
  const device = root.device;
  accumulate(root, deviceTensor(device, device.upload(gradient ?? Float32Array.of(1)), root.shape));
}

/** Runs one node's rule on the tensor's gradient, then gives back what the node and gradient held. */
function runNode(tensor: Tensor): void {
  const node = tensor.node;
  if (node === null) return;
  const g = gradientOf(tensor);
  if (g !== null && node.backward !== null) {
    const gradients = node.backward(g);
    if (gradients !== undefined) {
      const temporaries = new Set<Tensor>();
      node.inputs.forEach((input, index) => {
        const gradientOfInput = gradients[index] ?? null;
        if (gradientOfInput === null) return;
        if (gradientOfInput instanceof Tensor) {
          accumulate(input, gradientOfInput === g ? copyOf(g) : gradientOfInput);
          return;
        }
        for (const tensor of gradientOfInput.temporaries) temporaries.add(tensor);
        accumulateProductGradient(input, gradientOfInput);
      });
      for (const tensor of temporaries) dispose(tensor);
    }
  }
  releaseNode(node);
  if (!tensor.retainGrad) releaseGradient(tensor);
}

/** The tensor's gradient as a tensor on its device (a view of `grad` on the CPU), null when none. */
function gradientOf(tensor: Tensor): Tensor | null {
  if (tensor.device === 'cpu') {
    if (tensor.grad === null) return null;
    return new Tensor(tensor.grad, tensor.shape, 'f32', undefined, 0, false);
  }
  return tensor.deviceGrad;
}

/** A tensor the engine may own holding `g`'s values: a new reference on a device, a view on the CPU. */
function copyOf(g: Tensor): Tensor {
  if (g.device !== 'cpu') return share(g);
  return new Tensor(g.storage, g.shape, 'f32', g.strides, g.offset, false);
}

/**
 * Adds `gradient` (owned by the engine from now on, `input`'s element count) into `input`'s
 * gradient. On the CPU a fresh contiguous buffer from an op is adopted as is; a view is copied.
 */
function accumulate(input: Tensor, gradient: Tensor): void {
  check(gradient.size === input.size, 'shape_mismatch', () => {
    return `backward: a rule gave a gradient of [${gradient.shape.join(', ')}] for an input of [${input.shape.join(', ')}]`;
  });
  if (!input.requiresGrad) {
    dispose(gradient);
    return;
  }
  if (input.device === 'cpu') accumulateOnHost(input, gradient);
  else accumulateOnDevice(input, gradient);
}

/**
 * Adds `op(left) @ op(right)` into `input`'s gradient: in place (gemm with beta = 1) into an
 * existing host gradient, else as a product the engine owns. On the host a transposed operand
 * is a view (gemm's transpose flag); on a device it is the matmul launch's flag.
 */
function accumulateProductGradient(input: Tensor, gradient: ProductGradient): void {
  if (!input.requiresGrad) return;
  const { left, right, transposeLeft, transposeRight } = gradient;
  if (left.device !== 'cpu') {
    accumulate(input, deviceProduct(left, right, transposeLeft, transposeRight));
    return;
  }
  const leftView = transposeLeft ? transpose(left) : left;
  const rightView = transposeRight ? transpose(right) : right;
  try {
    if (input.device === 'cpu' && input.grad !== null) accumulateProduct(input.grad, leftView, rightView);
    else accumulate(input, matmul(leftView, rightView));
  } finally {
    if (leftView !== left) dispose(leftView);
    if (rightView !== right) dispose(rightView);
  }
}

function accumulateOnHost(input: Tensor, gradient: Tensor): void {
  if (gradient.device !== 'cpu') {
    throw new TensorError(
      'device_mismatch',
      `backward: a rule gave a gradient on ${gradient.device.id} for a CPU tensor`,
    );
  }
  const adoptable =
    input.grad === null &&
    gradient.ownsStorage &&
    gradient.offset === 0 &&
    gradient.storage.length === input.size &&
    isContiguous(gradient) &&
    !gradient.disposed;
  if (adoptable) {
    input.grad = gradient.storage as Float32Array;
    gradient.storage = EMPTY;
    gradient.disposed = true;
    return;
  }
  const values = contiguousData(gradient);
  if (input.grad === null) {
    // The first gradient, a view (add passes g on to both inputs): copied, not added onto zeros.
    const grad = pool.take(input.size);
    grad.set(values.subarray(0, input.size));
    input.grad = grad;
  } else {
    const target = input.grad;
    for (let i = 0; i < target.length; i++) target[i] += values[i];
  }
  releaseTemporary(gradient, values);
  dispose(gradient);
}

function accumulateOnDevice(input: Tensor, gradient: Tensor): void {
  const shaped = sameShape(gradient.shape, input.shape) ? gradient : reshapedOnDevice(gradient, input.shape);
  if (input.deviceGrad === null) {
    input.deviceGrad = shaped;
    return;
  }
  const total = deviceBinary('add', input.deviceGrad, shaped);
  dispose(input.deviceGrad);
  dispose(shaped);
  input.deviceGrad = total;
}

function reshapedOnDevice(source: Tensor, shape: readonly number[]): Tensor {
  const out = share(source, shape);
  dispose(source);
  return out;
}

/**
 * Returns the storage of every intermediate tensor reachable from `root` (host buffers to the
 * pool, device buffer references to their device) and marks those tensors disposed (reading one
 * afterwards throws). Leaves (parameters, inputs) are untouched. Call it once a step's outputs
 * have been read.
 */
export function disposeGraph(root: Tensor): void {
  const stack: Tensor[] = [root];
  const seen = new Set<Tensor>([root]);
  while (stack.length > 0) {
    const tensor = stack.pop()!;
    const node = tensor.node;
    if (node === null) continue;
    for (const input of node.inputs) {
      if (!seen.has(input)) {
        seen.add(input);
        stack.push(input);
      }
    }
    releaseNode(node);
    tensor.node = null;
    releaseGradient(tensor);
    if (tensor.deviceBuffer !== null) {
      dispose(tensor);
      continue;
    }
    if (tensor.ownsStorage && tensor.dtype === 'f32' && !tensor.disposed)
      pool.release(tensor.storage as Float32Array);
    tensor.storage = EMPTY;
    tensor.disposed = true;
  }
}
