// Builds the browser bundle: dist/browser/musicgen.js (ES module) plus lazily loaded chunks (the audio
// decoders, which are only fetched when a melody / continuation clip is decoded).
//
//   npm run build:browser        (embeds the shaders first, then runs this)
//   node tools/build-browser.mjs [--outdir dist/browser] [--no-minify] [--quiet]
//
// The library is written to run in Node and in the browser from the same source. Node-only code is reached
// through dynamic imports whose module names live in variables (src/pipeline.ts: ./io/hub.js, ./io/file-source.js;
// src/device.ts: webgpu), which esbuild leaves alone. This script checks afterwards that no Node built-in
// (`node:*`, `fs`, `path`, ...) or Node-only package made it into the output, and fails the build if one did.
//
// audio-decode lists optional codec packages (@audio/decode-ape, -mpc, ...) that npm may not have installed;
// those resolve to a stub that rejects with a clear message when such a file is decoded. So do the codecs outside
// the formats the library documents (src/audio/decode.ts SUPPORTED_FORMATS): tracker modules, WMA, DTS, AC-3, …
// would add ~1.5 MB (compressed) to the package for files nobody sends as a melody. Node still decodes them all.

import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const opts = { outdir: join(ROOT, 'dist', 'browser'), minify: true, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--outdir') opts.outdir = resolve(argv[++i]);
    else if (a === '--no-minify') opts.minify = false;
    else if (a === '--quiet') opts.quiet = true;
    else throw new Error(`build-browser: unknown argument ${a}`);
  }
  return opts;
}

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
/** Packages that only make sense in Node; finding one in the browser graph is a bug. */
const NODE_ONLY_PACKAGES = ['webgpu', 'tar', 'commander', 'cli-progress'];

/** The audio-decode codecs the browser bundle carries: WAV, MP3, FLAC, OGG/Vorbis, Opus, AAC/M4A, AIFF, CAF, WebM. */
const BROWSER_CODECS = new Set(['wav', 'mp3', 'flac', 'vorbis', 'opus', 'aac', 'mp4', 'aiff', 'caf', 'webm'].map((c) => `@audio/decode-${c}`));

/** Other codecs, and optional ones that are not installed, resolve to a stub that throws when used. */
const missingOptional = {
  name: 'missing-optional-codecs',
  setup(b) {
    const req = createRequire(join(ROOT, 'node_modules', '@audio', 'decode', 'package.json'));
    b.onResolve({ filter: /^@audio\/decode-/ }, (args) => {
      if (!BROWSER_CODECS.has(args.path)) return { path: args.path, namespace: 'missing-codec', pluginData: 'is not part of the browser bundle' };
      try {
        req.resolve(args.path);
        return undefined; // installed: bundle it normally
      } catch {
        return { path: args.path, namespace: 'missing-codec', pluginData: 'is not installed' };
      }
    });
    b.onLoad({ filter: /.*/, namespace: 'missing-codec' }, (args) => ({
      contents:
        `const e = () => { throw new Error(${JSON.stringify(`${args.path} ${args.pluginData}, so this audio format cannot be decoded here`)}); };\n` +
        'export default e;\n',
      loader: 'js',
    }));
  },
};

/** Fails resolution of Node built-ins and Node-only packages with the importer named, instead of shimming them. */
const noNode = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      const p = args.path;
      const pkg = p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0];
      if (NODE_BUILTINS.has(p) || NODE_BUILTINS.has(pkg) || NODE_ONLY_PACKAGES.includes(pkg)) {
        return { errors: [{ text: `Node-only module "${p}" imported by ${relative(ROOT, args.importer)} would end up in the browser bundle` }] };
      }
      return undefined;
    });
  },
};

function listJs(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listJs(p));
    else if (name.endsWith('.js')) out.push(p);
  }
  return out;
}

/** Static scan of the output for anything that would load a Node module. Returns human-readable problems. */
export function scanForNode(dir) {
  const problems = [];
  const patterns = [
    // everything is bundled, so any import of a bare or node: specifier left in the output is a bug
    /\bfrom\s*["']((?!\.{1,2}\/|https?:)[^"']+)["']/g,
    /\bimport\s*\(\s*["']((?!\.{1,2}\/|https?:)[^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']((?:node:)?(?:fs|path|os|url|crypto|child_process|worker_threads|stream|util|module|zlib|http|https|net)(?:\/[^"']*)?)["']\s*\)/g,
  ];
  for (const file of listJs(dir)) {
    const text = readFileSync(file, 'utf8');
    for (const re of patterns) {
      for (const m of text.matchAll(re)) problems.push(`${relative(ROOT, file)}: ${m[0].slice(0, 80)}`);
    }
  }
  return problems;
}

export async function buildBrowser(options = {}) {
  const opts = { ...parseArgs([]), ...options };
  if (!existsSync(join(ROOT, 'src', 'wgsl.generated.ts'))) {
    throw new Error('src/wgsl.generated.ts is missing: run `node tools/embed-shaders.mjs` first (npm run build:browser does)');
  }
  rmSync(opts.outdir, { recursive: true, force: true });
  mkdirSync(opts.outdir, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { musicgen: join(ROOT, 'src', 'index.ts') },
    outdir: opts.outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome113'],
    mainFields: ['browser', 'module', 'main'],
    conditions: ['browser', 'import'],
    chunkNames: 'chunks/[name]-[hash]',
    sourcemap: true,
    // Whitespace and names only: syntax minification would fold `const moduleName = 'webgpu'` (src/device.ts) into a
    // literal import("webgpu"), which bundlers consuming this file would then try to resolve.
    minifyWhitespace: opts.minify,
    minifyIdentifiers: opts.minify,
    minifySyntax: false,
    legalComments: 'linked',
    metafile: true,
    logLevel: opts.quiet ? 'error' : 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [missingOptional, noNode],
  });
  const problems = scanForNode(opts.outdir);
  if (problems.length) {
    throw new Error(`build-browser: the bundle still refers to Node modules:\n  ${problems.join('\n  ')}`);
  }
  writeFileSync(join(opts.outdir, 'meta.json'), JSON.stringify(result.metafile));
  const main = join(opts.outdir, 'musicgen.js');
  if (!opts.quiet) {
    const files = listJs(opts.outdir);
    const total = files.reduce((s, f) => s + statSync(f).size, 0);
    console.log(
      `build-browser: ${relative(ROOT, main)} ${(statSync(main).size / 1024).toFixed(0)} KiB ` +
        `(+${files.length - 1} lazy chunks, ${(total / 1024 / 1024).toFixed(1)} MiB in all)`,
    );
  }
  return { outdir: opts.outdir, main, metafile: result.metafile };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildBrowser(parseArgs(process.argv.slice(2))).catch((e) => {
    console.error(e.message ?? e);
    process.exit(1);
  });
}
