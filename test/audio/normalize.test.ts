// integratedLoudness and normalizeAudio against test/fixtures/audio/loudness.safetensors (written by
// tools/fixtures/audio.py: torchaudio.functional.loudness as audiocraft uses it, a pyloudnorm-style
// measurement, and audiocraft's normalize_audio outputs), plus the BS.1770 calibration points and the
// strategy rules on hand-made signals.

import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSafetensorsFile } from '../../src/io/file-source.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import {
  integratedLoudness,
  kWeightingFilters,
  normalizeAudio,
  rms,
  type Biquad,
  type NormalizationStrategy,
} from '../../src/audio/normalize.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'audio', 'loudness.safetensors');

interface Case { channels: Float32Array[]; sr: number; torchaudio: number; pyloudnorm: number; clamped: boolean }

async function loadCase(f: SafetensorsFile, i: number): Promise<Case> {
  const [C, N] = f.info(`case${i}.wav`).shape;
  const flat = await f.readF32(`case${i}.wav`);
  const channels = Array.from({ length: C }, (_, c) => flat.slice(c * N, (c + 1) * N));
  const one = async (name: string): Promise<number> => (await f.readF32(`case${i}.${name}`))[0];
  return { channels, sr: await one('sr'), torchaudio: await one('torchaudio'), pyloudnorm: await one('pyloudnorm'), clamped: (await one('clamped')) === 1 };
}

function sine(n: number, freq: number, sr: number, amp: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / sr);
  return x;
}

function maxAbs(chans: Float32Array[]): number {
  let m = 0;
  for (const ch of chans) for (const v of ch) m = Math.max(m, Math.abs(v));
  return m;
}

function responseDb(fs: Biquad[], freq: number, sr: number): number {
  const w = (2 * Math.PI * freq) / sr;
  let mag = 1;
  for (const { b, a } of fs) {
    const re = (c: number[]): number => c[0] + c[1] * Math.cos(-w) + c[2] * Math.cos(-2 * w);
    const im = (c: number[]): number => c[1] * Math.sin(-w) + c[2] * Math.sin(-2 * w);
    mag *= Math.hypot(re(b), im(b)) / Math.hypot(re(a), im(a));
  }
  return 20 * Math.log10(mag);
}

