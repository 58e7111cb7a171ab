/** Gradient clipping, in place, over the parameters' `grad` buffers. */
import { check } from '../errors.js';
import type { Tensor } from '../Tensor.js';

/**
 * Scales all gradients so their global L2 norm is at most maxNorm (PyTorch's
 * clip_grad_norm_: factor maxNorm / (norm + 1e-6)). Returns the norm before clipping.
 */
export function clipGradNorm(parameters: Iterable<Tensor>, maxNorm: number): number {
  check(maxNorm > 0, 'invalid_argument', () => `clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const list = [...parameters];
  onTheCpu('clipGradNorm', list);
  let squares = 0;
  for (const parameter of list) {
    const grad = parameter.grad;
    if (grad !== null) for (let i = 0; i < grad.length; i++) squares += grad[i] * grad[i];
  }
  const norm = Math.sqrt(squares);
  const factor = maxNorm / (norm + 1e-6);
  if (factor < 1) {
    for (const parameter of list) {
      const grad = parameter.grad;
      if (grad !== null) for (let i = 0; i < grad.length; i++) grad[i] *= factor;
    }
  }
  return norm;
}

/** Clamps every gradient element into [-clipValue, clipValue]. */
export function clipGradValue(parameters: Iterable<Tensor>, clipValue: number): void {
  check(clipValue > 0, 'invalid_argument', () => `clipGradValue: clipValue must be > 0, got ${clipValue}`);
  const list = [...parameters];
  onTheCpu('clipGradValue', list);
  for (const parameter of list) {
    const grad = parameter.grad;
    if (grad !== null)
      for (let i = 0; i < grad.length; i++) grad[i] = Math.max(-clipValue, Math.min(clipValue, grad[i]));
  }
}

/** Clipping reads `grad`; on a device the gradients are `deviceGrad`, which it does not clip. */
function onTheCpu(context: string, parameters: readonly Tensor[]): void {
  const onDevice = parameters.find((parameter) => parameter.device !== 'cpu');
  check(onDevice === undefined, 'unavailable_on_device', () => {
    return `${context}: parameters on ${onDevice!.device === 'cpu' ? 'cpu' : onDevice!.device.id} are not clipped on a device yet; train without clipping there, or on the CPU`;
  });
}
