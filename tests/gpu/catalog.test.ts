/**
 * The kernel catalog (src/gpu/kernels/catalog.ts) is the one list of kernel kinds: the Device's
 * launch dispatch, the kernel actors' request planning and the names fault hooks see all come
 * from it. These tests run every request kind of the catalog through `Device.launch` and a
 * kernel actor's `planKernelRequest`, so a kind listed in one place and missing in another fails.
 */
import { describe, expect, it } from 'vitest';
import {
  type DeviceBuffer,
  type FaultDecision,
  inputRoles,
  KERNEL_INPUT_ROLES,
  KERNEL_ROLES,
  type LaunchRequest,
  openDevice,
  planKernelRequest,
  REQUEST_KINDS,
  type RequestKind,
  requestSizes,
} from '../../src/gpu/index.js';

const CONV = {
  batch: 1,
  inChannels: 1,
  height: 4,
  width: 4,
  outChannels: 1,
  kernelHeight: 2,
  kernelWidth: 2,
};
const POOL = { batch: 1, channels: 1, height: 4, width: 4, kernelSize: 2 };

/** One small valid request of each kind, with the buffers it reads made by `buffer`. */
function sampleRequests(buffer: (elements: number) => DeviceBuffer): Record<RequestKind, LaunchRequest> {
  return {
    unary: { kind: 'unary', op: 'relu', input: buffer(4), output: buffer(4) },
    binary: {
      kind: 'binary',
      op: 'add',
      a: buffer(4),
      b: buffer(2),
      output: buffer(4),
      shapeA: [2, 2],
      shapeB: [2],
    },
    gather: { kind: 'gather', input: buffer(4), output: buffer(4), shape: [2, 2], strides: [1, 2] },
    reduce: { kind: 'reduce', op: 'sum', input: buffer(4), output: buffer(2), rows: 2, columns: 2 },
    softmax: { kind: 'softmax', input: buffer(4), output: buffer(4), rows: 2, columns: 2 },
    layernorm: {
      kind: 'layernorm',
      input: buffer(4),
      gamma: buffer(2),
      beta: buffer(2),
      output: buffer(4),
      rows: 2,
      columns: 2,
    },
    matmul: { kind: 'matmul', a: buffer(4), b: buffer(4), output: buffer(4), m: 2, n: 2, k: 2 },
    conv2d: {
      kind: 'conv2d',
      input: buffer(16),
      weight: buffer(4),
      bias: buffer(1),
      output: buffer(9),
      shape: CONV,
    },
    im2col: { kind: 'im2col', input: buffer(16), output: buffer(36), shape: CONV },
    col2im: { kind: 'col2im', columns: buffer(36), output: buffer(16), shape: CONV },
    pool2d: { kind: 'pool2d', op: 'max', input: buffer(16), output: buffer(4), shape: POOL },
    pool2dBackward: {
      kind: 'pool2dBackward',
      op: 'avg',
      input: buffer(16),
      gradient: buffer(4),
      output: buffer(16),
      shape: POOL,
    },
    indexRows: {
      kind: 'indexRows',
      table: buffer(6),
      indices: buffer(2),
      output: buffer(4),
      count: 2,
      dimension: 2,
      rows: 3,
    },
    indexRowsBackward: {
      kind: 'indexRowsBackward',
      gradient: buffer(4),
      positions: buffer(2),
      starts: buffer(4),
      output: buffer(6),
      count: 2,
      dimension: 2,
      rows: 3,
    },
  };
}

