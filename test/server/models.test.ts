// Several models in one server (`serve --models`, Cog's `model_version`): the OpenAPI choices with the first as
// default, 422 naming the choices for a model not offered, loading on first use with the prediction's logs saying
// so while health stays READY, at most --max-loaded on the GPU (the least recently used disposed, its memory
// returned), `encode-decode` as the EnCodec round trip of input_audio, and the short names the CLIs accept.

import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav } from '../../src/audio/encode.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { openSafetensorsFile } from '../../src/io/file-source.js';
import { runtime } from '../../src/runtime.js';
import { Tensor, tidy } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { MusicGen } from '../../src/pipeline.js';
import { MODEL_VERSIONS, modelSource } from '../../src/inputs.js';
import { ModelPool, parseModels } from '../../src/server/models.js';
import { openApi30Problems } from './openapi-check.js';
import { startServer, request, dataUriBytes, wavInfo, tones, REPO, TINY, TINY_MELODY, type Running } from './util.js';
import { FIXTURES } from '../helpers.js';

const wav = (seconds: number, sr = 32000): Uint8Array => encodeWav([tones(seconds, [60, 64, 67], sr)], sr);
const dataUri = (bytes: Uint8Array): string => `data:audio/wav;base64,${Buffer.from(bytes).toString('base64')}`;

describe('server: model_version (several models, each loaded on first use)', function () {
  this.timeout(300_000);
  let s: Running;
  const predict = (input: Record<string, unknown>) => request(s.base, 'POST', '/predictions', { input });

  before(async () => {
    // melody stems are on in the server: the small random Demucs of test/fixtures/demucs stands in for htdemucs
    s = await startServer({
      model: undefined, models: JSON.stringify({ small: TINY, melody: TINY_MELODY, 'encode-decode': 'small' }), maxLoaded: 1,
      demucs: join(FIXTURES, 'demucs', 'melody44k.th'),
    });
  });
  after(async () => {
    await s?.app.close();
  });

  it('OpenAPI: model_version first, its choices the models offered, the first the default; READY with none loaded', async () => {
    const h = await request(s.base, 'GET', '/health-check');
    assert.equal(h.body.status, 'READY');
    assert.match(String((h.body.setup as { logs: string }).logs), /offering small, melody, encode-decode/);
    assert.equal(s.app.musicgen, null, 'nothing is loaded before a prediction asks for it');
    const doc = await request(s.base, 'GET', '/openapi.json');
    const schemas = (doc.body.components as { schemas: Record<string, Record<string, unknown>> }).schemas;
    const props = schemas.Input.properties as Record<string, Record<string, unknown>>;
    assert.equal(Object.keys(props)[0], 'model_version');
    assert.equal(props.model_version['x-order'], 0);
    assert.deepEqual(props.model_version.allOf, [{ $ref: '#/components/schemas/model_version' }]);
    assert.deepEqual(schemas.model_version.enum, ['small', 'melody', 'encode-decode']);
    assert.equal(props.model_version.default, 'small');
    assert.match(String(props.model_version.description), /encode-decode/);
    assert.deepEqual(openApi30Problems(doc.body), [], 'a valid OpenAPI 3.0 document');
  });

  it('a model not offered is a 422 naming the choices', async () => {
    const r = await predict({ prompt: 'x', duration: 0.1, model_version: 'stereo-melody-large' });
    assert.equal(r.status, 422);
    const d = (r.body.detail as { loc: string[]; msg: string }[])[0];
    assert.deepEqual(d.loc, ['body', 'input', 'model_version']);
    assert.match(d.msg, /permitted: 'small', 'melody', 'encode-decode'/);
  });

  it('loads on first use; at most --max-loaded stay: the least recently used is disposed and its memory returns', async () => {
    const rt = runtime();
    const input = { prompt: 'calm piano', duration: 0.2, seed: 9 };
    const a = await predict(input); // the default: small
    assert.equal(a.body.status, 'succeeded', String(a.body.error));
    assert.match(String(a.body.logs), /loading model small \(.*tiny-musicgen\)[\s\S]*model ready in/);
    // the melody model's Demucs leaves its STFT tables (n_fft 512) cached on the runtime by design
    // (src/kernels/stft.ts): made here first so they count as neither model's memory
    tidy(() => ops.stft(Tensor.zeros([1, 2048], 'f32', rt), 512, 128));
    const withSmall = rt.stats.liveBytes;
    const again = await predict({ ...input, model_version: 'small' });
    assert.doesNotMatch(String(again.body.logs), /loading model/, 'a loaded model is used as it is');
    assert.equal(again.body.output, a.body.output);
    assert.equal((await request(s.base, 'GET', '/health-check')).body.status, 'READY');

    const m = await predict({ prompt: 'strings', duration: 0.2, seed: 9, model_version: 'melody', input_audio: dataUri(wav(0.5)) });
    assert.equal(m.body.status, 'succeeded', String(m.body.error));
    assert.match(String(m.body.logs), /loading model melody[\s\S]*disposed model small \(at most 1 loaded\)/);

    // the text model, not loaded now: the melody rule is checked once it is (still a 422 to a synchronous client)
    const bad = await predict({ prompt: 'x', duration: 0.2, model_version: 'small', input_audio: dataUri(wav(0.5)) });
    assert.equal(bad.status, 422);
    assert.match(String(bad.body.logs), /disposed model melody/);
    // loaded now: refused up front, without running
    const early = await predict({ prompt: 'x', duration: 0.2, model_version: 'small', input_audio: dataUri(wav(0.5)) });
    assert.equal(early.status, 422);
    assert.match(JSON.stringify(early.body.detail), /text-only model/);
    assert.equal(early.body.id, undefined, 'refused before a job was made');

    const back = await predict(input);
    assert.equal(back.body.output, a.body.output, 'the reloaded model gives the same audio');
    assert.equal(rt.stats.liveBytes, withSmall, 'GPU memory is what small alone held: melody\'s was returned');
    assert.equal((await request(s.base, 'GET', '/model-info')).body.sample_rate, 32000);
  });

  it('encode-decode: input_audio through the EnCodec of the model it names, as the library does; input_audio required', async () => {
    const clip = wav(0.5, 44100);
    const r = await predict({ model_version: 'encode-decode', input_audio: dataUri(clip), normalization_strategy: 'peak' });
    assert.equal(r.body.status, 'succeeded', String(r.body.error));
    assert.match(String(r.body.logs), /encoded and decoded 0\.50 s/);
    const w = wavInfo(dataUriBytes(r.body.output).bytes);
    assert.deepEqual([w.sampleRate, w.channels, w.seconds], [32000, 1, 0.5]);
    const mg = await MusicGen.load(TINY);
    try {
      const lib = await mg.encodeDecode({ inputAudio: clip, normalization: 'peak' });
      assert.equal(r.body.output, dataUri(encodeWav(lib.audio, lib.sampleRate)));
      assert.equal(lib.frames, 25);
    } finally {
      mg.dispose();
    }
    const none = await predict({ model_version: 'encode-decode', prompt: 'x' });
    assert.equal(none.status, 422);
    assert.deepEqual((none.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'input_audio']);
  });
});

