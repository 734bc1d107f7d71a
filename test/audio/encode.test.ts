// encodeWav / encodeMp3: the WAV is 16-bit PCM that round-trips through decodeAudio to within one LSB
// and follows audiocraft's i16_pcm rounding; the MP3 decodes back (audio-decode) to the right layout and
// the same tone.

import assert from 'node:assert/strict';
import { encodeWav, encodeMp3, encodeAudio, toInt16 } from '../../src/audio/encode.js';
import { decodeAudio } from '../../src/audio/decode.js';

function tone(n: number, freq: number, sr: number, amp: number, phase = 0, fadeIn = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const env = fadeIn > 0 ? Math.min(1, i / fadeIn) : 1;
    x[i] = env * amp * Math.sin((2 * Math.PI * freq * i) / sr + phase);
  }
  return x;
}

/** Best normalised correlation of `ref` against `y` delayed by 0..maxLag samples. */
function bestCorrelation(ref: Float32Array, y: Float32Array, maxLag: number): { corr: number; lag: number } {
  let best = { corr: -Infinity, lag: 0 };
  for (let lag = 0; lag <= maxLag; lag++) {
    let s = 0, a = 0, b = 0;
    for (let i = 0; i < ref.length && i + lag < y.length; i++) {
      s += ref[i] * y[i + lag];
      a += ref[i] * ref[i];
      b += y[i + lag] * y[i + lag];
    }
    const corr = s / Math.sqrt(a * b);
    if (corr > best.corr) best = { corr, lag };
  }
  return best;
}

describe('audio/encode: WAV', () => {
  it('writes a canonical 16-bit PCM RIFF/WAVE header', () => {
    const n = 1000;
    const bytes = encodeWav([tone(n, 440, 32000, 0.5), tone(n, 660, 32000, 0.5)], 32000);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const str = (o: number): string => String.fromCharCode(...bytes.subarray(o, o + 4));
    assert.equal(str(0), 'RIFF');
    assert.equal(str(8), 'WAVE');
    assert.equal(str(12), 'fmt ');
    assert.equal(dv.getUint16(20, true), 1, 'PCM');
    assert.equal(dv.getUint16(22, true), 2, 'channels');
    assert.equal(dv.getUint32(24, true), 32000, 'sample rate');
    assert.equal(dv.getUint32(28, true), 32000 * 2 * 2, 'byte rate');
    assert.equal(dv.getUint16(34, true), 16, 'bits');
    assert.equal(str(36), 'data');
    assert.equal(dv.getUint32(40, true), n * 2 * 2);
    assert.equal(bytes.length, 44 + n * 4);
  });

  it('round-trips through decodeAudio: the same 16-bit words, within 1/32768 for moderate levels', async () => {
    const n = 5000;
    const l = tone(n, 440, 32000, 0.99);
    const r = tone(n, 1234, 32000, 0.4, 1);
    for (let i = 0; i < n; i += 7) r[i] += 0.01 * ((i * 7919) % 13 - 6); // some non-tonal detail
    const data = await decodeAudio(encodeWav([l, r], 32000), 'rt.wav');
    assert.equal(data.sampleRate, 32000);
    assert.equal(data.channels.length, 2);
    const words = toInt16([l, r]);
    for (const [c, x] of [l, r].entries()) {
      const y = data.channels[c];
      assert.equal(y.length, n);
      // audio-decode's WAV reader maps words asymmetrically (v / 32768 below zero, v / 32767 above), so
      // compare the words it read with those written...
      for (let i = 0; i < n; i++) {
        const word = Math.round(y[i] < 0 ? y[i] * 32768 : y[i] * 32767);
        if (word !== words[c][i]) assert.fail(`channel ${c} [${i}]: read ${word}, wrote ${words[c][i]}`);
      }
      // ...and the values: within 1/32768 where |x| ≤ 0.45, within 1.5/32768 at full scale.
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const err = Math.abs(y[i] - x[i]) * 32768;
        if (Math.abs(x[i]) <= 0.45 && err > 1) assert.fail(`channel ${c} [${i}]: ${err} LSB`);
        worst = Math.max(worst, err);
      }
      assert.ok(worst <= 1.5, `channel ${c}: max error ${worst} LSB`);
    }
  });

  it('mono WAV at 44.1 kHz', async () => {
    const data = await decodeAudio(encodeWav([tone(441, 100, 44100, 0.2)], 44100));
    assert.equal(data.channels.length, 1);
    assert.equal(data.sampleRate, 44100);
    assert.equal(data.channels[0].length, 441);
  });

  it("follows audiocraft's i16_pcm: round(x·32768), half to even; x·32767 when +1 would overflow; clamps", () => {
    const [a] = toInt16([new Float32Array([0.5, -1, 0.25, 0.5 / 32768, 1.5 / 32768, -2.5 / 32768, 0.9999])]);
    assert.deepEqual(Array.from(a), [16384, -32768, 8192, 0, 2, -2, 32765]);
    // A sample at (or clamped to) +1 would give 32768: the whole clip is scaled by 32767 instead.
    const [b] = toInt16([new Float32Array([1.5, -1.5, 0.5, 0.25, Number.NaN])]);
    assert.deepEqual(Array.from(b), [32767, -32767, 16384, 8192, 0]);
    // The decision is per clip, across channels.
    const [c0, c1] = toInt16([new Float32Array([0.5]), new Float32Array([1])]);
    assert.equal(c0[0], 16384); // round(0.5·32767 = 16383.5) = 16384 (even)
    assert.equal(c1[0], 32767);
  });

  it('rejects ragged channels and bad sample rates', () => {
    assert.throws(() => encodeWav([new Float32Array(3), new Float32Array(4)], 32000), /length/);
    assert.throws(() => encodeWav([new Float32Array(3)], 0), /sample rate/);
    assert.throws(() => encodeWav([], 32000), /no channels/);
  });

  it('checks its arguments: samples passed as channels, non-arrays, bad rates', () => {
    // a bare Float32Array would otherwise be read as 6400 empty channels
    assert.throws(() => encodeWav(new Float32Array(6400) as unknown as Float32Array[], 32000), /array of Float32Array.*for mono pass \[samples\]/);
    assert.throws(() => encodeWav([[0, 0.5]] as unknown as Float32Array[], 32000), /channel 0 must be a Float32Array/);
    assert.throws(() => encodeWav(Array.from({ length: 100 }, () => new Float32Array(2)), 32000), /100 channels/);
    for (const sr of [32000.5, -1, Number.NaN, '32000' as unknown as number]) assert.throws(() => encodeWav([new Float32Array(3)], sr), /sample rate/);
  });
});

