/**
 * GPU benchmarks, per backend present (cpu, webgpu, cuda):
 *
 * - `<backend>_vector_add_gbps_<size>`: c = a + b on f32, counting 12 bytes per element
 *   (two reads, one write); sizes 1M and 64M elements (quick: 1M and 4M).
 * - `<backend>_matmul_gflops_f32`: square matmul, 2 n^3 flops; n = 4096 (quick: 1024); the cpu
 *   backend and software adapters (SwiftShader) use smaller n, given in `<backend>_matmul_n`.
 * - `cuda_matmul_gflops_tf32`, `cuda_matmul_gflops_bf16`: cuBLAS with tensor cores, and
 *   `torch_matmul_gflops_bf16` with the ratio when python3 has torch with CUDA (cheap to ask).
 * - `<backend>_launch_overhead_us`: a one-element kernel launched 500 times, then one sync.
 * - `<backend>_train_steps_per_sec`: training steps of an MLP 784-128-10 (ReLU, batch 128,
 *   cross-entropy, Adam) whose parameters were moved with `model.to(device)`: forward, backward
 *   and update all on the device, one read of the loss at the end as the synchronization point.
 *   `host_train_steps_per_sec` is the same step on CPU tensors (OpenBLAS) in the same run, and
 *   `<backend>_train_vs_host` the ratio.
 * - `failover_ms`: 8 kernel actors (GpuKernelActor under a GpuSupervisor, on a real-time actor
 *   system) launch at once on a device whose every launch fails (injected errors at rate 1);
 *   the time from the device being marked critical (the `device_critical` event) until every
 *   one of them has answered its launch from the other device. The median of 5 runs (quick: 3),
 *   `failover_ms_max` the slowest. For `failover_ms` both devices are cpu backends (`cpu:0`
 *   failing, `cpu:1`), so the figure is the supervision path itself, present on every machine;
 *   `<backend>_failover_ms` has that backend's device failing (webgpu:0, cuda:0) and cpu:1 take over.
 *
 * Each figure times repeated launches after a warm-up, ending in one `synchronize`, for at
 * least 0.25 s or 1000 repetitions, whichever comes first (at least 2).
 */
import { spawnSync } from 'node:child_process';
import { ActorSystem } from '../src/actor/index.js';
import { Random } from '../src/actor/Random.js';
import { FaultInjector } from '../src/fault/index.js';
import {
  CpuBackend,
  Device,
  type DeviceOptions,
  detectDevices,
  GpuSupervisor,
  gpuFaultHook,
  type KernelRequest,
  openDevice,
} from '../src/gpu/index.js';
import {
  Adam,
  backward,
  crossEntropy,
  disposeGraph,
  Linear,
  ReLU,
  Sequential,
  tensor,
  to,
} from '../src/ml/index.js';

const MEBI = 1 << 20;
const MIN_SECONDS = 0.25;
const MAX_REPETITIONS = 1000;
const LAUNCHES_FOR_OVERHEAD = 500;
const FAILOVER_KERNELS = 8;
/** Retries per device high enough that the kernels leave by the device turning critical. */
const FAILOVER_RETRIES_PER_DEVICE = 20;

type Figures = Record<string, number | string>;

/** Seconds per repetition of `launch` (enqueue only), synchronizing once at the end. */
async function timeLaunches(device: Device, launch: () => void): Promise<number> {
  launch();
  await device.synchronize();
  let repetitions = 0;
  const start = performance.now();
  let elapsedSeconds = 0;
  while (repetitions < 2 || (elapsedSeconds < MIN_SECONDS && repetitions < MAX_REPETITIONS)) {
    launch();
    repetitions++;
    if (repetitions % 5 === 0 || repetitions < 5) {
      await device.synchronize();
      elapsedSeconds = (performance.now() - start) / 1000;
    }
  }
  await device.synchronize();
  return (performance.now() - start) / 1000 / repetitions;
}

function randomFloats(count: number, seed: number): Float32Array {
  const random = new Random(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = random.next() * 2 - 1;
  return values;
}

async function vectorAdd(device: Device, elements: number): Promise<number> {
  const a = device.upload(randomFloats(elements, 1));
  const b = device.upload(randomFloats(elements, 2));
  const c = device.allocate(elements * 4);
  try {
    const seconds = await timeLaunches(device, () => device.binary('add', a, b, c));
    return (elements * 12) / seconds / 1e9;
  } finally {
    for (const buffer of [a, b, c]) buffer.release();
  }
}

function toBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return Uint16Array.from(bits, (word) => (word + 0x7fff + ((word >>> 16) & 1)) >>> 16);
}

