// The product: MusicGen as the Cog predictor offers it, as a library for Node and the browser.
// Text prompts (batched), a melody to follow (melody models) or a clip to continue, duration, sampling
// controls, guidance, seed; long durations in audiocraft's 30 s windows; loudness/peak/rms/clip normalisation.
// Audio goes in and out as sample arrays; files and formats are the CLI's business (src/cli/generate.ts).

import { Tensor, tidy } from './tensor.js';
import { initRuntime, type Runtime } from './runtime.js';
import { parseLimits, type LimitsMode } from './device.js';
import * as ops from './ops.js';
import { BufferSource, type ByteSource, type CheckpointFolder } from './io/safetensors.js';
import { UrlSource, urlFolder } from './io/url-source.js';
import { cachedUrlFolder, type DownloadProgress } from './io/url-cache.js';
import { MusicgenModel } from './model/musicgen.js';
import type { AdapterSource } from './model/adapter.js';
import { generateCodes, AbortError } from './model/generate.js';
import type { EncodecStream } from './model/encodec.js';
import { extractChroma } from './model/chroma.js';
import { prepareAudio } from './audio/resample.js';
import { audiocraftConvertAudio } from './audio/julius.js';
import { stemmedMelody, openDemucs, isSeparator, type StemSeparator, type DemucsSource, type DemucsLoadOptions } from './model/stems.js';
import { normalizeAudio, type NormalizationStrategy } from './audio/normalize.js';
import { decodeAudio, AudioDecodeError, type AudioData } from './audio/decode.js';
import { InputError, PREDICT_INPUTS, LOAD_INPUTS, MAX_PROMPT_TOKENS, ENCODE_DECODE, DECODERS, checkOptions, defaultOf, modelSource } from './inputs.js';
import { MultiBandDiffusion, MBD_FILE, MBD_REPO, gaussianNoise } from './model/mbd.js';
import { DEFAULT_DTYPE, type WeightDType } from './quant.js';

export { AbortError, InputError, MAX_PROMPT_TOKENS };
export type { AudioData, NormalizationStrategy };

/** Longest window the LM generates at once, the stride between windows, as audiocraft (seconds). */
const MAX_WINDOW_S = 30;
const WINDOW_STRIDE_S = 18;

/** The audio input: decoded samples, a file path (Node), the bytes of an encoded file, or a Blob of one. */
export type InputAudio = AudioData | string | Uint8Array | ArrayBuffer | Blob;

/** Options and defaults as `PREDICT_INPUTS` (src/inputs.ts) declares them; unknown keys are refused. */
export interface GenerateRequest {
  /** One prompt, or several for a batch (one output each). Required unless `inputAudio` is given. */
  prompt?: string | string[];
  /** Melody to follow (melody models), or the clip to continue when `continuation` is set. */
  inputAudio?: InputAudio;
  continuation?: boolean;
  /** Seconds; slices `inputAudio` (also in melody mode). */
  continuationStart?: number;
  /** Seconds; undefined or -1 = end of clip. */
  continuationEnd?: number;
  /**
   * Melody models: take the chroma of the melody's vocals + other stems, drums and bass removed by Demucs (default
   * true), as audiocraft and the Cog predictor do; false: the chroma of the whole mix (as transformers). Needs the
   * Demucs weights: LoadOptions.demucs, else htdemucs from the cache or downloaded once (Node).
   */
  melodyStems?: boolean;
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
  /** 'encodec' (default), or 'mbd': multi-band diffusion (LoadOptions.mbd says where its weights come from). */
  decoder?: Decoder;
  onProgress?: (p: Progress) => void;
  /**
   * Streaming: each chunk of audio as soon as it is decoded, while the tokens after it are still being generated
   * (see `AudioChunk`). Chunks are the decoder's raw output; only the result of `generate` is normalised.
   */
  onAudio?: (chunk: AudioChunk) => void | Promise<void>;
  signal?: AbortSignal;
}

/**
 * A piece of one output's audio, as `onAudio` and `MusicGen.stream` hand it out: samples [start, end) of batch row
 * `index`, one array per channel, the raw decoder output (not normalised: normalisation needs the whole clip).
 * A row's chunks follow each other without gaps or overlap; its last has `final` set (and may be empty).
 */
export interface AudioChunk {
  audio: Float32Array[];
  /** Sample index of the first sample, and one past the last, in the row's output. */
  start: number;
  end: number;
  final: boolean;
  /** Batch row (the prompt's index). */
  index: number;
  sampleRate: number;
}

/** A request checked and completed by `readRequest`: defaults filled in, the audio decoded. */
export interface CheckedRequest extends GenerateRequest {
  prompt: string[];
  inputAudio?: AudioData;
  continuation: boolean;
  continuationStart: number;
  duration: number;
  topK: number;
  topP: number;
  temperature: number;
  guidance: number;
  normalization: NormalizationStrategy;
  decoder: Decoder;
  melodyStems: boolean;
}

export type Decoder = (typeof DECODERS)[number];

/** GenerateRequest's keys that are not inputs. */
const CALLBACKS = ['onProgress', 'signal'] as const; // onAudio is in PREDICT_INPUTS

