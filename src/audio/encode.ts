// Output encoding (browser-safe): the Cog predictor's `output_format` (wav | mp3), written by
// audiocraft's `audio_write` (audiocraft/data/audio.py): WAV as 16-bit PCM after `i16_pcm`
// (audiocraft/data/audio_utils.py), MP3 at `mp3_rate` 320 kbps. Containers/codecs come from maintained
// packages: `wavefile` for the RIFF/WAVE file, `@breezystack/lamejs` (a JS port of LAME) for MP3.
// (Cog predictors seen in the wild write the WAV with audio_write and then run `ffmpeg -i out.wav out.mp3`,
// i.e. LAME at ffmpeg's default bit rate from the 16-bit PCM; encodeMp3 likewise encodes the 16-bit PCM,
// with the bit rate a parameter, 320 kbps by default as audio_write's mp3_rate.)

import * as wavefileModule from 'wavefile';

export type OutputFormat = 'wav' | 'mp3';

interface WaveFileLike {
  fromScratch(numChannels: number, sampleRate: number, bitDepthCode: string, samples: ArrayLike<number>[]): void;
  toBuffer(): Uint8Array;
}
type WaveFileCtor = new () => WaveFileLike;

// wavefile ships a UMD build as `main` (Node's ESM loader exposes it as the default export only) and an
// ES module as `module` (bundlers: a named export), so look in both places.
const WaveFile: WaveFileCtor = (() => {
  const ns = wavefileModule as unknown as { WaveFile?: WaveFileCtor; default?: { WaveFile?: WaveFileCtor } };
  const ctor = ns.WaveFile ?? ns.default?.WaveFile;
  if (!ctor) throw new Error('wavefile: WaveFile class not found in the installed package');
  return ctor;
})();

/** Checks the channels argument ([channel] of Float32Array samples, all one length); returns the length. */
function checkChannels(channels: readonly Float32Array[], who: string): number {
  if (!Array.isArray(channels)) {
    const what = channels instanceof Float32Array ? `one Float32Array (for mono pass [samples])` : describeArg(channels);
    throw new TypeError(`${who}: channels must be an array of Float32Array, one per channel; got ${what}`);
  }
  if (channels.length === 0) throw new RangeError(`${who}: no channels`);
  channels.forEach((ch, i) => {
    if (!(ch instanceof Float32Array)) throw new TypeError(`${who}: channel ${i} must be a Float32Array, got ${describeArg(ch)}`);
  });
  const n = channels[0].length;
  channels.forEach((ch, i) => {
    if (ch.length !== n) throw new RangeError(`${who}: channels differ in length (channel 0 has ${n} samples, channel ${i} ${ch.length})`);
  });
  return n;
}

function describeArg(v: unknown): string {
  if (v === null || typeof v !== 'object') return String(v);
  return (v as object).constructor?.name ?? 'an object';
}

function checkSampleRate(sampleRate: number, who: string): void {
  if (typeof sampleRate !== 'number' || !Number.isInteger(sampleRate) || sampleRate <= 0) {
    throw new RangeError(`${who}: sample rate must be a positive whole number of Hz, got ${String(sampleRate)}`);
  }
}

/** Round half to even, as torch.round (Math.round rounds halves up). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Float to 16-bit PCM exactly as audiocraft's i16_pcm, after clamping to [-1, 1] (audio_write's
 * normalisation leaves |x| ≤ 1 for every strategy but 'none', where audiocraft asserts instead; we clamp,
 * as most tools do). Plain rounding, no dither: round(x·2^15), unless some sample would reach +2^15
 * (x ≥ 1 - 2^-16), in which case the whole clip uses round(x·(2^15 - 1)) so +1 maps to 32767 (the
 * scale then differs from the WAV reader's 1/32768 by 1/32768, which audiocraft accepts).
 */
export function toInt16(channels: readonly Float32Array[]): Int16Array[] {
  checkChannels(channels, 'toInt16');
  let overflow = false;
  for (const ch of channels) {
    for (let i = 0; i < ch.length; i++) {
      const v = ch[i] > 1 ? 1 : ch[i] < -1 ? -1 : ch[i];
      if (roundHalfEven(v * 32768) >= 32768) { overflow = true; break; }
    }
    if (overflow) break;
  }
  return channels.map((ch) => {
    const out = new Int16Array(ch.length);
    for (let i = 0; i < ch.length; i++) {
      let v = ch[i];
      if (Number.isNaN(v)) v = 0; // audiocraft asserts finiteness; silence is the harmless choice here
      v = v > 1 ? 1 : v < -1 ? -1 : v;
      // torch multiplies in float32: x·32768 is exact, x·32767 is rounded to float32 before torch.round.
      out[i] = overflow ? roundHalfEven(Math.fround(v * 32767)) : roundHalfEven(v * 32768);
    }
    return out;
  });
}

/** A 16-bit PCM WAV file (RIFF/WAVE, little endian) of the given channels; samples clamped to ±1 (see toInt16). */
export function encodeWav(channels: readonly Float32Array[], sampleRate: number): Uint8Array {
  checkChannels(channels, 'encodeWav');
  checkSampleRate(sampleRate, 'encodeWav');
  // the format field is 16 bits; more channels than a few dozen is a mistake (e.g. samples passed as channels)
  if (channels.length > 64) throw new RangeError(`encodeWav: ${channels.length} channels; at most 64 (are samples passed as channels?)`);
  const wav = new WaveFile();
  wav.fromScratch(channels.length, sampleRate, '16', toInt16(channels));
  return wav.toBuffer();
}

/**
 * The 44-byte header of a 16-bit PCM WAV whose length is not known yet: the RIFF and data sizes are 0xFFFFFFFF,
 * as ffmpeg and sox write to a pipe; readers (ffplay, sox, ffmpeg) take the samples to the end of the stream.
 */