async function matmul(device: Device, n: number, precision: 'f32' | 'tf32' | 'bf16'): Promise<number> {
  const values = randomFloats(n * n, 3);
  const dtype = precision === 'bf16' ? 'bf16' : 'f32';
  const input = precision === 'bf16' ? toBfloat16(values) : values;
  const a = device.allocate(input.byteLength, dtype);
  const b = device.allocate(input.byteLength, dtype);
  device.copyIn(a, input);
  device.copyIn(b, input);
  const c = device.allocate(n * n * 4);
  try {
    const seconds = await timeLaunches(device, () => device.matmul(a, b, c, n, n, n, { precision }));
    return (2 * n ** 3) / seconds / 1e9;
  } finally {
    for (const buffer of [a, b, c]) buffer.release();
  }
}

async function launchOverhead(device: Device): Promise<number> {
  const x = device.upload(new Float32Array([1]));
  const y = device.allocate(4);
  try {
    device.unary('relu', x, y);
    await device.synchronize();
    const start = performance.now();
    for (let i = 0; i < LAUNCHES_FOR_OVERHEAD; i++) device.unary('relu', x, y);
    await device.synchronize();
    return ((performance.now() - start) * 1000) / LAUNCHES_FOR_OVERHEAD;
  } finally {
    x.release();
    y.release();
  }
}

function matmulSize(device: Device, quick: boolean): number {
  const info = device.info();
  if (info.backend === 'cpu') return quick ? 256 : 512;
  if (info.software) return quick ? 512 : 1024;
  return quick ? 1024 : 4096;
}

