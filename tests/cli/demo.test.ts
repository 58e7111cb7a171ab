import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEMO_INTENSITY, runDemo } from '../../src/cli/demo.js';
import { runCli } from '../../src/cli/main.js';

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe('zbmd demo beyond the supervisor intensity', () => {
  it('says that the supervisor gave up and why', async () => {
    const lines: string[] = [];
    const result = await runDemo({ crashes: DEMO_INTENSITY + 1, seed: 3, write: (line) => lines.push(line) });
    expect(result.restarts).toBe(DEMO_INTENSITY);
    expect(result.supervisorGaveUp).toMatch(
      /gave up after 10 restarts: crash 11 is more than its intensity of 10/,
    );
    expect(lines.at(-1)).toBe(result.supervisorGaveUp);
  });

  it('exits 1 with the reason on stderr; at the intensity it still exits 0', async () => {
    let err = '';
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    vi.spyOn(console, 'error').mockImplementation((text) => (err += `${text}\n`));
    expect(await runCli(['node', 'zbmd', 'demo', '--crashes', '11'])).toBe(1);
    expect(err).toMatch(/^zbmd demo: supervisor gave up/);
    process.exitCode = undefined;
    expect(await runCli(['node', 'zbmd', 'demo', '--crashes', '10'])).toBe(0);
  });
});
