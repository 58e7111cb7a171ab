import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { curvesSvg, InvalidMetricsFile, readMetricsFile, ticks } from '../../src/observe/index.js';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-plot-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const METRICS = [
  { kind: 'step', step: 1, epoch: 0, loss: 2.3, time_ms: 1 },
  { kind: 'step', step: 2, epoch: 0, loss: 2.0, time_ms: 2 },
  { kind: 'recovery', cause: 'model_crash', recovery_ms: 3.1, step: 2, detail: 'x' },
  { kind: 'step', step: 3, epoch: 0, loss: 1.7, time_ms: 3 },
  { kind: 'step', step: 4, epoch: 0, loss: 1.5, time_ms: 4 },
  { kind: 'epoch', epoch: 0, mean_loss: 1.9, test_accuracy: 0.6, steps_per_sec: 100, steps: 4 },
  { kind: 'step', step: 3, epoch: 0, loss: 1.6, time_ms: 5 }, // logged again by a resumed run
]
  .map((record) => JSON.stringify(record))
  .join('\n');

describe('curves as SVG', () => {
  it('reads a metrics.jsonl: loss per step (the last value of a step), accuracy at epoch ends, recoveries', async () => {
    const path = join(directory, 'metrics.jsonl');
    await writeFile(path, `${METRICS}\n`);
    const curves = readMetricsFile(path);
    expect(curves.loss).toEqual([
      [1, 2.3],
      [2, 2.0],
      [3, 1.6],
      [4, 1.5],
    ]);
    expect(curves.accuracy).toEqual([[4, 0.6]]);
    expect(curves.recoveries).toEqual([{ step: 2, cause: 'model_crash' }]);
  });

  it('a bad line is an error with the file and line number', async () => {
    const path = join(directory, 'metrics.jsonl');
    await writeFile(path, `${JSON.stringify({ kind: 'step', step: 1, loss: 'high' })}\n`);
    expect(() => readMetricsFile(path)).toThrow(
      /metrics\.jsonl:1: field loss: expected a finite number, got "high"/,
    );
    await writeFile(path, '{"kind":"step","step":1,"loss":1}\nnot json\n');
    const error = (() => {
      try {
        readMetricsFile(path);
      } catch (caught) {
        return caught;
      }
    })();
    expect(InvalidMetricsFile.is(error) && error.line).toBe(2);
    await writeFile(path, '');
    expect(() => readMetricsFile(path)).toThrow(/no step records/);
  });

  it('draws one path point per step, a marker per epoch and a dashed line per recovery in each panel', () => {
    const svg = curvesSvg({
      loss: [
        [1, 2],
        [2, 1.5],
        [3, 1],
      ],
      accuracy: [[3, 0.7]],
      recoveries: [{ step: 2, cause: 'oom' }],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const curvesPaths = [...svg.matchAll(/<path class="curve" d="([^"]+)"/g)].map((match) => match[1]);
    expect(curvesPaths[0].split(' ')).toHaveLength(3);
    expect(svg.match(/<circle /g)).toHaveLength(1);
    expect(svg.match(/class="recovery"/g)).toHaveLength(2);
    expect(svg).toContain('recoveries (red dashed): oom 1');
  });

  it('ticks are round numbers covering the range', () => {
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(0, 400, 8)).toEqual([0, 50, 100, 150, 200, 250, 300, 350, 400]);
  });

  it('zbmd plot metrics.jsonl -o curves.svg', async () => {
    const path = join(directory, 'metrics.jsonl');
    const output = join(directory, 'curves.svg');
    await writeFile(path, `${METRICS}\n`);
    const lines: string[] = [];
    const log = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      await buildProgram().parseAsync(['node', 'zbmd', 'plot', path, '-o', output]);
    } finally {
      console.log = log;
    }
    expect(lines).toEqual([`${output}: 4 steps, 1 epochs, 1 recoveries`]);
    expect(await readFile(output, 'utf8')).toContain('<path class="curve"');
  });
});
