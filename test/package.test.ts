// The package as a user gets it: `npm pack` (prepack builds dist/node and dist/browser), `npm install` of the
// tarball in an empty ES-module project, then what that project can do: import it in Node, type-check a strict
// TypeScript consumer against the shipped declarations, run `npx musicgen generate` and `npx musicgen serve`.
// npm resolves the tarball's dependencies from its cache first (`npm ci` filled it); CI also has the registry.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const TINY = join(ROOT, 'test', 'fixtures', 'models', 'text-mono');
const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackedFile { path: string; size: number }

describe('the npm package: pack, install in an empty project, use', function () {
  this.timeout(900_000);
  let tmp: string;
  let consumer: string;
  let packed: { filename: string; size: number; files: PackedFile[] };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'mg-package-'));
    const { stdout } = await run(NPM, ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT, maxBuffer: 64 << 20 });
    // npm prints the prepack script's output before the JSON
    packed = (JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as typeof packed[])[0];
    consumer = join(tmp, 'consumer');
    await mkdir(consumer);
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const typesNode = (JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;
    await run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, packed.filename), `@types/node@${typesNode}`], { cwd: consumer, maxBuffer: 64 << 20 });
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('ships what runs and nothing else (no sources, fixtures, weights or source maps)', () => {
    const paths = packed.files.map((f) => f.path);
    for (const p of ['dist/node/index.js', 'dist/node/index.d.ts', 'dist/node/cli/main.js', 'dist/browser/musicgen.js', 'web/index.html', 'web/app.js', 'README.md', 'LICENSE', 'package.json']) {
      assert.ok(paths.includes(p), `${p} is in the tarball`);
    }
    const stray = paths.filter((p) => !/^(dist\/node\/.*\.(js|d\.ts)|dist\/browser\/.*\.js|web\/[^/]+|README\.md|LICENSE|package\.json)$/.test(p));
    assert.deepEqual(stray, []);
    // prepack builds from clean: nothing compiled from a source file that no longer exists
    const orphans = paths.filter((p) => p.startsWith('dist/node/'))
      .map((p) => p.replace(/^dist\/node\//, 'src/').replace(/\.d\.ts$|\.js$/, '.ts'))
      .filter((src) => !existsSync(join(ROOT, src)));
    assert.deepEqual(orphans, []);
    // 2.4 MB today, 1.4 MB of it the resampler's wasm in the browser bundle; the fixtures alone were 21 MB
    assert.ok(packed.size < 3 * 2 ** 20, `tarball ${(packed.size / 2 ** 20).toFixed(2)} MiB`);
  });

  it('imports in Node, the browser entry included', async () => {
    const code = [
      "import { MusicGen, encodeWav } from 'musicgen-webgpu';",
      "import { createRequire } from 'node:module';",
      "const wav = encodeWav([new Float32Array(8)], 32000);",
      "const browser = import.meta.resolve('musicgen-webgpu/browser');",
      "console.log(JSON.stringify({ load: typeof MusicGen.load, wav: wav.length, browser }));",
    ].join('\n');
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: consumer });
    const got = JSON.parse(stdout) as { load: string; wav: number; browser: string };
    assert.equal(got.load, 'function');
    assert.equal(got.wav, 44 + 16);
    assert.ok(existsSync(fileURLToPath(got.browser)), `${got.browser} exists`);
  });

  it('type-checks a strict TypeScript consumer (nodenext, types: ["node"]) with no errors', async () => {
    await writeFile(join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: ['node'] },
      files: ['use.ts'],
    }));
    await writeFile(join(consumer, 'use.ts'), [
      "import { MusicGen, initRuntime, type GenerateRequest, type GenerateResult } from 'musicgen-webgpu';",
      'export async function make(dir: string): Promise<GenerateResult> {',
      '  const rt = await initRuntime();',
      '  const device: GPUDevice = rt.device;',
      '  device.label = "musicgen";',
      "  const request: GenerateRequest = { prompt: 'calm piano', duration: 1 };",
      '  return (await MusicGen.load(dir)).generate(request);',
      '}',
    ].join('\n'));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
    assert.ok(!('failed' in r), `tsc reported:\n${r.stdout}`);
  });

  it('`npx musicgen generate` writes a WAV, and stderr has no Dawn limit notes', async () => {
    const out = join(consumer, 'out.wav');
    // stderr through a pipe (see test/device.test.ts); the exit status of musicgen, not of cat
    const cmd = `set -o pipefail 2>/dev/null; npx musicgen generate --model ${JSON.stringify(TINY)} --prompt 'calm piano' --duration 0.2 --seed 1 --output out.wav 2>&1 | cat`;
    const { stdout } = await run('/bin/bash', ['-c', cmd], { cwd: consumer });
    assert.match(stdout, /wrote out\.wav \(0\.20 s, 1 channel\(s\), 32000 Hz\)/);
    assert.doesNotMatch(stdout, /artificially reduced/);
    const wav = await readFile(out);
    assert.equal(wav.subarray(0, 4).toString(), 'RIFF');
    assert.equal(wav.readUInt32LE(24), 32000);
    assert.equal(wav.readUInt32LE(40), 6400 * 2, 'data bytes: 0.2 s of 16-bit mono');
  });

  it('`npx musicgen` lists the commands; an unknown one exits 2', async () => {
    const { stdout } = await run('npx', ['musicgen', '--help'], { cwd: consumer });
    for (const c of ['generate', 'finetune', 'serve', 'probe', 'bench']) assert.match(stdout, new RegExp(`^  ${c} `, 'm'));
    await assert.rejects(run('npx', ['musicgen', 'nope'], { cwd: consumer }), (e: { code: number; stderr: string }) => e.code === 2 && /unknown command 'nope'/.test(e.stderr));
  });

  it('`npx musicgen serve` serves the page and the browser bundle from the installed package', async () => {
    const child = spawn('npx', ['musicgen', 'serve', '--model', TINY, '--port', '0'], { cwd: consumer, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    try {
      let err = '';
      const base = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
          const m = /listening on (http:\/\/\S+?)\/? /.exec(err);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${err}`)));
      });
      let info: { status: string; browser_bundle: string | null };
      for (;;) {
        info = await (await fetch(`${base}/model-info`)).json() as typeof info;
        if (info.status !== 'STARTING') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(info.browser_bundle, '/browser/musicgen.js');
      const bundle = await fetch(`${base}${info.browser_bundle}`);
      assert.equal(bundle.status, 200);
      assert.match(await bundle.text(), /MusicGen/);
      const page = await fetch(`${base}/`, { headers: { Accept: 'text/html' } });
      assert.match(await page.text(), /<title>MusicGen<\/title>/);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  });
});
