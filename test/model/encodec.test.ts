// EnCodec's chunked decode (for long clips) against the whole-clip decode: the seams must not show.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import { Tensor } from '../../src/tensor.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder, openCheckpointDir } from '../../src/io/file-source.js';
import { readFile } from 'node:fs/promises';
import { Weights } from '../../src/model/weights.js';
import { EncodecModel } from '../../src/model/encodec.js';
import { parseEncodecConfig } from '../../src/model/config.js';

describe('EnCodec in chunks', function () {
  this.timeout(120_000);
  before(() => gpu());

  it('matches the whole-clip decode at every seam (chunks of 7 frames, 16 frames of context)', async () => {
    const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', 'text-mono')));
    const fx = await Fixture.open('probe/text-mono.inputs.safetensors');
    const codes = await fx.tensor('encodec.codes'); // [K, T]
    const batched = codes.reshape([1, ...codes.shape]);
    const whole = model.encodec.decode(batched);
    const expected = (await whole.read()) as Float32Array;
    for (const [chunk, overlap] of [[7, 16], [50, 16], [13, 8]]) {
      const chunked = await model.encodec.decodeChunked(batched, chunk, overlap);
      assertClose(chunked, expected, `chunks of ${chunk}, overlap ${overlap}`, { rtol: 1e-4, atol: 1e-5 });
    }
    for (const t of [codes, batched, whole] as Tensor[]) t.dispose();
    await fx.file.close();
    model.dispose();
  });

  it('encodes in chunks to the same codes as transformers’ whole-clip encode', async () => {
    const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', 'text-mono')));
    const inputs = await Fixture.open('probe/text-mono.inputs.safetensors');
    const expected = await Fixture.open('probe/text-mono.outputs.safetensors');
    const wav = await inputs.f32('audio.wav');
    const want = Array.from(await expected.i32('encodec.codes'));
    const audio = Tensor.from(wav, [1, 1, wav.length]);
    for (const [chunk, overlap] of [[10, 16], [30, 8], [1000, 16]]) {
      const codes = model.encodec.encode(audio, chunk, overlap);
      assert.deepEqual(Array.from(await codes.read()), want, `chunks of ${chunk}, overlap ${overlap}`);
      codes.dispose();
    }
    audio.dispose();
    await inputs.file.close();
    await expected.file.close();
    model.dispose();
  });
});

describe('EnCodec for other config values (tools/fixtures/encodec_variants.py)', function () {
  this.timeout(120_000);
  before(() => gpu());

  for (const name of ['causal', 'causal-half-trim', 'groupnorm-constant']) {
    it(`${name}: codes exactly, decoded audio within 1e-3 / 1e-4, also in chunks`, async () => {
      const rt = await gpu();
      const dir = join(FIXTURES, 'encodec', name);
      const cfg = parseEncodecConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), '');
      const reader = await openCheckpointDir(dir);
      const w = new Weights(reader, rt);
      const model = await EncodecModel.load(w, cfg);
      assert.deepEqual(w.unused().filter((n) => !/quantizer\..*\.(inited|cluster_size|embed_avg)$/.test(n)), [], 'every weight is used');
      await reader.close();
      const fx = await Fixture.open(`encodec/${name}.safetensors`);
      const wav = await fx.f32('audio.wav');
      const audio = Tensor.from(wav, [1, 1, wav.length]);
      const want = Array.from(await fx.i32('encodec.codes'));
      const codes = model.encode(audio);
      assert.deepEqual(Array.from(await codes.read()), want, 'codes');
      const chunkedCodes = model.encode(audio, 40, 16);
      assert.deepEqual(Array.from(await chunkedCodes.read()), want, 'codes, encoded in chunks');
      const decoded = model.decode(codes);
      const expected = await fx.f32('encodec.decoded');
      assertClose(await decoded.toArray(), expected, `${name} decoded`, { rtol: 1e-3, atol: 1e-4 });
      assertClose(await model.decodeChunked(codes, 40, 16), expected, `${name} decoded in chunks`, { rtol: 1e-3, atol: 1e-4 });
      for (const t of [audio, codes, chunkedCodes, decoded]) t.dispose();
      model.dispose();
    });
  }
});