describe('audio/normalize: integrated loudness (BS.1770-4)', () => {
  let file: SafetensorsFile;
  let cases: Case[] = [];
  before(async () => {
    file = await openSafetensorsFile(FIXTURE);
    for (let i = 0; file.has(`case${i}.wav`); i++) cases.push(await loadCase(file, i));
    assert.ok(cases.length >= 6, 'fixture cases');
  });

  it('matches torchaudio.functional.loudness (audiocraft) within 1e-4 LU', () => {
    for (const [i, c] of cases.entries()) {
      const l = integratedLoudness(c.channels, c.sr);
      assert.ok(Math.abs(l - c.torchaudio) < 1e-4, `case${i} (${c.channels.length} ch, ${c.sr} Hz): ${l} vs ${c.torchaudio}`);
    }
  });

  it('matches the pyloudnorm-style measurement within 0.05 LU', () => {
    for (const [i, c] of cases.entries()) {
      const l = integratedLoudness(c.channels, c.sr);
      assert.ok(Math.abs(l - c.pyloudnorm) < 0.05, `case${i}: ${l} vs ${c.pyloudnorm}`);
    }
    // The fixture really exercises the torchaudio filter clamp in at least one case.
    assert.ok(cases.some((c) => c.clamped));
  });

  it('computes the K-weighting for each rate; at 48 kHz it is within 0.05 dB of the standard table', () => {
    // ITU-R BS.1770-4 Tables 1 and 2 (48 kHz).
    const std: Biquad[] = [
      { b: [1.53512485958697, -2.69169618940638, 1.19839281085285], a: [1, -1.69065929318241, 0.73248077421585] },
      { b: [1, -2, 1], a: [1, -1.99004745483398, 0.99007225036621] },
    ];
    const ours = kWeightingFilters(48000);
    for (let f = 20; f <= 20000; f *= 1.05) {
      const d = responseDb(ours, f, 48000) - responseDb(std, f, 48000);
      assert.ok(Math.abs(d) < 0.05, `${f.toFixed(0)} Hz: ${d} dB`);
    }
    // Other rates: same analogue design, so ~+4 dB at high frequencies and ~-inf at DC, any rate.
    for (const sr of [32000, 44100]) {
      const fs = kWeightingFilters(sr);
      assert.ok(Math.abs(responseDb(fs, 10000, sr) - responseDb(ours, 10000, 48000)) < 0.05, `${sr} Hz at 10 kHz`);
      assert.ok(responseDb(fs, 5, sr) < -20);
    }
  });

  it('reads -23 LUFS for a stereo 997 Hz sine at -23 dBFS (EBU Tech 3341 case), -26 for one channel', () => {
    const amp = Math.pow(10, -23 / 20);
    for (const sr of [32000, 44100, 48000]) {
      const x = sine(sr * 3, 997, sr, amp);
      const stereo = integratedLoudness([x, x], sr);
      assert.ok(Math.abs(stereo + 23) < 0.1, `${sr} Hz stereo: ${stereo}`);
      const mono = integratedLoudness([x], sr);
      assert.ok(Math.abs(mono - (stereo - 10 * Math.log10(2))) < 1e-6, `${sr} Hz mono: ${mono}`);
    }
  });

  it('gates: silence and sub-block audio measure -Infinity; appended silence is gated out', () => {
    assert.equal(integratedLoudness([new Float32Array(32000)], 32000), -Infinity);
    assert.equal(integratedLoudness([sine(12799, 1000, 32000, 0.5)], 32000), -Infinity); // < one 400 ms block
    const tone = sine(32000 * 2, 1000, 32000, 0.1);
    const padded = new Float32Array(32000 * 4);
    padded.set(tone, 0);
    const a = integratedLoudness([tone], 32000);
    const b = integratedLoudness([padded], 32000);
    // Without gating, doubling the length with silence would lower the result by 3 dB; with the absolute
    // gate only the three blocks straddling the end of the tone (75/50/25% filled) still count: -0.34 LU.
    assert.ok(a - b > 0.2 && a - b < 0.5, `${a} vs ${b}`);
    // A passage 30 dB down is removed by the relative gate (-10 LU): the result is as with silence there.
    // One only 6 dB down passes the gate and pulls the result down by several dB.
    const withPassage = (db: number): number => {
      const x = new Float32Array(32000 * 4);
      x.set(tone, 0);
      x.set(sine(32000 * 2, 1000, 32000, 0.1 * 10 ** (db / 20)), 64000);
      return integratedLoudness([x], 32000);
    };
    assert.ok(Math.abs(withPassage(-30) - b) < 0.01, `${withPassage(-30)} vs ${b}`);
    assert.ok(withPassage(-6) < a - 1.5, `${withPassage(-6)}`);
  });
});

