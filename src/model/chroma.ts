// MusicGen-melody chroma conditioning features on the CPU.
//
// Reference: transformers' MusicgenMelodyFeatureExtractor
// (transformers/models/musicgen_melody/feature_extraction_musicgen_melody.py), whose filter bank is
// transformers.audio_utils.chroma_filter_bank, a port of librosa.filters.chroma. Parity is checked
// against tools/fixtures/chroma.py (test/model/chroma.test.ts).
//
// Everything is computed in float64; the filter bank is rounded to float32 exactly as the reference
// does (`torch.from_numpy(...).float()`) before use, so the only remaining difference from the
// float32 torch pipeline is float32 rounding noise in its STFT/einsum (≈1e-7 on the normalised chroma).

import FFT from 'fft.js';

export interface ChromaOptions {
  /** Sample rate of `wav` and of the extractor (no resampling is done here). Default 32000. */
  sampleRate?: number;
  /** FFT size = window length. Default 16384. */
  nFft?: number;
  /** Hop between frames. Default 4096. */
  hop?: number;
  /** Number of chroma bins. Default 12. */
  nChroma?: number;
  /** Audio longer than this many samples is truncated first (the extractor's `max_length`);
   *  default chunk_length (30 s) * sampleRate. */
  maxLength?: number;
}

export interface ChromaResult {
  /** Max-normalised chroma before the argmax, row-major [frames, nChroma]. */
  chroma: Float32Array;
  /** One-hot of the argmax of each frame (first index wins ties), row-major [frames, nChroma]. */
  onehot: Float32Array;
  frames: number;
}

// numpy.round: round half to even.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// numpy.remainder for a positive divisor: result in [0, n).
function pyMod(x: number, n: number): number {
  const r = x % n;
  return r < 0 ? r + n : r;
}

/**
 * Chroma filter bank, row-major [nChroma, floor(1 + nFft/2)], as
 * `chroma_filter_bank(num_frequency_bins=nFft, num_chroma, sampling_rate, tuning, power, weighting_parameters,
 * start_at_c_chroma)` returns it (MusicGen-melody passes num_frequency_bins = n_fft, tuning 0, defaults elsewhere).
 * Computed in float64, stored as float32.
 */
export function chromaFilterBank(
  sampleRate: number,
  nFft: number,
  nChroma = 12,
  tuning = 0,
  power: number | null = 2,
  weighting: readonly [center: number, halfWidth: number] | null = [5, 2],
  startAtC = true,
): Float32Array {
  const n = nFft;
  const nCols = Math.floor(1 + nFft / 2);
  // FFT bin frequencies on the chroma-bin scale (octaves above A440/16, times nChroma).
  const freqBins = new Float64Array(n);
  const step = sampleRate / n; // np.linspace(0, sr, n, endpoint=False)
  const stuttgart = 440.0 * 2.0 ** (tuning / nChroma);
  for (let k = 1; k < n; k++) freqBins[k] = nChroma * Math.log2((k * step) / (stuttgart / 16));
  // Made-up value for the 0 Hz bin: 1.5 octaves below bin 1 (as librosa).
  freqBins[0] = n > 1 ? freqBins[1] - 1.5 * nChroma : 0;

  const binWidth = (k: number): number => (k < n - 1 ? Math.max(freqBins[k + 1] - freqBins[k], 1.0) : 1);
  const half = roundHalfEven(nChroma / 2);
  const shift = 3 * Math.floor(nChroma / 12); // np.roll(-3) to start at C instead of A

  const out = new Float32Array(nChroma * nCols);
  const col = new Float64Array(nChroma);
  for (let k = 0; k < nCols; k++) {
    const w = binWidth(k);
    for (let c = 0; c < nChroma; c++) {
      // Distance in chroma bins, wrapped into [-nChroma/2, nChroma/2); Gaussian bump of half the bin width.
      const d = pyMod(freqBins[k] - c + half + 10 * nChroma, nChroma) - half;
      const q = (2 * d) / w;
      col[c] = Math.exp(-0.5 * (q * q));
    }
    if (power !== null) {
      let s = 0;
      for (let c = 0; c < nChroma; c++) s += col[c] ** power;
      const norm = s ** (1.0 / power);
      for (let c = 0; c < nChroma; c++) col[c] /= norm;
    }
    if (weighting !== null) {
      const [center, halfWidth] = weighting;
      const z = (freqBins[k] / nChroma - center) / halfWidth;
      const g = Math.exp(-0.5 * (z * z));
      for (let c = 0; c < nChroma; c++) col[c] *= g;
    }
    for (let c = 0; c < nChroma; c++) {
      const src = startAtC ? (c + shift) % nChroma : c;
      out[c * nCols + k] = col[src];
    }
  }
  return out;
}

