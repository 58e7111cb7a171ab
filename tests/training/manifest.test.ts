import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors } from '../../src/ml/safetensors.js';
import { readCheckpoint, sha256Hex } from '../../src/ml/training/checkpointFiles.js';
import { isTrainingError, MANIFEST_FILE, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

/** A run of 20 steps at batch 16 (checkpoints at 10 and 20), its manifest and both tensor files. */
let source: string;
let scratch: string;
let manifest: Record<string, any>;
let tensors: Uint8Array;
let shapes: number[][];

beforeAll(async () => {
  source = await mkdtemp(join(tmpdir(), 'zbmd-manifest-src-'));
  scratch = await mkdtemp(join(tmpdir(), 'zbmd-manifest-'));
  await train(await smallRun({ checkpointDir: source, maxSteps: 20, checkpointIntervalSteps: 10 }));
  manifest = JSON.parse(await readFile(join(source, MANIFEST_FILE), 'utf8'));
  tensors = new Uint8Array(await readFile(join(source, manifest.tensorsFile)));
  const parsed = parseSafetensors(tensors);
  shapes = manifest.run.parameterNames.map((name: string) => [...parsed.tensors[`weights.${name}`].shape]);
});

afterAll(async () => {
  await rm(source, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

type Mutation = (copy: Record<string, any>) => void;

async function resumeWith(mutate: Mutation): Promise<unknown> {
  const edited = structuredClone(manifest);
  mutate(edited);
  await writeFile(join(scratch, MANIFEST_FILE), JSON.stringify(edited));
  await copyFile(join(source, manifest.tensorsFile), join(scratch, manifest.tensorsFile));
  try {
    await train(await smallRun({ checkpointDir: scratch, resume: true, maxSteps: 30 }));
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('train: the checkpoint manifest is checked field by field', () => {
  const cases: Array<[string, Mutation]> = [
    ['microBatchSize', (m) => (m.microBatchSize = 0)],
    ['microBatchSize', (m) => (m.microBatchSize = null)],
    ['microBatchSize', (m) => (m.microBatchSize = 17)],
    ['step', (m) => (m.step = -1)],
    ['step', (m) => (m.step = 2.5)],
    ['optimizer.learningRate', (m) => (m.optimizer.learningRate = '0.001')],
    ['optimizer.stepCount', (m) => (m.optimizer.stepCount = -1)],
    ['optimizer.stepCount', (m) => (m.optimizer.stepCount = 19)],
    ['optimizer.slots', (m) => (m.optimizer.slots = [])],
    ['optimizer.parameterSteps', (m) => (m.optimizer.parameterSteps = [1])],
    [
      'optimizer.parameterSteps',
      (m) => (m.optimizer.parameterSteps = m.optimizer.parameterSteps.map((n: number) => n + 1)),
    ],
    ['optimizer.kind', (m) => (m.optimizer.kind = 'sgd')],
    ['loader.position', (m) => (m.loader.position = 16)],
    ['loader.epoch', (m) => (m.loader.epoch = 1)],
    ['optimizer', (m) => delete m.optimizer],
    ['tensorsFile', (m) => delete m.tensorsFile],
    ['tensorsFile', (m) => (m.tensorsFile = '../../etc/passwd')],
    ['deviceId', (m) => (m.deviceId = 7)],
    ['randoms', (m) => (m.randoms = [])],
    ['epochProgress.steps', (m) => (m.epochProgress.steps = 3)],
    ['modelShape.numClasses', (m) => (m.modelShape = { featureShape: [1, 28, 28], numClasses: 0 })],
    ['format', (m) => (m.format = 'pytorch')],
    ['reason', (m) => (m.reason = 42)],
  ];
  for (const [field, mutate] of cases) {
    it(`refuses a bad ${field} with checkpoint_invalid naming it: ${mutate.toString().slice(6, 60)}`, async () => {
      const error = await resumeWith(mutate);
      expect(isTrainingError(error, 'checkpoint_invalid'), String(error)).toBe(true);
      expect((error as { field?: string }).field).toBe(field);
      expect(String(error)).toContain(field);
    });
  }

  it('refuses the tensors of step 10 under the manifest of step 20', async () => {
    const older = new Uint8Array(await readFile(join(source, 'checkpoint-0000000010.safetensors')));
    await writeFile(
      join(scratch, MANIFEST_FILE),
      JSON.stringify({ ...manifest, tensorsSha256: sha256Hex(older) }),
    );
    await writeFile(join(scratch, manifest.tensorsFile), older);
    const error = await train(await smallRun({ checkpointDir: scratch, resume: true, maxSteps: 30 })).catch(
      (caught: unknown) => caught,
    );
    expect(isTrainingError(error, 'checkpoint_invalid'), String(error)).toBe(true);
    expect((error as { field?: string }).field).toBe('step');
  });

  it('an unmodified copy resumes', async () => {
    expect(await resumeWith(() => undefined)).toBeUndefined();
  });
});

/** Every value in a JSON tree, by path. */
function paths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null) return [prefix];
  return [prefix, ...Object.entries(value).flatMap(([key, inner]) => paths(inner, [...prefix, key]))];
}

function setAt(root: any, path: string[], value: unknown, remove: boolean): any {
  if (path.length === 0) return value;
  let node = root;
  for (const key of path.slice(0, -1)) node = node[key];
  if (remove) delete node[path[path.length - 1]];
  else node[path[path.length - 1]] = value;
  return root;
}

function expectTypedOrFaithful(outcome: unknown, edited: any, file: Uint8Array): void {
  if (outcome instanceof Error) {
    expect(isTrainingError(outcome), `${outcome.name}: ${outcome.message}`).toBe(true);
    return;
  }
  const copy = outcome as Awaited<ReturnType<typeof readCheckpoint>>;
  expect(copy.step).toBe(edited.step);
  expect(copy.learningRate).toBe(edited.optimizer.learningRate);
  expect(copy.optimizerStepCount).toBe(edited.optimizer.stepCount);
  expect(copy.microBatchSize).toBe(edited.microBatchSize);
  expect(copy.loader).toEqual(edited.loader);
  const parsed = parseSafetensors(file);
  copy.parameterNames.forEach((name, index) => {
    const entry = parsed.tensors[`weights.${name}`];
    expect(Buffer.from(copy.weights[index].buffer).equals(Buffer.from(entry.data))).toBe(true);
  });
}

describe('fuzz: mutated training checkpoints give the state they hold or a typed error', () => {
  it('mutated manifests (2,000 cases, in memory of the reader, on disk)', async () => {
    const all = paths(manifest);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...all),
        fc.oneof(fc.jsonValue(), fc.constantFrom(0, -1, 1e308, '', null, [], {}, 'cpu:0', 2 ** 53)),
        fc.boolean(),
        async (path, value, remove) => {
          const edited = setAt(structuredClone(manifest), path, value, remove);
          await writeFile(join(scratch, MANIFEST_FILE), JSON.stringify(edited) ?? '');
          const outcome = await readCheckpoint(scratch, manifest.run as never, shapes).catch(
            (error) => error,
          );
          expectTypedOrFaithful(outcome, edited, tensors);
        },
      ),
      { numRuns: 2000, seed: 11, interruptAfterTimeLimit: 8_000 },
    );
  }, 40_000);

  it('mutated tensor files, checksum updated so the parser is reached (300 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.nat({ max: 4096 }), byte: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.option(fc.nat({ max: tensors.length }), { nil: undefined }),
        async (edits, cut) => {
          const file = tensors.slice(0, cut ?? tensors.length);
          for (const { at, byte } of edits) if (at < file.length) file[at] = byte;
          await writeFile(join(scratch, manifest.tensorsFile), file);
          const edited = { ...manifest, tensorsSha256: sha256Hex(file) };
          await writeFile(join(scratch, MANIFEST_FILE), JSON.stringify(edited));
          const outcome = await readCheckpoint(scratch, manifest.run as never, shapes).catch(
            (error) => error,
          );
          expectTypedOrFaithful(outcome, edited, file);
        },
      ),
      { numRuns: 300, seed: 12, interruptAfterTimeLimit: 8_000 },
    );
    await copyFile(join(source, manifest.tensorsFile), join(scratch, manifest.tensorsFile));
  }, 40_000);
});