export interface Progress {
  /** stems: Demucs separating the melody (windows done / all). */
  stage: 'stems' | 'text' | 'generate' | 'decode';
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

/** What `encodeDecode` reads: the audio, the slice of it, the decoder (with `mbd`, the seed of its noise), the normalisation. */
export type EncodeDecodeRequest = Pick<GenerateRequest, 'inputAudio' | 'continuationStart' | 'continuationEnd' | 'decoder' | 'seed' | 'normalization' | 'signal'>;

export interface EncodeDecodeResult {
  /** [channel] samples at `sampleRate`. */
  audio: Float32Array[];
  sampleRate: number;
  /** [K, frames] (stereo: L/R interleaved). */
  codes: Int32Array;
  numCodebooks: number;
  frames: number;
}

export interface LoadOptions {
  rt?: Runtime;
  /**
   * The WebGPU limits to create the runtime with (when `rt` is not given and none exists yet): 'adapter' (default,
   * the adapter's own) or 'default' (nothing above the spec's defaults, as any page can count on; see `LimitsMode`).
   * Asking for other limits than an existing runtime's is an error.
   */
  limits?: LimitsMode;
  /** Progress while uploading weights (tensors done / all). */
  onProgress?: (done: number, total: number, tensor: string) => void;
  /** Node: cache folder for hub downloads, download progress, offline mode. */
  cacheDir?: string;
  offline?: boolean;
  /** Bytes of the weights as they arrive: hub downloads in Node; in a browser each file's ranged reads (`fromCache`: of those, read from the browser's cache). */
  onDownload?: (p: DownloadProgress) => void;
  /**
   * Browser: keep what is read of a model URL in Cache Storage (keyed by each file's ETag and size), so the next
   * load reads it from disk, also offline (default true). See listStoredModels / clearStoredModels. Node ignores it.
   */
  cache?: boolean;
  /**
   * An audiocraft LM state dict applied on top of the model (a Cog fine-tune's `lm_final.pt`): a file path (Node),
   * an http(s) URL, or any ByteSource. Its LM replaces the model's; keys that fit nothing are an error.
   */
  lmWeights?: string | ByteSource;
  /**
   * A LoRA adapter (PEFT's `adapter_model.safetensors` with its `adapter_config.json`, as `finetune --lora-rank`
   * writes them) merged into the weights in memory while they load; nothing is written. A path of the file or of
   * its folder (Node), an http(s) URL of either, or `{ weights, config }` (the file's bytes or any ByteSource, and
   * the parsed config). The library's `finetune` returns its adapter in that form; its file also keeps the config
   * in its metadata, so the file alone (a path, URL or bytes, without adapter_config.json beside it) is enough.
   */
  adapter?: string | Uint8Array | { weights: string | ByteSource | Uint8Array; config?: Record<string, unknown> };
  /**
   * Multi-band diffusion weights for `decoder: 'mbd'` (audiocraft's `.th`): a file path (Node), an http(s) URL, or
   * any ByteSource; default the published `mbd_musicgen_32khz.th` of facebook/multiband-diffusion (Node: fetched
   * once into the hub cache). Loaded on the first request that asks for it.
   */
  mbd?: string | ByteSource;
  /**
   * How the LM's and T5's matrices are stored on the GPU (EnCodec stays f32): 'f32', 'f16', 'q8' or 'q4'.
   * Default: a converted folder's own dtype (`musicgen convert`), else `DEFAULT_DTYPE`.
   */
  dtype?: WeightDType;
  /**
   * The Demucs package for melody stems (`melodyStems`): a .th file path (Node), an http(s) URL, any ByteSource, or
   * a loaded model. Default: the published htdemucs (955717e8-8726e21a.th), from torch.hub's cache or downloaded
   * there once, sha256 checked (Node); in a browser, fetched from its URL. Loaded on the first stemmed melody.
   */
  demucs?: DemucsSource;
  /** Node: folder for the Demucs download (default torch.hub's: $TORCH_HOME/hub/checkpoints). */
  demucsCacheDir?: string;
  onDemucsDownload?: (p: { file: string; received: number; total: number }) => void;
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

/**
 * Checks a request against `PREDICT_INPUTS` without a model (unknown options, types, ranges, choices, the rules
 * between inputs that need no model) and completes it: defaults filled in, `inputAudio` read and decoded.
 * `generate` runs it first; callers may run it before loading a model to fail early.
 */
export async function readRequest(req: GenerateRequest): Promise<CheckedRequest> {
  checkOptions(PREDICT_INPUTS, req, CALLBACKS);
  const prompt = req.prompt == null ? [] : Array.isArray(req.prompt) ? req.prompt : [req.prompt];
  for (const p of prompt) if (typeof p !== 'string') throw new InputError('prompt', 'must be text or a list of texts');
  const def = <T extends string | number | boolean>(option: keyof GenerateRequest): T => defaultOf<T>(PREDICT_INPUTS, option);
  const out: CheckedRequest = {
    ...req,
    prompt,
    inputAudio: req.inputAudio == null ? undefined : await readInputAudio(req.inputAudio),
    continuation: req.continuation ?? def('continuation'),
    continuationStart: req.continuationStart ?? def('continuationStart'),
    continuationEnd: req.continuationEnd === -1 || req.continuationEnd === null ? undefined : req.continuationEnd,
    duration: req.duration ?? def('duration'),
    topK: req.topK ?? def('topK'),
    topP: req.topP ?? def('topP'),
    temperature: req.temperature ?? def('temperature'),
    guidance: req.guidance ?? def('guidance'),
    seed: req.seed === -1 || req.seed === null ? undefined : req.seed,
    normalization: req.normalization ?? def('normalization'),
    decoder: req.decoder ?? def('decoder'),
    melodyStems: req.melodyStems ?? def('melodyStems'),
  };
  // Cog's rules between inputs
  if (prompt.length === 0 && !out.inputAudio) throw new InputError('prompt', 'a prompt or `inputAudio` is required');
  if (out.continuation && !out.inputAudio) throw new InputError('continuation', 'needs `inputAudio` to continue');
  if (out.decoder === 'mbd' && out.onAudio) throw new InputError('decoder', "'mbd' decodes the whole clip at once: it cannot stream (`onAudio`)");
  if (out.continuationEnd !== undefined && out.continuationStart > out.continuationEnd) {
    throw new InputError('continuationStart', `(${out.continuationStart} s) is after \`continuationEnd\` (${out.continuationEnd} s)`);
  }
  return out;
}

/** Decodes the audio input, whichever form it came in; errors are InputErrors on `inputAudio`. */
export async function readInputAudio(a: InputAudio): Promise<AudioData> {
  let bytes: Uint8Array;
  let label = 'inputAudio';
  if (typeof a === 'string') {
    if (!isNode()) throw new InputError('inputAudio', 'a file path needs Node; in a browser pass the bytes, a Blob or decoded AudioData');
    const fileModule = './audio/file.js';
    const { readFileBytes } = (await import(/* @vite-ignore */ fileModule)) as typeof import('./audio/file.js');
    try {
      bytes = await readFileBytes(a);
    } catch (e) {
      throw new InputError('inputAudio', (e as Error).message);
    }
    label = a;
  } else if (a instanceof Uint8Array) {
    bytes = a;
  } else if (a instanceof ArrayBuffer) {
    bytes = new Uint8Array(a);
  } else if (typeof Blob !== 'undefined' && a instanceof Blob) {
    bytes = new Uint8Array(await a.arrayBuffer());
  } else {
    return checkAudioData(a);
  }
  try {
    return await decodeAudio(bytes, label);
  } catch (e) {
    if (e instanceof AudioDecodeError) throw new InputError('inputAudio', e.message);
    throw e;
  }
}

/** A file path (Node) or an http(s) URL as a ByteSource. */
async function byteSource(where: string): Promise<ByteSource> {
  if (/^https?:\/\//.test(where) || !isNode()) return new UrlSource(where);
  const fsModule = './io/file-source.js';
  const { FileSource } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
  return new FileSource(where);
}

const ADAPTER_FILE = 'adapter_model.safetensors';
const ADAPTER_CONFIG = 'adapter_config.json';

/** LoadOptions.adapter as the loader takes it: the weights and adapter_config.json read from beside them. */
async function openAdapter(spec: NonNullable<LoadOptions['adapter']>): Promise<AdapterSource> {
  if (spec instanceof Uint8Array) return { weights: new BufferSource(spec, 'adapter'), label: 'adapter' };
  if (typeof spec !== 'string') {
    const w = spec.weights;
    const weights = typeof w === 'string' ? await byteSource(w) : w instanceof Uint8Array ? new BufferSource(w, 'adapter') : w;
    return { weights, config: spec.config, label: typeof w === 'string' ? w : weights.label ?? 'adapter' };
  }
  // the file itself, or the folder finetune wrote it into
  const isFile = /\.safetensors$/i.test(spec.replace(/[?#].*$/, ''));
  const cut = spec.replace(/[?#].*$/, '').replace(/\/+$/, '');
  const dir = isFile ? cut.slice(0, Math.max(0, cut.search(/[^/\\]*$/))) || '.' : cut;
  const file = isFile ? cut.slice(cut.search(/[^/\\]*$/)) : ADAPTER_FILE;
  let folder: CheckpointFolder;
  if (/^https?:\/\//.test(spec) || !isNode()) folder = urlFolder(dir);
  else {
    const fsModule = './io/file-source.js';
    const { dirFolder } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
    folder = dirFolder(dir);
  }
  const text = await folder.readText(ADAPTER_CONFIG);
  // none beside the file: the file's metadata may hold it (model/adapter.ts says so if it does not)
  if (text === null) return { weights: folder.source(file), label: isFile ? spec : `${cut}/${file}` };
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new Error(`adapter ${spec}: ${ADAPTER_CONFIG} is not valid JSON (${(e as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`adapter ${spec}: ${ADAPTER_CONFIG} is not a JSON object`);
  return { weights: folder.source(file), config: config as Record<string, unknown>, label: isFile ? spec : `${cut}/${file}` };
}

function checkAudioData(a: unknown): AudioData {
  const bad = (why: string): InputError => new InputError('inputAudio', `${why} (expected { channels: Float32Array[], sampleRate }, a file path, bytes or a Blob)`);
  if (typeof a !== 'object' || a === null) throw bad(`got ${String(a)}`);
  const { channels, sampleRate } = a as Partial<AudioData>;
  if (!Array.isArray(channels) || channels.length === 0) throw bad('has no channels');
  if (!channels.every((c) => c instanceof Float32Array)) throw bad('has channels that are not Float32Arrays');
  if (channels.some((c) => c.length !== channels[0].length)) throw bad('has channels of different lengths');
  if (channels[0].length === 0) throw new InputError('inputAudio', 'is empty');
  if (typeof sampleRate !== 'number' || !Number.isFinite(sampleRate) || sampleRate <= 0) throw bad(`has sample rate ${String(sampleRate)}`);
  return { channels, sampleRate };
}

export class MusicGen {
  /**
   * Streaming: frames of codes handed to the decoder at a time (the first chunk also waits for the decoder's
   * look-ahead). Smaller: audio sooner and more often, more decoder launches.
   */
  streamChunkFrames = 25;

  /**
   * audiocraft's extension past the model's 30 s: windows of `maxSeconds`, each `strideSeconds` after the last
   * and prompted by the previous window's rest (its `extend_stride`). Shorter windows exercise the same path
   * cheaply (tests); the model was trained on 30 s.
   */
  windows = { maxSeconds: MAX_WINDOW_S, strideSeconds: WINDOW_STRIDE_S };

  private mbd: Promise<MultiBandDiffusion> | null = null;
  /** The Demucs model of the melody path, loaded on first use. */
  private demucs: Promise<StemSeparator> | null = null;

  private constructor(readonly model: MusicgenModel, private readonly loadOpts: LoadOptions = {}) {}

  /**
   * `source`: a model folder (Node), an http(s) URL of one (browser or Node), a hub id like
   * `facebook/musicgen-small` or one of Cog's short names (`small`, `melody-large`, …; Node; downloaded once into
   * the cache; a folder of such a name is `./small`), or any CheckpointFolder.
   */
  static async load(source: string | CheckpointFolder, opts: LoadOptions = {}): Promise<MusicGen> {
    const rt = opts.rt ?? (await initRuntime({ limits: opts.limits }));
    if (opts.limits !== undefined && parseLimits(opts.limits) !== rt.ctx.limits) {
      throw new Error(`MusicGen.load: limits '${opts.limits}' asked for, but the runtime given has '${rt.ctx.limits}' limits`);
    }
    let folder: CheckpointFolder;
    if (typeof source !== 'string') folder = source;
    else if (!isNode()) folder = cachedUrlFolder(source, { cache: opts.cache, onDownload: opts.onDownload });
    else if (/^https?:\/\//.test(source)) folder = urlFolder(source);
    else if (source === ENCODE_DECODE) {
      throw new InputError('model', `\`${ENCODE_DECODE}\` names no model: it is the server's EnCodec round trip of input_audio (model_version)`);
    } else {
      const hubModule = './io/hub.js';
      const fsModule = './io/file-source.js';
      const { resolveModel } = (await import(/* @vite-ignore */ hubModule)) as typeof import('./io/hub.js');
      const { dirFolder } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
      // Cog's model_version names (`small`, `melody-large`, …) stand for their hub repositories
      const dir = await resolveModel(modelSource(source), { cacheDir: opts.cacheDir, offline: opts.offline, onProgress: opts.onDownload });
      folder = dirFolder(dir);
    }
    const lmWeights = typeof opts.lmWeights === 'string' ? await byteSource(opts.lmWeights) : opts.lmWeights;
    const adapter = opts.adapter === undefined ? undefined : await openAdapter(opts.adapter);
    checkOptions(LOAD_INPUTS, { dtype: opts.dtype });
    const dtype = opts.dtype ?? (await MusicgenModel.storedDType(folder)) ?? DEFAULT_DTYPE;
    return new MusicGen(await MusicgenModel.load(folder, { rt, onProgress: opts.onProgress, lmWeights, adapter, dtype }), opts);
  }

  get sampleRate(): number { return this.model.sampleRate; }
  get channels(): number { return this.model.audioChannels; }
  get isMelody(): boolean { return this.model.isMelody; }
  get frameRate(): number { return this.model.frameRate; }

  /** Tokens the model's tokenizer makes of a prompt (at most `MAX_PROMPT_TOKENS` are accepted). */
  countTokens(prompt: string): number {
    return this.model.tokenizer.encode(prompt).length;
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const t0 = now();
    const req = await readRequest(request);
    const frames = this.checkForModel(req);
    const seed = req.seed ?? randomSeed();
    const clip = req.inputAudio ? await this.prepareClip(req.inputAudio, req) : null;
    // Demucs loads (or fails, naming --no-melody-stems / melodyStems: false) before any generation work
    const demucs = this.isMelody && clip && !req.continuation && req.melodyStems ? await this.stemSeparator(req.signal) : null;

    const tText = now();
    const text = await this.encodeText(req.prompt, req.onProgress);
    const textS = (now() - tText) / 1000;

    const tGen = now();
    let tokens: { codes: Int32Array[]; steps: number };
    const streamer = req.onAudio ? new AudioStreamer(this.model, text.states.shape[0], req.onAudio) : null;
    try {
      tokens = await this.generateTokens(req, text, clip, frames, seed, streamer, demucs);
    } catch (e) {
      await streamer?.close();
      throw e;
    } finally {
      text.states.dispose();
      text.mask.dispose();
    }
    const generateS = (now() - tGen) / 1000;

    const tDec = now();
    // streaming: the audio is the chunks already decoded during generation, once the last ones are read
    let audio: Float32Array[][];
    if (streamer) {
      audio = normalizeBatch(await streamer.close(), this.sampleRate, req);
      req.onProgress?.({ stage: 'decode', done: audio.length, total: audio.length });
    } else {
      audio = await this.decodeBatch(tokens.codes, frames, req, seed);
    }
    const decodeS = (now() - tDec) / 1000;
    return {
      audio, sampleRate: this.sampleRate, codes: tokens.codes, numCodebooks: this.model.lm.numCodebooks, frames, seed,
      timings: {
        text_s: textS, generate_s: generateS, decode_s: decodeS, total_s: (now() - t0) / 1000,
        per_step_ms: (generateS * 1000) / Math.max(1, tokens.steps),
      },
    };
  }

  /**
   * `generate` as an async iterator of the audio chunks as they are decoded (see `AudioChunk`; the request's own
   * `onAudio`, if any, is called too). The iterator's return value (`done: true`) is `generate`'s result, with
   * the chosen normalisation applied. Leaving the loop early aborts the generation.
   */
  async *stream(request: GenerateRequest): AsyncGenerator<AudioChunk, GenerateResult, undefined> {
    const queue: AudioChunk[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    let result: GenerateResult | undefined;
    let error: unknown;
    const abort = new AbortController();
    const outer = request.signal;
    const onOuterAbort = (): void => abort.abort();
    if (outer?.aborted) abort.abort();
    outer?.addEventListener('abort', onOuterAbort);
    const run = this.generate({
      ...request,
      signal: abort.signal,
      onAudio: async (chunk) => {
        queue.push(chunk);
        wake?.();
        await request.onAudio?.(chunk);
      },
    }).then((r) => { result = r; }, (e: unknown) => { error = e; }).finally(() => {
      finished = true;
      wake?.();
    });
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (finished) break;
        await new Promise<void>((resolve) => { wake = resolve; });
        wake = null;
      }
      if (error !== undefined) throw error;
      return result!;
    } finally {
      if (!finished) abort.abort();
      await run;
      outer?.removeEventListener('abort', onOuterAbort);
    }
  }

  /**
   * Cog's `model_version: encode-decode`: the audio input (sliced by `continuationStart`/`continuationEnd`, at the
   * model's rate and channels) encoded by EnCodec and decoded again (by `decoder`), normalised as asked; nothing
   * is generated.
   */
  async encodeDecode(request: EncodeDecodeRequest): Promise<EncodeDecodeResult> {
    if (request.inputAudio == null) throw new InputError('inputAudio', 'is required: it is what is encoded and decoded');
    const req = await readRequest({ ...request, continuation: true });
    // the whole slice, however long: the duration rule of continuation does not apply
    const clip = await this.prepareClip(req.inputAudio!, { ...req, duration: Infinity });
    if (req.signal?.aborted) throw new AbortError();
    const { codes, frames } = await this.encodeClip(clip);
    if (req.signal?.aborted) throw new AbortError();
    const audio = req.decoder === 'mbd'
      ? await this.decodeMbd(await this.multiBandDiffusion(), codes, frames, req.seed ?? randomSeed())
      : await this.decode(codes, frames);
    return {
      audio: req.normalization === 'none' ? audio : normalizeAudio(audio, this.sampleRate, req.normalization),
      sampleRate: this.sampleRate, codes, numCodebooks: this.model.lm.numCodebooks, frames,
    };
  }

  /** The rules that depend on the model: melody conditioning, the shortest duration, prompt lengths. Frames. */
  private checkForModel(req: CheckedRequest): number {
    if (req.inputAudio && !req.continuation && !this.isMelody) {
      throw new InputError('inputAudio', 'this is a text-only model: melody conditioning needs a melody model; set `continuation` to continue the clip instead');
    }
    const frames = Math.round(req.duration * this.frameRate);
    if (frames < 1) throw new InputError('duration', `is shorter than one frame (${1 / this.frameRate} s)`);
    for (const p of req.prompt) {
      const n = this.countTokens(p);
      if (n > MAX_PROMPT_TOKENS) throw new InputError('prompt', `is ${n} tokens long; the most is ${MAX_PROMPT_TOKENS}`);
    }
    return frames;
  }

  /** The slice of the audio input at the model's rate: [C][N] to continue, [1][N] (mono) to follow as a melody. */
  private async prepareClip(audio: AudioData, req: CheckedRequest): Promise<Float32Array[]> {
    const { continuation, continuationStart: start, duration } = req;
    const clipSeconds = audio.channels[0].length / audio.sampleRate;
    const end = req.continuationEnd ?? clipSeconds;
    if (start > end) throw new InputError('continuationStart', `(${start} s) is after \`continuationEnd\` (${end} s)`);
    if (start >= clipSeconds) throw new InputError('continuationStart', `(${start} s) is past the end of the clip (${clipSeconds.toFixed(2)} s)`);
    const a = Math.floor(start * audio.sampleRate);
    const b = Math.min(audio.channels[0].length, Math.floor(end * audio.sampleRate));
    if (b <= a) throw new InputError('continuationEnd', 'leaves an empty slice of the input audio');
    const sliced: AudioData = { channels: audio.channels.map((ch: Float32Array) => ch.subarray(a, b)), sampleRate: audio.sampleRate };
    // a melody to separate comes to the model's rate as audiocraft's generate_with_chroma brings it (julius); the
    // rest as before (libsamplerate)
    const clip = !continuation && req.melodyStems && this.isMelody
      ? audiocraftConvertAudio(sliced.channels, sliced.sampleRate, this.sampleRate, 1)
      : await prepareAudio(sliced, this.sampleRate, continuation ? (this.channels as 1 | 2) : 1);
    const sliceSeconds = clip[0].length / this.sampleRate;
    if (continuation && sliceSeconds >= duration) {
      throw new InputError('duration', `(${duration} s) must be longer than the input audio to continue (${sliceSeconds.toFixed(2)} s)`);
    }
    return clip;
  }

  /** T5 states of the prompts, projected for the LM, and their mask: [B, L, D], [B, L]. */
  private async encodeText(prompts: string[], onProgress?: (p: Progress) => void): Promise<{ states: Tensor; mask: Tensor }> {
    const m = this.model;
    const rt = m.rt;
    onProgress?.({ stage: 'text', done: 0, total: 1 });
    const text = tidy(() => {
      if (prompts.length === 0) {
        // no description: one masked (zero) state, as transformers encodes a lone BOS with mask 0 when it has no
        // input_ids (and audiocraft's null condition): a melody prefix gets one zero row; a text model's
        // cross-attention to it adds exactly nothing
        return { states: Tensor.zeros([1, 1, m.cfg.decoder.hidden_size], 'f32', rt), mask: Tensor.zeros([1, 1], 'f32', rt) };
      }
      const tok = m.tokenizer.encodeBatch(prompts);
      const ids = Tensor.from(tok.inputIds, [prompts.length, tok.length], 'i32', rt);
      const maskI = Tensor.from(tok.attentionMask, [prompts.length, tok.length], 'i32', rt);
      const mask = ops.castToF32(maskI);
      return { states: m.projectText(m.textHidden(ids, maskI), mask), mask };
    });
    await rt.sync();
    onProgress?.({ stage: 'text', done: 1, total: 1 });
    return text;
  }

  /** Codes [K, frames] of every batch row, in windows of at most 30 s; steps = tokens sampled in all. */
  private async generateTokens(
    req: CheckedRequest, text: { states: Tensor; mask: Tensor }, clip: Float32Array[] | null, frames: number, seed: number,
    streamer: AudioStreamer | null, demucs: StemSeparator | null,
  ): Promise<{ codes: Int32Array[]; steps: number }> {
    const B = text.states.shape[0];
    const K = this.model.lm.numCodebooks;
    const windowFrames = Math.round(this.windows.maxSeconds * this.frameRate);
    const strideFrames = Math.round(this.windows.strideSeconds * this.frameRate);
    let prompt: { codes: Int32Array; frames: number }[] | null = null;
    let clipFrames = 0;
    if (clip && req.continuation) {
      const codes = await this.encodeClip(clip);
      clipFrames = codes.frames;
      if (clipFrames >= windowFrames) throw new InputError('inputAudio', `the slice to continue must be shorter than ${this.windows.maxSeconds} s`);
      prompt = Array.from({ length: B }, () => codes);
    }
    const perChannel = K / this.channels;
    const plan = planWindows(frames, windowFrames, strideFrames, clipFrames);
    const stepsOf = (w: Window): number => w.frames - w.promptFrames + perChannel - 1;
    const totalSteps = plan.reduce((s, w) => s + stepsOf(w), 0);
    const sampling = { guidanceScale: req.guidance, temperature: req.temperature, topK: req.topK, topP: req.topP };
    const all: Int32Array[][] = Array.from({ length: B }, () => []); // pieces [K, n] per row
    let stepsDone = 0;
    for (const [wi, w] of plan.entries()) {
      let chroma: Tensor | undefined;
      if (this.isMelody && clip && !req.continuation) {
        if (demucs) req.onProgress?.({ stage: 'stems', done: wi, total: plan.length });
        chroma = await this.melodyChroma(clip[0], w.offset / this.frameRate, B, demucs, req.signal);
        if (demucs) req.onProgress?.({ stage: 'stems', done: wi + 1, total: plan.length });
      }
      const base = stepsDone;
      // the window's new frames go to the decoder as they complete (the first window's clip frames too)
      const keepFrom = w.offset === 0 ? 0 : w.promptFrames;
      const lastWindow = w === plan[plan.length - 1];
      const onFrames = streamer && ((row: number | null, codes: Tensor, from: number, last: boolean): void => {
        const a = Math.max(from, keepFrom);
        const n = from + codes.shape[2] - a;
        if (n > 0) streamer.push(row, ops.narrow(codes, 2, a - from, n), last && lastWindow);
        else if (last && lastWindow) streamer.push(row, null, true);
      });
      let win: Int32Array[];
      try {
        win = await this.generateWindow(text.states, text.mask, chroma, prompt, stepsOf(w), { ...sampling, seed: (seed + w.offset) % 2 ** 53 },
          (done) => req.onProgress?.({ stage: 'generate', done: base + done, total: totalSteps }), req.signal, onFrames || undefined);
      } finally {
        chroma?.dispose();
      }
      stepsDone += stepsOf(w);
      // keep the window's new frames (the first window keeps the clip's codes too)
      for (let b = 0; b < B; b++) all[b].push(sliceFrames(win[b], K, w.frames, w.offset === 0 ? 0 : w.promptFrames, w.frames));
      // the next window is prompted by this one's last (30 − 18) s
      if (w !== plan[plan.length - 1]) prompt = win.map((codes) => ({ codes: sliceFrames(codes, K, w.frames, strideFrames, w.frames), frames: w.frames - strideFrames }));
    }
    return { codes: all.map((pieces) => concatFrames(pieces, K)), steps: totalSteps };
  }

  /** Audio [B][C][N] of the codes, normalised as asked. */
  private async decodeBatch(codes: Int32Array[], frames: number, req: CheckedRequest, seed: number): Promise<Float32Array[][]> {
    const B = codes.length;
    req.onProgress?.({ stage: 'decode', done: 0, total: B });
    const audio: Float32Array[][] = [];
    const mbd = req.decoder === 'mbd' ? await this.multiBandDiffusion() : null;
    for (let b = 0; b < B; b++) {
      if (req.signal?.aborted) throw new AbortError();
      const chans = mbd ? await this.decodeMbd(mbd, codes[b], frames, seed + b) : await this.decode(codes[b], frames);
      audio.push(req.normalization === 'none' ? chans : normalizeAudio(chans, this.sampleRate, req.normalization));
      req.onProgress?.({ stage: 'decode', done: b + 1, total: B });
    }
    return audio;
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

  /** The multi-band diffusion decoder, loaded on first use from LoadOptions.mbd (default: the published file). */
  multiBandDiffusion(): Promise<MultiBandDiffusion> {
    this.mbd ??= (async () => {
      const src = this.loadOpts.mbd;
      let source: ByteSource;
      if (src !== undefined && typeof src !== 'string') source = src;
      else if (src !== undefined && (/^https?:\/\//.test(src) || !isNode())) source = new UrlSource(src);
      else if (src === undefined && !isNode()) source = new UrlSource(`https://huggingface.co/${MBD_REPO}/resolve/main/${MBD_FILE}`);
      else {
        const hubModule = './io/hub.js';
        const fsModule = './io/file-source.js';
        const { resolveHubFile } = (await import(/* @vite-ignore */ hubModule)) as typeof import('./io/hub.js');
        const { FileSource } = (await import(/* @vite-ignore */ fsModule)) as typeof import('./io/file-source.js');
        const file = src ?? (await resolveHubFile(MBD_REPO, MBD_FILE, { cacheDir: this.loadOpts.cacheDir, offline: this.loadOpts.offline, onProgress: this.loadOpts.onDownload }));
        source = new FileSource(file);
      }
      return MultiBandDiffusion.load(source, this.model.rt);
    })();
    // a failed load is not kept: the next request tries again (a download may have been interrupted)
    this.mbd.catch(() => { this.mbd = null; });
    return this.mbd;
  }

  /** MultiBandDiffusion.tokens_to_wav of [K, frames] codes → [C][N] (stereo: each channel a batch item). */
  private async decodeMbd(mbd: MultiBandDiffusion, codes: Int32Array, frames: number, seed: number): Promise<Float32Array[]> {
    const C = this.model.audioChannels;
    const res = await mbd.decode(this.model.encodec, codes, this.model.lm.numCodebooks, frames, C, gaussianNoise(seed));
    return Array.from({ length: C }, (_, c) => res.audioEq.slice(c * res.samples, (c + 1) * res.samples));
  }

  /**
   * Chroma of 30 s of the melody from `offsetSeconds`, extended periodically (audiocraft): [B, F, 12]. With
   * `demucs`, of that window's vocals + other (audiocraft separates each window's waveform as given).
   */
  private async melodyChroma(melody: Float32Array, offsetSeconds: number, B: number, demucs: StemSeparator | null, signal?: AbortSignal): Promise<Tensor> {
    const sr = this.model.sampleRate;
    const n = Math.round(MAX_WINDOW_S * sr);
    const start = Math.floor(offsetSeconds * sr);
    // a clip up to 30 s is used as is (its chroma is repeated by the prefix); later windows read it periodically
    const wav = start === 0 && melody.length <= n ? melody : Float32Array.from({ length: n }, (_, i) => melody[(start + i) % melody.length]);
    const c = extractChroma(demucs ? await stemmedMelody(demucs, wav, sr, { signal }) : wav, { sampleRate: sr });
    const batch = new Float32Array(B * c.onehot.length);
    for (let b = 0; b < B; b++) batch.set(c.onehot, b * c.onehot.length);
    return Tensor.from(batch, [B, c.frames, 12], 'f32', this.model.rt);
  }

  private async generateWindow(
    states: Tensor, mask: Tensor, chroma: Tensor | undefined, prompts: { codes: Int32Array; frames: number }[] | null,
    newTokens: number, sampling: Parameters<typeof generateCodes>[2], onStep: (done: number) => void, signal?: AbortSignal,
    onFrames?: (row: number | null, codes: Tensor, from: number, last: boolean) => void,
  ): Promise<Int32Array[]> {
    const B = states.shape[0];
    const chunkFrames = this.streamChunkFrames;
    // rows with different prompts (later windows) run one by one; one shared prompt runs batched
    const shared = !prompts || prompts.every((p) => p.codes === prompts[0].codes);
    if (shared) {
      const out = await generateCodes(this.model, {
        textStates: states, textMask: mask, chroma, prompt: prompts?.[0], newTokens, onStep: (d) => onStep(d), signal,
        onFrames: onFrames && ((codes, from, last) => onFrames(null, codes, from, last)), chunkFrames,
      }, sampling);
      return out.codes;
    }
    const result: Int32Array[] = [];
    for (let b = 0; b < B; b++) {
      const row = tidy(() => ({ s: ops.narrow(states, 0, b, 1), m: ops.narrow(mask, 0, b, 1), c: chroma ? ops.narrow(chroma, 0, b, 1) : undefined }));
      const out = await generateCodes(this.model, {
        textStates: row.s, textMask: row.m, chroma: row.c, prompt: prompts![b], newTokens, onStep: (d) => onStep(d / B + (b * newTokens) / B), signal,
        onFrames: onFrames && ((codes, from, last) => onFrames(b, codes, from, last)), chunkFrames,
      }, sampling);
      result.push(out.codes[0]);
      row.s.dispose();
      row.m.dispose();
      row.c?.dispose();
    }
    return result;
  }

  /** The Demucs model for melody stems, loaded once from LoadOptions.demucs (a failed load is retried next time). */
  private stemSeparator(signal?: AbortSignal): Promise<StemSeparator> {
    if (!this.demucs) {
      const o = this.loadOpts;
      this.demucs = openDemucs(o.demucs, { rt: this.model.rt, demucsCacheDir: o.demucsCacheDir, offline: o.offline, onDemucsDownload: o.onDemucsDownload, signal });
      this.demucs.catch(() => { this.demucs = null; });
    }
    return this.demucs;
  }

  dispose(): void {
    const given = this.loadOpts.demucs;
    // a Demucs model the caller passed in is theirs to dispose
    if (this.demucs && !(given !== undefined && isSeparator(given))) void this.demucs.then((d) => d.dispose(), () => undefined);
    this.demucs = null;
    this.model.dispose();
    void this.mbd?.then((m) => m.dispose(), () => undefined);
    this.mbd = null;
  }
}

/** Normalises every row of [B][C][N] audio as the request asks. */
function normalizeBatch(audio: Float32Array[][], sampleRate: number, req: CheckedRequest): Float32Array[][] {
  return req.normalization === 'none' ? audio : audio.map((chans) => normalizeAudio(chans, sampleRate, req.normalization));
}

/**
 * The streaming decode of a generation: one EncodecStream per batch row and channel (stereo: each channel's
 * codebooks through the mono EnCodec, as `MusicGen.decode`). `push` records the decode of newly complete frames
 * and starts reading the audio back without waiting; chunks reach `onAudio` in order, as their reads finish,
 * while the token loop goes on. `close` waits for the last and returns the whole audio [B][C][N].
 */
class AudioStreamer {
  private readonly decoders: EncodecStream[][];
  private readonly pieces: Float32Array[][][];
  private delivered: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  constructor(readonly model: MusicgenModel, readonly rows: number, readonly onAudio: (chunk: AudioChunk) => void | Promise<void>) {
    const C = model.audioChannels;
    this.decoders = Array.from({ length: rows }, () => Array.from({ length: C }, () => model.encodec.stream()));
    this.pieces = Array.from({ length: rows }, () => Array.from({ length: C }, () => []));
  }

  /**
   * Codes [B, K, n] of the next n frames of every row (`row` given: of that row only, codes [1, K, n]; null: none);
   * `final`: the clip ends here.
   */
  push(row: number | null, codes: Tensor | null, final: boolean): void {
    const rows = row === null ? Array.from({ length: this.rows }, (_, b) => b) : [row];
    const C = this.model.audioChannels;
    const hop = this.model.encodec.hopLength;
    rows.forEach((b, i) => {
      const outs = tidy(() => this.decoders[b].map((dec, c) => {
        if (!codes) return dec.push(null, final);
        const [, K, n] = codes.shape;
        // this row's codebooks of channel c (stereo interleaves L/R): [1, K/C, n]
        const mine = ops.reshape(ops.narrow(ops.reshape(ops.narrow(codes, 0, i, 1), [1, K / C, C, n]), 2, c, 1), [1, K / C, n]);
        return dec.push(mine, final);
      }));
      if (!outs[0] && !final) return;
      // start every channel's read now (recorded in order after the decode); hand the chunk out once they land
      const reads = outs.map((o) => o?.audio.read() as Promise<Float32Array> | undefined);
      for (const o of outs) o?.audio.dispose();
      const range = outs[0] ? { start: outs[0].from * hop, end: outs[0].to * hop } : null;
      this.delivered = this.delivered.then(async () => {
        const audio = await Promise.all(reads.map((r) => r ?? Promise.resolve(new Float32Array(0))));
        audio.forEach((a, c) => this.pieces[b][c].push(a));
        const end = range?.end ?? this.pieces[b][0].reduce((s, p) => s + p.length, 0);
        await this.onAudio({ audio, start: range?.start ?? end, end, final, index: b, sampleRate: this.model.sampleRate });
      });
      // a failed read or callback surfaces at `close`, not as an unhandled rejection meanwhile
      this.delivered.catch((e: unknown) => { this.failure ??= e; });
    });
  }

  /** Waits for every chunk to be delivered, frees the decoders and returns the audio [B][C][N]. */
  async close(): Promise<Float32Array[][]> {
    try {
      await this.delivered.catch(() => undefined);
      if (this.failure) throw this.failure;
      return this.pieces.map((chans) => chans.map((parts) => {
        const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
        let at = 0;
        for (const p of parts) { out.set(p, at); at += p.length; }
        return out;
      }));
    } finally {
      for (const row of this.decoders) for (const d of row) d.dispose();
    }
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
