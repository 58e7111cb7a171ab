/**
 * Training curves as an SVG, written from the data (no chart library needed): loss per step
 * above, test accuracy per epoch below, recoveries as red dashed lines across both. For
 * `zbmd train --plot curves.svg` and `zbmd plot metrics.jsonl -o curves.svg`. Imports no layer.
 */
import { readFileSync } from 'node:fs';
import { TaggedError } from '../internal/errors.js';
import type { RecoveryMark } from './Snapshot.js';

export interface Curves {
  readonly loss: ReadonlyArray<readonly [number, number]>;
  readonly accuracy: ReadonlyArray<readonly [number, number]>;
  readonly recoveries: readonly RecoveryMark[];
}

/** Lines a metrics file may have (a longer file is an error, not a slow read). */
export const METRICS_FILE_MAX_LINES = 10_000_000;

/** A metrics.jsonl line that is not what the metrics actor writes. */
export class InvalidMetricsFile extends TaggedError('InvalidMetricsFile') {
  constructor(
    readonly path: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${path}:${line}: ${reason}`);
  }
}

/**
 * Reads the curves of a finished run from its metrics.jsonl (lines of kind step, epoch and
 * recovery). A step logged twice (a run resumed after a kill) keeps its last value.
 */
export function readMetricsFile(path: string): Curves {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines.length > METRICS_FILE_MAX_LINES)
    throw new InvalidMetricsFile(path, METRICS_FILE_MAX_LINES, `more than ${METRICS_FILE_MAX_LINES} lines`);
  const loss = new Map<number, number>();
  const accuracy: Array<[number, number]> = [];
  const recoveries: RecoveryMark[] = [];
  let lastStep = 0;
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    const record = parseRecord(path, index + 1, line);
    if (record.kind === 'step') {
      const step = numberField(path, index + 1, record, 'step');
      loss.set(step, numberField(path, index + 1, record, 'loss'));
      lastStep = step;
    } else if (record.kind === 'epoch') {
      if (record.test_accuracy !== null && record.test_accuracy !== undefined)
        accuracy.push([lastStep, numberField(path, index + 1, record, 'test_accuracy')]);
    } else if (record.kind === 'recovery') {
      const cause = record.cause;
      if (typeof cause !== 'string')
        throw new InvalidMetricsFile(path, index + 1, 'field cause: expected a string');
      recoveries.push({ step: numberField(path, index + 1, record, 'step'), cause });
    }
  });
  if (loss.size === 0)
    throw new InvalidMetricsFile(path, lines.length, 'no step records (kind "step") to plot');
  return { loss: [...loss].sort((a, b) => a[0] - b[0]), accuracy, recoveries };
}

function parseRecord(path: string, line: number, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidMetricsFile(path, line, 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidMetricsFile(path, line, 'expected a JSON object');
  return value as Record<string, unknown>;
}

function numberField(path: string, line: number, record: Record<string, unknown>, field: string): number {
  const value = record[field];
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new InvalidMetricsFile(
      path,
      line,
      `field ${field}: expected a finite number, got ${JSON.stringify(value)}`,
    );
  return value;
}

const WIDTH = 900;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 40 };

/** Round tick values covering [low, high]. */
export function ticks(low: number, high: number, count = 5): number[] {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw) ?? raw;
  const values: number[] = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step)
    values.push(Number(value.toPrecision(12)));
  return values;
}

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Panel {
  readonly title: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly colour: string;
  readonly markers: boolean;
  readonly top: number;
  /** A fixed y range (accuracy: [0, 1]); default: the data's, padded. */
  readonly yRange?: readonly [number, number];
}

function panel(spec: Panel, xLow: number, xHigh: number, recoveries: readonly RecoveryMark[]): string {
  const innerWidth = WIDTH - MARGIN.left - MARGIN.right;
  const innerHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const ys = spec.points.map((point) => point[1]);
  let yLow = ys.length > 0 ? Math.min(...ys) : 0;
  let yHigh = ys.length > 0 ? Math.max(...ys) : 1;
  if (yHigh - yLow < 1e-9) {
    yLow -= 0.5;
    yHigh += 0.5;
  }
  const pad = (yHigh - yLow) * 0.05;
  yLow -= pad;
  yHigh += pad;
  if (spec.yRange !== undefined) [yLow, yHigh] = spec.yRange;
  const x = (value: number) => MARGIN.left + ((value - xLow) / (xHigh - xLow || 1)) * innerWidth;
  const y = (value: number) => spec.top + MARGIN.top + (1 - (value - yLow) / (yHigh - yLow)) * innerHeight;
  const parts: string[] = [
    `<text x="${MARGIN.left}" y="${spec.top + 24}" font-size="16" font-weight="bold">${escapeXml(spec.title)}</text>`,
    `<rect x="${MARGIN.left}" y="${spec.top + MARGIN.top}" width="${innerWidth}" height="${innerHeight}" fill="none" stroke="#999"/>`,
  ];
  for (const tick of ticks(yLow, yHigh)) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + innerWidth}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${(y(tick) + 4).toFixed(1)}" font-size="12" text-anchor="end">${tick}</text>`,
    );
  }
  for (const tick of ticks(xLow, xHigh, 8)) {
    parts.push(
      `<text x="${x(tick).toFixed(1)}" y="${spec.top + PANEL_HEIGHT - MARGIN.bottom + 16}" font-size="12" text-anchor="middle">${tick}</text>`,
    );
  }
  parts.push(
    `<text x="${MARGIN.left + innerWidth / 2}" y="${spec.top + PANEL_HEIGHT - 6}" font-size="12" text-anchor="middle">step</text>`,
  );
  for (const recovery of recoveries) {
    parts.push(
      `<line class="recovery" x1="${x(recovery.step).toFixed(1)}" x2="${x(recovery.step).toFixed(1)}" y1="${spec.top + MARGIN.top}" y2="${spec.top + MARGIN.top + innerHeight}" stroke="#d62728" stroke-dasharray="4 3" stroke-width="1"><title>${escapeXml(`recovery at step ${recovery.step}: ${recovery.cause}`)}</title></line>`,
    );
  }
  if (spec.points.length > 0) {
    const path = spec.points
      .map((point, index) => `${index === 0 ? 'M' : 'L'}${x(point[0]).toFixed(1)},${y(point[1]).toFixed(1)}`)
      .join(' ');
    parts.push(`<path class="curve" d="${path}" fill="none" stroke="${spec.colour}" stroke-width="1.5"/>`);
    if (spec.markers)
      for (const point of spec.points)
        parts.push(
          `<circle cx="${x(point[0]).toFixed(1)}" cy="${y(point[1]).toFixed(1)}" r="4" fill="${spec.colour}"/>`,
        );
  } else {
    parts.push(
      `<text x="${MARGIN.left + innerWidth / 2}" y="${spec.top + PANEL_HEIGHT / 2}" font-size="14" text-anchor="middle" fill="#777">no data</text>`,
    );
  }
  return parts.join('\n');
}

