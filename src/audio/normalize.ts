// Output normalisation (browser-safe): audiocraft's `normalize_audio` / `normalize_loudness`
// (audiocraft/data/audio_utils.py), which the Cog predictor runs through
// `audio_write(..., strategy=normalization_strategy)` with the defaults peak_clip_headroom_db=1,
// rms_headroom_db=18, loudness_headroom_db=14, loudness_compressor=False, normalize=True.
//
// Loudness is ITU-R BS.1770-4 integrated loudness as torchaudio.functional.loudness computes it (that
// is what audiocraft calls, via torchaudio.transforms.Loudness):
//   - K-weighting: a +4 dB high shelf at 1500 Hz (Q 1/√2) then a 38 Hz high-pass (Q 0.5), both RBJ
//     audio-EQ-cookbook biquads with coefficients computed for the actual sample rate (the standard only
//     tabulates 48 kHz; pyloudnorm's default "K-weighting" filter class uses the very same parameters,
//     and at 48 kHz the cascade is within 0.05 dB of the standard's table from 20 Hz to 20 kHz);
//   - torchaudio's lfilter clamps each biquad's OUTPUT to [-1, 1] (clamp=True by default), so loud
//     material whose high-shelved signal exceeds full scale measures slightly quieter than pyloudnorm
//     says (a few thousandths of an LU on real music); this is kept, to match the predictor;
//   - gating blocks of round(0.4·sr) samples every round(0.1·sr), whole blocks only (Tensor.unfold),
//     mean square per channel, channel weights 1, 1, 1, 1.41, 1.41;
//   - absolute gate: block loudness > -70 LUFS; relative gate: > (loudness of the absolute-gated
//     blocks) - 10 LU; result -0.691 + 10·log10(Σ_c g_c·mean_z_c).
// pyloudnorm differs only in bookkeeping (a possibly partial last block, absolute gate ≥ -70, no
// clamp); the test fixture checks both.
//
// The strategies, exactly as audiocraft (scale_peak = 10^(-1/20) ≈ 0.891, scale_rms = 10^(-18/20)):
//   clip      clamp to ±scale_peak (not ±1).
//   peak      multiply by scale_peak / max|x| (no clamp needed).
//   rms       multiply by scale_rms / rms(mono mix): the RMS of the MEAN OF THE CHANNELS, not of all
//             samples; then clamp to ±1.
//   loudness  if rms(all samples of all channels) < 2e-3 (energy_floor): unchanged; else multiply by
//             10^((-14 - L)/20) with L the integrated loudness (no tanh: loudness_compressor is False in
//             the predictor); then clamp to ±1 in every case (_clip_wav).
//   none      unchanged (audiocraft asserts max|x| < 1 instead; the encoders clamp anyway).
// Where audiocraft would fail we return something sensible instead, documented per case: silence with
// 'peak'/'rms' (0/0 gives NaN there and the WAV writer's assertion fails) is returned as silence;
// 'loudness' on audio with no gating block (shorter than 0.4 s, or every block under -70 LUFS after
// K-weighting, which NaNs audiocraft's assert) is left unchanged and clamped.

export type NormalizationStrategy = 'loudness' | 'clip' | 'peak' | 'rms' | 'none';

export const NORMALIZATION_STRATEGIES: readonly NormalizationStrategy[] = ['loudness', 'clip', 'peak', 'rms', 'none'];

export interface NormalizeOptions {
  /** Headroom for 'peak' and 'clip' in dB (audiocraft peak_clip_headroom_db, default 1). */
  peakClipHeadroomDb?: number;
  /** Target RMS below full scale for 'rms' in dB (rms_headroom_db, default 18). */
  rmsHeadroomDb?: number;
  /** Target loudness is minus this, in LUFS (loudness_headroom_db, default 14). */
  loudnessHeadroomDb?: number;
  /** tanh soft clipping after the loudness gain (loudness_compressor, default false as in the predictor). */
  loudnessCompressor?: boolean;
  /** Below this RMS 'loudness' leaves the audio as is (normalize_loudness energy_floor, default 2e-3). */
  energyFloor?: number;
  /** audiocraft `normalize`: when false, 'peak'/'rms' only ever scale down (to avoid clipping). Default true. */
  normalize?: boolean;
}

/** One biquad, normalised so a[0] = 1: y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2]. */
export interface Biquad {
  b: [number, number, number];
  a: [number, number, number];
}

function normalised(b: [number, number, number], a: [number, number, number]): Biquad {
  return { b: [b[0] / a[0], b[1] / a[0], b[2] / a[0]], a: [1, a[1] / a[0], a[2] / a[0]] };
}

