/**
 * Example 3 (design book ch. 10): vector addition on the best device present (a CUDA GPU, a
 * WebGPU adapter, else zbmd's CPU reference device; `ZBMD_DEVICE=cpu|webgpu|cuda:0` chooses).
 * Run: `node dist/examples/03-gpu-vector-add.js`.
 */
import { type Device, defaultDevice, openDevice } from 'zbmd/gpu';

export async function main(
  write: (line: string) => void = console.log,
  deviceName?: string,
): Promise<Float32Array> {
  const device: Device = deviceName === undefined ? await defaultDevice() : await openDevice(deviceName);
  try {
    write(`Using device: ${device.info().name} (${device.id})`);
    const n = 1_000_000;
    const ones = new Float32Array(n).fill(1);
    const range = Float32Array.from({ length: n }, (_, i) => i);
    const a = device.upload(ones);
    const b = device.upload(range);
    const c = device.allocate(n * 4);
    device.binary('add', a, b, c); // enqueued; errors surface at the next synchronization
    const result = (await device.copyOut(c)) as Float32Array;
    const first = result.subarray(0, 10);
    write(`Result: ${Array.from(first, (value) => value.toFixed(2)).join(' ')}`);
    for (const buffer of [a, b, c]) device.free(buffer);
    return first.slice();
  } finally {
    device.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