/** The SVG text of `curves`: loss and accuracy panels sharing the step axis, recoveries marked. */
export function curvesSvg(curves: Curves, title = 'zbmd training'): string {
  const steps = [...curves.loss.map((point) => point[0]), ...curves.accuracy.map((point) => point[0])];
  const xLow = steps.length > 0 ? Math.min(0, ...steps) : 0;
  const xHigh = steps.length > 0 ? Math.max(...steps, 1) : 1;
  const height = 2 * PANEL_HEIGHT + 40;
  const causes = new Map<string, number>();
  for (const { cause } of curves.recoveries) causes.set(cause, (causes.get(cause) ?? 0) + 1);
  const legend =
    curves.recoveries.length === 0
      ? 'no recoveries'
      : `recoveries (red dashed): ${[...causes].map(([cause, count]) => `${cause} ${count}`).join(', ')}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" font-size="18" text-anchor="middle">${escapeXml(title)}</text>`,
    `<text x="${WIDTH / 2}" y="${height - 8}" font-size="12" text-anchor="middle" fill="#d62728">${escapeXml(legend)}</text>`,
    panel(
      { title: 'loss per step', points: curves.loss, colour: '#1f77b4', markers: false, top: 20 },
      xLow,
      xHigh,
      curves.recoveries,
    ),
    panel(
      {
        title: 'test accuracy per epoch',
        points: curves.accuracy,
        colour: '#2ca02c',
        markers: true,
        top: 20 + PANEL_HEIGHT,
      },
      xLow,
      xHigh,
      curves.recoveries,
    ),
    '</svg>',
    '',
  ].join('\n');
}
