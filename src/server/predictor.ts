// The predictor: one Cog MusicGen prediction with the library (src/pipeline.ts). Inputs are the validated
// values of schema.ts; the output is the audio file as a data: URI, or the URL it was uploaded to.

import { MusicGen, AbortError, type GenerateRequest } from '../pipeline.js';
import { InputError, PREDICT_INPUTS, renameInputs } from '../inputs.js';
import { toOptions, cogName, type PredictorLimits } from './schema.js';
import { decodeAudio, AudioDecodeError } from '../audio/decode.js';
import { encodeWav, encodeMp3 } from '../audio/encode.js';
import { resolveFileInput, FileInputError, toDataUri, uploadFile, type UploadTarget } from './files.js';
import { CanceledError, JobInputError, type Job, type JobContext, type JobRunner } from './jobs.js';

export interface PredictorOptions {
  musicgen: MusicGen;
  allowUrlInputs: boolean;
  allowPrivateAddresses?: boolean;
  /** Largest input file, bytes. */
  maxInputBytes: number;
  /** Server-wide upload target (`--upload-url`). */
  uploadUrl?: string;
  /** A request's output_file_prefix may name loopback and private addresses (--allow-private-webhooks). */
  allowPrivateWebhooks?: boolean;
}

/** What the request validation needs to know of the model. */
export function predictorLimits(musicgen: MusicGen, maxDuration: number): PredictorLimits {
  return { maxDuration, isMelody: musicgen.isMelody, countTokens: (prompt) => musicgen.countTokens(prompt) };
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

    // ---- generate ----
    let stage = '';
    const req: GenerateRequest = {
      ...(toOptions(PREDICT_INPUTS, v) as Partial<GenerateRequest>),
      prompt: typeof v.prompt === 'string' && v.prompt.trim() ? v.prompt : undefined,
      inputAudio,
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.stage === 'generate') ctx.progress(p.done, p.total);
        else if (p.stage !== stage && p.done === 0) ctx.log(p.stage === 'text' ? 'encoding the prompt' : 'decoding the audio');
        stage = p.stage;
      },
    };
    let result;
    try {
      result = await o.musicgen.generate(req);
    } catch (e) {
      if (e instanceof AbortError || ctx.signal.aborted) throw new CanceledError();
      if (e instanceof InputError) throw new JobInputError(cogName(PREDICT_INPUTS, e.field), renameInputs(e.reason, (n) => cogName(PREDICT_INPUTS, n)));
      throw e;
    }
    ctx.log(`seed: ${result.seed}`);
    ctx.log(`generated ${(result.audio[0][0].length / result.sampleRate).toFixed(2)} s in ${result.timings.total_s.toFixed(2)} s (${result.timings.per_step_ms.toFixed(1)} ms/step)`);
    check();

    // ---- the file ----
    const format = v.output_format === 'mp3' ? 'mp3' : 'wav';
    const bytes = format === 'mp3' ? await encodeMp3(result.audio[0], result.sampleRate) : encodeWav(result.audio[0], result.sampleRate);
    const mediaType = format === 'mp3' ? 'audio/mpeg' : 'audio/wav';
    check();
    const target = uploadTarget(job, o.uploadUrl, o.allowPrivateWebhooks);
    if (target) {
      const url = await uploadFile(target, `${job.id}.${format}`, bytes, mediaType, ctx.signal, job.id);
      ctx.log(`uploaded to ${url}`);
      return url;
    }
    return toDataUri(bytes, mediaType);
  };
}
