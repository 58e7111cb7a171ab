/**
 * No import circle among the files of src/ml (the tensor core, the device dispatch, the ops and
 * the autograd engine import one way: Tensor.ts <- deviceOps.ts <- ops/* <- autograd.ts).
 * Imports erased at compile time (`import type`, `export type`) do not count; every other
 * relative import or re-export does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../src/ml');

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+'(\.[^']+)'/gm;

/** The files `file` imports at run time (relative imports that are not type-only). */
function runtimeImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(IMPORT)) {
    if (match[2] !== undefined) continue;
    const names = match[3];
    const braced = /^\{([^}]*)\}$/s.exec(names.trim());
    if (braced !== null) {
      const items = braced[1]
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
      if (items.length > 0 && items.every((item) => item.startsWith('type '))) continue;
    }
    out.push(resolve(dirname(file), match[4].replace(/\.js$/, '.ts')));
  }
  return out;
}

/** Every cycle found by a depth-first walk, each as the list of files around it. */
function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      const seen = state.get(next);
      if (seen === 'open') cycles.push([...path.slice(path.indexOf(next)), next]);
      else if (seen === undefined) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

describe('src/ml imports', () => {
  it('finds a cycle when there is one and ignores type-only imports', () => {
    const a = resolve(ROOT, 'a.ts');
    const text = [
      "import type { X } from './b.js';",
      "import { type Y, type Z } from './c.js';",
      "import { value } from './d.js';",
      "export { other } from './e.js';",
    ].join('\n');
    expect(runtimeImports(a, text).map((file) => relative(ROOT, file))).toEqual(['d.ts', 'e.ts']);
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(importCycles(graph)).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('has no import circle', () => {
    const graph = new Map<string, string[]>();
    for (const file of sourceFiles(ROOT)) graph.set(file, runtimeImports(file, readFileSync(file, 'utf8')));
    const cycles = importCycles(graph).map((cycle) => cycle.map((file) => relative(ROOT, file)).join(' -> '));
    expect(cycles).toEqual([]);
  });
});
