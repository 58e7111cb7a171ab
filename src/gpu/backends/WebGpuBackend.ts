/// <reference types="@webgpu/types" preserve="true" />
/**
 * The WebGPU backend, on Dawn (`webgpu` npm package): Vulkan, Metal or D3D12, and SwiftShader
 * on machines without a GPU. Kernels are the generated WGSL of `kernels/wgsl.ts`, compiled to
 * pipelines once per kernel and cached. There is one queue: every stream is that queue, and
 * launches run in submission order.
 *
 * Errors the GPU reports later (validation, out of memory, device lost) are kept and surface
 * from the next `completion` (the Device's next synchronization point).
 */
import type { Backend, KernelLaunch, NativeBuffer } from '../Backend.js';
import { BackendUnavailable, NativeOutOfMemory } from '../errors.js';
import type { DeviceInfo, MatmulPrecision } from '../types.js';
import { prepareVulkan } from './vulkanLoader.js';
import { type BoundLaunch, bindLaunch, UNIFORM_WORDS } from './webgpuLaunch.js';

/** Every kernel's uniform block (webgpuLaunch's UNIFORM_WORDS). */
const UNIFORM_BYTES = UNIFORM_WORDS * 4;
const MEBIBYTE = 1 << 20;

interface WebGpuModule {
  create(options: string[]): GPU;
  globals: { GPUBufferUsage: Record<string, number>; GPUMapMode: Record<string, number> };
}

class WebGpuBuffer implements NativeBuffer {
  constructor(
    readonly buffer: GPUBuffer,
    readonly byteLength: number,
  ) {}
}

export interface WebGpuAdapterReport {
  readonly adapter: GPUAdapter;
  readonly gpu: GPU;
  readonly module: WebGpuModule;
  readonly software: boolean;
  readonly description: string;
}

