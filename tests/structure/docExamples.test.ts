/**
 * Every `@example` in a doc comment under src/ is a complete program (its own imports, from
 * `zbmd` or `zbmd/<layer>` as a user writes them, and `node:assert/strict` for what it shows),
 * and this test runs each one as written: it extracts the fenced block from the source, writes it
 * to a module under tests/.doc-examples/ (vitest maps `zbmd` to src/), and imports it. An example
 * that throws, or whose assertion fails, fails here with the file and line it came from.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, 'tests', '.doc-examples');

interface DocExample {
  readonly file: string;
  readonly line: number;
  readonly code: string;
}

async function sourceFiles(directory: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts')) files.push(path);
  }
  return files.sort();
}

/** The fenced ```ts block after each `@example` tag of each doc comment in `text`. */
function extractExamples(file: string, text: string): DocExample[] {
  const examples: DocExample[] = [];
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const lines = comment[0].split('\n').map((line) => line.replace(/^\s*\*? ?/, ''));
    const firstLine = text.slice(0, comment.index).split('\n').length;
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]?.startsWith('@example')) continue;
      const open = lines.findIndex((line, j) => j > i && line.trim() === '```ts');
      const close = lines.findIndex((line, j) => j > open && line.trim() === '```');
      if (open < 0 || close < 0)
        throw new Error(`${file}:${firstLine + i}: @example without a \`\`\`ts block`);
      examples.push({ file, line: firstLine + open + 1, code: lines.slice(open + 1, close).join('\n') });
    }
  }
  return examples;
}

const files = await sourceFiles(join(root, 'src'));
const examples: DocExample[] = [];
for (const path of files)
  examples.push(...extractExamples(relative(root, path), await readFile(path, 'utf8')));

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('doc-comment examples', () => {
  it('are found, and each is a complete program that imports what it uses', () => {
    expect(examples.length).toBeGreaterThanOrEqual(40);
    for (const example of examples)
      expect(/^import /m.test(example.code), `${example.file}:${example.line} has no import`).toBe(true);
  });

  it('extraction takes the fenced block after the tag, not the prose', () => {
    const text = [
      '/**',
      ' * Prose.',
      ' * @example',
      ' * Words.',
      ' * ```ts',
      ' * f();',
      ' * ```',
      ' */',
    ].join('\n');
    expect(extractExamples('x.ts', text)).toEqual([{ file: 'x.ts', line: 6, code: 'f();' }]);
  });

  for (const [index, example] of examples.entries()) {
    it(`${example.file}:${example.line} runs`, async () => {
      const path = join(out, `${index}-${example.file.replaceAll(/[/.]/g, '_')}.ts`);
      await writeFile(path, `// from ${example.file}:${example.line}\n${example.code}\nexport {};\n`);
      await import(path);
    });
  }
});