/**
 * The two BS.1770 K-weighting stages for `sampleRate`: [high shelf (+4 dB, 1500 Hz, Q 1/√2),
 * high-pass (38 Hz, Q 0.5)], from the RBJ cookbook formulas used by torchaudio's treble_biquad /
 * highpass_biquad and pyloudnorm's IIRfilter.
 */
export function kWeightingFilters(sampleRate: number): [Biquad, Biquad] {
  // High shelf ("treble") stage.
  let w0 = (2 * Math.PI * 1500) / sampleRate;
  let alpha = Math.sin(w0) / 2 / Math.SQRT1_2;
  const A = Math.pow(10, 4 / 40);
  const t1 = 2 * Math.sqrt(A) * alpha;
  const t2 = (A - 1) * Math.cos(w0);
  const t3 = (A + 1) * Math.cos(w0);
  const shelf = normalised(
    [A * (A + 1 + t2 + t1), -2 * A * (A - 1 + t3), A * (A + 1 + t2 - t1)],
    [A + 1 - t2 + t1, 2 * (A - 1 - t3), A + 1 - t2 - t1],
  );
  // High-pass (RLB) stage.
  w0 = (2 * Math.PI * 38) / sampleRate;
  alpha = Math.sin(w0) / 2 / 0.5;
  const c = Math.cos(w0);
  const highPass = normalised([(1 + c) / 2, -1 - c, (1 + c) / 2], [1 + alpha, -2 * c, 1 - alpha]);
  return [shelf, highPass];
}

/** Direct form I from zero state, in double precision; the output (not the recursion) is clamped to ±1 like torchaudio's lfilter. */
function biquadClamped(x: ArrayLike<number>, f: Biquad): Float64Array {
  const [b0, b1, b2] = f.b;
  const [, a1, a2] = f.a;
  const y = new Float64Array(x.length);
  let x1 = 0, x2 = 0, y1 = 0, y2 = 0;
  for (let n = 0; n < x.length; n++) {
    const xn = x[n];
    const yn = b0 * xn + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
    x2 = x1; x1 = xn; y2 = y1; y1 = yn;
    y[n] = yn > 1 ? 1 : yn < -1 ? -1 : yn;
  }
  return y;
}

const CHANNEL_WEIGHTS = [1, 1, 1, 1.41, 1.41];

function checkChannels(channels: readonly Float32Array[], who: string): number {
  if (channels.length === 0) throw new RangeError(`${who}: no channels`);
  const n = channels[0].length;
  for (const ch of channels) if (ch.length !== n) throw new RangeError(`${who}: channels differ in length`);
  return n;
}

/**
 * BS.1770-4 integrated loudness in LUFS (torchaudio.functional.loudness semantics, see the header).
 * Returns -Infinity when no block passes the gates or the audio is shorter than one 400 ms block.
 */
export function integratedLoudness(channels: readonly Float32Array[], sampleRate: number): number {
  const n = checkChannels(channels, 'integratedLoudness');
  if (channels.length > 5) throw new RangeError('integratedLoudness: at most 5 channels (BS.1770 weights)');
  if (!Number.isFinite(sampleRate) || sampleRate <= 0) throw new RangeError(`integratedLoudness: bad sample rate ${sampleRate}`);
  const gate = Math.round(0.4 * sampleRate);
  const step = Math.round(gate * 0.25);
  const blocks = n >= gate ? Math.floor((n - gate) / step) + 1 : 0;
  if (blocks === 0) return -Infinity;
  const [shelf, highPass] = kWeightingFilters(sampleRate);
  // z[c][j]: mean square of channel c over block j, via a prefix sum of squares.
  const z = channels.map((ch) => {
    const y = biquadClamped(biquadClamped(ch, shelf), highPass);
    const prefix = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + y[i] * y[i];
    const zc = new Float64Array(blocks);
    for (let j = 0; j < blocks; j++) zc[j] = (prefix[j * step + gate] - prefix[j * step]) / gate;
    return zc;
  });
  const g = CHANNEL_WEIGHTS.slice(0, channels.length);
  const blockLoudness = new Float64Array(blocks);
  for (let j = 0; j < blocks; j++) {
    let s = 0;
    for (let c = 0; c < z.length; c++) s += g[c] * z[c][j];
    blockLoudness[j] = -0.691 + 10 * Math.log10(s);
  }
  const gatedLoudness = (keep: (j: number) => boolean): number => {
    let count = 0;
    const sums = new Float64Array(z.length);
    for (let j = 0; j < blocks; j++) {
      if (!keep(j)) continue;
      count++;
      for (let c = 0; c < z.length; c++) sums[c] += z[c][j];
    }
    if (count === 0) return -Infinity;
    let s = 0;
    for (let c = 0; c < z.length; c++) s += (g[c] * sums[c]) / count;
    return -0.691 + 10 * Math.log10(s);
  };
  const absolute = (j: number): boolean => blockLoudness[j] > -70;
  const relativeGate = gatedLoudness(absolute) - 10;
  if (!Number.isFinite(relativeGate)) return -Infinity;
  return gatedLoudness((j) => absolute(j) && blockLoudness[j] > relativeGate);
}

