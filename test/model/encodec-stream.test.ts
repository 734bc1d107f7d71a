// EnCodec decoded incrementally (EncodecStream) against the one-shot decode: the concatenated chunks must be the
// whole clip's audio within 1e-5, whatever the push sizes, for every decoder variant the fixtures hold.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { FIXTURES, Fixture, gpu } from '../helpers.js';
import { Tensor, tidy } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder, openCheckpointDir } from '../../src/io/file-source.js';
import { Weights } from '../../src/model/weights.js';
import { EncodecModel } from '../../src/model/encodec.js';
import { parseEncodecConfig } from '../../src/model/config.js';

/** Max |a − b|. */
export function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Streams codes [1, K, T] in pushes of `sizes` frames (cycled), returns the concatenated audio. */
async function streamed(model: EncodecModel, codes: Tensor, sizes: number[]): Promise<{ audio: Float32Array; chunks: number }> {
  const T = codes.shape[2];
  const s = model.stream();
  const parts: Float32Array[] = [];
  let expectFrom = 0;
  for (let at = 0, i = 0; at < T || i === 0; i++) {
    const n = Math.min(sizes[i % sizes.length], T - at);
    const piece = tidy(() => ops.narrow(codes, 2, at, n));
    at += n;
    const out = s.push(piece, at === T);
    piece.dispose();
    if (!out) continue;
    assert.equal(out.from, expectFrom, 'chunks follow each other');
    expectFrom = out.to;
    parts.push((await out.audio.read()) as Float32Array);
    out.audio.dispose();
  }
  assert.equal(expectFrom, T, 'every frame decoded');
  s.dispose();
  const audio = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { audio.set(p, o); o += p.length; }
  return { audio, chunks: parts.length };
}

describe('EnCodec decoded incrementally', function () {
  this.timeout(120_000);
  before(() => gpu());

  it('text-mono: the reach comes from the config, and any push sizes give the one-shot decode within 1e-5', async () => {
    const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', 'text-mono')));
    const enc = model.encodec;
    const s = enc.stream();
    // kernel 7 → 3 frames each side before the LSTM; after it the transposed convs and residual convs reach
    assert.deepEqual(s.headReach, { left: 3, right: 3 });
    assert.ok(s.tailReach.left >= 1 && s.tailReach.right >= 1, JSON.stringify(s.tailReach));
    s.dispose();
    const fx = await Fixture.open('probe/text-mono.inputs.safetensors');
    const codes = await fx.tensor('encodec.codes'); // [K, T]
    const batched = codes.reshape([1, ...codes.shape]);
    const whole = enc.decode(batched);
    const expected = (await whole.read()) as Float32Array;
    for (const sizes of [[1, 4, 7], [50]]) {
      const { audio, chunks } = await streamed(enc, batched, sizes);
      assert.ok(maxDiff(audio, expected) <= 1e-5, `pushes of ${sizes}: max diff ${maxDiff(audio, expected)}`);
      if (sizes[0] === 1) assert.ok(chunks > batched.shape[2] / 6, `${chunks} chunks: audio comes out as frames arrive`);
    }
    for (const t of [codes, batched, whole] as Tensor[]) t.dispose();
    await fx.file.close();
    model.dispose();
  });

  it('every model folder of the fixtures (melody, stereo, legacy weight_g names): streamed = one-shot within 1e-5', async () => {
    for (const name of ['melody-mono', 'melody-mono-wg', 'text-stereo']) {
      const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', name)));
      const enc = model.encodec;
      const T = 37;
      const K = enc.numQuantizers;
      const data = Int32Array.from({ length: K * T }, (_, i) => (i * 7919 + 13) % enc.cfg.codebook_size); // any codes
      const codes = Tensor.from(data, [1, K, T], 'i32');
      const whole = enc.decode(codes);
      const expected = (await whole.read()) as Float32Array;
      const { audio } = await streamed(enc, codes, [2, 9]);
      assert.ok(maxDiff(audio, expected) <= 1e-5, `${name}: max diff ${maxDiff(audio, expected)}`);
      for (const t of [codes, whole]) t.dispose();
      model.dispose();
    }
  });

  for (const name of ['causal', 'causal-half-trim', 'groupnorm-constant']) {
    it(`${name}: streamed = one-shot within 1e-5`, async () => {
      const rt = await gpu();
      const dir = join(FIXTURES, 'encodec', name);
      const cfg = parseEncodecConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), '');
      const reader = await openCheckpointDir(dir);
      const model = await EncodecModel.load(new Weights(reader, rt), cfg);
      await reader.close();
      const fx = await Fixture.open(`encodec/${name}.safetensors`);
      const shape = fx.shape('encodec.codes');
      const codes = Tensor.from(await fx.i32('encodec.codes'), [1, model.numQuantizers, shape[shape.length - 1]], 'i32');
      const whole = model.decode(codes);
      const expected = (await whole.read()) as Float32Array;
      whole.dispose();
      if (cfg.use_causal_conv) assert.equal(model.stream().headReach.right, 0, 'causal convs need no look-ahead');
      const { audio, chunks } = await streamed(model, codes, [3, 5]);
      assert.ok(maxDiff(audio, expected) <= 1e-5, `max diff ${maxDiff(audio, expected)}`);
      if (!model.chunkable) assert.equal(chunks, 1, 'GroupNorm needs the whole clip: one chunk at the end');
      codes.dispose();
      await fx.file.close();
      model.dispose();
    });
  }
});
