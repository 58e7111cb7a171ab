#!/usr/bin/env node
// The mutation check: plants each known bug of scripts/mutants.json, one at a time, in a copy of
// dist/ (a temp directory; the build itself is never touched) and runs the simulator's scenarios
// on it until one fails. A mutant is caught when a seed fails on the copy AND the same seed
// passes on the unpatched build (so a flaky or already failing scenario cannot count as a catch).
//
//   npm run mutants                       # every mutant, 1000 seeds each
//   node scripts/mutants.mjs --seeds 100 --jobs 2 --only fsync-skipped,ack-before-write --json
//   node scripts/mutants.mjs --catalog other.json      # another list of patches
//   node scripts/mutants.mjs --check                   # only check that every patch applies
//
// Exit code: 0 when every mutant is caught, 1 when one survives, 2 for a catalog or patch error
// (a patch whose text is not found, or found twice, is an error: re-target it after a refactor).
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const worker = join(root, 'scripts', 'mutant-worker.mjs');
const LIMITS = { seedsMax: 100_000, jobsMax: 16, timeoutSMax: 3600 };

class MutantsError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MutantsError';
  }
}

function parseArguments(argv) {
  const options = {
    seeds: 1000,
    jobs: 1,
    only: undefined,
    json: false,
    timeoutS: 240,
    check: false,
    catalog: join(root, 'scripts', 'mutants.json'),
  };
  for (let index = 0; index < argv.length; index++) {
    const flag = argv[index];
    const value = () => {
      const next = argv[++index];
      if (next === undefined) throw new MutantsError(`${flag} needs a value`);
      return next;
    };
    const integer = (text, max) => {
      const number = Number(text);
      if (!Number.isInteger(number) || number < 1 || number > max)
        throw new MutantsError(`${flag}: expected an integer in [1, ${max}], got '${text}'`);
      return number;
    };
    if (flag === '--seeds') options.seeds = integer(value(), LIMITS.seedsMax);
    else if (flag === '--jobs') options.jobs = integer(value(), LIMITS.jobsMax);
    else if (flag === '--timeout-s') options.timeoutS = integer(value(), LIMITS.timeoutSMax);
    else if (flag === '--only') options.only = value().split(',');
    else if (flag === '--catalog') options.catalog = resolve(value());
    else if (flag === '--json') options.json = true;
    else if (flag === '--check') options.check = true;
    else throw new MutantsError(`unknown option '${flag}' (use --seeds N, --jobs N, --timeout-s N, --only a,b, --catalog FILE, --check, --json)`);
  }
  return options;
}

/** Reads the catalog and checks every entry field by field. */
function loadCatalog(path, only) {
  const catalog = JSON.parse(readFileSync(path, 'utf8'));
  if (!Array.isArray(catalog.mutants)) throw new MutantsError(`${path}: 'mutants' must be an array`);
  const ids = new Set();
  for (const [index, mutant] of catalog.mutants.entries()) {
    const where = `${path}: mutants[${index}]`;
    for (const field of ['id', 'description', 'file', 'search', 'replace'])
      if (typeof mutant[field] !== 'string' || (field !== 'replace' && mutant[field] === ''))
        throw new MutantsError(`${where}.${field}: expected a non-empty string`);
    if (!/^[a-z0-9-]{1,64}$/.test(mutant.id)) throw new MutantsError(`${where}.id: lowercase words joined by '-'`);
    if (ids.has(mutant.id)) throw new MutantsError(`${where}.id: '${mutant.id}' is listed twice`);
    ids.add(mutant.id);
    if (!Array.isArray(mutant.scenarios) || mutant.scenarios.length === 0 || !mutant.scenarios.every((s) => typeof s === 'string'))
      throw new MutantsError(`${where}.scenarios: expected a non-empty array of scenario names`);
  }
  if (only === undefined) return catalog.mutants;
  for (const id of only) if (!ids.has(id)) throw new MutantsError(`--only: no mutant '${id}' (known: ${[...ids].join(', ')})`);
  return catalog.mutants.filter((mutant) => only.includes(mutant.id));
}

