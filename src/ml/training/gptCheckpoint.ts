/**
 * The GPT of a `zbmd train --model gpt --checkpoint-dir DIR` run, read back for sampling. The
 * manifest is checked field by field as for a resume (`readManifest`); then its `run` must name
 * the gpt model with its shape (`run.gpt`) and vocabulary (`run.vocabulary`), the parameter
 * names must be those of that GPT, and the tensors file must match its SHA-256 and hold every
 * weight with its shape (`readCheckpoint`). Each failure is a `TrainingError` saying what was
 * wrong: `no_checkpoint`, `checkpoint_invalid` (with `field`), `checkpoint_corrupt` or
 * `checkpoint_mismatch` (a checkpoint of another model).
 */
import { join } from 'node:path';
import { CharTokenizer } from '../data/TextCorpus.js';
import { checkGptConfig, Gpt, isGptConfigError } from '../nn/gpt.js';
import { MANIFEST_FILE, readCheckpoint, readManifest } from './checkpointFiles.js';
import { invalidField } from './checkpointManifest.js';
import { TrainingError } from './errors.js';

export interface GptCheckpoint {
  /** In eval mode, its weights those of the checkpoint. */
  readonly model: Gpt;
  readonly tokenizer: CharTokenizer;
  /** The step the checkpoint was taken at. */
  readonly step: number;
}

export async function loadGptCheckpoint(directory: string): Promise<GptCheckpoint> {
  const manifest = await readManifest(directory);
  const path = join(directory, MANIFEST_FILE);
  if (manifest === undefined)
    throw new TrainingError(
      'no_checkpoint',
      `${directory} holds no ${MANIFEST_FILE} (zbmd train --checkpoint-dir)`,
    );
  const run = manifest.run;
  if (run.model !== 'gpt')
    throw new TrainingError(
      'checkpoint_mismatch',
      `${path} is a checkpoint of the ${run.model} model; zbmd sample needs one of --model gpt`,
    );
  if (typeof run.vocabulary !== 'string')
    throw invalidField(path, 'run.vocabulary', run.vocabulary, 'the vocabulary of the corpus (a string)');
  let tokenizer: CharTokenizer;
  try {
    tokenizer = new CharTokenizer(run.vocabulary);
  } catch (error) {
    throw invalidField(path, 'run.vocabulary', run.vocabulary, (error as Error).message);
  }
  let model: Gpt;
  try {
    const config = checkGptConfig({ ...(run.gpt as object), vocabSize: tokenizer.size });
    model = new Gpt(config);
  } catch (error) {
    if (!isGptConfigError(error)) throw error;
    throw invalidField(path, `run.gpt.${error.field}`, run.gpt, error.message);
  }
  const named = model.namedParameters();
  const names = named.map(([name]) => name);
  if (JSON.stringify(names) !== JSON.stringify(run.parameterNames))
    throw invalidField(
      path,
      'run.parameterNames',
      run.parameterNames,
      `the parameters of that gpt (${names.length})`,
    );
  const copy = await readCheckpoint(
    directory,
    run,
    named.map(([, parameter]) => [...parameter.shape]),
  );
  named.forEach(([, parameter], index) => {
    parameter.data.set(copy.weights[index]);
  });
  return { model: model.eval(), tokenizer, step: copy.step };
}
