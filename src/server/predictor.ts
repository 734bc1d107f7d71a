// The predictor: one Cog MusicGen prediction with the library (src/pipeline.ts). Inputs are the validated
// values of schema.ts; the output is the audio file as a data: URI, or the URL it was uploaded to.
//
// With `serve --stream` the output is Cog's iterator of files (Iterator[Path]), growing while the prediction runs:
// first the audio as the library decodes it (`onAudio`), in order, each item a short WAV of the raw decoder output
// (normalisation needs the whole clip) gathered to at least `streamChunkSeconds`; they join up to the whole clip.
// The last item is the whole clip normalised as asked, in the requested output_format: what the prediction
// returns without --stream. Each item is an `output` event and webhook; uploaded like any file when the
// request has output_file_prefix or the server --upload-url (names {id}-{n}.wav, the last {id}.{format}).

import { MusicGen, AbortError, type GenerateRequest, type AudioChunk, type Progress } from '../pipeline.js';
import { InputError, PREDICT_INPUTS, ENCODE_DECODE, renameInputs } from '../inputs.js';
import { toOptions, cogName, type ModelFacts, type PredictorLimits } from './schema.js';
import type { ModelPool } from './models.js';
import { decodeAudio, AudioDecodeError } from '../audio/decode.js';
import { encodeWav, encodeMp3 } from '../audio/encode.js';
import { resolveFileInput, FileInputError, toDataUri, uploadFile, type UploadTarget } from './files.js';
import { CanceledError, JobInputError, type Job, type JobContext, type JobRunner } from './jobs.js';

/** The log line when a stage of generation starts (the generate stage reports progress instead). */
const STAGE_LOG: Record<Progress['stage'], string> = {
  stems: 'separating the melody (Demucs: vocals + other)',
  text: 'encoding the prompt',
  generate: 'generating',
  decode: 'decoding the audio',
};

export interface PredictorOptions {
  /** The models offered; a request's model_version picks one (the default when it names none). */
  models: ModelPool;
  allowUrlInputs: boolean;
  allowPrivateAddresses?: boolean;
  /** Largest input file, bytes. */
  maxInputBytes: number;
  /** Server-wide upload target (`--upload-url`). */
  uploadUrl?: string;
  /** A request's output_file_prefix may name loopback and private addresses (--allow-private-webhooks). */
  allowPrivateWebhooks?: boolean;
  /** `serve --stream`: the output is an iterator of files, the audio as it is made, then the whole clip. */
  stream?: boolean;
  /**
   * Shortest streamed item, seconds (the last may be shorter); default 0.25, so the library's chunks
   * (`MusicGen.streamChunkFrames`, 0.5 s; the first a little shorter) pass as they are, the first not delayed.
   */
  streamChunkSeconds?: number;
}

/**
 * The streamed items of one prediction: library chunks gathered to at least `minSamples`, each encoded as a WAV
 * and appended (uploaded first when there is a target) strictly in order. A failed upload stops the generation
 * (`stop`) and is thrown by `finish`.
 */
class StreamedItems {
  private parts: Float32Array[][] = [];
  private samples = 0;
  private next = 0;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  readonly stop = new AbortController();
  count = 0;

  constructor(private readonly minSamples: number, private readonly toItem: (channels: Float32Array[], index: number) => Promise<string>, private readonly append: (item: string, chunk: { start: number; end: number }) => void) {}

  push(chunk: AudioChunk): void {
    if (chunk.start !== this.next + this.samples) throw new Error(`streamed audio is not contiguous: a chunk starts at sample ${chunk.start}, expected ${this.next + this.samples}`);
    this.parts.push(chunk.audio);
    this.samples += chunk.end - chunk.start;
    if (this.samples >= this.minSamples || chunk.final) this.flush();
  }

  private flush(): void {
    if (this.samples === 0) return;
    const parts = this.parts;
    const channels = parts[0].map((_, c) => {
      const out = new Float32Array(this.samples);
      let at = 0;
      for (const p of parts) {
        out.set(p[c], at);
        at += p[c].length;
      }
      return out;
    });
    const span = { start: this.next, end: this.next + this.samples };
    const index = this.count++;
    this.next = span.end;
    this.parts = [];
    this.samples = 0;
    this.chain = this.chain.then(async () => {
      if (this.failure) return;
      try {
        this.append(await this.toItem(channels, index), span);
      } catch (e) {
        this.failure = e;
        this.stop.abort();
      }
    });
  }

