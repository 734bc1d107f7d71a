// julius's `resample_frac` (github.com/adefossez/julius, julius/resample.py, ResampleFrac) and the two
// `convert_audio` functions built on it: demucs's (demucs/audio.py: channels, then resample) and audiocraft's
// (audiocraft/data/audio_utils.py: resample, then channels). This is how audiocraft's ChromaStemConditioner
// moves a melody between 32 kHz mono and Demucs's 44.1 kHz stereo, so the stemmed melody matches the Cog
// predictor's only with this resampler (src/audio/resample.ts's libsamplerate is a different filter).
//
// The algorithm: after dividing both rates by their gcd (old, new), output sample j·new + i is the dot product
// of the input, replicate-padded by `width` on the left and `width + old` on the right, from j·old on, with the
// i-th of `new` windowed-sinc kernels of length 2·width + old (a conv1d with stride old and new output channels).
// It runs on the CPU: it is a few hundred multiply-adds per output sample (≈1 G for 30 s of 32 kHz -> 44.1 kHz
// stereo, a second or two), small next to the Demucs network it feeds; and audio/ sits below the GPU runtime
// so the decode and file paths that use it need no device. Kernels are built in float32 steps as julius's are;
// the convolution sums accumulate in float64 (torch: float32), which is the remaining difference (≈1e-7).

/** Greatest common divisor of two non-negative integers. */
function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

export interface ResampleFracOptions {
  /** Zero crossings of the sinc kept in the filter (julius default 24). */
  zeros?: number;
  /** Low-pass cut-off as a fraction of the lower Nyquist frequency (julius default 0.945). */
  rolloff?: number;
  /** Output length, between 0 and ceil(N·new/old); default floor(N·new/old), or the ceiling with `full`. */
  outputLength?: number;
  /** Return the longest possible output (the ceiling). Not with `outputLength`. */
  full?: boolean;
}

/** One `ResampleFrac(oldSr, newSr, zeros, rolloff)`: the kernels are built once and reused. */
export class ResampleFrac {
  /** Rates divided by their gcd. */
  readonly oldSr: number;
  readonly newSr: number;
  readonly zeros: number;
  readonly rolloff: number;
  /** Half-width of the filter in input samples (julius `_width`); 0 when the rates are equal. */
  readonly width: number;
  /** `newSr` kernels of length 2·width + oldSr, row-major. */
  private readonly kernel: Float64Array;

  constructor(oldSr: number, newSr: number, zeros = 24, rolloff = 0.945) {
    if (!Number.isInteger(oldSr) || !Number.isInteger(newSr) || oldSr <= 0 || newSr <= 0) {
      throw new RangeError(`ResampleFrac: old_sr and new_sr should be positive integers, got ${oldSr} and ${newSr}`);
    }
    const g = gcd(oldSr, newSr);
    this.oldSr = oldSr / g;
    this.newSr = newSr / g;
    this.zeros = zeros;
    this.rolloff = rolloff;
    if (this.oldSr === this.newSr) {
      this.width = 0;
      this.kernel = new Float64Array(0);
      return;
    }
    // Anti-aliasing: the low-pass sits at rolloff · (lower rate)/2, also when upsampling (edges act as zero padding).
    const sr = Math.min(this.newSr, this.oldSr) * rolloff;
    this.width = Math.ceil((zeros * this.oldSr) / sr);
    const K = 2 * this.width + this.oldSr;
    this.kernel = new Float64Array(this.newSr * K);
    // Each step rounded to float32 as julius's float32 tensors are (Math.fround): the sinc's argument reaches
    // ±24π, where float64 arithmetic would move the kernel by ~1e-6 from julius's.
    const f = Math.fround;
    const srF = f(sr);
    const piF = f(Math.PI);
    for (let i = 0; i < this.newSr; i++) {
      const row = this.kernel.subarray(i * K, (i + 1) * K);
      const shift = f(-i / this.newSr);
      let sum = 0;
      for (let k = 0; k < K; k++) {
        const idx = k - this.width; // torch.arange(-width, width + old_sr).float()
        let t = f(f(shift + f(idx / this.oldSr)) * srF);
        t = f(Math.min(zeros, Math.max(-zeros, t)) * piF);
        const c = f(Math.cos(f(f(t / zeros) / 2)));
        const w = f(c * c); // cos² window over the kept zero crossings
        row[k] = f((t === 0 ? 1 : f(f(Math.sin(t)) / t)) * w);
        sum += row[k];
      }
      // renormalised so a constant signal stays constant
      sum = f(sum);
      for (let k = 0; k < K; k++) row[k] = f(row[k] / sum);
    }
  }

  /** julius's output lengths for N input samples: the default (floor) and the largest (ceil). */
  outputLengths(n: number): { floor: number; ceil: number } {
    if (this.oldSr === this.newSr) return { floor: n, ceil: n };
    // torch.as_tensor(new_sr * length / old_sr) is float32: round there before floor/ceil, as julius does
    const f = Math.fround((this.newSr * n) / this.oldSr);
    return { floor: Math.floor(f), ceil: Math.ceil(f) };
  }

