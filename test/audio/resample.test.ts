// resample / toMono / prepareAudio: exact output length (julius' floor rule), time alignment, pass-band
// accuracy, stop-band rejection, the chunked path for long inputs, and audiocraft's channel rules.

import assert from 'node:assert/strict';
import { resample, resampledLength, toMono, prepareAudio, type ResampleQuality } from '../../src/audio/resample.js';

function sine(n: number, freq: number, sr: number, amp = 0.5, phase = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / sr + phase);
  return x;
}

/** max |y[k] - amp·sin(2π f k / sr)| for k in [skip, len - skip). */
function maxErrorVsSine(y: Float32Array, freq: number, sr: number, amp: number, skip: number): number {
  let err = 0;
  for (let k = skip; k < y.length - skip; k++) err = Math.max(err, Math.abs(y[k] - amp * Math.sin((2 * Math.PI * freq * k) / sr)));
  return err;
}

function rmsOf(x: Float32Array, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / (to - from));
}

describe('audio/resample', () => {
  it('gives floor(N·to/from) samples for many rates and odd lengths', async () => {
    const cases: [number, number, number][] = [
      [12345, 44100, 32000], [1001, 48000, 32000], [777, 22050, 32000], [333, 8000, 32000],
      [1000, 32000, 44100], [99999, 96000, 32000], [5, 11025, 32000], [1001, 32000, 16000], [7, 44100, 32000],
    ];
    for (const [n, from, to] of cases) {
      const y = await resample(sine(n, 300, from), from, to, 'medium');
      assert.equal(y.length, Math.floor((n * to) / from), `${n} samples ${from} -> ${to}`);
      assert.equal(y.length, resampledLength(n, from, to));
    }
    assert.equal(resampledLength(1001, 32000, 16000), 500); // julius: int(500.5) = 500, not round
  });

  it('returns a copy when the rates are equal', async () => {
    const x = sine(100, 1000, 32000);
    const y = await resample(x, 32000, 32000);
    assert.deepEqual(Array.from(y), Array.from(x));
    assert.notEqual(y, x);
  });

  it('handles empty input and rejects bad rates', async () => {
    assert.equal((await resample(new Float32Array(0), 44100, 32000)).length, 0);
    await assert.rejects(resample(new Float32Array(10), 0, 32000), /rate/);
    await assert.rejects(resample(new Float32Array(10), 44100, Number.NaN), /rate/);
  });

  for (const quality of ['best', 'medium'] as ResampleQuality[]) {
    it(`keeps a 1 kHz sine (amplitude within 0.1%, time-aligned) 44.1k -> 32k (${quality})`, async () => {
      const amp = 0.5;
      const y = await resample(sine(44100, 1000, 44100, amp), 44100, 32000, quality);
      // Away from the edges (where the clip starts/ends abruptly) the output is the same sine sampled at
      // 32 kHz with no delay: error ≤ 0.1% of the amplitude covers both gain and timing.
      const err = maxErrorVsSine(y, 1000, 32000, amp, 800);
      assert.ok(err < amp * 1e-3, `max error ${err}`);
      const ratio = rmsOf(y, 800, y.length - 800) / (amp / Math.SQRT2);
      assert.ok(Math.abs(ratio - 1) < 1e-3, `amplitude ratio ${ratio}`);
    });

    it(`removes a 20 kHz tone (above the new 16 kHz Nyquist) by more than 60 dB (${quality})`, async () => {
      const x = sine(44100, 20000, 44100, 0.5);
      const y = await resample(x, 44100, 32000, quality);
      const db = 20 * Math.log10(rmsOf(y, 800, y.length - 800) / rmsOf(x));
      assert.ok(db < -60, `20 kHz leaks at ${db.toFixed(1)} dB`);
    });
  }

  it('upsamples 16k -> 32k keeping a 3 kHz sine', async () => {
    const y = await resample(sine(16000, 3000, 16000, 0.4), 16000, 32000);
    assert.equal(y.length, 32000);
    assert.ok(maxErrorVsSine(y, 3000, 32000, 0.4, 400) < 4e-4);
  });

  it('streams long inputs through the converter without seams or a lost tail', async () => {
    // 40 s mono at 44.1 kHz = 1.76 M samples: more than the wasm glue's 1,008,000-float buffers.
    const n = 44100 * 40;
    const y = await resample(sine(n, 440, 44100, 0.5), 44100, 32000, 'medium');
    assert.equal(y.length, 32000 * 40);
    assert.ok(maxErrorVsSine(y, 440, 32000, 0.5, 800) < 5e-4);
    // The last samples are real signal, not a zero tail: the converter was flushed.
    assert.ok(rmsOf(y, y.length - 2000, y.length - 100) > 0.3);
  });
});

describe('audio/toMono and prepareAudio', () => {
  it('toMono averages the channels', () => {
    const m = toMono([new Float32Array([1, 0.5, -1]), new Float32Array([0, 0.5, 1]), new Float32Array([0.5, -1, 0])]);
    assert.deepEqual(Array.from(m), [0.5, 0, 0].map((v) => Math.fround(v)));
    const single = new Float32Array([0.25, -0.25]);
    const same = toMono([single]);
    assert.deepEqual(Array.from(same), [0.25, -0.25]);
    assert.notEqual(same, single);
    assert.throws(() => toMono([new Float32Array(2), new Float32Array(3)]), /length/);
  });

  it('mono input -> stereo at 32 kHz: resampled and duplicated into two arrays', async () => {
    const x = sine(44100, 500, 44100, 0.3);
    const out = await prepareAudio({ channels: [x], sampleRate: 44100 }, 32000, 2);
    assert.equal(out.length, 2);
    assert.equal(out[0].length, 32000);
    assert.deepEqual(out[0], out[1]);
    assert.notEqual(out[0], out[1]);
    assert.ok(maxErrorVsSine(out[0], 500, 32000, 0.3, 800) < 3e-4);
  });

  it('stereo -> mono is the mean of the channels', async () => {
    const l = sine(48000, 440, 48000, 0.6);
    const r = sine(48000, 440, 48000, 0.2);
    const out = await prepareAudio({ channels: [l, r], sampleRate: 48000 }, 32000, 1);
    assert.equal(out.length, 1);
    assert.equal(out[0].length, 32000);
    assert.ok(maxErrorVsSine(out[0], 440, 32000, 0.4, 800) < 3e-4);
  });

  it('stereo -> stereo keeps left and right apart; at the same rate it copies', async () => {
    const l = sine(3200, 440, 32000, 0.6), r = sine(3200, 880, 32000, 0.2);
    const out = await prepareAudio({ channels: [l, r], sampleRate: 32000 }, 32000, 2);
    assert.deepEqual(out[0], l);
    assert.deepEqual(out[1], r);
    assert.notEqual(out[0], l);
  });

  it('more channels than asked: stereo takes the first two, mono takes the mean of all', async () => {
    const chans = [0.1, 0.2, 0.3, 0.6].map((v) => new Float32Array(320).fill(v));
    const st = await prepareAudio({ channels: chans, sampleRate: 32000 }, 32000, 2);
    assert.equal(st.length, 2);
    assert.equal(st[0][5], Math.fround(0.1));
    assert.equal(st[1][5], Math.fround(0.2));
    const mono = await prepareAudio({ channels: chans, sampleRate: 32000 }, 32000, 1);
    assert.ok(Math.abs(mono[0][5] - 0.3) < 1e-7);
  });

  it('rejects audio with no channels', async () => {
    await assert.rejects(prepareAudio({ channels: [], sampleRate: 32000 }, 32000, 1), /no channels/);
  });
});