export function wavStreamHeader(channels: number, sampleRate: number): Uint8Array {
  checkSampleRate(sampleRate, 'wavStreamHeader');
  if (!Number.isInteger(channels) || channels < 1 || channels > 64) throw new RangeError(`wavStreamHeader: ${channels} channels`);
  const out = new Uint8Array(44);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string): void => { for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF');
  v.setUint32(4, 0xffffffff, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true); // PCM fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * 2, true); // byte rate
  v.setUint16(32, channels * 2, true); // block align
  v.setUint16(34, 16, true);
  ascii(36, 'data');
  v.setUint32(40, 0xffffffff, true);
  return out;
}

/**
 * The samples of a streamed WAV's chunk: interleaved 16-bit little-endian PCM of round(clamp(x, ±1)·32767).
 * One scale for every chunk (toInt16 picks its scale from the whole clip, which a stream has not seen yet).
 */
export function pcm16Chunk(channels: readonly Float32Array[]): Uint8Array {
  checkChannels(channels, 'pcm16Chunk');
  const C = channels.length;
  const n = channels[0].length;
  const out = new Uint8Array(n * C * 2);
  const v = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      let x = channels[c][i];
      if (Number.isNaN(x)) x = 0;
      x = x > 1 ? 1 : x < -1 ? -1 : x;
      v.setInt16((i * C + c) * 2, roundHalfEven(Math.fround(x * 32767)), true);
    }
  }
  return out;
}

interface Mp3EncoderLike {
  encodeBuffer(left: Int16Array, right?: Int16Array): Uint8Array;
  flush(): Uint8Array;
}
type Mp3EncoderCtor = new (channels: number, sampleRate: number, kbps: number) => Mp3EncoderLike;

// lamejs is loaded with a dynamic import(), so encodeMp3 is async: the package maps `require` to an IIFE
// build that exports nothing, and code compiled to CommonJS (tsx under mocha does that) would get it from
// a static import; import() always takes the package's ES module build, in Node and in bundlers.
let lameLoading: Promise<Mp3EncoderCtor> | undefined;
function loadMp3Encoder(): Promise<Mp3EncoderCtor> {
  lameLoading ??= import('@breezystack/lamejs').then(
    (ns) => {
      const m = ns as unknown as { Mp3Encoder?: Mp3EncoderCtor; default?: { Mp3Encoder?: Mp3EncoderCtor } };
      const ctor = m.Mp3Encoder ?? m.default?.Mp3Encoder;
      if (!ctor) throw new Error('@breezystack/lamejs: Mp3Encoder not found in the installed package');
      return ctor;
    },
    (e: unknown) => {
      lameLoading = undefined; // let a later call try again
      throw e;
    },
  );
  return lameLoading;
}

/** Sample rates an MPEG-1/2/2.5 Layer III stream can carry (LAME refuses others). */
export const MP3_SAMPLE_RATES: readonly number[] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/**
 * An MP3 (LAME CBR) of 1 or 2 channels. Default 320 kbps as audiocraft's audio_write (mp3_rate); at
 * 32 kHz that is MPEG-1 Layer III. Input is converted to 16-bit like the WAV path (LAME's JS port takes
 * Int16 PCM). The stream carries LAME's usual encoder delay and end padding (about 1100-2200 samples);
 * decoders that read the LAME/Xing header trim it, others do not.
 */
export async function encodeMp3(channels: readonly Float32Array[], sampleRate: number, kbps = 320): Promise<Uint8Array> {
  const n = checkChannels(channels, 'encodeMp3');
  if (channels.length > 2) throw new RangeError(`encodeMp3: MP3 holds 1 or 2 channels, got ${channels.length}`);
  checkSampleRate(sampleRate, 'encodeMp3');
  if (!MP3_SAMPLE_RATES.includes(sampleRate)) {
    throw new RangeError(`encodeMp3: MP3 cannot carry ${sampleRate} Hz (supported: ${MP3_SAMPLE_RATES.join(', ')}); resample first`);
  }
  if (typeof kbps !== 'number' || !Number.isFinite(kbps) || kbps <= 0) throw new RangeError(`encodeMp3: bad bit rate ${String(kbps)} kbps`);
  const Mp3Encoder = await loadMp3Encoder();
  const pcm = toInt16(channels);
  const encoder = new Mp3Encoder(channels.length, sampleRate, kbps);
  const parts: Uint8Array[] = [];
  const FRAME = 1152; // samples per MPEG-1 Layer III frame: the encoder's natural block
  for (let i = 0; i < n; i += FRAME) {
    const end = Math.min(n, i + FRAME);
    const left = pcm[0].subarray(i, end);
    const out = channels.length === 2 ? encoder.encodeBuffer(left, pcm[1].subarray(i, end)) : encoder.encodeBuffer(left);
    if (out.length > 0) parts.push(out.slice());
  }
  const tail = encoder.flush();
  if (tail.length > 0) parts.push(tail.slice());
  let total = 0;
  for (const p of parts) total += p.length;
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const p of parts) { bytes.set(p, off); off += p.length; }
  return bytes;
}

/** encodeWav or encodeMp3 (at 320 kbps) by `format`. */
export async function encodeAudio(channels: readonly Float32Array[], sampleRate: number, format: OutputFormat): Promise<Uint8Array> {
  switch (format) {
    case 'wav': return encodeWav(channels, sampleRate);
    case 'mp3': return encodeMp3(channels, sampleRate);
    default: {
      const never: never = format;
      throw new RangeError(`encodeAudio: unknown format '${String(never)}' (expected wav or mp3)`);
    }
  }
}
