// The melody path of audiocraft's ChromaStemConditioner (src/model/stems.ts), `separate()` and the probe's stemmed
// outputs, against tools/fixtures/melody_stems.py (demucs's own apply_model / convert_audio with julius, on a small
// random 44.1 kHz HTDemucs saved as a half-precision package).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, Fixture } from '../helpers.js';
import { initRuntime } from '../../src/runtime.js';
import { FileSource } from '../../src/io/file-source.js';
import { loadDemucs, stemmedMelody, type StemSeparator } from '../../src/model/stems.js';
import { extractChroma } from '../../src/model/chroma.js';
import { separate } from '../../src/separate.js';
import { probe } from '../../src/cli/probe.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { BufferSource, SafetensorsFile } from '../../src/io/safetensors.js';
import { InputError } from '../../src/inputs.js';

export const DEMUCS_44K = join(FIXTURES, 'demucs', 'melody44k.th');

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Frames whose one-hot rows are equal, over all frames. */
function equalFrames(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'frames');
  let same = 0;
  for (let f = 0; f < a.length / 12; f++) {
    let eq = true;
    for (let c = 0; c < 12; c++) if (a[f * 12 + c] !== b[f * 12 + c]) eq = false;
    if (eq) same++;
  }
  return same / (a.length / 12);
}

describe('model/stems: the melody as audiocraft hears it', function () {
  this.timeout(600_000);
  let fx: Fixture;
  let demucs: StemSeparator;
  before(async () => {
    fx = await Fixture.open('demucs/melody-stems.safetensors');
    demucs = await loadDemucs(new FileSource(DEMUCS_44K), await initRuntime());
  });
  after(() => demucs?.dispose());

  it('probe --demucs: melody.stemmed within 1e-4 of audiocraft\'s _get_stemmed_wav, chroma.stems_onehot equal on >= 99% of frames', async () => {
    // probe runs stemmedMelody + extractChroma: the library's melody path under the probe's names
    const wav = await fx.f32('melody.wav');
    const bytes = encodeSafetensors({ 'melody.wav': { dtype: 'F32', shape: [wav.length], data: wav } });
    const inputs = await SafetensorsFile.open(new BufferSource(bytes), 'inputs');
    const model = join(FIXTURES, 'models', 'melody-mono');
    const out = await probe(model, inputs, { demucs: DEMUCS_44K });
    assert.deepEqual(Object.keys(out).sort(), ['chroma.stems_onehot', 'melody.stemmed']);
    const d = maxDiff(out['melody.stemmed'].data as Float32Array, await fx.f32('melody.stemmed'));
    assert.ok(d < 1e-4, `stemmed melody differs by ${d}`);
    const want = await fx.f32('chroma.stems_onehot');
    const same = equalFrames(out['chroma.stems_onehot'].data as Float32Array, want);
    assert.ok(same >= 0.99, `${(100 * same).toFixed(1)}% of the chroma frames equal`);
    // the stems matter: the whole mix's chroma is another one
    assert.ok(equalFrames(extractChroma(wav, { sampleRate: 32000 }).onehot, want) < 0.5);
    assert.deepEqual(Object.keys(await probe(model, inputs)), [], 'no stemmed outputs without --demucs');
  });

  it('stemmedMelody leaves a one-sample melody alone (audiocraft\'s null condition skips Demucs)', async () => {
    const one = Float32Array.of(0.5);
    assert.equal(await stemmedMelody(demucs, one, 32000), one);
  });

  it('separate() = demucs Separator.separate_tensor (shifts=0) within 1e-4, stems picked by name', async () => {
    const mix = await fx.f32('sep.mix');
    const n = fx.shape('sep.mix')[1];
    const want = await fx.f32('sep.stems');
    const [S, C, M] = fx.shape('sep.stems');
    const progress: number[] = [];
    const r = await separate({ channels: [mix.slice(0, n), mix.slice(n)], sampleRate: 48000 }, { demucs, onProgress: (d, t) => progress.push(d / t) });
    assert.deepEqual(r.sources, ['drums', 'bass', 'other', 'vocals']);
    assert.equal(r.sampleRate, 44100);
    assert.equal(progress.at(-1), 1);
    for (let s = 0; s < S; s++) {
      for (let c = 0; c < C; c++) {
        const d = maxDiff(r.stems[r.sources[s]][c], want.subarray((s * C + c) * M, (s * C + c + 1) * M));
        assert.ok(d < 1e-4, `${r.sources[s]}[${c}] differs by ${d}`);
      }
    }
    const two = await separate({ channels: [mix.slice(0, 2000)], sampleRate: 48000 }, { demucs, stems: ['vocals', 'other'] });
    assert.deepEqual(Object.keys(two.stems), ['vocals', 'other']);
    await assert.rejects(separate({ channels: [mix.slice(0, n)], sampleRate: 48000 }, { demucs, stems: ['voice'] }),
      (e: unknown) => e instanceof InputError && e.field === 'stems' && /drums, bass, other, vocals/.test(e.message));
  });

});
