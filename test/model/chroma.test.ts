// Parity of src/model/chroma.ts with transformers' MusicgenMelodyFeatureExtractor
// (feature_extraction_musicgen_melody.py) and its chroma_filter_bank (librosa.filters.chroma port).
// Fixture: test/fixtures/chroma/chroma.safetensors, written by tools/fixtures/chroma.py (float32 torch).

import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { BufferSource, SafetensorsFile } from '../../src/io/safetensors.ts';
import { chromaFilterBank, extractChroma } from '../../src/model/chroma.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/chroma/chroma.safetensors', import.meta.url));
/** Cases written by tools/fixtures/chroma.py (see its docstring for what each one exercises). */
const CASES = [0, 1, 2, 3, 4];

interface Tensor {
  shape: readonly number[];
  data: Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('chroma (MusicGen-melody feature extractor)', () => {
  const tensors = new Map<string, Tensor>();
  before(async () => {
    const file = await SafetensorsFile.open(new BufferSource(new Uint8Array(readFileSync(FIXTURE))), FIXTURE);
    for (const name of file.names()) tensors.set(name, { shape: file.info(name).shape, data: await file.readF32(name) });
    await file.close();
  });
  const get = (name: string): Tensor => {
    const t = tensors.get(name);
    assert.ok(t, `fixture is missing ${name}`);
    return t;
  };

  it('fixture holds exactly the expected cases', () => {
    const found = [...tensors.keys()]
      .map((k) => /^case(\d+)\.wav$/.exec(k)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    assert.deepEqual(found, CASES);
  });

  it('filter bank matches chroma_filter_bank(32000, 16384, 12, tuning 0) within 1e-5', () => {
    const ref = get('filters');
    assert.deepEqual(ref.shape, [12, 16384 / 2 + 1]);
    const fb = chromaFilterBank(32000, 16384, 12, 0);
    const d = maxAbsDiff(fb, ref.data);
    assert.ok(d <= 1e-5, `filter bank max abs diff ${d}`);
  });

  for (const i of CASES) {
    it(`case${i}: frames, chroma (1e-5) and one-hot (exact) match`, () => {
      const wav = get(`case${i}.wav`).data;
      const ml = get(`case${i}.max_length`).data[0];
      const refChroma = get(`case${i}.chroma`);
      const refOnehot = get(`case${i}.onehot`);
      const res = extractChroma(wav, ml > 0 ? { maxLength: ml } : {});
      assert.equal(res.frames, refChroma.shape[0], 'frame count');
      assert.deepEqual(refChroma.shape, [res.frames, 12]);
      const d = maxAbsDiff(res.chroma, refChroma.data);
      assert.ok(d <= 1e-5, `chroma max abs diff ${d}`);
      for (let t = 0; t < res.frames; t++) {
        const got = Array.from(res.onehot.subarray(t * 12, t * 12 + 12));
        const want = Array.from(refOnehot.data.subarray(t * 12, t * 12 + 12));
        assert.deepEqual(got, want, `one-hot differs at frame ${t}`);
      }
    });
  }

  it('30 s gives 235 frames; longer audio is truncated to 30 s', () => {
    const sr = 32000;
    const wav = new Float32Array(31 * sr);
    for (let i = 0; i < wav.length; i++) wav[i] = Math.sin((2 * Math.PI * 440 * i) / sr);
    assert.equal(extractChroma(wav.subarray(0, 30 * sr)).frames, 235);
    const res = extractChroma(wav);
    assert.equal(res.frames, 235);
    // A440 -> bin 9 when the chroma starts at C.
    for (let t = 0; t < res.frames; t++) assert.equal(res.onehot[t * 12 + 9], 1, `frame ${t}`);
  });
});