/** `search` as a pattern where every run of whitespace matches any run of whitespace. */
function patternOf(search) {
  const parts = search.trim().split(/\s+/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(parts.join('\\s+'), 'g');
}

/** The patched text of the mutant's file in `distRoot`; a target found 0 or 2+ times is an error. */
function patched(mutant, distRoot) {
  const target = join(distRoot, 'src', mutant.file);
  if (!existsSync(target)) throw new MutantsError(`${mutant.id}: dist/src/${mutant.file} does not exist`);
  const text = readFileSync(target, 'utf8');
  const matches = text.match(patternOf(mutant.search)) ?? [];
  if (matches.length !== 1) {
    throw new MutantsError(
      `${mutant.id}: the patch's text ${matches.length === 0 ? 'is not found' : `is found ${matches.length} times`} in dist/src/${mutant.file}: ${JSON.stringify(mutant.search)} (re-target it in scripts/mutants.json)`,
    );
  }
  return text.replace(patternOf(mutant.search), () => mutant.replace);
}

/** A temp copy of dist/ (with package.json and node_modules beside it) with the patch applied. */
function plant(mutant) {
  const text = patched(mutant, join(root, 'dist'));
  const directory = mkdtempSync(join(tmpdir(), `zbmd-mutant-${mutant.id}-`));
  cpSync(join(root, 'dist', 'src'), join(directory, 'dist', 'src'), { recursive: true });
  cpSync(join(root, 'package.json'), join(directory, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(directory, 'node_modules'), 'dir');
  writeFileSync(join(directory, 'dist', 'src', mutant.file), text);
  return directory;
}

/** Runs the worker; resolves with its JSON line, or { hung } when it ran past the limit. */
function runWorker(args, timeoutS) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [worker, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      if (signal === 'SIGKILL') return resolvePromise({ hung: true });
      try {
        resolvePromise(JSON.parse(line));
      } catch {
        resolvePromise({ crashed: true, code, stderr: stderr.slice(-2000) });
      }
    });
  });
}

async function checkMutant(mutant, options) {
  const started = performance.now();
  const directory = plant(mutant);
  try {
    const run = await runWorker(['run', join(directory, 'dist'), String(options.seeds), mutant.scenarios.join(',')], options.timeoutS);
    const seconds = (performance.now() - started) / 1000;
    if (run.hung) return { ...summary(mutant), status: 'caught', how: `hung (killed after ${options.timeoutS} s)`, seconds };
    if (run.crashed) return { ...summary(mutant), status: 'caught', how: `the worker crashed (exit ${run.code})`, seconds, detail: run.stderr };
    if (!run.caught) return { ...summary(mutant), status: 'survived', seedsRun: run.seedsRun, seconds };
    // the same seed must pass without the mutant, or the catch proves nothing
    const control = await runWorker(['replay', join(root, 'dist'), run.scenario, String(run.seed)], options.timeoutS);
    if (control.ok !== true)
      return { ...summary(mutant), status: 'survived', how: `seed ${run.seed} of ${run.scenario} fails without the mutant too`, seconds };
    return {
      ...summary(mutant),
      status: 'caught',
      how: `${run.scenario} seed ${run.seed}`,
      seedsRun: run.seedsRun,
      error: run.error,
      replay: `npx zbmd simulate ${run.scenario} --replay ${run.seed}`,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function summary(mutant) {
  return { id: mutant.id, description: mutant.description, file: mutant.file };
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  if (!existsSync(join(root, 'dist', 'src', 'fault', 'index.js')))
    throw new MutantsError('dist/ is not built: run `npm run build` first');
  const mutants = loadCatalog(options.catalog, options.only);
  // every patch must apply before anything runs: a stale target fails the check at once
  for (const mutant of mutants) patched(mutant, join(root, 'dist'));
  if (options.check) {
    console.log(`mutants: all ${mutants.length} patches apply to dist/ exactly once`);
    return 0;
  }
  const started = performance.now();
  const results = new Array(mutants.length);
  let next = 0;
  const lane = async () => {
    while (next < mutants.length) {
      const index = next++;
      results[index] = await checkMutant(mutants[index], options);
      if (!options.json) printResult(results[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, mutants.length) }, lane));
  const caught = results.filter((result) => result.status === 'caught').length;
  const seconds = (performance.now() - started) / 1000;
  const report = { seeds: options.seeds, planted: results.length, caught, survived: results.length - caught, seconds, results };
  if (options.json) console.log(JSON.stringify(report));
  else
    console.log(
      `mutants: ${caught} of ${results.length} caught within ${options.seeds} seeds each, ${report.survived} survived; ${seconds.toFixed(1)} s`,
    );
  return report.survived === 0 ? 0 : 1;
}

function printResult(result) {
  const where = result.status === 'caught' ? `${result.how}${result.seedsRun === undefined ? '' : ` (${result.seedsRun} seeds)`}` : result.how ?? `after ${result.seedsRun} seeds`;
  console.log(`${result.status.padEnd(8)} ${result.id.padEnd(34)} ${where}; ${result.seconds.toFixed(1)} s`);
  if (result.error !== undefined) console.log(`         ${result.error}`);
}

main().then(
  (code) => process.exit(code),
  (error) => {
    if (!(error instanceof MutantsError) && !(error instanceof SyntaxError)) throw error;
    console.error(`mutants: ${error.message}`);
    process.exit(2);
  },
);
