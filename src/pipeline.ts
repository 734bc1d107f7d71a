// The product: MusicGen as the Cog predictor offers it, as a library for Node and the browser.
// Text prompts (batched), a melody to follow (melody models) or a clip to continue, duration, sampling
// controls, guidance, seed; long durations in audiocraft's 30 s windows; loudness/peak/rms/clip normalisation.
// Audio goes in and out as sample arrays; files and formats are the CLI's business (src/cli/generate.ts).

import { Tensor, tidy } from './tensor.js';
import { initRuntime, type Runtime } from './runtime.js';
import * as ops from './ops.js';
import type { ByteSource, CheckpointFolder } from './io/safetensors.js';
import { UrlSource, urlFolder } from './io/url-source.js';
import { MusicgenModel } from './model/musicgen.js';
import { generateCodes, AbortError } from './model/generate.js';
import { extractChroma } from './model/chroma.js';
import { prepareAudio } from './audio/resample.js';
import { normalizeAudio, type NormalizationStrategy } from './audio/normalize.js';
import type { AudioData } from './audio/decode.js';

export { AbortError };
export type { AudioData, NormalizationStrategy };

/** Longest window the LM generates at once, the stride between windows, as audiocraft (seconds). */
const MAX_WINDOW_S = 30;
const WINDOW_STRIDE_S = 18;

export interface GenerateRequest {
  /** One prompt, or several for a batch (one output each). Required unless `inputAudio` is given. */
  prompt?: string | string[];
  /** Melody to follow (melody models), or the clip to continue when `continuation` is set. */
  inputAudio?: AudioData;
  continuation?: boolean;
  /** Seconds; slices `inputAudio` (also in melody mode). */
  continuationStart?: number;
  /** Seconds; undefined or -1 = end of clip. */
  continuationEnd?: number;
  /** Seconds of output (with continuation: the clip's slice included). Default 8. */
  duration?: number;
  /** Default 250; 0 = off. */
  topK?: number;
  /** Default 0 = off (use top-k); when > 0, top-k is not applied. */
  topP?: number;
  /** Default 1; 0 = greedy. */
  temperature?: number;
  /** Classifier-free guidance scale, default 3; 1 = no unconditional pass. */
  guidance?: number;
  /** Reproducible runs; undefined or -1 picks one (returned in the result). */
  seed?: number;
  /** Default 'loudness' (-14 LUFS). */
  normalization?: NormalizationStrategy;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface Progress {
  stage: 'text' | 'generate' | 'decode';
  /** Steps done and in all (generate: tokens over every window). */
  done: number;
  total: number;
}

export interface GenerateResult {
  /** [batch][channel] samples at `sampleRate`. */
  audio: Float32Array[][];
  sampleRate: number;
  /** [batch] codes [K, frames] handed to EnCodec (delay undone; stereo: L/R interleaved; clip's codes first). */
  codes: Int32Array[];
  numCodebooks: number;
  frames: number;
  seed: number;
  timings: { text_s: number; generate_s: number; decode_s: number; total_s: number; per_step_ms: number };
}

export interface LoadOptions {
  rt?: Runtime;
  /** Progress while uploading weights (tensors done / all). */
  onProgress?: (done: number, total: number, tensor: string) => void;
  /** Node: cache folder for hub downloads, download progress, offline mode. */
  cacheDir?: string;
  offline?: boolean;
  onDownload?: (p: { file: string; received: number; total: number; fileIndex: number; files: number }) => void;
  /**
   * An audiocraft LM state dict applied on top of the model (a Cog fine-tune's `lm_final.pt`): a file path (Node),
   * an http(s) URL, or any ByteSource. Its LM replaces the model's; keys that fit nothing are an error.
   */
  lmWeights?: string | ByteSource;
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

export class InputError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InputError';
  }
}

function checkNumber(field: string, v: number, { min, max, integer = false, minExclusive = false }: { min?: number; max?: number; integer?: boolean; minExclusive?: boolean }): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InputError(field, `must be a number, got ${String(v)}`);
  if (integer && !Number.isInteger(v)) throw new InputError(field, `must be a whole number, got ${v}`);
  if (min !== undefined && (minExclusive ? v <= min : v < min)) throw new InputError(field, `must be ${minExclusive ? '>' : '≥'} ${min}, got ${v}`);
  if (max !== undefined && v > max) throw new InputError(field, `must be ≤ ${max}, got ${v}`);
}

