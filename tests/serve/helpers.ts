import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import {
  type InferenceServer,
  type InferenceServerOptions,
  startInferenceServer,
} from '../../src/serve/index.js';

export const TINY_ONNX = fileURLToPath(new URL('./fixtures/tiny.onnx', import.meta.url));
export const TYPES_ONNX = fileURLToPath(new URL('./fixtures/types.onnx', import.meta.url));
export const TINY_GOLDEN = fileURLToPath(new URL('./fixtures/tiny_golden.json', import.meta.url));

/** A pino logger writing JSON lines into `lines`. */
export function capturingLogger(lines: Record<string, unknown>[] = []) {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** Starts a server on 127.0.0.1, a free port, with logs captured. */
export async function startTestServer(
  options: Partial<InferenceServerOptions> & Pick<InferenceServerOptions, 'models'>,
): Promise<{ server: InferenceServer; lines: Record<string, unknown>[] }> {
  const { logger, lines } = capturingLogger();
  const server = await startInferenceServer({ host: '127.0.0.1', port: 0, logger, ...options });
  return { server, lines };
}

export interface Answer {
  readonly status: number;
  readonly body: any;
  readonly headers: Headers;
}

export async function post(url: string, body: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

export async function get(url: string): Promise<Answer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body, headers: response.headers };
}

export function tinyRequest(rows: number, offset = 0) {
  return {
    inputs: [
      {
        name: 'input',
        shape: [rows, 4],
        datatype: 'FP32',
        data: Array.from({ length: rows * 4 }, (_, index) => (index + offset) / 10),
      },
    ],
  };
}
