/**
 * i32 tensors for indices and labels: made with `indexTensor` or `toDtype(t, 'i32')` (truncation,
 * as PyTorch's .to(torch.int32), out-of-range refused), read exactly by the index-taking ops
 * (embedding, crossEntropy, gather, indexSelect, scatter: the same results as float indices),
 * and refused by float ops with `invalid_dtype`.
 */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import {
  add,
  crossEntropy,
  Embedding,
  fromData,
  Gpt,
  gather,
  indexSelect,
  indexTensor,
  indexValues,
  isTensorError,
  matmul,
  relu,
  scatter,
  type Tensor,
  tensor,
  toArray,
  toDtype,
  transpose,
} from '../../src/ml/index.js';

function reasonOf(body: () => unknown): string | undefined {
  try {
    body();
  } catch (error) {
    return isTensorError(error) ? error.reason : `not a TensorError: ${String(error)}`;
  }
  return undefined;
}

describe('i32 tensors', () => {
  it('hold integers exactly, past float32 precision', () => {
    const big = indexTensor([0, -3, 16_777_217, 2 ** 31 - 1], [2, 2]);
    expect(big.dtype).toBe('i32');
    expect([...indexValues(big, 'test')]).toEqual([0, -3, 16_777_217, 2 ** 31 - 1]);
    expect(reasonOf(() => indexTensor([1.5]))).toBe('invalid_argument');
    expect(reasonOf(() => indexTensor([2 ** 31]))).toBe('invalid_argument');
    expect(reasonOf(() => indexTensor([1, 2, 3], [2, 2]))).toBe('shape_mismatch');
  });

  it('convert from f32 by truncation toward zero, refusing what an int32 cannot hold', () => {
    const converted = toDtype(tensor([2.7, -2.7, 0, 5]), 'i32');
    expect(converted.dtype).toBe('i32');
    expect(toArray(converted)).toEqual([2, -2, 0, 5]);
    expect(toArray(toDtype(converted, 'f32'))).toEqual([2, -2, 0, 5]);
    expect(reasonOf(() => toDtype(tensor([Number.NaN]), 'i32'))).toBe('invalid_argument');
    expect(reasonOf(() => toDtype(tensor([3e9]), 'i32'))).toBe('invalid_argument');
  });

  it('are refused by float ops, with the conversion to use', () => {
    const ids = indexTensor([1, 2]);
    expect(reasonOf(() => relu(ids))).toBe('invalid_dtype');
    expect(reasonOf(() => add(ids, 1))).toBe('invalid_dtype');
    expect(reasonOf(() => matmul(indexTensor([1, 2], [1, 2]), tensor([[1], [2]])))).toBe('invalid_dtype');
    expect(() => relu(ids)).toThrow(/convert with toDtype/);
  });

  it('index an Embedding and a Gpt as float ids do', () => {
    const table = new Embedding(6, 3, { random: new Random(1) });
    const asFloat = toArray(table.forward(tensor([[5, 0, 2]])));
    expect(toArray(table.forward(indexTensor([5, 0, 2], [1, 3])))).toEqual(asFloat);
    expect(reasonOf(() => table.forward(indexTensor([6])))).toBe('invalid_argument');
    const gpt = new Gpt(
      { vocabSize: 5, blockSize: 4, layers: 1, heads: 1, dimension: 4 },
      { random: new Random(2) },
    );
    expect(toArray(gpt.forward(indexTensor([1, 4, 0], [1, 3])))).toEqual(
      toArray(gpt.forward(tensor([[1, 4, 0]]))),
    );
  });

  it('are crossEntropy labels, on the fused and the general path, and in a strided view', () => {
    const logits = fromData(Float32Array.from([1, 2, 0.5, -1, 0, 3, 2, 2, 1]), [3, 3]);
    const plain = toArray(crossEntropy(logits, new Int32Array([1, 2, 0])));
    expect(toArray(crossEntropy(logits, indexTensor([1, 2, 0])))).toEqual(plain);
    const general = toArray(crossEntropy(logits, new Int32Array([1, -100, 0]), { labelSmoothing: 0.1 }));
    expect(toArray(crossEntropy(logits, indexTensor([1, -100, 0]), { labelSmoothing: 0.1 }))).toEqual(
      general,
    );
    // A strided view (a transpose) is read in logical order.
    const view: Tensor = transpose(indexTensor([1, 2, 0, 9, 9, 9], [2, 3]), 0, 1);
    expect(view.dtype).toBe('i32');
    expect([...indexValues(view, 'view')]).toEqual([1, 9, 2, 9, 0, 9]);
  });

  it('index gather, indexSelect and scatter as float indices do', () => {
    const x = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const floatIndex = tensor([
      [2, 0],
      [1, 1],
    ]);
    const intIndex = indexTensor([2, 0, 1, 1], [2, 2]);
    expect(toArray(gather(x, 1, intIndex))).toEqual(toArray(gather(x, 1, floatIndex)));
    expect(toArray(indexSelect(x, 1, indexTensor([2, 0])))).toEqual(
      toArray(indexSelect(x, 1, tensor([2, 0]))),
    );
    expect(toArray(scatter(x, 1, intIndex, 0))).toEqual(toArray(scatter(x, 1, floatIndex, 0)));
    expect(reasonOf(() => gather(x, 1, indexTensor([3, 0, 1, 1], [2, 2])))).toBe('invalid_argument');
  });
});
