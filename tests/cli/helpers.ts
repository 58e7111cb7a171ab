import { vi } from 'vitest';
import { runCli } from '../../src/cli/main.js';

/**
 * Runs the CLI in process with `zbmd args...`, capturing what it prints (console and the CLI's own
 * writers). The caller's afterEach restores the mocks (`vi.restoreAllMocks()`).
 */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(console, 'log').mockImplementation((text) => (out += `${text}\n`));
  vi.spyOn(console, 'error').mockImplementation((text) => (err += `${text}\n`));
  const code = await runCli(['node', 'zbmd', ...args], {
    out: (text) => (out += text),
    err: (text) => (err += text),
  });
  return { code, out, err };
}
