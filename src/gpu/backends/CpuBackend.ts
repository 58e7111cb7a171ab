/**
 * The cpu backend: buffers are ArrayBuffers, kernels the reference implementations in
 * `kernels/cpu.ts`, run synchronously on the calling thread. Always present.
 */
import { cpus, totalmem } from 'node:os';
import type { Backend, KernelLaunch, NativeBuffer } from '../Backend.js';
import { dispatchKernel, type KernelTable } from '../kernels/catalog.js';
import {
  cpuAdagradStep,
  cpuAdamStep,
  cpuBinary,
  cpuCol2im,
  cpuConvOutput,
  cpuIm2col,
  cpuIndexRows,
  cpuIndexRowsBackward,
  cpuLayernorm,
  cpuMatmul,
  cpuPool,
  cpuPoolBackward,
  cpuReduce,
  cpuRmspropStep,
  cpuSgdStep,
  cpuSoftmax,
  cpuUnary,
} from '../kernels/cpu.js';
import type { DeviceInfo, MatmulPrecision } from '../types.js';

/** Largest single cpu buffer: what a typed array can index in Node 20 (2^32 - 1 elements of u8 is 4 GiB). */
const CPU_MAX_BUFFER_BYTES = 2 ** 32;

class CpuBuffer implements NativeBuffer {
  readonly bytes: ArrayBuffer;
  constructor(readonly byteLength: number) {
    this.bytes = new ArrayBuffer(byteLength);
  }
  floats(): Float32Array {
    return new Float32Array(this.bytes, 0, this.byteLength >>> 2);
  }
}

function floats(buffer: NativeBuffer): Float32Array {
  return (buffer as CpuBuffer).floats();
}

/** An Adam step (`adamStep`), or amsgrad's with the largest second moments `vMax` (`amsgradStep`). */
function adamOnHost(
  l: KernelLaunch<'adamStep'> | KernelLaunch<'amsgradStep'>,
  vMax: Float32Array | null,
): void {
  cpuAdamStep(
    floats(l.output),
    floats(l.gradient),
    floats(l.firstMoment),
    floats(l.secondMoment),
    l.count,
    l,
    vMax,
  );
}

/** The cpu backend's dispatch: one reference kernel per backend kind of the catalog. */
const CPU_KERNELS: KernelTable<NativeBuffer, void> = {
  unary: (l) => cpuUnary(l.op, floats(l.input), floats(l.output), l.count),
  binary: (l) => cpuBinary(l.op, floats(l.a), floats(l.b), floats(l.output), l.count, l.layout),
  reduce: (l) => cpuReduce(l.op, floats(l.input), floats(l.output), l.rows, l.columns),
  softmax: (l) => cpuSoftmax(floats(l.input), floats(l.output), l.rows, l.columns),
  layernorm: (l) =>
    cpuLayernorm(
      floats(l.input),
      floats(l.gamma),
      floats(l.beta),
      floats(l.output),
      l.rows,
      l.columns,
      l.epsilon,
    ),
  matmul: (l) => {
    const [a, b, output] = [floats(l.a), floats(l.b), floats(l.output)];
    const size = l.m * l.n;
    for (let i = 0; i < l.batch; i++) {
      const [left, right] = [a.subarray(i * l.strideA), b.subarray(i * l.strideB)];
      const product = l.batch === 1 ? output : output.subarray(i * size, (i + 1) * size);
      cpuMatmul(left, right, product, l.m, l.n, l.k, l.transposeA, l.transposeB);
    }
  },
  adamStep: (l) => adamOnHost(l, null),
  amsgradStep: (l) => adamOnHost(l, floats(l.maxSecondMoment)),
  sgdStep: (l) => cpuSgdStep(floats(l.output), floats(l.gradient), floats(l.momentumBuffer), l.count, l),
  rmspropStep: (l) =>
    cpuRmspropStep(floats(l.output), floats(l.gradient), floats(l.squareAverage), l.count, l),
  adagradStep: (l) =>
    cpuAdagradStep(floats(l.output), floats(l.gradient), floats(l.sumOfSquares), l.count, l),
  im2col: (l) => cpuIm2col(floats(l.input), floats(l.output), l.geometry),
  col2im: (l) => cpuCol2im(floats(l.columns), floats(l.output), l.geometry),
  pool2d: (l) => cpuPool(l.op, floats(l.input), floats(l.output), l.geometry),
  indexRows: (l) => cpuIndexRows(floats(l.table), floats(l.indices), floats(l.output), l),
  indexRowsBackward: (l) =>
    cpuIndexRowsBackward(floats(l.gradient), floats(l.positions), floats(l.starts), floats(l.output), l),
  pool2dBackward: (l) =>
    cpuPoolBackward(l.op, floats(l.input), floats(l.gradient), floats(l.output), l.geometry),
  convOutput: (l) =>
    cpuConvOutput(
      floats(l.product),
      l.bias === undefined ? undefined : floats(l.bias),
      floats(l.output),
      l.geometry,
    ),
};

export class CpuBackend implements Backend {
  readonly maxStreams = 1;
  readonly matmulPrecisions: readonly MatmulPrecision[] = ['f32'];

  constructor(private readonly index = 0) {}

  info(): DeviceInfo {
    return {
      id: `cpu:${this.index}`,
      backend: 'cpu',
      index: this.index,
      name: cpus()[0]?.model?.trim() || 'CPU',
      memoryBytes: totalmem(),
      software: true,
      copyAlignmentBytes: 1,
      maxBufferBytes: CPU_MAX_BUFFER_BYTES,
    };
  }

  allocate(byteLength: number): NativeBuffer {
    return new CpuBuffer(byteLength);
  }

  free(_buffer: NativeBuffer): void {
    // The garbage collector reclaims the ArrayBuffer once the pool drops it.
  }

  copyIn(buffer: NativeBuffer, bytes: Uint8Array, offsetBytes: number): void {
    new Uint8Array((buffer as CpuBuffer).bytes).set(bytes, offsetBytes);
  }

  async copyOut(buffer: NativeBuffer, byteLength: number): Promise<Uint8Array> {
    return new Uint8Array((buffer as CpuBuffer).bytes.slice(0, byteLength));
  }

  copy(source: NativeBuffer, target: NativeBuffer, byteLength: number): void {
    new Uint8Array((target as CpuBuffer).bytes).set(
      new Uint8Array((source as CpuBuffer).bytes, 0, byteLength),
    );
  }

  run(launch: KernelLaunch): void {
    dispatchKernel(CPU_KERNELS, launch);
  }

  async completion(): Promise<void> {
    // Kernels ran to completion inside `run`.
  }

  createStream(): void {
    // One queue: every stream is the calling thread.
  }

  destroy(): void {}
}