/**
 * Chroma features of one mono waveform, as MusicgenMelodyFeatureExtractor(audio, sampling_rate=sr) for a single
 * input (default `padding=True` pads nothing for one sequence; `truncation=True` cuts to `maxLength`).
 */
export function extractChroma(wav: Float32Array, opts: ChromaOptions = {}): ChromaResult {
  const sampleRate = opts.sampleRate ?? 32000;
  const nFft = opts.nFft ?? 16384;
  const hop = opts.hop ?? 4096;
  const nChroma = opts.nChroma ?? 12;
  const maxLength = opts.maxLength ?? 30 * sampleRate;
  if (nFft % 2 !== 0 || (nFft & (nFft - 1)) !== 0) throw new Error(`nFft must be a power of two, got ${nFft}`);

  const x = wav.length > maxLength ? wav.subarray(0, maxLength) : wav;

  // Short audio is zero-padded to n_fft, centred (the odd extra sample goes on the right).
  let body: Float64Array;
  if (x.length < nFft) {
    const pad = nFft - x.length;
    body = new Float64Array(nFft);
    body.set(x, pad >> 1);
  } else {
    body = Float64Array.from(x);
  }

  // torch.stft(center=True, pad_mode='reflect'): reflect (edge not repeated) by n_fft/2 on both sides.
  const p = nFft >> 1;
  const L = body.length;
  const padded = new Float64Array(L + 2 * p);
  padded.set(body, p);
  for (let i = 1; i <= p; i++) {
    padded[p - i] = body[i];
    padded[p + L - 1 + i] = body[L - 1 - i];
  }
  const frames = 1 + Math.floor((padded.length - nFft) / hop);

  // Periodic Hann (torch.hann_window default); normalized=True divides the STFT by sqrt(sum(w²)),
  // i.e. the power by sum(w²).
  const win = new Float64Array(nFft);
  let winSq = 0;
  for (let i = 0; i < nFft; i++) {
    win[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / nFft);
    winSq += win[i] * win[i];
  }

  const nBins = nFft / 2 + 1;
  const filters = chromaFilterBank(sampleRate, nFft, nChroma);
  const fft = new FFT(nFft);
  const spec: number[] = fft.createComplexArray();
  const frame = new Float64Array(nFft);
  const pow = new Float64Array(nBins);
  const raw = new Float64Array(nChroma);
  const chroma = new Float32Array(frames * nChroma);
  const onehot = new Float32Array(frames * nChroma);

  for (let t = 0; t < frames; t++) {
    const off = t * hop;
    for (let i = 0; i < nFft; i++) frame[i] = padded[off + i] * win[i];
    fft.realTransform(spec, frame); // fills bins 0..nFft/2, all we need (onesided)
    for (let k = 0; k < nBins; k++) {
      const re = spec[2 * k];
      const im = spec[2 * k + 1];
      pow[k] = (re * re + im * im) / winSq;
    }
    let norm = 0;
    for (let c = 0; c < nChroma; c++) {
      const row = c * nBins;
      let s = 0;
      for (let k = 0; k < nBins; k++) s += filters[row + k] * pow[k];
      raw[c] = s;
      norm = Math.max(norm, Math.abs(s));
    }
    // F.normalize(p=inf, eps=1e-6): x / max(max|x|, eps).
    const denom = Math.max(norm, 1e-6);
    let best = 0;
    let bestVal = -Infinity;
    for (let c = 0; c < nChroma; c++) {
      const v = raw[c] / denom;
      chroma[t * nChroma + c] = v;
      // strict '>': the first maximum wins, as torch.argmax; an all-zero (silent) frame gives bin 0.
      if (v > bestVal) {
        best = c;
        bestVal = v;
      }
    }
    onehot[t * nChroma + best] = 1;
  }
  return { chroma, onehot, frames };
}