/** RMS over every sample of every channel (audiocraft: wav.pow(2).mean().sqrt()). */
export function rms(channels: readonly Float32Array[]): number {
  let s = 0;
  let n = 0;
  for (const ch of channels) {
    for (let i = 0; i < ch.length; i++) s += ch[i] * ch[i];
    n += ch.length;
  }
  return n === 0 ? 0 : Math.sqrt(s / n);
}

function maxAbs(channels: readonly Float32Array[]): number {
  let m = 0;
  for (const ch of channels) for (let i = 0; i < ch.length; i++) { const v = Math.abs(ch[i]); if (v > m) m = v; }
  return m;
}

function map(channels: readonly Float32Array[], f: (v: number) => number): Float32Array[] {
  return channels.map((ch) => {
    const out = new Float32Array(ch.length);
    for (let i = 0; i < ch.length; i++) out[i] = f(ch[i]);
    return out;
  });
}

const clamp = (v: number, lim: number): number => (v > lim ? lim : v < -lim ? -lim : v);

/**
 * audiocraft normalize_audio on `channels` (each a channel of `sampleRate` Hz audio). Returns new
 * arrays; the input is not modified. See the header for the exact rule of each strategy.
 */
export function normalizeAudio(
  channels: readonly Float32Array[],
  sampleRate: number,
  strategy: NormalizationStrategy,
  options: NormalizeOptions = {},
): Float32Array[] {
  checkChannels(channels, 'normalizeAudio');
  const {
    peakClipHeadroomDb = 1,
    rmsHeadroomDb = 18,
    loudnessHeadroomDb = 14,
    loudnessCompressor = false,
    energyFloor = 2e-3,
    normalize = true,
  } = options;
  // Python computes these in double precision and torch multiplies float32 audio by the Python float.
  const scalePeak = Math.pow(10, -peakClipHeadroomDb / 20);
  const scaleRms = Math.pow(10, -rmsHeadroomDb / 20);
  switch (strategy) {
    case 'clip':
      return map(channels, (v) => clamp(v, scalePeak));
    case 'peak': {
      const peak = maxAbs(channels);
      if (peak === 0) return map(channels, (v) => v); // silence: audiocraft would produce NaN
      // torch: scale_peak / wav.abs().max() is a float32 tensor, so the gain is rounded to float32.
      const gain = Math.fround(scalePeak / peak);
      if (!(normalize || gain < 1)) return map(channels, (v) => v);
      return map(channels, (v) => v * gain);
    }
    case 'rms': {
      const mono = new Float32Array(channels[0].length);
      for (let i = 0; i < mono.length; i++) {
        let s = 0;
        for (const ch of channels) s += ch[i];
        mono[i] = s / channels.length;
      }
      const r = rms([mono]);
      if (r === 0) return map(channels, (v) => v); // silence: audiocraft would produce NaN
      const gain = Math.fround(scaleRms / r);
      if (!(normalize || gain < 1)) return map(channels, (v) => clamp(v, 1));
      return map(channels, (v) => clamp(v * gain, 1));
    }
    case 'loudness': {
      if (!Number.isFinite(sampleRate) || sampleRate <= 0) throw new RangeError(`normalizeAudio: loudness needs a sample rate, got ${sampleRate}`);
      if (rms(channels) < energyFloor) return map(channels, (v) => clamp(v, 1));
      const loudness = integratedLoudness(channels, sampleRate);
      if (!Number.isFinite(loudness)) return map(channels, (v) => clamp(v, 1));
      // A Python float times a float32 tensor: torch rounds the scalar to float32 for the product.
      const gain = Math.fround(Math.pow(10, (-loudnessHeadroomDb - loudness) / 20));
      return loudnessCompressor
        ? map(channels, (v) => clamp(Math.tanh(v * gain), 1))
        : map(channels, (v) => clamp(v * gain, 1));
    }
    case 'none':
      return map(channels, (v) => v);
    default: {
      const never: never = strategy;
      throw new RangeError(`normalizeAudio: unknown strategy '${String(never)}' (expected ${NORMALIZATION_STRATEGIES.join(', ')})`);
    }
  }
}