  /** Waits for every item to be appended; the audio streamed, in samples. */
  async finish(): Promise<number> {
    this.flush();
    await this.chain;
    if (this.failure) throw this.failure;
    return this.next;
  }

  /** The error that stopped the generation, if any. */
  get error(): unknown {
    return this.failure;
  }
}

/** What the request validation needs to know of a loaded model. */
function modelFacts(musicgen: MusicGen): ModelFacts {
  return { isMelody: musicgen.isMelody, countTokens: (prompt) => musicgen.countTokens(prompt) };
}

/**
 * What the request validation needs to know of the models: with `named`, model_version's choices, and the facts
 * of those loaded; else the one model's (loaded at setup).
 */
export function predictorLimits(models: ModelPool, maxDuration: number, named: boolean): PredictorLimits {
  const facts = (version: string): ModelFacts | null => {
    const mg = models.peek(version);
    return mg ? modelFacts(mg) : null;
  };
  if (named) return { maxDuration, modelVersions: models.names, facts };
  return { maxDuration, ...facts(models.defaultName) };
}

/** Where the output goes: the request's output_file_prefix, else the server's --upload-url, else nowhere (data URI). */
export function uploadTarget(job: Job, serverUploadUrl?: string, allowPrivateWebhooks = false): UploadTarget | null {
  if (job.outputFilePrefix) return { kind: 'prefix', url: job.outputFilePrefix, allowPrivateAddresses: allowPrivateWebhooks };
  if (serverUploadUrl) return { kind: 'upload-url', url: serverUploadUrl };
  return null;
}

export function makePredictor(o: PredictorOptions): JobRunner {
  return async (job: Job, ctx: JobContext): Promise<unknown> => {
    const v = job.values;
    const check = (): void => { if (ctx.signal.aborted) throw new CanceledError(); };

    // ---- the audio input ----
    let inputAudio: GenerateRequest['inputAudio'];
    if (typeof v.input_audio === 'string' && v.input_audio) {
      try {
        const file = await resolveFileInput(v.input_audio, {
          allowUrls: o.allowUrlInputs, allowPrivateAddresses: o.allowPrivateAddresses, maxBytes: o.maxInputBytes, signal: ctx.signal,
        });
        check();
        inputAudio = await decodeAudio(file.bytes, 'input_audio', { onWarning: (m) => ctx.log(`warning: ${m}`) });
      } catch (e) {
        check();
        if (e instanceof FileInputError) throw new JobInputError('input_audio', e.message, 'value_error.file');
        if (e instanceof AudioDecodeError) throw new JobInputError('input_audio', e.message, 'value_error.audio');
        throw e;
      }
      ctx.log(`input_audio: ${inputAudio.channels.length} channel(s), ${(inputAudio.channels[0].length / inputAudio.sampleRate).toFixed(2)} s at ${inputAudio.sampleRate} Hz`);
    }
    check();

    // ---- the model (loaded now if it is not on the GPU) ----
    const version = typeof v.model_version === 'string' ? v.model_version : o.models.defaultName;
    const musicgen = await o.models.get(version, (line) => ctx.log(line));
    check();
    if (version === ENCODE_DECODE) {
      // one file; with --stream, the iterator's one item
      const file = await encodeDecode(musicgen, job, ctx, inputAudio, o);
      if (!o.stream) return file;
      ctx.append(file);
      return undefined;
    }

    // ---- generate ----
    const target = uploadTarget(job, o.uploadUrl, o.allowPrivateWebhooks);
    const sampleRate = musicgen.sampleRate;
    const t0 = Date.now();
    const streamed = o.stream
      ? new StreamedItems(
        Math.max(1, Math.round((o.streamChunkSeconds ?? 1) * sampleRate)),
        async (channels, index) => {
          const bytes = encodeWav(channels, sampleRate);
          return target ? uploadFile(target, `${job.id}-${index}.wav`, bytes, 'audio/wav', ctx.signal, job.id) : toDataUri(bytes, 'audio/wav');
        },
        (item, span) => {
          if (span.start === 0) ctx.log(`streaming: the first ${((span.end - span.start) / sampleRate).toFixed(2)} s of audio after ${((Date.now() - t0) / 1000).toFixed(2)} s`);
          ctx.append(item);
        })
      : null;
    let stage = '';
    const req: GenerateRequest = {
      ...(toOptions(PREDICT_INPUTS, v) as Partial<GenerateRequest>),
      decoder: v.multi_band_diffusion === true ? 'mbd' : 'encodec',
      prompt: typeof v.prompt === 'string' && v.prompt.trim() ? v.prompt : undefined,
      inputAudio,
      signal: streamed ? AbortSignal.any([ctx.signal, streamed.stop.signal]) : ctx.signal,
      onAudio: streamed ? (chunk) => streamed.push(chunk) : undefined,
      onProgress: (p) => {
        if (p.stage === 'generate') ctx.progress(p.done, p.total);
        else if (p.stage !== stage && p.done === 0) ctx.log(STAGE_LOG[p.stage]);
        stage = p.stage;
      },
    };
    let result;
    try {
      result = await musicgen.generate(req);
    } catch (e) {
      if (streamed?.error) throw streamed.error;
      if (e instanceof AbortError || ctx.signal.aborted) throw new CanceledError();
      if (e instanceof InputError) throw new JobInputError(cogName(PREDICT_INPUTS, e.field), renameInputs(e.reason, (n) => cogName(PREDICT_INPUTS, n)));
      throw e;
    }
    ctx.log(`seed: ${result.seed}`);
    ctx.log(`generated ${(result.audio[0][0].length / result.sampleRate).toFixed(2)} s in ${result.timings.total_s.toFixed(2)} s (${result.timings.per_step_ms.toFixed(1)} ms/step)`);
    if (streamed) {
      const n = await streamed.finish();
      if (n !== result.audio[0][0].length) throw new Error(`the streamed audio has ${n} samples, the clip ${result.audio[0][0].length}`);
      ctx.log(`streamed ${streamed.count} item(s); the whole clip, normalised, follows as the last`);
    }
    check();

    const file = await outputFile(result.audio[0], result.sampleRate, job, ctx, o);
    if (!streamed) return file;
    ctx.append(file);
    return undefined;
  };
}

