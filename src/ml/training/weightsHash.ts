import type { Module } from '../nn/Module.js';
import { type SafetensorsEntry, serializeSafetensors } from '../safetensors.js';
import { sha256Hex } from './checkpointFiles.js';

/**
 * SHA-256 of a model's weights: of the safetensors file holding every parameter (F32, by name,
 * with its shape), so two runs compare by one string and the hash means the same everywhere.
 */
export function weightsSha256(model: Module): string {
  const tensors: Record<string, SafetensorsEntry> = {};
  for (const [name, parameter] of model.namedParameters()) {
    const data = parameter.data;
    tensors[name] = {
      dtype: 'F32',
      shape: [...parameter.shape],
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  }
  return sha256Hex(serializeSafetensors(tensors));
}
