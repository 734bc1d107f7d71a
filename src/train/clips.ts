// The library's `finetune`: fine-tunes a loaded MusicGen on clips held in memory (decoded audio with captions),
// in Node or in a browser (no file is read or written). LoRA by default; progress per step with its loss; an
// AbortSignal ends the run between steps. A LoRA run returns its adapter as PEFT's adapter_model.safetensors
// bytes (the config kept in the file's metadata too), which `MusicGen.load(model, { adapter })` applies, here or in
// Node after a download, exactly as it applies the `finetune` CLI's adapter. The loop is loop.ts's, the same one
// the CLI and the server run.

import type { MusicGen } from '../pipeline.js';
import { InputError, TRAIN_INPUTS, checkOptions, defaultOf } from '../inputs.js';
import { captionStates, encodeClips, type TrainingClip } from './data.js';
import { OPTION_KEYS, adapterFiles, checkTrainOptions, trainLoop, type LogRecord, type Schedule, type TrainOptions } from './loop.js';

/** LoRA rank of `finetune` when none is given (the CLI's default stays full fine-tuning, as Cog's trainer). */
export const DEFAULT_LORA_RANK = 8;

export type FinetuneProgress =
  | { stage: 'prepare'; done: number; total: number }
  | { stage: 'train'; step: number; totalSteps: number; epoch: number; loss: number; lr: number; gradNorm: number };

export interface FinetuneOptions extends Partial<TrainOptions> {
  /** Stop after this many optimiser steps (default: `epochs` passes over the chunks). */
  steps?: number;
  /** Longest training chunk, seconds (default 30). */
  chunkSeconds?: number;
  /** adapter_config.json's base_model_name_or_path (default 'musicgen'): the model's URL or hub id. */
  baseModel?: string;
  signal?: AbortSignal;
  onProgress?: (p: FinetuneProgress) => void;
}

export interface FinetuneResult {
  steps: number;
  lastLoss: number;
  /** One record per optimiser step. */
  log: LogRecord[];
  /** The options the run used (defaults filled in, the seed drawn). */
  options: TrainOptions;
  /**
   * LoRA runs: the adapter, as `MusicGen.load(model, { adapter })` takes it; `weights` is the whole
   * adapter_model.safetensors (offer it as a download). Full fine-tuning (`loraRank: 0`) trains the model's own
   * weights in place and returns null.
   */
  adapter: { weights: Uint8Array; config: Record<string, unknown> } | null;
}

const CALLBACKS = ['signal', 'onProgress', 'baseModel'];

/** Fine-tunes `mg` on `clips`. With LoRA (the default) `mg` itself is left unchanged. */
export async function finetune(mg: MusicGen, clips: TrainingClip[], opts: FinetuneOptions = {}): Promise<FinetuneResult> {
  const model = mg.model;
  checkOptions(TRAIN_INPUTS.filter((f) => f.option !== undefined && [...OPTION_KEYS, 'chunkSeconds', 'steps'].includes(f.option)), opts, CALLBACKS);
  if (!Array.isArray(clips) || clips.length === 0) throw new InputError('clips', 'no clips to train on');
  clips.forEach((c, i) => {
    const name = c.name ?? `clip ${i}`;
    if (typeof c.caption !== 'string') throw new InputError('clips', `${name} has no caption`);
    if (!Array.isArray(c.audio) || c.audio.length === 0 || !c.audio.every((ch) => ch instanceof Float32Array && ch.length === c.audio[0].length)) {
      throw new InputError('clips', `${name}: audio must be one Float32Array per channel, all of one length`);
    }
    if (c.audio[0].length === 0) throw new InputError('clips', `${name} is empty`);
    if (!(c.sampleRate > 0)) throw new InputError('clips', `${name} has sample rate ${String(c.sampleRate)}`);
  });
  const pick = <T extends string | number | boolean>(k: keyof TrainOptions): T => (opts[k] as T | undefined) ?? defaultOf<T>(TRAIN_INPUTS, k);
  const options = checkTrainOptions({
    epochs: pick<number>('epochs'), lr: pick<number>('lr'), batchSize: pick<number>('batchSize'), gradAccum: pick<number>('gradAccum'),
    warmup: pick<number>('warmup'), schedule: pick<Schedule>('schedule'), saveSteps: 0, condDropout: pick<number>('condDropout'),
    loraRank: opts.loraRank ?? DEFAULT_LORA_RANK, loraAlpha: opts.loraAlpha, seed: opts.seed ?? -1, maxGradNorm: pick<number>('maxGradNorm'),
  });

  const chunks = await encodeClips(model, clips, {
    chunkSeconds: opts.chunkSeconds ?? defaultOf<number>(TRAIN_INPUTS, 'chunkSeconds'),
    signal: opts.signal,
    onProgress: (done, total) => opts.onProgress?.({ stage: 'prepare', done, total }),
  });
  const data = { chunks, text: await captionStates(model, chunks), K: model.lm.numCodebooks, fingerprint: '', fromCache: false };
  if (opts.steps !== undefined) {
    // enough epochs for the steps asked; the loop stops at `steps`
    const perEpoch = Math.ceil(Math.ceil(chunks.length / options.batchSize) / options.gradAccum);
    options.epochs = Math.ceil(opts.steps / perEpoch);
  }
  const run = await trainLoop({
    model, data, options, signal: opts.signal, maxSteps: opts.steps,
    onStep: ({ record, totalSteps }) => opts.onProgress?.({
      stage: 'train', step: record.step, totalSteps, epoch: record.epoch, loss: record.loss, lr: record.lr, gradNorm: record.grad_norm,
    }),
    onDone: async ({ lora }) => (lora ? adapterFiles(lora, opts.baseModel ?? 'musicgen') : null),
  });
  return { steps: run.steps, lastLoss: run.lastLoss, log: run.log, options, adapter: run.result };
}
