/**
 * Data for training: in-memory data sets, IDX (MNIST, Fashion-MNIST) and CSV readers, the
 * procedural tiny data set shipped in `data/tiny`, and a `DataLoader` with seeded shuffling and
 * an exactly restorable position.
 */
export {
  CSV_MAX_BYTES,
  CSV_MAX_CLASSES,
  type CsvDatasetOptions,
  FLOAT32_MAX,
  parseCsvDataset,
  readCsvDataset,
} from './Csv.js';
export {
  type Batch,
  DATA_LOADER_MAX_BATCH_SIZE,
  DataLoader,
  DataLoaderError,
  type DataLoaderErrorCode,
  type DataLoaderOptions,
  isDataLoaderError,
  type LoaderState,
} from './DataLoader.js';
export {
  type Dataset,
  featureSizeOf,
  InMemoryDataset,
  type InMemoryDatasetInit,
  labelSizeOf,
  sliceDataset,
} from './Dataset.js';
export { DatasetError, type DatasetErrorCode, isDatasetError } from './DatasetError.js';
export {
  type DefaultDatasets,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  hasMnistFiles,
  loadDefaultDataset,
  loadFashionMnist,
  loadMnistFormat,
  type TrainTestDatasets,
} from './FashionMnist.js';
export {
  IDX_MAX_BYTES,
  IDX_MAX_DIMENSIONS,
  type IdxArray,
  type IdxDatasetOptions,
  type IdxDataType,
  idxDataset,
  parseIdx,
  readIdxDataset,
  readIdxFile,
  serializeIdx,
  writeIdxFile,
} from './Idx.js';
export {
  CharTokenizer,
  DEFAULT_TEXT_CORPUS,
  readTextCorpus,
  sequenceDataset,
  TEXT_CORPUS_MAX_BYTES,
  TEXT_TEST_FRACTION,
  TEXT_VOCABULARY_MAX,
  type TextCorpus,
  textCorpus,
} from './TextCorpus.js';
export {
  generateTinyDataset,
  TINY_DATASET_CLASSES,
  TINY_DATASET_DIR,
  TINY_DATASET_IMAGE_SIDE,
  type TinyDatasetOptions,
  type TinySplit,
  writeTinyDataset,
} from './TinyDataset.js';
