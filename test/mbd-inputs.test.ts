// Multi-band diffusion as users ask for it: `decoder: 'mbd'` in the library, `--decoder mbd --mbd FILE` on the
// CLI, `multi_band_diffusion: true` on the server (OpenAPI included). The decoder's numbers are checked against
// audiocraft in test/model/mbd.test.ts; here, that each entry point reaches it and is checked.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import decodeAudio from 'audio-decode';
import { gpu, FIXTURES } from './helpers.js';
import { MusicGen, InputError } from '../src/pipeline.js';
import { gaussianNoise } from '../src/model/mbd.js';
import { request, startServer, dataUriBytes, wavInfo } from './server/util.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const TEXT = join(ROOT, 'weights', 'tiny-musicgen');
const TH = join(FIXTURES, 'mbd', 'tiny.th');
const run = promisify(execFile);

describe('multi-band diffusion inputs', function () {
  this.timeout(300_000);
  before(() => gpu());

  it('library: decoder "mbd" decodes the codes with MBD (tokens_to_wav with the seed\'s noise); bad values name the option', async () => {
    const mg = await MusicGen.load(TEXT, { mbd: TH });
    try {
      await assert.rejects(mg.generate({ prompt: 'x', decoder: 'diffusion' as 'mbd' }), (e: unknown) => e instanceof InputError && e.field === 'decoder' && /encodec, mbd/.test(e.message));
      const req = { prompt: 'calm piano', duration: 0.06, seed: 11, normalization: 'none' as const };
      const plain = await mg.generate(req);
      const res = await mg.generate({ ...req, decoder: 'mbd' });
      assert.deepEqual(res.codes, plain.codes, 'same tokens; only the decoder differs');
      assert.equal(res.audio[0][0].length, plain.audio[0][0].length);
      // what MultiBandDiffusion.tokens_to_wav gives for these codes with the noise the seed draws
      const mbd = await mg.multiBandDiffusion();
      const want = await mbd.decode(mg.model.encodec, res.codes[0], res.numCodebooks, res.frames, 1, gaussianNoise(11));
      assert.deepEqual(res.audio[0][0], want.audioEq);
      assert.notDeepEqual(res.audio[0][0], plain.audio[0][0]);
    } finally {
      mg.dispose();
    }
  });

  it('CLI: --decoder mbd --mbd FILE writes the MBD decode; a bad --decoder exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-mbd-'));
    const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'generate.ts'), ...args], { cwd: ROOT });
    const out = join(dir, 'mbd.wav');
    await cli(['--model', TEXT, '--prompt', 'calm piano', '--duration', '0.06', '--seed', '2', '--decoder', 'mbd', '--mbd', TH, '--output', out]);
    const wav = await decodeAudio(await readFile(out));
    assert.equal(wav.channelData[0].length, 3 * 640);
    await assert.rejects(cli(['--model', TEXT, '--prompt', 'x', '--decoder', 'vocos', '--output', join(dir, 'x.wav')]), (e: { stderr: string; code: number }) => {
      assert.match(e.stderr, /--decoder/);
      assert.equal(e.code, 2);
      return true;
    });
    assert.deepEqual((await readdir(dir)).sort(), ['mbd.wav']);
  });

  it('server: multi_band_diffusion is a boolean input (default false) and true decodes with MBD', async () => {
    const s = await startServer({ mbd: TH });
    try {
      const schema = await request(s.base, 'GET', '/openapi.json');
      const props = (schema.body.components as { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> }).schemas.Input.properties;
      assert.equal(props.multi_band_diffusion.type, 'boolean');
      assert.equal(props.multi_band_diffusion.default, false);
      const input = { prompt: 'calm piano', duration: 0.06, seed: 4, normalization_strategy: 'none' };
      const a = await request(s.base, 'POST', '/predictions', { input });
      const b = await request(s.base, 'POST', '/predictions', { input: { ...input, multi_band_diffusion: true } });
      assert.equal(b.body.status, 'succeeded', String(b.body.error));
      const wa = dataUriBytes(a.body.output).bytes;
      const wb = dataUriBytes(b.body.output).bytes;
      assert.equal(wavInfo(wb).seconds, wavInfo(wa).seconds);
      assert.notDeepEqual(wb, wa);
      const bad = await request(s.base, 'POST', '/predictions', { input: { ...input, multi_band_diffusion: 'maybe' } });
      assert.equal(bad.status, 422);
    } finally {
      await s.app.close();
    }
  });
});
