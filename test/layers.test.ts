// The layer order of src/, checked on every import: a module may import its own layer or any layer below it,
// never one above. Bottom to top:
//   base     io/, audio/, dtype.ts, quant.ts (bytes, files, audio, number formats: no GPU)
//   runtime  runtime.ts, device.ts, wgsl.generated.ts
//   core     tensor.ts, autograd.ts
//   kernels  kernels/, ops.ts
//   model    model/
//   app      train/, pipeline.ts, inputs.ts
//   entry    cli/, server/, bench/, index.ts
// A new file or folder must be placed in LAYERS before it can be imported.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** [layer name, paths under src/ (a folder ends with '/')], bottom first. */
const LAYERS: readonly (readonly [string, readonly string[]])[] = [
  ['base', ['io/', 'audio/', 'dtype.ts', 'quant.ts']],
  ['runtime', ['runtime.ts', 'device.ts', 'wgsl.generated.ts']],
  ['core', ['tensor.ts', 'autograd.ts']],
  ['kernels', ['kernels/', 'ops.ts']],
  ['model', ['model/']],
  ['app', ['train/', 'pipeline.ts', 'inputs.ts', 'separate.ts']],
  ['entry', ['cli/', 'server/', 'bench/', 'index.ts']],
];

function layerOf(rel: string): number {
  const i = LAYERS.findIndex(([, paths]) => paths.some((p) => (p.endsWith('/') ? rel.startsWith(p) : rel === p)));
  return i;
}

export interface Violation {
  where: string;
  message: string;
}

/** Relative imports in `text` (static, re-exports, dynamic and `typeof import`), with their 1-based lines. */
export function relativeImports(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*)\1/g;
  for (const m of text.matchAll(re)) {
    const line = text.slice(0, m.index).split('\n').length;
    const lineText = text.split('\n')[line - 1]!.trim();
    if (lineText.startsWith('//') || lineText.startsWith('*')) continue; // prose about an import
    out.push({ spec: m[2]!, line });
  }
  return out;
}

/** Every import of `rel` (a path under src/) that runs upward or leaves the layer table. */
export function checkFile(rel: string, text: string): Violation[] {
  const from = layerOf(rel);
  if (from < 0) return [{ where: `src/${rel}:1`, message: 'is in no layer: add its path to LAYERS in test/layers.test.ts' }];
  const problems: Violation[] = [];
  for (const { spec, line } of relativeImports(text)) {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec)).replace(/\.js$/, '.ts');
    const where = `src/${rel}:${line}`;
    if (target.startsWith('../')) {
      problems.push({ where, message: `imports ${spec}, outside src/` });
      continue;
    }
    const to = layerOf(target);
    if (to < 0) problems.push({ where, message: `imports src/${target}, which is in no layer` });
    else if (to > from) {
      problems.push({
        where,
        message: `imports src/${target}: ${LAYERS[from]![0]} (${rel}) must not import the higher layer ${LAYERS[to]![0]}`,
      });
    }
  }
  return problems;
}

function sourceFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(path.join(dir, e.name), `${prefix}${e.name}/`)
      : e.name.endsWith('.ts')
        ? [`${prefix}${e.name}`]
        : [],
  );
}

describe('layers: no import runs upward', () => {
  it('finds upward, multi-line, dynamic and unplaced imports (the check itself)', () => {
    const text = [
      "import { a } from '../tensor.js';",
      'import {',
      '  b,',
      "} from '../model/lm.js';",
      "// a comment naming import('../cli/x.js') is prose",
      "const m = (await import('../train/loop.js')) as typeof import('../train/loop.js');",
      "export * from '../nowhere/x.js';",
    ].join('\n');
    const found = checkFile('kernels/x.ts', text).map((v) => `${v.where} ${v.message}`);
    assert.deepEqual(found, [
      'src/kernels/x.ts:4 imports src/model/lm.ts: kernels (kernels/x.ts) must not import the higher layer model',
      'src/kernels/x.ts:6 imports src/train/loop.ts: kernels (kernels/x.ts) must not import the higher layer app',
      'src/kernels/x.ts:6 imports src/train/loop.ts: kernels (kernels/x.ts) must not import the higher layer app',
      'src/kernels/x.ts:7 imports src/nowhere/x.ts, which is in no layer',
    ]);
    assert.equal(checkFile('tensor.ts', "import { f16ToF32 } from './dtype.js';").length, 0);
  });

  it('holds for every file in src/', () => {
    const problems = sourceFiles(SRC).flatMap((rel) => checkFile(rel, readFileSync(path.join(SRC, rel), 'utf8')));
    assert.ok(problems.length === 0, `upward imports:\n${problems.map((p) => `  ${p.where}: ${p.message}`).join('\n')}`);
  });
});
