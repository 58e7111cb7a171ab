/**
 * No import circles in src/: a module graph with a cycle makes load order matter (a class can be
 * undefined when a module that depends on it runs first) and hides layering mistakes. Edges are
 * the imports that exist at run time: static `import`/`export ... from` that are not `type`-only,
 * and dynamic `import()`. Type-only imports are erased and do not count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const STATIC = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.{1,2}\/[^']+)'/gm;
const DYNAMIC = /\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

/** The run-time imports of one file, as paths relative to the repository. */
function runtimeImports(path: string, text: string): string[] {
  const targets: string[] = [];
  const resolve = (specifier: string): string =>
    relative(root, normalize(join(dirname(path), specifier.replace(/\.js$/, '.ts'))));
  for (const match of text.matchAll(STATIC)) {
    const [statement] = match;
    const typeOnly =
      match[2] !== undefined || /^\s*(import|export)\s*\{\s*(type\s+[^,}]+,?\s*)+\}/.test(statement);
    if (!typeOnly) targets.push(resolve(match[3]));
  }
  for (const match of text.matchAll(DYNAMIC)) targets.push(resolve(match[1]));
  return targets;
}

/** Strongly connected components of more than one file (Tarjan), each sorted. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, index.get(next)!));
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1) found.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

/** Circles known today, each to be removed by the work named beside it (not to grow). */
const KNOWN: readonly (readonly string[])[] = [];

describe('public entry points', () => {
  it('zbmd/ml lists its exports by name (no export *)', async () => {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(new URL('../../src/ml/index.ts', import.meta.url), 'utf8');
    expect(text.match(/^export \* from .*$/gm) ?? []).toEqual([]);
  });
});

describe('module graph', () => {
  it('finds a circle when there is one (the checker itself)', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(cycles(graph)).toEqual([['a', 'b', 'c']]);
    expect(
      runtimeImports(
        join(root, 'src/x/y.ts'),
        "import type { A } from './a.js';\nimport { type B } from './b.js';\nimport { C } from '../c.js';\nconst d = await import('./d.js');",
      ),
    ).toEqual(['src/c.ts', 'src/x/d.ts']);
  });

  it('src/ has no import circles beyond the known ones', () => {
    const graph = new Map<string, string[]>();
    for (const path of sourceFiles(join(root, 'src'))) {
      graph.set(relative(root, path), runtimeImports(path, readFileSync(path, 'utf8')));
    }
    const known = new Set(KNOWN.map((members) => [...members].sort().join(' ')));
    const unexpected = cycles(graph).filter((members) => !known.has(members.join(' ')));
    expect(unexpected).toEqual([]);
  });
});
