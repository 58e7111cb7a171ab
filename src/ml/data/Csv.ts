/**
 * Numeric CSV data sets: one sample per line, one column holding an integer class label, every
 * other column a number. Fields may be double-quoted ("" inside quotes is a quote); a quoted
 * field may not span lines. Blank lines are skipped. Line numbers in errors are 1-based lines of
 * the file, header included.
 *
 * Hand-written rather than csv-parse: `npx zbmd bench data` measures csv-parse's tokenizing alone
 * at 2.3x this whole parse (split, checks, float32 conversion) on a Fashion-MNIST-shaped file.
 */
import { readFile, stat } from 'node:fs/promises';
import { InMemoryDataset } from './Dataset.js';
import { DatasetError } from './DatasetError.js';

/**
 * The largest CSV file read: 512 MiB, about the longest string V8 can hold. Bigger data sets
 * belong in a binary format (IDX, safetensors).
 */
export const CSV_MAX_BYTES = 512 * 1024 * 1024;

/**
 * The most classes a CSV data set may have: labels are integers from 0 to 65,535. A larger label
 * is almost always a mislabelled column (an id, a price), and a model over millions of classes
 * would not fit in memory anyway.
 */
export const CSV_MAX_CLASSES = 65_536;

/** The largest float32: a feature beyond ±FLOAT32_MAX (say 1e39) cannot be held and is refused. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** A decimal number as CSV files write it: optional sign, digits with an optional point, optional exponent. */
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** Options of `parseCsvDataset` and `readCsvDataset`. */
export interface CsvDatasetOptions {
  /**
   * Which column holds the label: a 0-based index, 'first', 'last', or a header name (needs a
   * header). Default 'first' (the layout of the common Fashion-MNIST CSV exports).
   */
  labelColumn?: number | 'first' | 'last' | string;
  /**
   * Whether the first non-blank line is a header: true, false, or 'auto' (default): a header
   * when any of its fields is not a number.
   */
  header?: boolean | 'auto';
  /** Field separator, one character; default ','. */
  delimiter?: string;
  /** Number of classes, 1 to `CSV_MAX_CLASSES`; defaults to the largest label + 1. */
  numClasses?: number;
  /** Shape of the features of one sample (its product must be the feature count); default [count]. */
  featureShape?: readonly number[];
}

interface Row {
  readonly line: number;
  readonly fields: string[];
}

/**
 * Builds a data set from CSV text. Throws `DatasetError` with the line number: `csv_empty` (no
 * data rows), `csv_unknown_column` (label column not in the header or out of range),
 * `csv_column_count` (a row with a different number of fields than the first),
 * `csv_invalid_number` (an empty or non-numeric feature, or one outside float32's range),
 * `csv_invalid_label` (a label that is not an integer from 0 to `numClasses` - 1, at most
 * `CSV_MAX_CLASSES` - 1), `csv_unterminated_quote`. Number and label errors name the column too.
 */
export function parseCsvDataset(
  text: string,
  options: CsvDatasetOptions = {},
  source = 'CSV text',
): InMemoryDataset {
  const delimiter = options.delimiter ?? ',';
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new DatasetError(
      'invalid_dataset',
      `delimiter must be one character other than a quote or newline, got ${JSON.stringify(delimiter)}`,
      source,
    );
  }
  const numClasses = options.numClasses;
  if (
    numClasses !== undefined &&
    (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > CSV_MAX_CLASSES)
  ) {
    throw new DatasetError(
      'invalid_dataset',
      `numClasses must be an integer from 1 to ${CSV_MAX_CLASSES}, got ${numClasses}`,
      source,
    );
  }
  const rows = splitRows(text, delimiter, source);
  const headerRow = hasHeader(rows[0], options.header ?? 'auto') ? rows.shift() : undefined;
  if (rows.length === 0) {
    throw new DatasetError(
      'csv_empty',
      `${source}: no data rows${headerRow ? ' after the header' : ''}`,
      source,
    );
  }
  const columnCount = headerRow?.fields.length ?? rows[0].fields.length;
  const labelIndex = resolveLabelColumn(options.labelColumn ?? 'first', columnCount, headerRow, source);
  const featureCount = columnCount - 1;
  const features = new Float32Array(rows.length * featureCount);
  const labels = new Int32Array(rows.length);
  rows.forEach((row, rowIndex) => {
    if (row.fields.length !== columnCount) {
      throw rowError(
        'csv_column_count',
        row,
        `expected ${columnCount} fields like the ${headerRow ? 'header' : 'first data row'}, found ${row.fields.length}`,
        source,
      );
    }
    labels[rowIndex] = parseLabel(row, labelIndex, options.numClasses, source);
    let target = rowIndex * featureCount;
    for (let column = 0; column < columnCount; column++) {
      if (column !== labelIndex) features[target++] = parseFeature(row, column, source);
    }
  });
  return new InMemoryDataset({
    features,
    labels,
    featureShape: options.featureShape ?? [featureCount],
    numClasses: options.numClasses,
  });
}

