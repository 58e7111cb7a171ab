import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CSV_MAX_CLASSES, isDatasetError, parseCsvDataset } from '../../src/ml/data/index.js';

function failure(text: string, options = {}): unknown {
  try {
    parseCsvDataset(text, options);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('CSV: values a float32 data set cannot hold', () => {
  it('a feature outside float32 range is refused with its line and column', () => {
    const error = failure('label,a,b\n1,0.5,2\n0,3,1e39\n');
    expect(isDatasetError(error, 'csv_invalid_number')).toBe(true);
    expect(error).toMatchObject({ line: 3, column: 3 });
    expect(String(error)).toContain('line 3, column 3');
    expect(String(error)).toContain('float32');
    expect(failure('1,-3.5e38\n', { header: false })).toMatchObject({
      code: 'csv_invalid_number',
      column: 2,
    });
    expect(parseCsvDataset('1,3.4e38\n', { header: false }).length).toBe(1);
  });

  it('a label past the class limit is refused clearly, not a RangeError later', () => {
    const error = failure('label,a\n0,1\n2000000000,2\n');
    expect(isDatasetError(error, 'csv_invalid_label')).toBe(true);
    expect(error).toMatchObject({ line: 3, column: 1 });
    expect(String(error)).toContain(`at most ${CSV_MAX_CLASSES} classes`);
    expect(parseCsvDataset(`${CSV_MAX_CLASSES - 1},1\n`, { header: false }).numClasses).toBe(CSV_MAX_CLASSES);
    expect(failure('0,1\n', { numClasses: CSV_MAX_CLASSES + 1 })).toMatchObject({ code: 'invalid_dataset' });
  });

  it('numbers are decimals as written: no hex, no Infinity, no NaN', () => {
    for (const field of ['0x10', 'Infinity', 'NaN', '1e', '--1', '0b1']) {
      expect(failure(`1,${field}\n`, { header: false }), field).toMatchObject({ code: 'csv_invalid_number' });
    }
    expect(failure('0x1,2\n', { header: false })).toMatchObject({ code: 'csv_invalid_label', column: 1 });
    expect(failure('1e2,2\n', { header: false })).toMatchObject({ code: 'csv_invalid_label' });
  });
});

const feature = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -1000, max: 1000 }),
  fc.constantFrom(0, -0, 1e-45, 3.4e38, -3.4e38),
);

describe('fuzz: the CSV reader', () => {
  it('reads back exactly what valid files hold', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }).chain((width) =>
          fc.array(fc.tuple(fc.nat({ max: 40 }), fc.array(feature, { minLength: width, maxLength: width })), {
            minLength: 1,
            maxLength: 20,
          }),
        ),
        fc.boolean(),
        (rows, crlf) => {
          const newline = crlf ? '\r\n' : '\n';
          const text = rows.map(([label, values]) => [label, ...values.map(String)].join(',')).join(newline);
          const dataset = parseCsvDataset(text, { header: false });
          expect(dataset.length).toBe(rows.length);
          const width = rows[0][1].length;
          rows.forEach(([label, values], row) => {
            expect(dataset.labels[row]).toBe(label);
            values.forEach((value, column) => {
              expect(dataset.features[row * width + column] === Math.fround(value)).toBe(true);
            });
          });
        },
      ),
      { numRuns: 1000, seed: 21 },
    );
  });

  it('mutated files give a data set true to the file or a typed error, never a crash (3,000 cases)', () => {
    const valid = 'label,a,b,c\n1,0.5,2,-3e2\n0,"4",5.25,6\n2,7,.5,1e-3\n';
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            at: fc.nat({ max: valid.length }),
            remove: fc.nat({ max: 3 }),
            insert: fc.oneof(
              fc.string({ maxLength: 4 }),
              fc.constantFrom('"', ',', '\n', '\r', '1e39', '2000000000', '-', 'NaN', '\uFEFF', '0x1'),
            ),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (edits) => {
          let text = valid;
          for (const { at, remove, insert } of edits)
            text =
              text.slice(0, Math.min(at, text.length)) +
              insert +
              text.slice(Math.min(at, text.length) + remove);
          let dataset: ReturnType<typeof parseCsvDataset>;
          try {
            dataset = parseCsvDataset(text);
          } catch (error) {
            expect(isDatasetError(error), String(error)).toBe(true);
            return;
          }
          const width = dataset.featureShape[0];
          expect(dataset.features.length).toBe(dataset.length * width);
          for (const value of dataset.features) expect(Number.isFinite(value)).toBe(true);
          for (const label of dataset.labels) {
            expect(label).toBeGreaterThanOrEqual(0);
            expect(label).toBeLessThan(dataset.numClasses);
          }
          expect(dataset.numClasses).toBeLessThanOrEqual(CSV_MAX_CLASSES);
        },
      ),
      { numRuns: 3000, seed: 22 },
    );
  });
});
