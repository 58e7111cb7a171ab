import { describe, expect, it } from 'vitest';
import { isRequestRejected, parseInferRequest, type TensorSpec } from '../../src/serve/index.js';
import { inferResponse } from '../../src/serve/protocol.js';

const tensor = (name: string, datatype: string, shape: number[], data: unknown) => ({
  name,
  datatype,
  shape,
  data,
});

function parse(inputs: TensorSpec[], body: unknown) {
  return parseInferRequest(body, inputs, [{ name: 'out', datatype: 'FP32', shape: [-1, 1] }], true);
}

function rejection(inputs: TensorSpec[], body: unknown): string {
  const result = parse(inputs, body);
  if (!isRequestRejected(result)) throw new Error('expected a rejection');
  expect(result.status).toBe(400);
  return result.message;
}

describe('OIP request decoding', () => {
  it('decodes BYTES as strings and FP16 to half-precision bits, and encodes them back', () => {
    const inputs: TensorSpec[] = [
      { name: 'text', datatype: 'BYTES', shape: [-1, 2] },
      { name: 'half', datatype: 'FP16', shape: [-1, 1] },
    ];
    const request = parse(inputs, {
      inputs: [tensor('text', 'BYTES', [1, 2], [['a', 'héllo']]), tensor('half', 'FP16', [1, 1], [0.333])],
    });
    if (isRequestRejected(request)) throw new Error(request.message);
    expect(request.inputs.get('text')!.data).toEqual(['a', 'héllo']);
    const half = request.inputs.get('half')!.data as Uint16Array;
    expect(half).toBeInstanceOf(Uint16Array);
    const body = inferResponse('m', '1', undefined, ['text', 'half'], request.inputs);
    expect(body.outputs).toEqual([
      { name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['a', 'héllo'] },
      // FP16 keeps 11 significant bits: 0.333 comes back as the nearest half, 1364 / 4096 (as torch.tensor(0.333).half()).
      { name: 'half', datatype: 'FP16', shape: [1, 1], data: [0.3330078125] },
    ]);
  });

  it('checks every element against its datatype', () => {
    const spec = (datatype: TensorSpec['datatype']): TensorSpec[] => [
      { name: 'x', datatype, shape: [-1, 2] },
    ];
    const body = (datatype: string, data: unknown[]) => ({ inputs: [tensor('x', datatype, [1, 2], data)] });
    expect(rejection(spec('UINT8'), body('UINT8', [1, 256]))).toMatch(
      /element 1 must be an integer in \[0, 255\] \(UINT8\), got 256/,
    );
    expect(rejection(spec('INT32'), body('INT32', [1.5, 2]))).toMatch(/element 0 must be an integer/);
    expect(rejection(spec('INT64'), body('INT64', [2 ** 60, 1]))).toMatch(/element 0 must be an integer/);
    expect(rejection(spec('BOOL'), body('BOOL', [1, true]))).toMatch(/element 0 must be true or false/);
    expect(rejection(spec('BYTES'), body('BYTES', ['a', 3]))).toMatch(/element 1 must be a string/);
  });

  it('rejects shapes, nesting and batch sizes that do not fit', () => {
    const two: TensorSpec[] = [
      { name: 'a', datatype: 'FP32', shape: [-1, 1] },
      { name: 'b', datatype: 'FP32', shape: [-1, 1] },
    ];
    expect(
      rejection(two, {
        inputs: [tensor('a', 'FP32', [2, 1], [1, 2]), tensor('b', 'FP32', [3, 1], [1, 2, 3])],
      }),
    ).toMatch(/input 'b': batch dimension 3 differs from the other inputs' 2/);
    expect(
      rejection(two, { inputs: [tensor('a', 'FP32', [1, 1], [1]), tensor('a', 'FP32', [1, 1], [1])] }),
    ).toMatch(/given twice/);
    const deep = [[[[[[[[[[1]]]]]]]]]];
    expect(
      rejection(two, { inputs: [tensor('a', 'FP32', [1, 1], deep), tensor('b', 'FP32', [1, 1], [1])] }),
    ).toMatch(/nested deeper/);
    expect(
      rejection(two, { inputs: [tensor('a', 'FP32', [0, 1], []), tensor('b', 'FP32', [0, 1], [])] }),
    ).toMatch(/at least one row/);
    expect(
      rejection(two, {
        inputs: [tensor('a', 'FP32', [1, 1], [1]), tensor('b', 'FP32', [1, 1], [1])],
        outputs: [{ name: 'zz' }],
      }),
    ).toMatch(/output "zz" is not an output of the model; it has out/);
    expect(rejection(two, [])).toMatch(/JSON object/);
  });
});