/** Reads a CSV file (at most `CSV_MAX_BYTES`) and builds a data set; see `parseCsvDataset`. */
export async function readCsvDataset(
  path: string,
  options: CsvDatasetOptions = {},
): Promise<InMemoryDataset> {
  const { size } = await stat(path);
  if (size > CSV_MAX_BYTES) {
    throw new DatasetError(
      'too_large',
      `${path}: ${size} bytes, over the ${CSV_MAX_BYTES}-byte CSV limit; convert it to IDX or safetensors`,
      path,
    );
  }
  return parseCsvDataset(await readFile(path, 'utf8'), options, path);
}

function rowError(
  code: 'csv_column_count' | 'csv_invalid_number' | 'csv_invalid_label',
  row: Row,
  what: string,
  source: string,
  column?: number,
) {
  const where = column === undefined ? `line ${row.line}` : `line ${row.line}, column ${column + 1}`;
  return new DatasetError(
    code,
    `${source}, ${where}: ${what}`,
    source,
    row.line,
    column === undefined ? undefined : column + 1,
  );
}

function splitRows(text: string, delimiter: string, source: string): Row[] {
  const rows: Row[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    const lineNumber = i + 1;
    if (line.trim() === '' || (i === 0 && line === '\uFEFF')) continue;
    rows.push({
      line: lineNumber,
      fields: splitFields(i === 0 ? line.replace(/^\uFEFF/, '') : line, delimiter, lineNumber, source),
    });
  }
  if (rows.length === 0) throw new DatasetError('csv_empty', `${source}: no rows`, source);
  return rows;
}

function splitFields(line: string, delimiter: string, lineNumber: number, source: string): string[] {
  if (!line.includes('"')) return line.split(delimiter);
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const character = line[i];
    if (quoted) {
      if (character !== '"') field += character;
      else if (line[i + 1] === '"') field += line[++i];
      else quoted = false;
    } else if (character === '"') quoted = true;
    else if (character === delimiter) {
      fields.push(field);
      field = '';
    } else field += character;
  }
  if (quoted) {
    throw new DatasetError(
      'csv_unterminated_quote',
      `${source}, line ${lineNumber}: a quoted field is not closed on this line`,
      source,
      lineNumber,
    );
  }
  fields.push(field);
  return fields;
}

function isNumber(field: string): boolean {
  return DECIMAL.test(field) && Number.isFinite(Number(field));
}

function hasHeader(first: Row, header: boolean | 'auto'): boolean {
  return header === 'auto' ? !first.fields.every(isNumber) : header;
}

function resolveLabelColumn(
  labelColumn: CsvDatasetOptions['labelColumn'],
  columnCount: number,
  headerRow: Row | undefined,
  source: string,
): number {
  let index: number;
  if (labelColumn === 'first') index = 0;
  else if (labelColumn === 'last') index = columnCount - 1;
  else if (typeof labelColumn === 'number') index = labelColumn;
  else {
    if (headerRow === undefined) {
      throw new DatasetError(
        'csv_unknown_column',
        `${source}: label column ${JSON.stringify(labelColumn)} is a name, but the file has no header`,
        source,
      );
    }
    index = headerRow.fields.findIndex((name) => name.trim() === labelColumn);
    if (index < 0) {
      throw new DatasetError(
        'csv_unknown_column',
        `${source}: no column named ${JSON.stringify(labelColumn)} in the header (${headerRow.fields.join(', ')})`,
        source,
      );
    }
  }
  if (!Number.isInteger(index) || index < 0 || index >= columnCount) {
    throw new DatasetError(
      'csv_unknown_column',
      `${source}: label column ${index} is outside the ${columnCount} columns`,
      source,
    );
  }
  if (columnCount < 2) {
    throw new DatasetError(
      'csv_unknown_column',
      `${source}: rows have ${columnCount} field; a label and at least one feature are needed`,
      source,
    );
  }
  return index;
}

function parseLabel(row: Row, column: number, numClasses: number | undefined, source: string): number {
  const field = row.fields[column].trim();
  if (!/^\d{1,16}$/.test(field)) {
    throw rowError(
      'csv_invalid_label',
      row,
      `label ${JSON.stringify(row.fields[column])} is not a class number (an integer from 0 to ${CSV_MAX_CLASSES - 1})`,
      source,
      column,
    );
  }
  const label = Number(field);
  const limit = numClasses ?? CSV_MAX_CLASSES;
  if (label >= limit) {
    const why =
      numClasses === undefined
        ? `over ${CSV_MAX_CLASSES - 1}: a CSV data set has at most ${CSV_MAX_CLASSES} classes (is this the label column?)`
        : `not below numClasses ${numClasses}`;
    throw rowError('csv_invalid_label', row, `label ${label} is ${why}`, source, column);
  }
  return label;
}

function parseFeature(row: Row, column: number, source: string): number {
  const field = row.fields[column];
  if (!isNumber(field)) {
    throw rowError(
      'csv_invalid_number',
      row,
      `${JSON.stringify(field)} is not a finite decimal number`,
      source,
      column,
    );
  }
  const value = Number(field);
  if (Math.abs(value) > FLOAT32_MAX) {
    throw rowError(
      'csv_invalid_number',
      row,
      `${field.trim()} is outside float32's range (magnitude at most ${FLOAT32_MAX.toPrecision(8)})`,
      source,
      column,
    );
  }
  return value;
}
