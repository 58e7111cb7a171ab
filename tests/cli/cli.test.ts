import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';
import { buildProgram } from '../../src/cli/main.js';

describe('zbmd CLI', () => {
  it('every command has --help text', () => {
    const program = buildProgram();
    expect(program.commands.length).toBeGreaterThan(0);
    for (const command of program.commands) {
      expect(command.description().length, command.name()).toBeGreaterThan(10);
      expect(command.helpInformation()).toContain(`Usage: zbmd ${command.name()}`);
    }
  });

  it('rejects a bad option value with a clear error', async () => {
    const program = buildProgram().exitOverride();
    for (const command of program.commands) command.exitOverride().configureOutput({ writeErr: () => {} });
    await expect(program.parseAsync(['node', 'zbmd', 'demo', '--crashes', 'many'])).rejects.toThrow(
      /expected an integer from 1 to 100, got 'many'/,
    );
  });
});

describe('zbmd demo', () => {
  it('repairs every injected crash and loses no increment', async () => {
    const lines: string[] = [];
    const result = await runDemo({ crashes: 7, seed: 3, write: (line) => lines.push(line) });
    expect(result.restarts).toBe(7);
    expect(result.finalValue).toBe(result.expectedValue);
    expect(result.expectedValue).toBe(93);
    expect(lines.filter((line) => line.includes('crashed'))).toHaveLength(7);
    expect(lines.join('\n')).toContain('supervisor one_for_one');
  });
});

describe('zbmd errors', () => {
  it('typed and system errors are operating errors (one line); plain errors are bugs (a stack)', async () => {
    const { isOperatingError } = await import('../../src/cli/main.js');
    const { InvalidDeviceSpec } = await import('../../src/gpu/index.js');
    expect(isOperatingError(new InvalidDeviceSpec('tpu'))).toBe(true);
    expect(isOperatingError(Object.assign(new Error('no such file'), { code: 'ENOENT' }))).toBe(true);
    expect(isOperatingError(new TypeError('undefined is not a function'))).toBe(false);
    expect(isOperatingError('not an error')).toBe(false);
  });
});