describe('model names', () => {
  it('short names stand for the hub repositories; --models takes names or a JSON map', async () => {
    assert.equal(modelSource('melody-large'), 'facebook/musicgen-melody-large');
    assert.equal(modelSource('stereo-melody-large'), 'facebook/musicgen-stereo-melody-large');
    assert.equal(modelSource('weights/tiny-musicgen'), 'weights/tiny-musicgen');
    assert.equal(MODEL_VERSIONS['encode-decode'], null);
    assert.deepEqual(parseModels('melody-large, small'), [{ name: 'melody-large', model: 'melody-large' }, { name: 'small', model: 'small' }]);
    assert.deepEqual(parseModels('{"a": "dir", "b": {"model": "small", "adapter": "x/adapter_model.safetensors"}}'),
      [{ name: 'a', model: 'dir' }, { name: 'b', model: 'small', adapter: 'x/adapter_model.safetensors' }]);
    assert.throws(() => parseModels('small,huge'), /unknown model "huge"; the names are stereo-melody-large, stereo-large, melody-large, large, melody, small, medium, encode-decode/);
    assert.throws(() => parseModels('small,small'), /named twice/);
    assert.throws(() => parseModels('{"a": 3}'), /"a" must map to a folder/);
    // the library (and so the CLI's --model) resolves a short name to its hub id: offline, the cache says which
    const cache = await fsp.mkdtemp(join(tmpdir(), 'musicgen-cache-'));
    try {
      await assert.rejects(MusicGen.load('small', { offline: true, cacheDir: cache }), /facebook\/musicgen-small/);
      await assert.rejects(MusicGen.load('encode-decode'), /names no model/);
    } finally {
      await fsp.rm(cache, { recursive: true, force: true });
    }
  });
});