describe('the kernel catalog', () => {
  it('lists each request kind once, and the kernel actors take their input roles from it', () => {
    expect([...REQUEST_KINDS].sort()).toEqual(Object.keys(KERNEL_INPUT_ROLES).sort());
    expect(KERNEL_INPUT_ROLES.conv2d).toEqual(['input', 'weight', 'bias']);
    expect(inputRoles('convOutput')).toEqual(['product', 'bias']);
    expect(REQUEST_KINDS).not.toContain('convOutput');
    expect(Object.keys(KERNEL_ROLES)).toContain('convOutput');
    // adamStep: a launch only Device.adamStep makes; its moments are updated in place.
    expect(REQUEST_KINDS).not.toContain('adamStep');
    expect(KERNEL_ROLES.adamStep.updated).toEqual(['firstMoment', 'secondMoment']);
    expect(REQUEST_KINDS).not.toContain('amsgradStep');
    expect(REQUEST_KINDS).not.toContain('sgdStep');
    expect(REQUEST_KINDS).not.toContain('adagradStep');
    expect(KERNEL_ROLES.adagradStep.updated).toEqual(['sumOfSquares']);
    expect(REQUEST_KINDS).not.toContain('rmspropStep');
    expect(KERNEL_ROLES.sgdStep.updated).toEqual(['momentumBuffer']);
    expect(KERNEL_ROLES.amsgradStep.updated).toEqual(['firstMoment', 'secondMoment', 'maxSecondMoment']);
  });

  it("a matmul request's transpose flags reach the launch", async () => {
    const device = await openDevice('cpu');
    const a = device.upload(Float32Array.of(1, 2, 3, 4, 5, 6)); // (2, 3), or (3, 2) stored for aᵀ
    const b = device.upload(Float32Array.of(1, 0, 0, 1, 1, 1)); // (3, 2), or (2, 3) stored for bᵀ
    const output = device.allocate(16);
    device.launch({ kind: 'matmul', a, b, output, m: 2, n: 2, k: 3, transposeB: true });
    // a (2, 3) @ bᵀ, b stored (2, 3): [[1, 0, 0], [1, 1, 1]]ᵀ
    expect(Array.from(await device.readFloat32(output))).toEqual([1, 6, 4, 15]);
    // aᵀ @ b, a stored (3, 2): [[1, 3, 5], [2, 4, 6]] @ [[1, 0], [0, 1], [1, 1]]
    device.launch({ kind: 'matmul', a, b, output, m: 2, n: 2, k: 3, transposeA: true });
    expect(Array.from(await device.readFloat32(output))).toEqual([6, 8, 8, 10]);
    device.destroy();
  });

  it('runs every request kind through Device.launch, naming the launches the fault hook sees', async () => {
    const seen: string[] = [];
    const device = await openDevice('cpu', {
      faultHook: {
        beforeLaunch: (_id: string, name: string): FaultDecision => {
          seen.push(name);
          return 'ok';
        },
      },
    });
    const buffer = (elements: number) =>
      device.upload(Float32Array.from({ length: elements }, (_, i) => (i % 3) - 1 + i / 8));
    const requests = sampleRequests(buffer);
    for (const kind of REQUEST_KINDS) {
      const request = requests[kind];
      const lengths = new Map(
        inputRoles(kind).flatMap((role) => {
          const input = (request as unknown as Record<string, DeviceBuffer | undefined>)[role];
          return input === undefined ? [] : [[role, input.length] as const];
        }),
      );
      const sizes = requestSizes(device.id, request, lengths);
      expect(sizes.outputLength).toBe(request.output.length);
      device.launch(request);
    }
    await device.synchronize();
    expect(seen).toEqual([
      'unary.relu',
      'binary.add',
      'binary.left',
      'reduce.sum',
      'softmax',
      'layernorm',
      'matmul',
      'im2col',
      'matmul',
      'convOutput',
      'im2col',
      'col2im',
      'pool2d.max',
      'pool2dBackward.avg',
      'indexRows',
      'indexRowsBackward',
    ]);
    expect(() => device.launch({ kind: 'fft' } as unknown as LaunchRequest)).toThrow(
      /unknown launch kind 'fft'/,
    );
    device.destroy();
  });

  it('plans a kernel-actor request of every kind and refuses a precision the actors do not compute in', () => {
    const host = (elements: number) => new Float32Array(elements);
    for (const kind of REQUEST_KINDS) {
      const { output: _output, ...rest } = sampleRequests(
        (elements) => ({ length: elements }) as unknown as DeviceBuffer,
      )[kind] as unknown as Record<string, unknown>;
      const request: Record<string, unknown> = { ...rest };
      for (const role of inputRoles(kind)) {
        const input = request[role] as { length: number } | undefined;
        if (input !== undefined) request[role] = host(input.length);
      }
      const plan = planKernelRequest('k', request as never, new Map());
      expect(plan.outputLength).toBeGreaterThan(0);
    }
    expect(() =>
      planKernelRequest(
        'k',
        { kind: 'matmul', a: host(4), b: host(4), m: 2, n: 2, k: 2, precision: 'bf16' },
        new Map(),
      ),
    ).toThrow(/\(precision\): kernel actors compute in f32, not bf16/);
  });
});
