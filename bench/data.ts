/**
 * Data-loading benchmarks: reading a numeric CSV data set the shape of Fashion-MNIST's CSV
 * exports (a label and 784 pixel columns a row) with zbmd's `parseCsvDataset` (split, validate,
 * convert to float32, with line- and column-numbered errors), against csv-parse (the well-kept
 * Node CSV library) tokenizing the same text in the same run: csv-parse's time covers only
 * splitting into string fields, before any number is parsed or checked. Run with
 * `npx zbmd bench data --json`.
 */
import { parse } from 'csv-parse/sync';
import { RealClock } from '../src/actor/Clock.js';
import { parseCsvDataset } from '../src/ml/data/Csv.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly quick: boolean;
}

const clock = new RealClock();

/** A CSV text of `rows` rows: a header, then a label 0-9 and 784 integer pixels 0-255 a row. */
export function fashionShapedCsv(rows: number): string {
  const columns = 784;
  const lines = [['label', ...Array.from({ length: columns }, (_, i) => `pixel${i + 1}`)].join(',')];
  for (let row = 0; row < rows; row++) {
    const fields = [String(row % 10)];
    for (let column = 0; column < columns; column++) fields.push(String((row * 7 + column * 13) % 256));
    lines.push(fields.join(','));
  }
  return `${lines.join('\n')}\n`;
}

function bestMs(repeats: number, work: () => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) {
    const start = clock.now();
    work();
    best = Math.min(best, clock.now() - start);
  }
  return best;
}

export async function run(options: BenchOptions): Promise<Record<string, unknown>> {
  const rows = options.quick ? 1000 : 10_000;
  const text = fashionShapedCsv(rows);
  const repeats = options.quick ? 2 : 3;
  const zbmdMs = bestMs(repeats, () => parseCsvDataset(text));
  const csvParseMs = bestMs(repeats, () => parse(text, { skip_empty_lines: true, bom: true, info: true }));
  return {
    csv_rows: rows,
    csv_megabytes: Number((text.length / 1e6).toFixed(1)),
    csv_zbmd_parse_ms: Math.round(zbmdMs),
    csv_zbmd_rows_per_sec: Math.round((rows * 1000) / zbmdMs),
    csv_parse_tokenize_ms: Math.round(csvParseMs),
    csv_parse_tokenize_over_zbmd: Number((csvParseMs / zbmdMs).toFixed(2)),
  };
}