/** model_version encode-decode: input_audio through the model's EnCodec and back, no generation. */
async function encodeDecode(musicgen: MusicGen, job: Job, ctx: JobContext, inputAudio: GenerateRequest['inputAudio'], o: PredictorOptions): Promise<string> {
  const v = job.values;
  if (!inputAudio) throw new JobInputError('input_audio', `model_version ${ENCODE_DECODE} encodes and decodes input_audio: it is required`);
  const opts = toOptions(PREDICT_INPUTS, v) as Partial<GenerateRequest>;
  let result;
  try {
    result = await musicgen.encodeDecode({
      inputAudio, continuationStart: opts.continuationStart, continuationEnd: opts.continuationEnd, normalization: opts.normalization, signal: ctx.signal,
      decoder: v.multi_band_diffusion === true ? 'mbd' : 'encodec', seed: opts.seed,
    });
  } catch (e) {
    if (e instanceof AbortError || ctx.signal.aborted) throw new CanceledError();
    if (e instanceof InputError) throw new JobInputError(cogName(PREDICT_INPUTS, e.field), renameInputs(e.reason, (n) => cogName(PREDICT_INPUTS, n)));
    throw e;
  }
  ctx.log(`encoded and decoded ${(result.audio[0].length / result.sampleRate).toFixed(2)} s (${result.frames} frames of ${result.numCodebooks} codebooks)`);
  return outputFile(result.audio, result.sampleRate, job, ctx, o);
}

/** The audio as the requested file: uploaded (its URL), or a data: URI. */
async function outputFile(audio: Float32Array[], sampleRate: number, job: Job, ctx: JobContext, o: PredictorOptions): Promise<string> {
  const format = job.values.output_format === 'mp3' ? 'mp3' : 'wav';
  const bytes = format === 'mp3' ? await encodeMp3(audio, sampleRate) : encodeWav(audio, sampleRate);
  const mediaType = format === 'mp3' ? 'audio/mpeg' : 'audio/wav';
  if (ctx.signal.aborted) throw new CanceledError();
  const target = uploadTarget(job, o.uploadUrl, o.allowPrivateWebhooks);
  if (target) {
    const url = await uploadFile(target, `${job.id}.${format}`, bytes, mediaType, ctx.signal, job.id);
    ctx.log(`uploaded to ${url}`);
    return url;
  }
  return toDataUri(bytes, mediaType);
}