export class MusicGen {
  private constructor(readonly model: MusicgenModel) {}

  /**
   * `source`: a model folder (Node), an http(s) URL of one (browser or Node), a hub id like
   * `facebook/musicgen-small` (Node; downloaded once into the cache), or any CheckpointFolder.
   */
  static async load(source: string | CheckpointFolder, opts: LoadOptions = {}): Promise<MusicGen> {
    const rt = opts.rt ?? (await initRuntime());
    let folder: CheckpointFolder;
    if (typeof source !== 'string') folder = source;
    else if (/^https?:\/\//.test(source) || !isNode()) folder = urlFolder(source);
    else {
      const hubModule = './io/hub.js';
      const fsModule = './io/file-source.js';
      const { resolveModel } = (await import(/* @vite-ignore */ hubModule)) as typeof import('./io/hub.js');
      const { dirFolder } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
      const dir = await resolveModel(source, { cacheDir: opts.cacheDir, offline: opts.offline, onProgress: opts.onDownload });
      folder = dirFolder(dir);
    }
    let lmWeights: ByteSource | undefined;
    if (typeof opts.lmWeights !== 'string') lmWeights = opts.lmWeights;
    else if (/^https?:\/\//.test(opts.lmWeights) || !isNode()) lmWeights = new UrlSource(opts.lmWeights);
    else {
      const fsModule = './io/file-source.js';
      const { FileSource } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
      lmWeights = new FileSource(opts.lmWeights);
    }
    return new MusicGen(await MusicgenModel.load(folder, { rt, onProgress: opts.onProgress, lmWeights }));
  }

  get sampleRate(): number { return this.model.sampleRate; }
  get channels(): number { return this.model.audioChannels; }
  get isMelody(): boolean { return this.model.isMelody; }
  get frameRate(): number { return this.model.frameRate; }

  async generate(req: GenerateRequest): Promise<GenerateResult> {
    const t0 = now();
    const m = this.model;
    const rt = m.rt;
    const prompts = req.prompt === undefined ? [] : Array.isArray(req.prompt) ? req.prompt : [req.prompt];
    const {
      duration = 8, topK = 250, topP = 0, temperature = 1, guidance = 3,
      continuation = false, continuationStart = 0, normalization = 'loudness',
    } = req;
    let { continuationEnd, seed } = req;

    // ---- validation (Cog's rules, and ranges) ----
    if (prompts.length === 0 && !req.inputAudio) throw new InputError('prompt', 'a prompt or input audio is required');
    for (const p of prompts) if (typeof p !== 'string') throw new InputError('prompt', 'must be text');
    if (continuation && !req.inputAudio) throw new InputError('continuation', 'needs input audio to continue');
    if (req.inputAudio && !continuation && !m.isMelody) {
      throw new InputError('input_audio', 'this is a text-only model: melody conditioning needs a melody model; set continuation to continue the clip instead');
    }
    checkNumber('duration', duration, { min: 0, minExclusive: true, max: 3600 });
    checkNumber('top_k', topK, { min: 0, integer: true, max: 1 << 20 });
    checkNumber('top_p', topP, { min: 0, max: 1 });
    checkNumber('temperature', temperature, { min: 0, max: 100 });
    checkNumber('classifier_free_guidance', guidance, { min: 0, max: 100 });
    checkNumber('continuation_start', continuationStart, { min: 0 });
    if (continuationEnd !== undefined && continuationEnd !== -1) checkNumber('continuation_end', continuationEnd, { min: 0 });
    if (seed === undefined || seed === -1) seed = randomSeed();
    checkNumber('seed', seed, { min: 0, integer: true, max: Number.MAX_SAFE_INTEGER });
    if (!['loudness', 'clip', 'peak', 'rms', 'none'].includes(normalization)) {
      throw new InputError('normalization_strategy', `must be one of loudness, clip, peak, rms, none; got ${String(normalization)}`);
    }

    const sr = m.sampleRate;
    const C = m.audioChannels;
    const frames = Math.round(duration * this.frameRate);
    if (frames < 1) throw new InputError('duration', `is shorter than one frame (${1 / this.frameRate} s)`);

    // ---- audio input: resample, slice ----
    let clip: Float32Array[] | null = null;
    if (req.inputAudio) {
      const audio = req.inputAudio;
      if (audio.channels.length === 0 || audio.channels[0].length === 0) throw new InputError('input_audio', 'is empty');
      const clipSeconds = audio.channels[0].length / audio.sampleRate;
      if (continuationEnd === undefined || continuationEnd === -1) continuationEnd = clipSeconds;
      if (continuationStart > continuationEnd) throw new InputError('continuation_start', `(${continuationStart} s) is after continuation_end (${continuationEnd} s)`);
      if (continuationStart >= clipSeconds) throw new InputError('continuation_start', `(${continuationStart} s) is past the end of the clip (${clipSeconds.toFixed(2)} s)`);
      const a = Math.floor(continuationStart * audio.sampleRate);
      const b = Math.min(audio.channels[0].length, Math.floor(continuationEnd * audio.sampleRate));
      if (b <= a) throw new InputError('continuation_end', 'leaves an empty slice of the input audio');
      const sliced: AudioData = { channels: audio.channels.map((ch: Float32Array) => ch.subarray(a, b)), sampleRate: audio.sampleRate };
      const prepared = await prepareAudio(sliced, sr, continuation ? (C as 1 | 2) : 1);
      clip = prepared;
      const sliceSeconds = prepared[0].length / sr;
      if (continuation && sliceSeconds >= duration) {
        throw new InputError('duration', `(${duration} s) must be longer than the input audio to continue (${sliceSeconds.toFixed(2)} s)`);
      }
    }

    // ---- text ----
    const B = Math.max(1, prompts.length);
    req.onProgress?.({ stage: 'text', done: 0, total: 1 });
    const tText = now();
    const text = tidy(() => {
      if (prompts.length === 0) {
        // no description: one masked (zero) state, as transformers encodes a lone BOS with mask 0 when it has no
        // input_ids (and audiocraft's null condition): a melody prefix gets one zero row; a text model's
        // cross-attention to it adds exactly nothing
        return { states: Tensor.zeros([1, 1, m.cfg.decoder.hidden_size], 'f32', rt), mask: Tensor.zeros([1, 1], 'f32', rt) };
      }
      const tok = m.tokenizer.encodeBatch(prompts);
      const ids = Tensor.from(tok.inputIds, [B, tok.length], 'i32', rt);
      const maskI = Tensor.from(tok.attentionMask, [B, tok.length], 'i32', rt);
      const mask = ops.castToF32(maskI);
      return { states: m.projectText(m.textHidden(ids, maskI), mask), mask };
    });
    await rt.sync();
    const textS = (now() - tText) / 1000;
    req.onProgress?.({ stage: 'text', done: 1, total: 1 });

    // ---- tokens, in windows of at most 30 s ----
    const tGen = now();
    const windowFrames = Math.round(MAX_WINDOW_S * this.frameRate);
    const strideFrames = Math.round(WINDOW_STRIDE_S * this.frameRate);
    let prompt: { codes: Int32Array; frames: number }[] | null = null;
    let clipFrames = 0;
    if (clip && continuation) {
      const codes = await this.encodeClip(clip);
      clipFrames = codes.frames;
      if (clipFrames >= windowFrames) throw new InputError('input_audio', `the slice to continue must be shorter than ${MAX_WINDOW_S} s`);
      prompt = Array.from({ length: B }, () => codes);
    }
    const K = m.lm.numCodebooks;
    const perChannel = K / C;
    const plan = planWindows(frames, windowFrames, strideFrames, clipFrames);
    const stepsOf = (w: Window): number => w.frames - w.promptFrames + perChannel - 1;
    const totalSteps = plan.reduce((s, w) => s + stepsOf(w), 0);
    const all: Int32Array[][] = Array.from({ length: B }, () => []); // pieces [K, n] per row
    let stepsDone = 0;
    try {
      for (const w of plan) {
        const chroma = m.isMelody && clip && !continuation ? this.melodyChroma(clip[0], w.offset / this.frameRate, B) : undefined;
        const base = stepsDone;
        let win: Int32Array[];
        try {
          win = await this.generateWindow(text.states, text.mask, chroma, prompt, stepsOf(w), {
            guidanceScale: guidance, temperature, topK, topP, seed: (seed + w.offset) % 2 ** 53,
          }, (done) => req.onProgress?.({ stage: 'generate', done: base + done, total: totalSteps }), req.signal);
        } finally {
          chroma?.dispose();
        }
        stepsDone += stepsOf(w);
        // keep the window's new frames (the first window keeps the clip's codes too)
        for (let b = 0; b < B; b++) all[b].push(sliceFrames(win[b], K, w.frames, w.offset === 0 ? 0 : w.promptFrames, w.frames));
        // the next window is prompted by this one's last (30 − 18) s
        if (w !== plan[plan.length - 1]) prompt = win.map((codes) => ({ codes: sliceFrames(codes, K, w.frames, strideFrames, w.frames), frames: w.frames - strideFrames }));
      }
    } finally {
      text.states.dispose();
      text.mask.dispose();
    }
    const codes = all.map((pieces) => concatFrames(pieces, K));
    const generateS = (now() - tGen) / 1000;

    // ---- decode, normalise ----
    const tDec = now();
    req.onProgress?.({ stage: 'decode', done: 0, total: B });
    const audio: Float32Array[][] = [];
    for (let b = 0; b < B; b++) {
      if (req.signal?.aborted) throw new AbortError();
      const chans = await this.decode(codes[b], frames);
      audio.push(normalization === 'none' ? chans : normalizeAudio(chans, sr, normalization));
      req.onProgress?.({ stage: 'decode', done: b + 1, total: B });
    }
    const decodeS = (now() - tDec) / 1000;
    return {
      audio, sampleRate: sr, codes, numCodebooks: K, frames, seed,
      timings: { text_s: textS, generate_s: generateS, decode_s: decodeS, total_s: (now() - t0) / 1000, per_step_ms: (generateS * 1000) / Math.max(1, totalSteps) },
    };
  }

  /** EnCodec codes of a clip [C][N] at the model's rate: [K, frames] (stereo: L/R interleaved). */
  async encodeClip(clip: Float32Array[]): Promise<{ codes: Int32Array; frames: number }> {
    const enc = this.model.encodec;
    const C = this.model.audioChannels;
    const per: Int32Array[] = [];
    let T = 0;
    for (let c = 0; c < C; c++) {
      const x = Tensor.from(clip[c], [1, 1, clip[c].length], 'f32', this.model.rt);
      const codes = enc.encode(x);
      T = codes.shape[2];
      per.push((await codes.read()) as Int32Array);
      x.dispose();
      codes.dispose();
    }
    const Kq = enc.numQuantizers;
    const out = new Int32Array(Kq * C * T);
    for (let k = 0; k < Kq; k++) for (let c = 0; c < C; c++) out.set(per[c].subarray(k * T, (k + 1) * T), (k * C + c) * T);
    return { codes: out, frames: T };
  }

  /** Decodes [K, frames] codes to [C][N] samples (stereo: each channel's codebooks through the mono EnCodec). */
  async decode(codes: Int32Array, frames: number): Promise<Float32Array[]> {
    const C = this.model.audioChannels;
    const K = this.model.lm.numCodebooks;
    const out: Float32Array[] = [];
    for (let c = 0; c < C; c++) {
      const rows = Array.from({ length: K / C }, (_, k) => k * C + c);
      const mine = new Int32Array(rows.length * frames);
      rows.forEach((r, i) => mine.set(codes.subarray(r * frames, (r + 1) * frames), i * frames));
      const t = Tensor.from(mine, [1, rows.length, frames], 'i32', this.model.rt);
      out.push(await this.model.encodec.decodeChunked(t));
      t.dispose();
    }
    return out;
  }

  /** Chroma of 30 s of the melody from `offsetSeconds`, extended periodically (audiocraft): [B, F, 12]. */
  private melodyChroma(melody: Float32Array, offsetSeconds: number, B: number): Tensor {
    const sr = this.model.sampleRate;
    const n = Math.round(MAX_WINDOW_S * sr);
    const start = Math.floor(offsetSeconds * sr);
    // a clip up to 30 s is used as is (its chroma is repeated by the prefix); later windows read it periodically
    const wav = start === 0 && melody.length <= n ? melody : Float32Array.from({ length: n }, (_, i) => melody[(start + i) % melody.length]);
    const c = extractChroma(wav, { sampleRate: sr });
    const batch = new Float32Array(B * c.onehot.length);
    for (let b = 0; b < B; b++) batch.set(c.onehot, b * c.onehot.length);
    return Tensor.from(batch, [B, c.frames, 12], 'f32', this.model.rt);
  }

  private async generateWindow(
    states: Tensor, mask: Tensor, chroma: Tensor | undefined, prompts: { codes: Int32Array; frames: number }[] | null,
    newTokens: number, sampling: Parameters<typeof generateCodes>[2], onStep: (done: number) => void, signal?: AbortSignal,
  ): Promise<Int32Array[]> {
    const B = states.shape[0];
    // rows with different prompts (later windows) run one by one; one shared prompt runs batched
    const shared = !prompts || prompts.every((p) => p.codes === prompts[0].codes);
    if (shared) {
      const out = await generateCodes(this.model, { textStates: states, textMask: mask, chroma, prompt: prompts?.[0], newTokens, onStep: (d) => onStep(d), signal }, sampling);
      return out.codes;
    }
    const result: Int32Array[] = [];
    for (let b = 0; b < B; b++) {
      const row = tidy(() => ({ s: ops.narrow(states, 0, b, 1), m: ops.narrow(mask, 0, b, 1), c: chroma ? ops.narrow(chroma, 0, b, 1) : undefined }));
      const out = await generateCodes(this.model, { textStates: row.s, textMask: row.m, chroma: row.c, prompt: prompts![b], newTokens, onStep: (d) => onStep(d / B + (b * newTokens) / B), signal }, sampling);
      result.push(out.codes[0]);
      row.s.dispose();
      row.m.dispose();
      row.c?.dispose();
    }
    return result;
  }

  dispose(): void {
    this.model.dispose();
  }
}

interface Window {
  /** First frame of the window in the output. */
  offset: number;
  frames: number;
  /** Frames given as the prompt (the clip, or the previous window's tail). */
  promptFrames: number;
}

/** audiocraft's extension: windows of at most `windowFrames`, each `strideFrames` after the last. */
export function planWindows(frames: number, windowFrames: number, strideFrames: number, clipFrames: number): Window[] {
  const plan: Window[] = [];
  let offset = 0;
  let promptFrames = clipFrames;
  for (;;) {
    const n = Math.min(frames - offset, windowFrames);
    plan.push({ offset, frames: n, promptFrames });
    if (offset + n >= frames) return plan;
    promptFrames = n - strideFrames;
    offset += strideFrames;
  }
}

function randomSeed(): number {
  const a = new Uint32Array(1);
  globalThis.crypto.getRandomValues(a);
  return a[0] % (2 ** 32 - 1);
}

/** Frames [from, to) of codes [K, T]. */
function sliceFrames(codes: Int32Array, K: number, T: number, from: number, to: number): Int32Array {
  const n = to - from;
  const out = new Int32Array(K * n);
  for (let k = 0; k < K; k++) out.set(codes.subarray(k * T + from, k * T + to), k * n);
  return out;
}

function concatFrames(pieces: Int32Array[], K: number): Int32Array {
  const total = pieces.reduce((s, p) => s + p.length / K, 0);
  const out = new Int32Array(K * total);
  let at = 0;
  for (const p of pieces) {
    const n = p.length / K;
    for (let k = 0; k < K; k++) out.set(p.subarray(k * n, (k + 1) * n), k * total + at);
    at += n;
  }
  return out;
}
