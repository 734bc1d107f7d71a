// Sample-rate and channel conversion (browser-safe). Mirrors audiocraft's `convert_audio`
// (audiocraft/data/audio_utils.py: julius.resample_frac, then convert_audio_channels), which the
// Cog predictor applies to `input_audio` before the melody chroma / continuation prompt.
//
// Resampling uses libsamplerate (Erik de Castro Lopo's band-limited sinc converter) compiled to wasm by
// @alexanderolsen/libsamplerate-js, not julius' windowed sinc: both are band-limited interpolators
// (julius: 24 zero crossings, roll-off 0.945; SRC_SINC_BEST_QUALITY: ~97% bandwidth, ~145 dB
// stop band; SRC_SINC_MEDIUM_QUALITY: ~90% bandwidth, ~97 dB), so outputs agree to well within what
// the 4-codebook EnCodec / 12-bin chroma can see, not sample for sample.

import type { AudioData } from './decode.js';

/** libsamplerate's wasm (~2 MB) loads on first use: most generations never resample. */
async function libsamplerate(): Promise<typeof import('@alexanderolsen/libsamplerate-js')> {
  const mod = (await import('@alexanderolsen/libsamplerate-js')) as typeof import('@alexanderolsen/libsamplerate-js') & { default?: typeof import('@alexanderolsen/libsamplerate-js') };
  return mod.default ?? mod;
}

export type ResampleQuality = 'best' | 'medium';

/** Size (in floats) of the wasm glue's fixed input and output transfer buffers (libsamplerate-js 2.x). */
const GLUE_BUFFER = 1_008_000;

function checkRate(name: string, rate: number): void {
  if (!Number.isFinite(rate) || rate <= 0) throw new RangeError(`resample: ${name} rate must be a positive number, got ${rate}`);
}

/**
 * Output length for N input samples: floor(N·to/from), julius.resample_frac's default output_length
 * (`int(new_sr * length / old_sr)`), which is what audiocraft's convert_audio returns. (Rounding would
 * differ by one sample for some lengths, which can change EnCodec's frame count for a continuation prompt.)
 */
export function resampledLength(n: number, from: number, to: number): number {
  return Math.floor((n * to) / from);
}

/**
 * Band-limited resampling of one channel from `from` Hz to `to` Hz.
 *
 * The output has exactly floor(N·to/from) samples (resampledLength) and sample k sits at time k/to
 * (libsamplerate's converter is time-aligned: no leading delay to trim). Outside the clip the signal is
 * taken as zero; julius pads by replicating the edge samples instead, so the first and last few
 * milliseconds can differ slightly from audiocraft's. The wasm glue's `simple()` silently switches to
 * repeated `full()` calls without end-of-input for inputs over 4 MB, which drops the filter's tail, so
 * this always streams through `full()` itself in chunks that fit the glue's buffers and then feeds
 * zeros (the signal is taken to be silent after its end, as with end-of-input) until the last output
 * sample has been produced.
 *
 * Equal rates return a copy of `x`.
 */
export async function resample(x: Float32Array, from: number, to: number, quality: ResampleQuality = 'best'): Promise<Float32Array> {
  checkRate('input sample', from);
  checkRate('output sample', to);
  const ratio = to / from;
  if (ratio > 256 || ratio < 1 / 256) throw new RangeError(`resample: ratio ${to}/${from} is outside libsamplerate's 1/256..256`);
  if (from === to) return x.slice();
  const outLength = resampledLength(x.length, from, to);
  const out = new Float32Array(outLength);
  if (outLength === 0) return out;

  const { create, ConverterType } = await libsamplerate();
  const converterType = quality === 'best' ? ConverterType.SRC_SINC_BEST_QUALITY : ConverterType.SRC_SINC_MEDIUM_QUALITY;
  const src = await create(1, from, to, { converterType });
  try {
    // Input per call: at most half of what fits both transfer buffers (output = input·ratio).
    const chunk = Math.max(256, Math.floor(Math.min(GLUE_BUFFER, GLUE_BUFFER / ratio) / 2));
    // libsamplerate's filter looks ahead by ~(half filter length)/min(1, ratio) input samples; zeros beyond
    // that are never needed. The bound only stops a misbehaving converter from looping forever.
    const maxZeros = Math.ceil(4096 / Math.min(1, ratio)) + 10 * chunk;
    let written = 0;
    let offset = 0;
    let zerosFed = 0;
    const zeros = new Float32Array(chunk);
    while (written < outLength) {
      let piece: Float32Array;
      if (offset < x.length) {
        piece = x.subarray(offset, Math.min(x.length, offset + chunk));
        offset += piece.length;
      } else {
        if (zerosFed >= maxZeros) throw new Error(`resample: converter produced ${written} of ${outLength} samples`);
        // Small zero blocks past the end: only the filter's look-ahead is needed, not a whole chunk.
        piece = zeros.subarray(0, Math.min(chunk, 1024));
        zerosFed += piece.length;
      }
      const y = src.full(piece);
      const take = Math.min(y.length, outLength - written);
      out.set(take === y.length ? y : y.subarray(0, take), written);
      written += take;
    }
  } finally {
    src.destroy();
  }
  return out;
}

/** Mean of the channels (audiocraft convert_audio_channels to 1 channel: wav.mean(dim=-2)). */
export function toMono(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 0) throw new RangeError('toMono: no channels');
  const n = channels[0].length;
  for (const ch of channels) if (ch.length !== n) throw new RangeError('toMono: channels differ in length');
  if (channels.length === 1) return channels[0].slice();
  const out = new Float32Array(n);
  const k = channels.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += channels[c][i];
    out[i] = s / k;
  }
  return out;
}

/**
 * Converts decoded audio to `sampleRate` Hz and 1 or 2 channels, as audiocraft's convert_audio:
 * to mono = mean of all channels; mono to stereo = the one channel duplicated; more channels than asked
 * (e.g. 5.1 to stereo) = the first ones. audiocraft resamples first and then converts channels; both are
 * linear and act on channels independently, so converting first gives the same result (to float
 * rounding) with fewer channels to resample. Returns new arrays.
 */
export async function prepareAudio(
  data: AudioData,
  sampleRate: number,
  channels: 1 | 2,
  quality: ResampleQuality = 'best',
): Promise<Float32Array[]> {
  const src = data.channels;
  if (src.length === 0) throw new RangeError('prepareAudio: the audio has no channels');
  if (channels !== 1 && channels !== 2) throw new RangeError(`prepareAudio: channels must be 1 or 2, got ${String(channels)}`);
  let picked: Float32Array[];
  if (channels === 1) picked = [src.length === 1 ? src[0] : toMono(src)];
  else if (src.length === 1) picked = [src[0]];
  else picked = src.slice(0, 2);
  const resampled = await Promise.all(picked.map((ch) => resample(ch, data.sampleRate, sampleRate, quality)));
  if (channels === 2 && resampled.length === 1) resampled.push(resampled[0].slice());
  return resampled;
}
