/** Why a data set could not be built or read. */
export type DatasetErrorCode =
  | 'invalid_dataset'
  | 'not_found'
  | 'too_large'
  | 'invalid_gzip'
  | 'bad_magic'
  | 'unknown_idx_type'
  | 'truncated'
  | 'size_mismatch'
  | 'count_mismatch'
  | 'invalid_labels'
  | 'csv_empty'
  | 'csv_unknown_column'
  | 'csv_column_count'
  | 'csv_invalid_number'
  | 'csv_invalid_label'
  | 'csv_unterminated_quote';

/**
 * A data set, IDX file or CSV file that cannot be used. `code` says which rule was broken and
 * `source` names the file (or "IDX data" / "CSV text" for in-memory input); CSV errors carry the
 * 1-based `line` too.
 */
import { TaggedError } from '../../internal/errors.js';
export class DatasetError extends TaggedError('DatasetError') {
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
    readonly source?: string,
    readonly line?: number,
    /** The 1-based column of a CSV field at fault, when one is. */
    readonly column?: number,
  ) {
    super(message);
  }
}

/** True when `error` is a `DatasetError` (optionally with the given code). */
export function isDatasetError(error: unknown, code?: DatasetErrorCode): error is DatasetError {
  return error instanceof DatasetError && (code === undefined || error.code === code);
}