  /** Resamples one channel. Equal rates return `x` itself (julius returns its input). */
  apply(x: Float32Array, opts: Pick<ResampleFracOptions, 'outputLength' | 'full'> = {}): Float32Array {
    if (this.oldSr === this.newSr) return x;
    const N = x.length;
    const { floor, ceil } = this.outputLengths(N);
    let length: number;
    if (opts.outputLength === undefined) length = opts.full ? ceil : floor;
    else {
      if (!Number.isInteger(opts.outputLength) || opts.outputLength < 0 || opts.outputLength > ceil) {
        throw new RangeError(`output_length must be between 0 and ${ceil}`);
      }
      if (opts.full) throw new RangeError('You cannot pass both full=True and output_length');
      length = opts.outputLength;
    }
    if (N === 0) return new Float32Array(0); // F.pad(replicate) of an empty signal fails in julius too
    const { oldSr: old, newSr: nw, width } = this;
    const K = 2 * width + old;
    // F.pad(x, (width, width + old), mode='replicate')
    const padded = new Float32Array(N + K);
    padded.fill(x[0], 0, width);
    padded.set(x, width);
    padded.fill(x[N - 1], width + N);
    const frames = Math.floor((padded.length - K) / old) + 1; // conv1d(stride=old) output length
    // y[..., :length]; the conv gives frames·new samples, at least ceil(N·new/old)
    const out = new Float32Array(Math.min(length, frames * nw));
    const kernel = this.kernel;
    for (let j = 0; j < frames; j++) {
      const base = j * old;
      for (let i = 0; i < nw; i++) {
        const o = j * nw + i;
        if (o >= out.length) return out;
        const ko = i * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += kernel[ko + k] * padded[base + k];
        out[o] = s;
      }
    }
    return out;
  }
}

// Kernels of the rate pairs in use (a melody clip's rate, 32 kHz, 44.1 kHz): cheap to keep, costly to rebuild.
const cache = new Map<string, ResampleFrac>();

function resampler(oldSr: number, newSr: number, zeros: number, rolloff: number): ResampleFrac {
  const key = `${oldSr}:${newSr}:${zeros}:${rolloff}`;
  let r = cache.get(key);
  if (!r) {
    r = new ResampleFrac(oldSr, newSr, zeros, rolloff);
    if (cache.size >= 16) cache.delete(cache.keys().next().value as string);
    cache.set(key, r);
  }
  return r;
}

/** `julius.resample_frac(x, old_sr, new_sr, zeros, rolloff, output_length, full)` for one channel. */
export function resampleFrac(x: Float32Array, oldSr: number, newSr: number, opts: ResampleFracOptions = {}): Float32Array {
  return resampler(oldSr, newSr, opts.zeros ?? 24, opts.rolloff ?? 0.945).apply(x, opts);
}

/**
 * `convert_audio_channels` (identical in demucs and audiocraft): to 1 channel, the mean of all; from 1 to more,
 * the one channel repeated; from more to fewer, the first ones; from 2..n-1 channels to more, an error.
 * May return the input arrays themselves.
 */
export function convertAudioChannels(wav: readonly Float32Array[], channels: number): Float32Array[] {
  const src = wav.length;
  if (src === 0) throw new RangeError('convertAudioChannels: the audio has no channels');
  if (src === channels) return [...wav];
  if (channels === 1) {
    const n = wav[0].length;
    const out = new Float32Array(n);
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let c = 0; c < src; c++) s += wav[c][t];
      out[t] = s / src;
    }
    return [out];
  }
  if (src === 1) return Array.from({ length: channels }, () => wav[0]);
  if (src >= channels) return wav.slice(0, channels);
  throw new RangeError('The audio file has less channels than requested but is not mono.');
}

/** demucs.audio.convert_audio: channels first, then julius.resample_frac. */
export function demucsConvertAudio(wav: readonly Float32Array[], fromRate: number, toRate: number, channels: number): Float32Array[] {
  const converted = convertAudioChannels(wav, channels);
  // a channel repeated from mono is resampled once
  const done = new Map<Float32Array, Float32Array>();
  return converted.map((ch) => {
    let r = done.get(ch);
    if (!r) done.set(ch, (r = resampleFrac(ch, fromRate, toRate)));
    return r;
  });
}

/** audiocraft.data.audio_utils.convert_audio: julius.resample_frac first, then channels. */
export function audiocraftConvertAudio(wav: readonly Float32Array[], fromRate: number, toRate: number, channels: number): Float32Array[] {
  // channels that the conversion drops are not resampled (taking the first channels commutes with resampling)
  const kept = channels < wav.length && channels !== 1 ? wav.slice(0, channels) : wav;
  return convertAudioChannels(kept.map((ch) => resampleFrac(ch, Math.trunc(fromRate), Math.trunc(toRate))), channels);
}
