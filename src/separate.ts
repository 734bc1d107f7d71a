// Stem separation as a product: `separate(audio)` runs Demucs (htdemucs by default) on a clip the way demucs's own
// API does it (demucs/api.py Separator.separate_tensor: convert_audio to the model's rate and channels, the clip
// normalised by its mono mix's mean and std and scaled back afterwards), and hands back one waveform per stem.
// Finding and loading the package is src/model/stems.ts's openDemucs, shared with the melody path.

import { demucsConvertAudio } from './audio/julius.js';
import { openDemucs, isSeparator, type DemucsLoadOptions, type DemucsSource, type StemSeparator, type SeparateProgressFn } from './model/stems.js';
import { readInputAudio, type InputAudio } from './pipeline.js';
import { InputError } from './inputs.js';

export { openDemucs };
export type { StemSeparator, DemucsSource, DemucsLoadOptions };

export interface SeparateOptions extends DemucsLoadOptions {
  /** The Demucs package (default htdemucs). */
  demucs?: DemucsSource;
  /** Stems to return (default all, in the model's order); an unknown name is an InputError on `stems`. */
  stems?: string[];
  /** Segments separated and in all. */
  onProgress?: SeparateProgressFn;
}

export interface SeparateResult {
  /** [channel][N] per stem asked for, at `sampleRate`. */
  stems: Record<string, Float32Array[]>;
  /** The model's sources, in its order. */
  sources: string[];
  sampleRate: number;
}

/** `stems` checked against the model's sources (an InputError on `stems` names them). */
export function checkStems(stems: readonly string[] | undefined, sources: readonly string[]): string[] {
  if (stems === undefined) return [...sources];
  if (stems.length === 0) throw new InputError('stems', `is empty; choose from ${sources.join(', ')}`);
  for (const s of stems) {
    if (!sources.includes(s)) throw new InputError('stems', `'${s}' is not a stem of this model; choose from ${sources.join(', ')}`);
  }
  return [...new Set(stems)];
}

/**
 * Separates `input` (decoded samples, a file path in Node, encoded bytes or a Blob) into stems, as demucs's
 * Separator.separate_tensor does with shifts=0: the clip at the model's rate and channels (julius), normalised
 * by the mean and std of its mono mix, separated, and scaled back.
 */
export async function separate(input: InputAudio, opts: SeparateOptions = {}): Promise<SeparateResult> {
  const audio = await readInputAudio(input);
  const owned = opts.demucs === undefined || !isSeparator(opts.demucs);
  const model = await openDemucs(opts.demucs, opts);
  try {
    const wanted = checkStems(opts.stems, model.sources);
    const wav = demucsConvertAudio(audio.channels, audio.sampleRate, model.samplerate, model.audioChannels).map((c) => c.slice());
    // ref = wav.mean(0); wav -= ref.mean(); wav /= ref.std() + 1e-8 (std unbiased)
    const N = wav[0].length;
    const ref = new Float64Array(N);
    for (const ch of wav) for (let t = 0; t < N; t++) ref[t] += ch[t] / wav.length;
    let mean = 0;
    for (let t = 0; t < N; t++) mean += ref[t];
    mean /= N;
    let v = 0;
    for (let t = 0; t < N; t++) v += (ref[t] - mean) ** 2;
    const scale = Math.sqrt(N > 1 ? v / (N - 1) : 0) + 1e-8;
    for (const ch of wav) for (let t = 0; t < N; t++) ch[t] = (ch[t] - mean) / scale;
    const out = await model.separate(wav, { onProgress: opts.onProgress, signal: opts.signal });
    const stems: Record<string, Float32Array[]> = {};
    for (const name of wanted) {
      stems[name] = out[model.sources.indexOf(name)].map((ch) => {
        for (let t = 0; t < ch.length; t++) ch[t] = ch[t] * scale + mean;
        return ch;
      });
    }
    return { stems, sources: [...model.sources], sampleRate: model.samplerate };
  } finally {
    if (owned) model.dispose();
  }
}