describe('audio/encode: MP3', () => {
  it('stereo 32 kHz decodes back to 2 channels, 32 kHz, about the same length and the same 440 Hz tone', async () => {
    const sr = 32000, n = 2 * sr;
    // A fade-in makes the alignment unambiguous (a steady sine correlates at every period).
    const l = tone(n, 440, sr, 0.5, 0, sr / 2);
    const r = tone(n, 440, sr, 0.3, 1, sr / 2);
    const bytes = await encodeMp3([l, r], sr);
    assert.equal(bytes[0], 0xff, 'starts with an MPEG frame sync');
    // 320 kbps CBR: about 40 kB per second.
    assert.ok(Math.abs(bytes.length - 40000 * (n / sr)) < 4000, `${bytes.length} bytes`);
    const data = await decodeAudio(bytes, 'out.mp3');
    assert.equal(data.sampleRate, sr);
    assert.equal(data.channels.length, 2);
    const len = data.channels[0].length;
    // Encoder delay + frame padding, untrimmed: up to about two frames more than the input.
    assert.ok(len >= n && len <= n + 3 * 1152, `decoded ${len} samples for ${n}`);
    for (const [c, x] of [l, r].entries()) {
      const { corr, lag } = bestCorrelation(x.subarray(0, 24000), data.channels[c], 3000); // fade-in and 0.25 s of steady tone
      assert.ok(corr > 0.9, `channel ${c}: correlation ${corr}`);
      assert.ok(lag < 2500, `channel ${c}: delay ${lag}`);
    }
  });

  it('mono stays mono; other MP3 rates work; the bit rate is honoured', async () => {
    const x = tone(24000, 440, 24000, 0.5, 0, 4000);
    const low = await encodeMp3([x], 24000, 64);
    const data = await decodeAudio(low);
    assert.equal(data.channels.length, 1);
    assert.equal(data.sampleRate, 24000);
    assert.ok(bestCorrelation(x, data.channels[0], 3000).corr > 0.9);
    const high = await encodeMp3([x], 24000, 160);
    assert.ok(high.length > 2 * low.length, `${high.length} vs ${low.length} bytes`);
  });

  it('rejects what MP3 cannot carry', async () => {
    await assert.rejects(encodeMp3([new Float32Array(10)], 32001), /32001 Hz/);
    await assert.rejects(encodeMp3([1, 2, 3].map(() => new Float32Array(10)), 32000), /1 or 2 channels/);
    await assert.rejects(encodeMp3(new Float32Array(6400) as unknown as Float32Array[], 32000), /array of Float32Array/);
    await assert.rejects(encodeMp3([new Float32Array(3), new Float32Array(4)], 32000), /differ in length/);
    await assert.rejects(encodeMp3([new Float32Array(3)], 32000.5), /sample rate/);
  });

  it('encodeAudio picks the format', async () => {
    const x = [tone(3200, 440, 32000, 0.5)];
    assert.equal(String.fromCharCode(...(await encodeAudio(x, 32000, 'wav')).subarray(0, 4)), 'RIFF');
    assert.equal((await encodeAudio(x, 32000, 'mp3'))[0], 0xff);
  });
});
