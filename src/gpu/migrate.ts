/**
 * Moving a buffer between devices. There is no direct device-to-device path between these
 * backends (CUDA peer copies would need both devices in one process context; WebGPU has none),
 * so data goes through the host: copy out, allocate on the target, copy in. The source keeps
 * its reference: release it once the copy is no longer needed.
 */
import type { Device } from './Device.js';
import type { DeviceBuffer } from './DeviceBuffer.js';
import { DeviceError } from './errors.js';
import type { LaunchOptions } from './types.js';

/** A copy of `buffer` on `target` (same bytes and dtype). Same device: `buffer` retained. */
export async function migrate(
  buffer: DeviceBuffer,
  target: Device,
  options: LaunchOptions = {},
): Promise<DeviceBuffer> {
  const source = buffer.owner as Device;
  if (source === target) return buffer.retain();
  source.checkBuffer('migrate', buffer, 'buffer');
  if (target.isDestroyed) throw new DeviceError(target.id, 'migrate', 'the target device was destroyed');
  const host = await source.copyOut(buffer, options);
  const bytes = new Uint8Array(host.buffer, host.byteOffset, host.byteLength);
  // A length the target cannot copy (odd bytes to WebGPU) fails in copyIn with the reason.
  const moved = target.allocate(buffer.byteLength, buffer.dtype);
  try {
    target.copyIn(moved, bytes);
  } catch (error) {
    moved.release();
    throw error;
  }
  return moved;
}
