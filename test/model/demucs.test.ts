// HTDemucs against the demucs package's own code (tools/fixtures/demucs.py): random small models saved as
// Demucs packages (half-precision state), one segment through HTDemucs.forward, its spectrogram, and
// apply_model(split=True, overlap=0.25, shifts=0) on a clip of more than two segments.
// Tolerance: 1e-4 absolute on stems of O(0.1–1) amplitude (the bar); 1e-5 on the spectrogram.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import { Demucs, parseHTDemucsConfig, segmentLength } from '../../src/model/demucs.js';
import { PyDict, PyFraction } from '../../src/io/pickle.js';
import { BufferSource, SafetensorsFile, encodeSafetensors } from '../../src/io/safetensors.js';
import { probe } from '../../src/cli/probe.js';

const STEMS = { rtol: 0, atol: 1e-4 };

function channels(data: Float32Array, C: number): Float32Array[] {
  const n = data.length / C;
  return Array.from({ length: C }, (_, c) => data.slice(c * n, (c + 1) * n));
}

describe('model: HTDemucs (demucs package parity)', () => {
  let fx: Fixture;
  let small: Demucs;
  before(async () => {
    await gpu();
    fx = await Fixture.open('demucs/reference.safetensors');
    small = await Demucs.load(join(FIXTURES, 'demucs', 'small.th'));
  });
  after(() => small?.dispose());

  it('reads the package: sources in order, rate, channels, segment as a Fraction', () => {
    assert.deepEqual(small.sources, ['drums', 'bass', 'other', 'vocals']);
    assert.equal(small.samplerate, 8000);
    assert.equal(small.audioChannels, 2);
    assert.equal(small.model.segmentLength, 4800); // Fraction(3, 5) s at 8 kHz
  });

  it('spectrogram (_spec) of one segment', async () => {
    const x = await fx.tensor('small.seg.x');
    const z = small.model.spec(x);
    const ref = fx.shape('small.spec.z');
    assert.deepEqual([...z.shape], ref);
    assertClose(await z.toArray(), await fx.f32('small.spec.z'), 'spec', { rtol: 1e-5, atol: 1e-5 });
    x.dispose();
    z.dispose();
  });

  it('forward of one segment', async () => {
    const x = await fx.tensor('small.seg.x');
    const y = small.model.forward(x);
    assert.deepEqual([...y.shape], fx.shape('small.seg.y'));
    assertClose(await y.toArray(), await fx.f32('small.seg.y'), 'small segment', STEMS);
    x.dispose();
    y.dispose();
  });

  it('separate = apply_model(split, overlap 0.25, shifts 0) over three segments, with progress', async () => {
    const [C, N] = fx.shape('small.mix');
    assert.ok(N > 2 * small.model.segmentLength);
    const calls: [number, number][] = [];
    const stems = await small.separate(channels(await fx.f32('small.mix'), C), { onProgress: (d, t) => calls.push([d, t]) });
    assert.deepEqual(calls, [[1, 3], [2, 3], [3, 3]]);
    assert.equal(stems.length, 4);
    const flat = new Float32Array(4 * C * N);
    stems.forEach((s, i) => s.forEach((ch, c) => flat.set(ch, (i * C + c) * N)));
    assertClose(Array.from(flat), await fx.f32('small.stems'), 'stems', STEMS);
  });

  it('a model whose last layer reaches one frequency (time branch injected), post-norm, cross-attention first', async () => {
    const bytes = await readFile(join(FIXTURES, 'demucs', 'lastfreq.th'));
    const m = await Demucs.load(bytes);
    const x = await fx.tensor('lastfreq.seg.x');
    const y = m.model.forward(x);
    assertClose(await y.toArray(), await fx.f32('lastfreq.seg.y'), 'lastfreq segment', STEMS);
    for (const t of [x, y]) t.dispose();
    m.dispose();
  });

  it('stops between segments when aborted', async () => {
    const ctl = new AbortController();
    const mix = [new Float32Array(6000), new Float32Array(6000)]; // two segments
    await assert.rejects(small.separate(mix, { signal: ctl.signal, onProgress: () => ctl.abort() }), /aborted/);
  });

  it('refuses options it does not implement, and unknown arguments', () => {
    const kw = (entries: [string, unknown][]) => {
      const d = new PyDict();
      for (const [k, v] of entries) d.set(k, v as never);
      return d;
    };
    assert.throws(() => parseHTDemucsConfig([['a']], kw([['cac', false]])), /cac=False/);
    assert.throws(() => parseHTDemucsConfig([['a']], kw([['t_emb', 'cape']])), /t_emb="cape"/);
    assert.throws(() => parseHTDemucsConfig([['a']], kw([['bogus', 1]])), /unknown HTDemucs argument "bogus"/);
    const cfg = parseHTDemucsConfig([['drums', 'bass', 'other', 'vocals']], kw([['segment', new PyFraction(39n, 5n)]]));
    assert.equal(segmentLength(cfg), 343980); // htdemucs: int(39/5 · 44100)
  });

  it('probe --demucs: demucs.mix [C, N] → demucs.stems [S, C, N] (no MusicGen model needed), a clip under one segment', async () => {
    const mix = await fx.f32('small.short.mix');
    const shape = fx.shape('small.short.mix');
    const bytes = encodeSafetensors({ 'demucs.mix': { dtype: 'F32', shape, data: mix } });
    const inputs = await SafetensorsFile.open(new BufferSource(bytes), 'inputs');
    const out = await probe(undefined, inputs, { demucs: join(FIXTURES, 'demucs', 'small.th') });
    assert.deepEqual(Object.keys(out), ['demucs.stems']);
    assert.deepEqual(out['demucs.stems']!.shape, [4, ...shape]);
    assertClose(Array.from(out['demucs.stems']!.data as Float32Array), await fx.f32('small.short.stems'), 'probe stems', STEMS);
    await assert.rejects(probe(undefined, inputs), /give --model, --demucs or both/);
  });
});