async function loadDawn(): Promise<WebGpuModule> {
  try {
    return (await import('webgpu')) as unknown as WebGpuModule;
  } catch (error) {
    throw new BackendUnavailable(
      'webgpu',
      `the webgpu package (Dawn) did not load: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function adapterReport(adapter: GPUAdapter, gpu: GPU, module: WebGpuModule): WebGpuAdapterReport {
  const info = adapter.info;
  const software =
    info.isFallbackAdapter === true ||
    /swiftshader|llvmpipe|lavapipe/i.test(`${info.architecture} ${info.description}`);
  const description = [info.vendor, info.architecture, info.device, info.description]
    .filter((part) => part)
    .join(' / ');
  return { adapter, gpu, module, software, description };
}

/** The adapter requests that tell Dawn's adapters apart: the fast one, the frugal one, the software one. */
const ADAPTER_REQUESTS: readonly GPURequestAdapterOptions[] = [
  { powerPreference: 'high-performance' },
  { powerPreference: 'low-power' },
  { forceFallbackAdapter: true },
];

/**
 * Dawn's distinct adapters, best first: `webgpu:0` is the high-performance one, later indices
 * the low-power and the software (fallback) ones where they differ, so a machine with a GPU
 * also offers SwiftShader as `webgpu:1`. Throws `BackendUnavailable` when there is none.
 */
export async function requestWebGpuAdapters(): Promise<WebGpuAdapterReport[]> {
  const vulkan = prepareVulkan();
  const module = await loadDawn();
  const gpu = module.create([]);
  const reports: WebGpuAdapterReport[] = [];
  for (const request of ADAPTER_REQUESTS) {
    const adapter = await gpu.requestAdapter(request);
    if (adapter === null) continue;
    const report = adapterReport(adapter, gpu, module);
    if (!reports.some((seen) => seen.description === report.description && seen.software === report.software))
      reports.push(report);
  }
  if (reports.length === 0) {
    const why =
      vulkan.problem ??
      'Dawn found no adapter (no Vulkan/Metal/D3D12 driver; on Linux install chromium for SwiftShader)';
    throw new BackendUnavailable('webgpu', why);
  }
  return reports;
}

/** The default (high-performance) adapter; `BackendUnavailable` with the reason when there is none. */
export async function requestWebGpuAdapter(): Promise<WebGpuAdapterReport> {
  return (await requestWebGpuAdapters())[0];
}

export class WebGpuBackend implements Backend {
  readonly maxStreams = 1;
  readonly matmulPrecisions: readonly MatmulPrecision[] = ['f32'];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly uniform: GPUBuffer;
  private readonly usage: Record<string, number>;
  private readonly mapMode: Record<string, number>;
  private readonly errors: Error[] = [];
  private readonly information: DeviceInfo;
  private gpu: GPU | undefined;

  private constructor(
    private readonly device: GPUDevice,
    report: WebGpuAdapterReport,
    index: number,
    private readonly workgroupsPerDimension: number,
  ) {
    this.gpu = report.gpu;
    this.usage = report.module.globals.GPUBufferUsage;
    this.mapMode = report.module.globals.GPUMapMode;
    this.uniform = device.createBuffer({ size: 256, usage: this.usage.UNIFORM | this.usage.COPY_DST });
    device.addEventListener('uncapturederror', (event) =>
      this.errors.push(new Error((event as GPUUncapturedErrorEvent).error.message)),
    );
    device.lost.then((lost) => {
      if (lost.reason !== 'destroyed') this.errors.push(new Error(`device lost: ${lost.message}`));
    });
    const limits = device.limits;
    const maxBufferBytes =
      Math.floor(Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize) / MEBIBYTE) * MEBIBYTE;
    this.information = {
      id: `webgpu:${index}`,
      backend: 'webgpu',
      index,
      name: report.adapter.info.description || report.adapter.info.device || 'WebGPU adapter',
      // WebGPU does not report memory sizes (the Device then limits itself to the host's memory).
      memoryBytes: 0,
      adapter: report.description,
      software: report.software,
      copyAlignmentBytes: 4,
      maxBufferBytes,
    };
  }

  /**
   * Opens adapter `index` of `requestWebGpuAdapters` as `webgpu:index`. `workgroupsPerDimension`
   * lowers the point where launches spill from x into y (65535 by WebGPU's limit), so tests can
   * exercise that path with small launches.
   */
  static async open(index = 0, options: { workgroupsPerDimension?: number } = {}): Promise<WebGpuBackend> {
    const reports = await requestWebGpuAdapters();
    const report = reports[index];
    if (report === undefined) {
      throw new BackendUnavailable('webgpu', `no adapter webgpu:${index}; Dawn offers ${reports.length}`);
    }
    const limits = report.adapter.limits;
    const device = await report.adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
      },
    });
    const limit = device.limits.maxComputeWorkgroupsPerDimension;
    const workgroupsPerDimension = Math.min(limit, options.workgroupsPerDimension ?? limit);
    if (!(workgroupsPerDimension >= 1))
      throw new RangeError(`workgroupsPerDimension must be >= 1, got ${options.workgroupsPerDimension}`);
    return new WebGpuBackend(device, report, index, workgroupsPerDimension);
  }

  info(): DeviceInfo {
    return this.information;
  }

  allocate(byteLength: number): NativeBuffer {
    this.device.pushErrorScope('out-of-memory');
    const size = Math.ceil(byteLength / 4) * 4;
    const buffer = this.device.createBuffer({
      size,
      usage: this.usage.STORAGE | this.usage.COPY_SRC | this.usage.COPY_DST,
    });
    this.device.popErrorScope().then(
      (error) => {
        if (error !== null) this.errors.push(new NativeOutOfMemory(byteLength, 0));
      },
      // Rejects only once the device is lost, which `device.lost` already reports.
      () => {},
    );
    return new WebGpuBuffer(buffer, byteLength);
  }

  free(buffer: NativeBuffer): void {
    (buffer as WebGpuBuffer).buffer.destroy();
  }

  copyIn(buffer: NativeBuffer, bytes: Uint8Array, offsetBytes: number): void {
    this.device.queue.writeBuffer(
      (buffer as WebGpuBuffer).buffer,
      offsetBytes,
      bytes.buffer,
      bytes.byteOffset,
      bytes.byteLength,
    );
  }

  async copyOut(buffer: NativeBuffer, byteLength: number): Promise<Uint8Array> {
    const size = Math.ceil(byteLength / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: this.usage.MAP_READ | this.usage.COPY_DST });
    try {
      const encoder = this.device.createCommandEncoder();
      encoder.copyBufferToBuffer((buffer as WebGpuBuffer).buffer, 0, staging, 0, size);
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(this.mapMode.READ);
      const bytes = new Uint8Array(staging.getMappedRange().slice(0, byteLength));
      staging.unmap();
      return bytes;
    } finally {
      staging.destroy();
    }
  }

  copy(source: NativeBuffer, target: NativeBuffer, byteLength: number): void {
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(
      (source as WebGpuBuffer).buffer,
      0,
      (target as WebGpuBuffer).buffer,
      0,
      Math.ceil(byteLength / 4) * 4,
    );
    this.device.queue.submit([encoder.finish()]);
  }

  run(launch: KernelLaunch): void {
    const bound = bindLaunch(launch, this.workgroupsPerDimension);
    const pipeline = this.pipeline(bound);
    this.device.queue.writeBuffer(this.uniform, 0, bound.uniform.buffer, 0, UNIFORM_BYTES);
    const entries: GPUBindGroupEntry[] = bound.buffers.map((buffer, binding) => ({
      binding,
      resource: { buffer: (buffer as WebGpuBuffer).buffer },
    }));
    entries.push({ binding: bound.buffers.length, resource: { buffer: this.uniform, size: UNIFORM_BYTES } });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(bound.groups[0], bound.groups[1], bound.groups[2] ?? 1);
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  async completion(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    const error = this.errors.shift();
    if (error !== undefined) {
      this.errors.length = 0;
      throw error;
    }
  }

  createStream(): void {
    // One queue.
  }

  destroy(): void {
    this.pipelines.clear();
    this.device.destroy();
    // Dropping the last reference to the instance lets Node exit (dawn.node keeps it alive).
    this.gpu = undefined;
  }

  /** True while the instance is held; for tests of the lifetime rule above. */
  get holdsInstance(): boolean {
    return this.gpu !== undefined;
  }

  private pipeline(bound: BoundLaunch): GPUComputePipeline {
    let pipeline = this.pipelines.get(bound.kernel.name);
    if (pipeline === undefined) {
      const module = this.device.createShaderModule({ code: bound.kernel.source, label: bound.kernel.name });
      pipeline = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: bound.kernel.name,
      });
      this.pipelines.set(bound.kernel.name, pipeline);
    }
    return pipeline;
  }
}
