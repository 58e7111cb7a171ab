/**
 * The GPU layer: devices and their detection, memory pools, streams, generated kernels, and
 * the cpu, WebGPU (Dawn) and CUDA (driver API, NVRTC, cuBLAS) backends.
 */
export type { Backend, KernelLaunch, NativeBuffer } from './Backend.js';
export { kernelName } from './Backend.js';
export { CpuBackend } from './backends/CpuBackend.js';
export { CudaBackend, listCudaDevices } from './backends/CudaBackend.js';
export {
  addSwiftshaderDriver,
  prepareVulkan,
  SWIFTSHADER_ICD,
  type VulkanSetup,
} from './backends/vulkanLoader.js';
export {
  requestWebGpuAdapter,
  requestWebGpuAdapters,
  type WebGpuAdapterReport,
  WebGpuBackend,
} from './backends/WebGpuBackend.js';
export {
  type BinaryOptions,
  Device,
  type DeviceOptions,
  type LaunchRequest,
  type MatmulOptions,
} from './Device.js';
export { DeviceBuffer } from './DeviceBuffer.js';
export {
  DEFAULT_WATCHDOG_DEADLINE_MS,
  type LaunchStats,
  MAX_STREAMS_PER_DEVICE,
} from './DeviceCore.js';
export {
  CRITICAL_AFTER_ERRORS,
  DEFAULT_HEALTH_WINDOW_MS,
  DEGRADED_AFTER_ERRORS,
  DEVICE_HEALTH_LEVELS,
  type DeviceHealthLevel,
  type DeviceHealthReport,
  DeviceHealthTracker,
  type HealthChange,
  healthLevel,
  healthSeverity,
  MAX_ERRORS_KEPT_PER_DEVICE,
  UnknownDevice,
} from './DeviceHealth.js';
export {
  chooseDefault,
  type Detection,
  type DeviceSpec,
  defaultDevice,
  detectDevices,
  deviceRank,
  InvalidDeviceSpec,
  openDevice,
  parseDeviceSpec,
} from './detect.js';
export {
  BackendUnavailable,
  DeviceError,
  isBackendUnavailable,
  isDeviceError,
  isKernelTimeout,
  isOutOfDeviceMemory,
  KernelTimeout,
  OutOfDeviceMemory,
} from './errors.js';
export { type GpuFaultHookOptions, gpuFaultHook } from './faultHooks.js';
export {
  type DeviceHealthEvent,
  formatGpuEvent,
  type GpuEvent,
  type GpuEventListener,
  type KernelMigratedEvent,
  type MigrationReason,
  type NoHealthyDeviceEvent,
} from './GpuEvent.js';
export {
  DEFAULT_GPU_SUPERVISOR_NAME,
  DEFAULT_KERNEL_RESTART_INTENSITY,
  DEFAULT_KERNEL_RESTART_PERIOD_MS,
  DEFAULT_MAX_KERNELS,
  GpuSupervisor,
  type GpuSupervisorOptions,
  InvalidGpuSupervisorOptions,
  type InvalidGpuSupervisorOptionsReason,
  KernelStartFailed,
  MAX_SUPERVISED_DEVICES,
} from './GpuSupervisor.js';
export { type Conv2dShape, MAX_KERNEL_ELEMENTS } from './internal/checks.js';
export {
  capacityFor,
  type MemoryStats,
  SMALL_CLASS_MAX_BYTES,
  SMALL_CLASS_MIN_BYTES,
} from './internal/MemoryPool.js';
export {
  type Caller,
  DEFAULT_LAUNCH_TIMEOUT_MS,
  finishKernel,
  GpuKernelActor,
  isKernelLaunchFailed,
  type KernelActorArgs,
  KernelLaunchFailed,
  type KernelOutput,
  type KernelReply,
  type KernelStatus,
  kernelStatus,
  type LaunchFailure,
  launchKernel,
} from './KernelActor.js';
export {
  InvalidKernelRequest,
  isInvalidKernelRequest,
  KERNEL_INPUT_ROLES,
  type KernelInput,
  type KernelKind,
  type KernelPlan,
  type KernelRequest,
  planKernelRequest,
  type ResidentInput,
} from './KernelRequest.js';
export {
  DEFAULT_KERNEL_DEADLINE_MS,
  DEFAULT_MAX_MIGRATIONS_PER_LAUNCH,
  DEFAULT_MAX_RETRIES_PER_DEVICE,
  InvalidKernelSpec,
  type InvalidKernelSpecReason,
  isInvalidKernelSpec,
  type KernelSpec,
  MAX_KERNEL_DEADLINE_MS,
  MAX_MIGRATIONS_PER_LAUNCH,
  MAX_RESIDENT_ARRAYS,
  MAX_RETRIES_PER_DEVICE,
  type ResolvedKernelSpec,
  resolveKernelSpec,
} from './KernelSpec.js';
export {
  type AdamStepParameters,
  type BackendKernelKind,
  dispatchKernel,
  inputRoles,
  KERNEL_ROLES,
  type KernelCatalog,
  type KernelTable,
  type LaunchCall,
  REQUEST_KINDS,
  type RequestCall,
  type RequestKind,
  type RequestSizes,
  requestSizes,
  type SgdStepParameters,
} from './kernels/catalog.js';
export { allCudaKernels, type CudaKernel } from './kernels/cuda.js';
export { compileJavaScript, type Expression, toCuda, toJavaScript, toWgsl } from './kernels/Expression.js';
export { type GeneratedKernel, generateKernel } from './kernels/generateKernel.js';
export {
  BINARY_OP_NAMES,
  BINARY_OPS,
  type BinaryOpName,
  POOL_OP_NAMES,
  type Pool2dGeometry,
  type PoolOpName,
  REDUCE_OP_NAMES,
  REDUCE_OPS,
  type ReduceOpName,
  UNARY_OP_NAMES,
  UNARY_OPS,
  type UnaryOpName,
} from './kernels/ops.js';
export type { WgslKernel } from './kernels/wgsl.js';
export { migrate } from './migrate.js';
export { firstMismatch, type Mismatch, TOLERANCES, type Tolerance } from './tolerance.js';
export {
  type BackendKind,
  type DeviceInfo,
  DTYPE_BYTES,
  type DType,
  type FaultDecision,
  type FaultHook,
  type LaunchOptions,
  type MatmulPrecision,
  type Stream,
} from './types.js';
