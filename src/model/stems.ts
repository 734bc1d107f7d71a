// The melody path of audiocraft's ChromaStemConditioner (audiocraft/modules/conditioners.py, _get_stemmed_wav),
// which the Cog predictor runs: the melody, already at the model's rate and mono (MusicGen.generate_with_chroma's
// audiocraft convert_audio), goes to Demucs's rate and channels (demucs.audio.convert_audio), through Demucs
// (apply_model), keeps `vocals` + `other` (summed), and comes back to the model's rate in mono (convert_audio
// again; mono = mean of the channels); the chroma is taken of that. Drums and bass would otherwise dominate it.
// Resampling is julius's resample_frac (src/audio/julius.ts) as in demucs, so the result is audiocraft's.

import { demucsConvertAudio } from '../audio/julius.js';
import type { ByteSource } from '../io/safetensors.js';
import { UrlSource } from '../io/url-source.js';
import { initRuntime, type Runtime } from '../runtime.js';
import type { LimitsMode } from '../device.js';
import { Demucs } from './demucs.js';

/** The published htdemucs package (demucs/remote/files.txt; remote/htdemucs.yaml's one model), which
 *  audiocraft's `pretrained.get_model('htdemucs')` loads. Its name carries its sha256 prefix (8726e21a). */
export const HTDEMUCS_FILE = '955717e8-8726e21a.th';
export const HTDEMUCS_URL = `https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/${HTDEMUCS_FILE}`;

/** The stems the melody keeps, as audiocraft picks them (`stem_indices`). */
export const MELODY_STEMS = ['vocals', 'other'] as const;

/** Separation progress: segments done and in all. */
export type SeparateProgressFn = (done: number, total: number) => void;

/** What the melody path and `separate` use of a Demucs model (src/model/demucs.ts's Demucs). */
export interface StemSeparator {
  /** Source names in the package's order (htdemucs: drums, bass, other, vocals). */
  readonly sources: readonly string[];
  readonly samplerate: number;
  readonly audioChannels: number;
  /** [channel][N] at `samplerate` -> [source][channel][N], apply_model(split, overlap 0.25, shifts 0). */
  separate(mix: Float32Array[], opts?: { onProgress?: SeparateProgressFn; signal?: AbortSignal }): Promise<Float32Array[][]>;
  dispose(): void;
}

/** Loads a Demucs package (`{klass, args, kwargs, state}` .th) onto the GPU (src/model/demucs.ts). */
export function loadDemucs(source: ByteSource, rt?: Runtime): Promise<StemSeparator> {
  return Demucs.load(source, { rt });
}

/**
 * A Demucs package: a file path (Node), an http(s) URL, any ByteSource, or a model already loaded. Paths and
 * URLs named `{signature}-{checksum}.th` are checked against their sha256; URLs are downloaded once into the
 * cache in Node. Default: the published htdemucs (`955717e8-8726e21a.th`), from the cache or downloaded.
 */
export type DemucsSource = string | ByteSource | StemSeparator;

export interface DemucsLoadOptions {
  rt?: Runtime;
  /** The WebGPU limits to create the runtime with when `rt` is not given (see `LoadOptions.limits`). */
  limits?: LimitsMode;
  /** Node: folder for the download (default torch.hub's: $TORCH_HOME/hub/checkpoints). */
  demucsCacheDir?: string;
  /** Node: never download (default: $HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Node: download progress of the weights. */
  onDemucsDownload?: (p: { file: string; received: number; total: number }) => void;
  signal?: AbortSignal;
}

export function isSeparator(s: DemucsSource): s is StemSeparator {
  return typeof s === 'object' && typeof (s as Partial<StemSeparator>).separate === 'function';
}

/** Loads the Demucs package `source` names (see DemucsSource); a loaded model is returned as is. */
export async function openDemucs(source: DemucsSource | undefined, opts: DemucsLoadOptions = {}): Promise<StemSeparator> {
  if (source !== undefined && isSeparator(source)) return source;
  let bytes: ByteSource;
  if (source !== undefined && typeof source !== 'string') bytes = source;
  else if (!isNode()) bytes = new UrlSource(source ?? HTDEMUCS_URL); // the browser's HTTP cache keeps it
  else {
    const weightsModule = '../io/demucs-weights.js';
    const fsModule = '../io/file-source.js';
    const { resolveDemucsWeights } = (await import(/* @vite-ignore */ weightsModule)) as typeof import('../io/demucs-weights.js');
    const { FileSource } = (await import(/* @vite-ignore */ fsModule)) as typeof import('../io/file-source.js');
    const file = await resolveDemucsWeights(source ?? HTDEMUCS_URL, {
      cacheDir: opts.demucsCacheDir, offline: opts.offline, onProgress: opts.onDemucsDownload, signal: opts.signal,
    });
    bytes = new FileSource(file);
  }
  return loadDemucs(bytes, opts.rt ?? (await initRuntime({ limits: opts.limits })));
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

/**
 * `melody` (mono, `sampleRate` Hz) with drums and bass taken out: vocals + other, mono, at `sampleRate`, as
 * ChromaStemConditioner._get_stemmed_wav returns it. A one-sample melody is returned as is (audiocraft skips
 * Demucs for its null condition).
 */
export async function stemmedMelody(
  demucs: StemSeparator, melody: Float32Array, sampleRate: number,
  opts: { onProgress?: SeparateProgressFn; signal?: AbortSignal } = {},
): Promise<Float32Array> {
  if (melody.length <= 1) return melody;
  const picks = MELODY_STEMS.map((s) => {
    const i = demucs.sources.indexOf(s);
    if (i < 0) throw new Error(`the Demucs model has no '${s}' stem (its sources: ${demucs.sources.join(', ')})`);
    return i;
  });
  // convert_audio(wav, sample_rate, demucs.samplerate, demucs.audio_channels): mono repeated, then julius
  const mix = demucsConvertAudio([melody], sampleRate, demucs.samplerate, demucs.audioChannels);
  const stems = await demucs.separate(mix, opts);
  // stems[:, stem_indices].sum(1): float32 sums, stem by stem in that order
  const summed = stems[picks[0]].map((ch, c) => {
    const out = ch.slice();
    for (const p of picks.slice(1)) {
      const other = stems[p][c];
      for (let t = 0; t < out.length; t++) out[t] += other[t];
    }
    return out;
  });
  // convert_audio(mix_wav, demucs.samplerate, sample_rate, 1): mean of the channels, then julius
  return demucsConvertAudio(summed, demucs.samplerate, sampleRate, 1)[0];
}
