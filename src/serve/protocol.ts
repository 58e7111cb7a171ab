/**
 * The Open Inference Protocol v2 JSON body of `POST /v2/models/{name}/infer`, checked against
 * the model's inputs field by field; every rejection says which input and what was expected
 * against what was received.
 *
 * ```json
 * { "id": "42", "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] }],
 *   "outputs": [{ "name": "logits" }] }
 * ```
 * `data` is flat (row-major) or nested as the shape is; its element count must be the shape's.
 */
import { DATATYPES, type Datatype, isDatatype, type TensorData } from './datatypes.js';
import { RequestRejected } from './errors.js';
import type { HostTensor, TensorSpec } from './ModelSource.js';

/** Most dimensions a request tensor may have. */
export const MAX_TENSOR_RANK = 8;

export interface InferRequest {
  readonly id: string | undefined;
  /** The inputs in the model's order. */
  readonly inputs: Map<string, HostTensor>;
  /** The batch dimension of the inputs (1 for a model that is not batchable). */
  readonly rows: number;
  /** Outputs asked for, in order (all of them when the request names none). */
  readonly outputs: readonly string[];
}

function bad(message: string): RequestRejected {
  return new RequestRejected(400, message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeShape(shape: readonly number[]): string {
  return `[${shape.map((dimension) => (dimension < 0 ? '-1' : String(dimension))).join(', ')}]`;
}

function checkShape(name: string, value: unknown, spec: TensorSpec): number[] | RequestRejected {
  if (
    !Array.isArray(value) ||
    value.length > MAX_TENSOR_RANK ||
    !value.every((dimension) => Number.isSafeInteger(dimension) && dimension >= 0)
  ) {
    return bad(
      `input '${name}': shape must be an array of at most ${MAX_TENSOR_RANK} integers >= 0, got ${JSON.stringify(value)}`,
    );
  }
  const shape = value as number[];
  const fits =
    shape.length === spec.shape.length &&
    spec.shape.every((dimension, index) => dimension < 0 || dimension === shape[index]);
  if (!fits)
    return bad(
      `input '${name}': expected shape ${describeShape(spec.shape)}, received ${describeShape(shape)}`,
    );
  return shape;
}

/** Copies `data` (flat or nested) into a new array of `datatype`, checking count and element types. */
function decodeData(
  name: string,
  data: unknown,
  datatype: Datatype,
  shape: readonly number[],
): TensorData | RequestRejected {
  const count = shape.reduce((product, dimension) => product * dimension, 1);
  if (!Array.isArray(data)) return bad(`input '${name}': data must be an array, got ${typeof data}`);
  const info = DATATYPES[datatype];
  const out = info.allocate(count);
  let index = 0;
  // Depth-first over nested arrays, bounded by the rank, without recursion.
  const stack: Array<{ items: unknown[]; next: number }> = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (Array.isArray(item)) {
      if (stack.length > MAX_TENSOR_RANK)
        return bad(`input '${name}': data is nested deeper than ${MAX_TENSOR_RANK} levels`);
      stack.push({ items: item, next: 0 });
      continue;
    }
    if (index >= count)
      return bad(`input '${name}': shape ${describeShape(shape)} holds ${count} elements, data has more`);
    if (!info.store(out, index, item))
      return bad(
        `input '${name}': element ${index} must be ${info.expects} (${datatype}), got ${JSON.stringify(item)}`,
      );
    index++;
  }
  if (index !== count)
    return bad(`input '${name}': shape ${describeShape(shape)} holds ${count} elements, data has ${index}`);
  return out;
}

function decodeInput(raw: unknown, spec: TensorSpec): HostTensor | RequestRejected {
  if (!isRecord(raw)) return bad(`input '${spec.name}' must be an object`);
  if (!isDatatype(raw.datatype) || raw.datatype !== spec.datatype) {
    return bad(
      `input '${spec.name}': expected datatype ${spec.datatype}, received ${JSON.stringify(raw.datatype)}`,
    );
  }
  const shape = checkShape(spec.name, raw.shape, spec);
  if (shape instanceof RequestRejected) return shape;
  const data = decodeData(spec.name, raw.data, spec.datatype, shape);
  if (data instanceof RequestRejected) return data;
  return { datatype: spec.datatype, shape, data };
}

function requestedOutputs(raw: unknown, outputs: readonly TensorSpec[]): string[] | RequestRejected {
  if (raw === undefined) return outputs.map((spec) => spec.name);
  if (!Array.isArray(raw) || raw.length === 0)
    return bad('outputs must be a non-empty array of {"name": ...}');
  const known = outputs.map((spec) => spec.name);
  const names: string[] = [];
  for (const entry of raw) {
    const name = isRecord(entry) ? entry.name : undefined;
    if (typeof name !== 'string' || !known.includes(name))
      return bad(`output ${JSON.stringify(name)} is not an output of the model; it has ${known.join(', ')}`);
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** The request `body` for a model with `inputs` and `outputs`, or why it is rejected (400). */
export function parseInferRequest(
  body: unknown,
  inputs: readonly TensorSpec[],
  outputs: readonly TensorSpec[],
  batchable: boolean,
): InferRequest | RequestRejected {
  if (!isRecord(body)) return bad('the request body must be a JSON object with "inputs"');
  if (body.id !== undefined && typeof body.id !== 'string')
    return bad(`id must be a string, got ${JSON.stringify(body.id)}`);
  if (!Array.isArray(body.inputs)) return bad('"inputs" must be an array of tensors');
  const byName = new Map<string, unknown>();
  for (const raw of body.inputs) {
    const name = isRecord(raw) ? raw.name : undefined;
    if (typeof name !== 'string') return bad('every input needs a "name" string');
    if (!inputs.some((spec) => spec.name === name))
      return bad(
        `input '${name}' is not an input of the model; it takes ${inputs.map((spec) => spec.name).join(', ')}`,
      );
    if (byName.has(name)) return bad(`input '${name}' is given twice`);
    byName.set(name, raw);
  }
  const decoded = new Map<string, HostTensor>();
  let rows = 1;
  for (const spec of inputs) {
    if (!byName.has(spec.name))
      return bad(`input '${spec.name}' is missing (the model takes ${inputs.map((s) => s.name).join(', ')})`);
    const tensor = decodeInput(byName.get(spec.name), spec);
    if (tensor instanceof RequestRejected) return tensor;
    if (batchable) {
      if (decoded.size === 0) rows = tensor.shape[0];
      else if (tensor.shape[0] !== rows)
        return bad(
          `input '${spec.name}': batch dimension ${tensor.shape[0]} differs from the other inputs' ${rows}`,
        );
    }
    decoded.set(spec.name, tensor);
  }
  if (batchable && rows === 0) return bad('the batch dimension of the inputs is 0: send at least one row');
  const names = requestedOutputs(body.outputs, outputs);
  if (names instanceof RequestRejected) return names;
  return { id: body.id as string | undefined, inputs: decoded, rows, outputs: names };
}

/** The response body for `outputs`. */
export function inferResponse(
  modelName: string,
  modelVersion: string,
  id: string | undefined,
  names: readonly string[],
  outputs: ReadonlyMap<string, HostTensor>,
): Record<string, unknown> {
  return {
    model_name: modelName,
    model_version: modelVersion,
    ...(id === undefined ? {} : { id }),
    outputs: names.map((name) => {
      const tensor = outputs.get(name)!;
      return {
        name,
        datatype: tensor.datatype,
        shape: tensor.shape,
        data: DATATYPES[tensor.datatype].toJson(tensor.data),
      };
    }),
  };
}

/** The key requests must share to be batched together: the shapes of their inputs after the batch dimension. */
export function batchKey(request: InferRequest): string {
  let key = '';
  for (const tensor of request.inputs.values()) key += `${tensor.shape.slice(1).join('x')};`;
  return key;
}
