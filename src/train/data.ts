// Training data in memory: clips of decoded audio with captions become chunks of EnCodec codes (and, for melody
// models, the chunk's own chroma), plus the frozen T5 states of each caption. Each clip is resampled to the
// model's rate and channel count (32 kHz; mono, or stereo for stereo models) and cut into chunks of at most 30 s
// (a long clip gives several; a trailing piece shorter than 1 s is dropped unless it is the whole clip). Nothing
// here touches files, so the browser bundle trains from the same code; reading a dataset folder or tarball, and
// the codes cache, are dataset.ts's (Node). Also here: the seeded PRNG the trainer draws from.

import { Tensor, tidy } from '../tensor.js';
import type { MusicgenModel } from '../model/musicgen.js';
import { extractChroma } from '../model/chroma.js';
import { AbortError } from '../model/generate.js';
import { prepareAudio } from '../audio/resample.js';
import type { AudioData } from '../audio/decode.js';
import { noGrad } from '../autograd.js';

// ---------------------------------------------------------------------------------------------------------------
// PRNG

/**
 * mulberry32: a 32-bit state, one multiply-xorshift per draw. Small, fast, and its whole state is one number, so
 * a checkpoint restores it exactly. Used for shuffles, condition-dropout draws and the LoRA init.
 */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** A generator seeded from `seed` and a stream id (independent streams for independent uses). */
  static from(seed: number, stream = 0): Rng {
    // splitmix-style scramble of (seed, stream) so nearby seeds give unrelated streams
    let z = (Math.imul(seed >>> 0, 0x9e3779b9) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
    z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
    return new Rng(z ^ (z >>> 16));
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Fisher–Yates permutation of 0…n−1. */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// chunks, codes, chroma

/** One clip as the trainer takes it: decoded audio (any rate and channel count) and its caption. */
export interface TrainingClip {
  /** Per channel, as `decodeAudio` gives them. */
  audio: Float32Array[];
  sampleRate: number;
  caption: string;
  /** For messages and chunk ids (default `clip<i>`). */
  name?: string;
}

export interface ChunkOptions {
  /** Longest chunk, seconds. Default 30 (MusicGen's window). */
  chunkSeconds?: number;
  /** Trailing pieces shorter than this are dropped unless they are the whole clip. Default 1 s. */
  minChunkSeconds?: number;
  onProgress?: (done: number, total: number, what: string) => void;
  /** Checked between chunks: aborting throws an AbortError. */
  signal?: AbortSignal;
}

/** One training example: a chunk of a clip, its codes and conditioning. */
export interface Chunk {
  /** `<file>#<chunk index>` */
  id: string;
  caption: string;
  /** [K, frames] row-major (stereo: L/R interleaved rows, as the LM takes them). */
  codes: Int32Array;
  frames: number;
  /** Melody models: the chunk's chroma one-hots expanded to chroma_length rows [L, 12] (as the LM's prefix). */
  chroma: Float32Array | null;
}

/** T5 states of one caption (frozen, computed once): [length, dim]. */
export interface TextFeatures {
  hidden: Float32Array;
  length: number;
  dim: number;
}

export interface TrainingData {
  chunks: Chunk[];
  text: Map<string, TextFeatures>;
  K: number;
  /** Hash of the data, the chunking and the codec: a resumed run must see the same. */
  fingerprint: string;
  /** Whether the codes came from the cache file. */
  fromCache: boolean;
}

/** Decodes, chunks and encodes every clip (or loads them from the cache), and computes the captions' T5 states. */
/** Resamples each clip to the model, cuts it into chunks and encodes them (EnCodec codes; chroma for melody models). */
export async function encodeClips(model: MusicgenModel, clips: TrainingClip[], opts: ChunkOptions = {}): Promise<Chunk[]> {
  const chunkSeconds = opts.chunkSeconds ?? 30;
  const minChunkSeconds = Math.min(opts.minChunkSeconds ?? 1, chunkSeconds);
  const sr = model.sampleRate;
  const maxLen = Math.round(chunkSeconds * sr);
  const minLen = Math.round(minChunkSeconds * sr);
  const pieces: { id: string; caption: string; channels: Float32Array[] }[] = [];
  for (let i = 0; i < clips.length; i++) {
    const clip = clips[i];
    const name = clip.name ?? `clip${i}`;
    const channels = await prepareAudio({ channels: clip.audio, sampleRate: clip.sampleRate } satisfies AudioData, sr, model.audioChannels === 2 ? 2 : 1);
    const N = channels[0].length;
    for (let start = 0, c = 0; start < N; start += maxLen, c++) {
      const end = Math.min(N, start + maxLen);
      if (c > 0 && end - start < minLen) break;
      pieces.push({ id: `${name}#${c}`, caption: clip.caption, channels: channels.map((ch) => ch.subarray(start, end)) });
    }
  }
  const chunks: Chunk[] = [];
  for (let i = 0; i < pieces.length; i++) {
    if (opts.signal?.aborted) throw new AbortError();
    opts.onProgress?.(i, pieces.length, pieces[i].id);
    chunks.push(await encodeChunk(model, pieces[i].id, pieces[i].caption, pieces[i].channels));
  }
  opts.onProgress?.(pieces.length, pieces.length, 'encoded');
  return chunks;
}

/** The frozen T5 states of every caption the chunks use. */
export async function captionStates(model: MusicgenModel, chunks: Chunk[]): Promise<Map<string, TextFeatures>> {
  const text = new Map<string, TextFeatures>();
  for (const caption of new Set(chunks.map((c) => c.caption))) text.set(caption, await encodeCaption(model, caption));
  return text;
}

async function encodeChunk(model: MusicgenModel, id: string, caption: string, channels: Float32Array[]): Promise<Chunk> {
  const N = channels[0].length;
  const perChannel: Int32Array[] = [];
  for (const ch of channels) {
    const audio = Tensor.from(ch, [1, 1, N], 'f32', model.rt);
    const codes = noGrad(() => model.encodec.encode(audio));
    perChannel.push((await codes.read()) as Int32Array);
    audio.dispose();
    codes.dispose();
  }
  const Kc = model.encodec.numQuantizers;
  const C = channels.length;
  const frames = perChannel[0].length / Kc;
  // stereo: rows L0 R0 L1 R1 …, as the LM's codebooks
  const codes = new Int32Array(Kc * C * frames);
  for (let k = 0; k < Kc; k++) for (let c = 0; c < C; c++) codes.set(perChannel[c].subarray(k * frames, (k + 1) * frames), (k * C + c) * frames);
  let chroma: Float32Array | null = null;
  if (model.isMelody) {
    let mono = channels[0];
    if (C > 1) {
      mono = new Float32Array(N);
      for (const ch of channels) for (let i = 0; i < N; i++) mono[i] += ch[i] / C;
    }
    const r = extractChroma(mono, { sampleRate: model.sampleRate });
    chroma = expandChroma(r.onehot, r.frames, model.cfg.chroma_length ?? 235, model.cfg.num_chroma ?? 12);
  }
  return { id, caption, codes, frames, chroma };
}

/** Repeats [F, n] rows (whole copies, as MusicgenModel.melodyPrefix) and cuts to L rows. */
export function expandChroma(onehot: Float32Array, F: number, L: number, n = 12): Float32Array {
  const out = new Float32Array(L * n);
  for (let r = 0; r < L; r++) out.set(onehot.subarray((r % F) * n, (r % F + 1) * n), r * n);
  return out;
}

async function encodeCaption(model: MusicgenModel, caption: string): Promise<TextFeatures> {
  const ids = model.tokenizer.encode(caption);
  if (ids.length === 0) ids.push(model.tokenizer.padId);
  const L = ids.length;
  const idT = Tensor.from(ids, [1, L], 'i32', model.rt);
  const mask = Tensor.from(new Int32Array(L).fill(1), [1, L], 'i32', model.rt);
  const hidden = noGrad(() => tidy(() => model.textHidden(idT, mask)));
  const data = (await hidden.read()) as Float32Array;
  const dim = hidden.shape[2];
  for (const t of [idT, mask, hidden]) t.dispose();
  return { hidden: data, length: L, dim };
}