describe('server: --model with --adapter', function () {
  this.timeout(300_000);
  it('serves the base with a LoRA adapter applied: the library\'s audio with the same adapter', async () => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'musicgen-adapter-'));
    let s: Running | null = null;
    try {
      // a random rank-2 adapter on the first layer's fc1, in the files finetune writes
      const f = await openSafetensorsFile(join(TINY, 'model.safetensors'));
      const [o, i] = f.info('decoder.model.decoder.layers.0.fc1.weight').shape;
      await f.close();
      const rand = (n: number): Float32Array => Float32Array.from({ length: n }, (_, k) => Math.sin(k * 12.9898) * 0.5);
      const m = 'base_model.model.decoder.model.decoder.layers.0.fc1';
      await fsp.writeFile(join(dir, 'adapter_model.safetensors'), encodeSafetensors({
        [`${m}.lora_A.weight`]: { dtype: 'F32', shape: [2, i], data: rand(2 * i) },
        [`${m}.lora_B.weight`]: { dtype: 'F32', shape: [o, 2], data: rand(o * 2) },
      }));
      await fsp.writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4 }));
      s = await startServer({ adapter: dir });
      const input = { prompt: 'calm piano', duration: 0.2, seed: 4 };
      const r = await request(s.base, 'POST', '/predictions', { input });
      assert.equal(r.body.status, 'succeeded', String(r.body.error));
      assert.match(String(s.logs.join('\n')), /with the adapter/);
      const mg = await MusicGen.load(TINY, { adapter: dir });
      const plain = await MusicGen.load(TINY);
      try {
        const lib = await mg.generate(input);
        assert.equal(r.body.output, dataUri(encodeWav(lib.audio[0], lib.sampleRate)));
        const base = await plain.generate(input);
        assert.notDeepEqual(base.codes, lib.codes, 'the adapter changes the codes');
      } finally {
        mg.dispose();
        plain.dispose();
      }
    } finally {
      await s?.app.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelPool: --max-loaded 2', function () {
  this.timeout(300_000);
  it('keeps the two most recently used; loading a third disposes the least recently used, not the oldest loaded', async () => {
    const STEREO = join(REPO, 'test', 'fixtures', 'models', 'text-stereo');
    const pool = new ModelPool([{ name: 'a', model: TINY }, { name: 'b', model: TINY_MELODY }, { name: 'c', model: STEREO }], { maxLoaded: 2 });
    const logs: string[] = [];
    const log = (l: string): void => { logs.push(l); };
    try {
      const a = await pool.get('a', log);
      await pool.get('b', log);
      assert.equal(await pool.get('a', log), a, 'a stays loaded');
      assert.equal(logs.filter((l) => l.startsWith('loading model')).length, 2);
      const c = await pool.get('c', log);
      assert.equal(c.channels, 2);
      assert.deepEqual([pool.peek('a') === a, pool.peek('b'), pool.peek('c') === c], [true, null, true]);
      assert.ok(logs.includes('disposed model b (at most 2 loaded)'), logs.join('\n'));
    } finally {
      await pool.dispose();
    }
    assert.equal(pool.peek('a'), null);
  });
});

describe('encode-decode with multi_band_diffusion', function () {
  this.timeout(300_000);
  it('decodes the round trip\'s codes with MBD instead of EnCodec\'s decoder (the decoder itself: test/model/mbd.test.ts)', async () => {
    const TH = join(REPO, 'test', 'fixtures', 'mbd', 'tiny.th');
    const clip = dataUri(wav(0.06)); // 3 frames: diffusion is slow on the CPU
    const s = await startServer({ model: undefined, models: 'encode-decode', mbd: TH }).catch((e: Error) => e);
    assert.ok(s instanceof Error && /encode-decode needs a model for its EnCodec/.test(s.message), String(s));
    const t = await startServer({ model: undefined, models: JSON.stringify({ small: TINY, 'encode-decode': 'small' }), mbd: TH });
    try {
      const input = { model_version: 'encode-decode', input_audio: clip, seed: 5, normalization_strategy: 'none' };
      const plain = await request(t.base, 'POST', '/predictions', { input });
      const mbd = await request(t.base, 'POST', '/predictions', { input: { ...input, multi_band_diffusion: true } });
      assert.equal(mbd.body.status, 'succeeded', String(mbd.body.error));
      const [a, b] = [plain, mbd].map((r) => dataUriBytes(r.body.output).bytes);
      assert.equal(wavInfo(b).seconds, wavInfo(a).seconds);
      assert.notDeepEqual(b, a, 'another decoder');
    } finally {
      await t.app.close();
    }
  });
});