/** PyTorch's bf16 matmul on the same GPU, when python3 has torch with CUDA; undefined otherwise. */
function torchMatmulGflops(n: number): number | undefined {
  const script = `import torch,time
if not torch.cuda.is_available(): raise SystemExit(1)
a=torch.randn(${n},${n},device='cuda',dtype=torch.bfloat16);b=torch.randn(${n},${n},device='cuda',dtype=torch.bfloat16)
for _ in range(3): a@b
torch.cuda.synchronize();t=time.perf_counter();r=20
for _ in range(r): a@b
torch.cuda.synchronize();print(2*${n}**3*r/(time.perf_counter()-t)/1e9)`;
  const result = spawnSync('python3', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  const value = Number(result.stdout?.trim());
  return result.status === 0 && Number.isFinite(value) ? value : undefined;
}

async function benchDevice(device: Device, options: { quick: boolean }, figures: Figures): Promise<void> {
  const backend = device.info().backend;
  figures[`${backend}_device`] = device.info().name;
  for (const elements of options.quick ? [1, 4] : [1, 64]) {
    figures[`${backend}_vector_add_gbps_${elements}M`] = round(await vectorAdd(device, elements * MEBI));
  }
  const n = matmulSize(device, options.quick);
  figures[`${backend}_matmul_n`] = n;
  figures[`${backend}_matmul_gflops_f32`] = round(await matmul(device, n, 'f32'));
  if (backend === 'cuda') {
    figures.cuda_matmul_gflops_tf32 = round(await matmul(device, n, 'tf32'));
    figures.cuda_matmul_gflops_bf16 = round(await matmul(device, n, 'bf16'));
    const torch = torchMatmulGflops(n);
    if (torch !== undefined) {
      figures.torch_matmul_gflops_bf16 = round(torch);
      figures.cuda_bf16_vs_torch_ratio = round((figures.cuda_matmul_gflops_bf16 as number) / torch);
    }
  }
  figures[`${backend}_launch_overhead_us`] = round(await launchOverhead(device));
  figures[`${backend}_train_steps_per_sec`] = round(await trainSteps(device, options.quick));
}

const TRAIN_BATCH = 128;

/** Steps per second of MLP training on `device` ('cpu': host tensors). */
async function trainSteps(device: Device | 'cpu', quick: boolean): Promise<number> {
  const random = new Random(5);
  const model = new Sequential(new Linear(784, 128, { random }), new ReLU(), new Linear(128, 10, { random }));
  if (device !== 'cpu') await model.to(device);
  const optimizer = new Adam(model.parameters(), { learningRate: 1e-3 });
  const host = tensor(randomFloats(TRAIN_BATCH * 784, 6), [TRAIN_BATCH, 784]);
  const input = device === 'cpu' ? host : await to(host, device);
  const labels = Int32Array.from({ length: TRAIN_BATCH }, (_, i) => i % 10);
  const step = (): void => {
    optimizer.zeroGrad();
    const loss = crossEntropy(model.forward(input), labels);
    backward(loss);
    optimizer.step();
    disposeGraph(loss);
  };
  const synchronize = async (): Promise<void> => {
    if (device !== 'cpu') await device.synchronize();
  };
  step();
  await synchronize();
  const software = device !== 'cpu' && device.info().software;
  const limit = quick || software ? 20 : 200;
  const start = performance.now();
  let steps = 0;
  while (steps < limit && (steps < 3 || performance.now() - start < MIN_SECONDS * 4000)) {
    step();
    steps++;
  }
  await synchronize();
  return steps / ((performance.now() - start) / 1000);
}

/** One failover: ms from `device_critical` on the failing device until all kernels answered from cpu:1. */
async function failoverOnce(
  openFailing: (options: DeviceOptions) => Promise<Device>,
  seed: number,
): Promise<number> {
  const system = new ActorSystem();
  const injector = new FaultInjector({ gpuErrorRate: 1, seed });
  const failing = await openFailing({ clock: system.clock, faultHook: gpuFaultHook(injector) });
  const healthy = new Device(new CpuBackend(1), { clock: system.clock });
  let criticalAtMs: number | undefined;
  const gpu = await GpuSupervisor.start(system, {
    devices: [failing, healthy],
    name: 'bench-failover',
    onEvent: (event) => {
      if (event.kind === 'device_critical') criticalAtMs ??= performance.now();
    },
  });
  try {
    const ids = Array.from({ length: FAILOVER_KERNELS }, (_, index) => `kernel${index}`);
    const weight = randomFloats(64 * 64, seed);
    for (const id of ids) {
      const spec = { id, device: failing.id, resident: { weight } };
      await gpu.startKernel({ ...spec, maxRetriesPerDevice: FAILOVER_RETRIES_PER_DEVICE });
    }
    const request: KernelRequest = {
      kind: 'matmul',
      a: weight,
      b: { resident: 'weight' },
      m: 64,
      n: 64,
      k: 64,
    };
    const answers = await Promise.all(
      ids.map((id) => gpu.launch(id, request).then((output) => ({ output, atMs: performance.now() }))),
    );
    if (criticalAtMs === undefined) throw new Error(`failover: ${failing.id} never became critical`);
    if (answers.some((answer) => answer.output.deviceId !== healthy.id))
      throw new Error('failover: a kernel answered from the failing device');
    return Math.max(...answers.map((answer) => answer.atMs)) - criticalAtMs;
  } finally {
    await gpu.stop();
    failing.destroy();
    healthy.destroy();
    system.shutdown();
  }
}

/** `<prefix>failover_ms` (median) and `<prefix>failover_ms_max` over 5 runs (quick: 3). */
async function failover(
  prefix: string,
  openFailing: (options: DeviceOptions) => Promise<Device>,
  quick: boolean,
  figures: Figures,
): Promise<void> {
  const runs: number[] = [];
  for (let run = 0; run < (quick ? 3 : 5); run++) runs.push(await failoverOnce(openFailing, run + 1));
  runs.sort((a, b) => a - b);
  figures[`${prefix}failover_ms`] = round(runs[Math.floor(runs.length / 2)]);
  figures[`${prefix}failover_ms_max`] = round(runs[runs.length - 1]);
}

function round(value: number): number {
  return Number(value.toPrecision(4));
}

export async function run(options: {
  json: boolean;
  quick: boolean;
}): Promise<Record<string, number | string>> {
  const figures: Figures = {};
  figures.host_train_steps_per_sec = round(await trainSteps('cpu', options.quick));
  const { devices, unavailable } = await detectDevices();
  for (const error of unavailable) figures[`${error.backend}_unavailable`] = error.reason;
  for (const info of devices) {
    const device = await openDevice(
      { backend: info.backend, index: info.index },
      { watchdogDeadlineMs: 600_000 },
    );
    try {
      await benchDevice(device, options, figures);
    } finally {
      device.destroy();
    }
  }
  for (const info of devices) {
    const steps = figures[`${info.backend}_train_steps_per_sec`];
    if (typeof steps === 'number')
      figures[`${info.backend}_train_vs_host`] = round(steps / (figures.host_train_steps_per_sec as number));
  }
  figures.failover_kernels = FAILOVER_KERNELS;
  await failover('', async (extra) => new Device(new CpuBackend(0), extra), options.quick, figures);
  for (const info of devices.filter((device) => device.backend !== 'cpu')) {
    const spec = { backend: info.backend, index: info.index };
    await failover(`${info.backend}_`, (extra) => openDevice(spec, extra), options.quick, figures);
  }
  return figures;
}