describe('audio/normalize: normalizeAudio (audiocraft normalize_audio)', () => {
  let file: SafetensorsFile;
  before(async () => { file = await openSafetensorsFile(FIXTURE); });

  for (const strategy of ['loudness', 'clip', 'peak', 'rms'] as NormalizationStrategy[]) {
    it(`'${strategy}' reproduces audiocraft's output on every fixture case`, async () => {
      for (let i = 0; file.has(`case${i}.wav`); i++) {
        const c = await loadCase(file, i);
        const y = normalizeAudio(c.channels, c.sr, strategy);
        const head = await file.readF32(`case${i}.${strategy}.head`);
        const [, H] = file.info(`case${i}.${strategy}.head`).shape;
        for (let ch = 0; ch < y.length; ch++) {
          for (let k = 0; k < H; k++) {
            const e = head[ch * H + k];
            assert.ok(Math.abs(y[ch][k] - e) <= 2e-6 + 1e-4 * Math.abs(e), `case${i} ch${ch} [${k}]: ${y[ch][k]} vs ${e}`);
          }
        }
        const sum = (await file.readF32(`case${i}.${strategy}.sum`))[0];
        let s = 0;
        for (const ch of y) for (const v of ch) s += Math.abs(v);
        assert.ok(Math.abs(s - sum) <= 2e-4 * sum, `case${i} sum|y| ${s} vs ${sum}`);
        const mx = (await file.readF32(`case${i}.${strategy}.max`))[0];
        assert.ok(Math.abs(maxAbs(y) - mx) <= 1e-5, `case${i} max|y| ${maxAbs(y)} vs ${mx}`);
      }
    });
  }

  it("'loudness' brings a moderate signal to -14 LUFS and leaves the input untouched", () => {
    const x = sine(32000 * 3, 440, 32000, 0.05);
    const copy = x.slice();
    const [y] = normalizeAudio([x], 32000, 'loudness');
    assert.deepEqual(x, copy);
    assert.ok(Math.abs(integratedLoudness([y], 32000) + 14) < 0.01);
    assert.ok(maxAbs([y]) < 1);
  });

  it("'loudness' skips nearly silent audio (RMS < 2e-3) but still clamps to ±1", () => {
    const quiet = sine(32000, 440, 32000, 0.0025); // RMS 1.77e-3
    assert.ok(rms([quiet]) < 2e-3);
    const [y] = normalizeAudio([quiet], 32000, 'loudness');
    assert.deepEqual(y, quiet);
    const loudButOk = sine(32000, 440, 32000, 0.003); // RMS 2.1e-3: normalised (gained way up)
    assert.ok(maxAbs(normalizeAudio([loudButOk], 32000, 'loudness')) > 0.1);
    // Below the floor but with a spike over full scale: unchanged except the clamp.
    const spiky = sine(32000 * 15, 440, 32000, 0.001);
    spiky[100] = 1.2;
    assert.ok(rms([spiky]) < 2e-3);
    const [ys] = normalizeAudio([spiky], 32000, 'loudness');
    assert.equal(ys[100], 1);
    assert.equal(ys[101], spiky[101]);
  });

  it("'loudness' on loud material clamps the result to ±1", () => {
    const x = sine(32000 * 2, 440, 32000, 0.9);
    x[1000] = 0.99;
    const [y] = normalizeAudio([x], 32000, 'loudness');
    // A 0.9-amplitude 440 Hz sine is about -4.6 LUFS; to -14 LUFS it is scaled down, nothing clips here...
    const gain = 10 ** ((-14 - integratedLoudness([x], 32000)) / 20);
    assert.ok(gain < 0.5);
    assert.ok(Math.abs(maxAbs([y]) - 0.99 * gain) < 1e-6);
    // ...but a quiet signal with rare full-scale spikes is pushed up and clamped.
    const s = sine(32000 * 2, 440, 32000, 0.01);
    for (let i = 0; i < s.length; i += 4000) s[i] = 0.9;
    const [z] = normalizeAudio([s], 32000, 'loudness');
    assert.equal(maxAbs([z]), 1);
  });

  it("'clip' clamps to ±10^(-1/20) ≈ 0.891, not ±1", () => {
    const [y] = normalizeAudio([new Float32Array([0.5, 0.95, -1.2, 0.89])], 32000, 'clip');
    const lim = Math.fround(10 ** (-1 / 20));
    assert.deepEqual(Array.from(y), [Math.fround(0.5), lim, -lim, Math.fround(0.89)]);
  });

  it("'peak' scales the largest |sample| to 0.891 (up or down); silence stays silence", () => {
    for (const amp of [0.1, 3]) {
      const chans = [sine(1000, 100, 32000, amp), sine(1000, 150, 32000, amp / 2)];
      const y = normalizeAudio(chans, 32000, 'peak');
      assert.ok(Math.abs(maxAbs(y) - 10 ** (-1 / 20)) < 1e-6, `${amp}: ${maxAbs(y)}`);
      assert.ok(Math.abs(y[1][10] / y[0][10] - chans[1][10] / chans[0][10]) < 1e-5, 'one gain for all channels');
    }
    const z = normalizeAudio([new Float32Array(10)], 32000, 'peak');
    assert.deepEqual(Array.from(z[0]), new Array(10).fill(0));
  });

  it("'rms' sets the RMS of the mono mix to -18 dBFS, then clamps ±1", () => {
    // Channels in antiphase-ish: the mono mix RMS is much lower than the per-sample RMS.
    const l = sine(32000, 200, 32000, 0.5);
    const r = sine(32000, 200, 32000, -0.3);
    const y = normalizeAudio([l, r], 32000, 'rms');
    const mono = y[0].map((v, i) => (v + y[1][i]) / 2);
    assert.ok(Math.abs(rms([mono]) - 10 ** (-18 / 20)) < 1e-5, `mono rms ${rms([mono])}`);
    // A crest-heavy signal is clamped after scaling.
    const spikes = new Float32Array(32000);
    for (let i = 0; i < spikes.length; i += 3200) spikes[i] = 0.5;
    assert.equal(maxAbs(normalizeAudio([spikes], 32000, 'rms')), 1);
  });

  it("'none' returns an unchanged copy", () => {
    const x = new Float32Array([0.1, -0.2, 1.5]);
    const [y] = normalizeAudio([x], 32000, 'none');
    assert.deepEqual(y, x);
    assert.notEqual(y, x);
  });

  it('rejects an unknown strategy and ragged channels', () => {
    assert.throws(() => normalizeAudio([new Float32Array(4)], 32000, 'bogus' as NormalizationStrategy), /unknown strategy/);
    assert.throws(() => normalizeAudio([new Float32Array(4), new Float32Array(5)], 32000, 'peak'), /length/);
  });
});
