// Fine-tuning MusicGen's LM, as the Cog trainer / audiocraft do: teacher forcing through the delay pattern,
// cross-entropy per codebook over the valid positions averaged over codebooks (transformers'
// MusicgenForCausalLM loss), AdamW (betas 0.9/0.95, weight decay 0.1), gradient clipping at norm 1, linear warmup
// then a constant or cosine learning rate, condition dropout (text and melody dropped together) so that
// classifier-free guidance keeps working. T5 and EnCodec stay frozen; the LM and the conditioning projections
// train (or, with LoRA, low-rank adapters on the LM's attention and feed-forward matrices).
//
// This file is the one training loop, with no file system: it runs in Node and in the browser bundle. Where its
// results go is the caller's: folder.ts (Node: the log, resumable checkpoints and the output model folder, for the
// CLI and the server) and clips.ts (the library's in-memory `finetune`: an adapter file as bytes). The
// teacher-forced decoder input and labels are built beside the delay pattern (model/pattern.ts); the probe's
// training reference is in cli/probe.ts.
//
// A step records forward, backward, clipping and the AdamW update without reading anything back, then reads one
// [2] tensor (loss, gradient norm) for the log. Everything the run needs to continue exactly is in the state
// handed to `onCheckpoint`.

import { Tensor, tidy, keep } from '../tensor.js';
import * as ops from '../ops.js';
import type { MusicgenModel } from '../model/musicgen.js';
import { MusicgenModel as MusicgenClass } from '../model/musicgen.js';
import type { Conditioning } from '../model/lm.js';
import type { NamedTensor } from '../model/weights.js';
import { delayedLabels, labelsByCodebook, shiftRight } from '../model/pattern.js';
import { AbortError } from '../model/generate.js';
import { encodeSafetensors } from '../io/safetensors.js';
import { backward, noGrad } from '../autograd.js';
import { AdamW } from './optim.js';
import { clipGradNorm } from '../kernels/clip.js';
import { Lora } from './lora.js';
import { InputError, TRAIN_INPUTS, checkOptions } from '../inputs.js';
import { Rng, type Chunk, type TrainingData } from './data.js';
import { exportTrainables, importTrainables, type LoopState, type TrainerState } from './state.js';

// ---------------------------------------------------------------------------------------------------------------
// the loss

/**
 * The LM loss: mean over codebooks of the cross-entropy over the positions whose label is not the pad id.
 * `decoderInput` i32 [B, K, T]; `labels` K i32 tensors [B·T]. Returns [1].
 */
export function lmLoss(model: MusicgenModel, decoderInput: Tensor, labels: Tensor[], cond: Conditioning): Tensor {
  const pad = model.lm.padId;
  const logits = model.lm.forward(decoderInput, cond); // B K T V
  const [B, K, T, V] = logits.shape;
  if (labels.length !== K) throw new Error(`lmLoss: ${labels.length} label rows for ${K} codebooks`);
  let sum: Tensor | null = null;
  for (let k = 0; k < K; k++) {
    const lk = ops.reshape(ops.narrow(logits, 1, k, 1), [B * T, V]);
    const ce = ops.crossEntropy(lk, labels[k], pad);
    sum = sum ? ops.add(sum, ce) : ce;
  }
  return ops.scale(sum!, 1 / K);
}

/**
 * Conditioning for training: projected text (trainable projection) and, for melody models, the chroma prefix.
 * `hidden` T5 states [B, L, d]; `mask` f32 [B, L] (0 rows = dropped text); `chroma` [B, F, 12].
 */
export function trainingConditioning(model: MusicgenModel, hidden: Tensor, mask: Tensor, chroma?: Tensor): Conditioning {
  const states = model.projectText(hidden, mask);
  return model.conditioning(states, mask, chroma);
}

// ---------------------------------------------------------------------------------------------------------------
// the training loop

export type Schedule = 'constant' | 'cosine';

export interface TrainOptions {
  epochs: number;
  lr: number;
  batchSize: number;
  gradAccum: number;
  /** Linear warmup steps. */
  warmup: number;
  schedule: Schedule;
  /** A checkpoint every N optimiser steps; 0 = at the end of every epoch. */
  saveSteps: number;
  /** Probability of dropping a chunk's conditioning (text and melody together). */
  condDropout: number;
  /** 0 = full fine-tuning of the LM and projections; > 0 = LoRA adapters of this rank. */
  loraRank: number;
  /** LoRA alpha (scale alpha / rank); default = rank. */
  loraAlpha?: number;
  seed: number;
  /** Gradient clipping (default 1). */
  maxGradNorm?: number;
}

/** The options of TrainOptions, as TRAIN_INPUTS (src/inputs.ts) declares them. */
export const OPTION_KEYS: readonly (keyof TrainOptions)[] = [
  'epochs', 'lr', 'batchSize', 'gradAccum', 'warmup', 'schedule', 'saveSteps', 'condDropout', 'loraRank', 'loraAlpha', 'seed', 'maxGradNorm',
];

/** Options a resumed run cannot change: the data position counts micro-batches, the tensors are the adapters'. */
const STRUCTURAL_OPTIONS = ['batchSize', 'gradAccum', 'loraRank', 'loraAlpha'] as const;
/** Options a resumed run may change (e.g. a lower lr after a divergence), at the price of another curve. */
const CURVE_OPTIONS = ['lr', 'warmup', 'schedule', 'epochs', 'condDropout', 'maxGradNorm'] as const;

export interface LogRecord {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  grad_norm: number;
}

export interface StepInfo {
  record: LogRecord;
  totalSteps: number;
  stepsPerEpoch: number;
}

export class TrainingDiverged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDiverged';
  }
}

/** The learning rate of optimiser step s (1-based) of S. */
export function learningRate(s: number, S: number, o: Pick<TrainOptions, 'lr' | 'warmup' | 'schedule'>): number {
  if (o.warmup > 0 && s <= o.warmup) return (o.lr * s) / o.warmup;
  if (o.schedule === 'constant') return o.lr;
  // cosine from the first step after warmup (full lr) toward 0 one step past the end
  const progress = (s - o.warmup - 1) / Math.max(1, S - o.warmup);
  return o.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}


/** The options checked against TRAIN_INPUTS and completed: alpha defaults to the rank, seed −1 drawn. */
export function checkTrainOptions(given: TrainOptions, say: (line: string) => void = () => undefined): TrainOptions {
  checkOptions(TRAIN_INPUTS.filter((f) => OPTION_KEYS.includes(f.option as keyof TrainOptions)), given);
  const options: TrainOptions = { ...given };
  // alpha defaults to the rank (scale 1) and means nothing without LoRA: normalise before any comparison
  options.loraAlpha = options.loraRank > 0 ? options.loraAlpha ?? options.loraRank : undefined;
  if (options.seed === -1) {
    options.seed = Math.floor(Math.random() * 2 ** 31);
    say(`seed ${options.seed}`);
  }
  return options;
}

/** What a finished run leaves to read while its tensors are alive (they are freed when `onDone` returns). */
export interface Trained {
  /** The adapters (LoRA runs), or null (full fine-tuning: the model's own weights were trained in place). */
  lora: Lora | null;
  /** The trained tensors under their checkpoint names (LoRA: PEFT's adapter names). */
  trainables: NamedTensor[];
  options: TrainOptions;
}

export interface LoopRun<R> {
  model: MusicgenModel;
  data: TrainingData;
  /** As `checkTrainOptions` returns them. */
  options: TrainOptions;
  /** A saved state to continue from, and where it came from (for messages). */
  resume?: { state: TrainerState; from: string };
  /** Checked before each optimiser step: aborting ends the run with an AbortError. */
  signal?: AbortSignal;
  /** Stop after this many optimiser steps (the schedule then spans them), short of `epochs` passes. */
  maxSteps?: number;
  onStart?: (info: { totalSteps: number; startStep: number; stepsPerEpoch: number; trainable: number }) => void | Promise<void>;
  /** After each optimiser step; throwing ends the run. */
  onStep?: (info: StepInfo) => void | Promise<void>;
  onMessage?: (line: string) => void;
  /** Every `saveSteps` steps (0: each epoch's end): keeps the state; returns a label for messages (its folder). */
  onCheckpoint?: (step: number, state: () => Promise<TrainerState>) => Promise<string>;
  /** After the last step, before the trained tensors are freed: reads what the caller keeps. */
  onDone: (trained: Trained) => Promise<R>;
}

/**
 * Runs (or continues) a fine-tuning. The model's weights are trained in place (with LoRA they are left unchanged:
 * the adapters live beside them until `onDone` has read them); its parameters end without gradients and with
 * `requiresGrad` off.
 */
export async function trainLoop<R>(run: LoopRun<R>): Promise<{ steps: number; lastLoss: number; log: LogRecord[]; result: R }> {
  const { model, data, options } = run;
  const say = run.onMessage ?? (() => undefined);

  // ---- resume: the options it was started with, and the data ----
  const resumed = run.resume?.state ?? null;
  if (resumed) {
    const saved = resumed.loop.options as unknown as TrainOptions;
    for (const k of STRUCTURAL_OPTIONS) {
      if (saved[k] !== options[k]) {
        throw new InputError('resume', `the checkpoint was made with \`${k}\` = ${JSON.stringify(saved[k])}, this run has ${JSON.stringify(options[k])}; \`${k}\` cannot change when resuming`);
      }
    }
    for (const k of CURVE_OPTIONS) {
      // more epochs under a constant schedule continue the same curve
      if (saved[k] !== options[k] && !(k === 'epochs' && options.schedule === 'constant' && saved.schedule === 'constant')) {
        say(`note: resuming with ${k} = ${JSON.stringify(options[k])} (the checkpoint was made with ${JSON.stringify(saved[k])}): the run will not follow the uninterrupted curve`);
      }
    }
    if (resumed.loop.datasetFingerprint !== data.fingerprint) {
      throw new InputError('resume', 'the dataset (files, captions, chunking or codec) differs from the one the checkpoint was trained on');
    }
  }

  // ---- what trains ----
  const rng = Rng.from(options.seed, 0);
  let lora: Lora | null = null;
  let trainables: NamedTensor[];
  if (options.loraRank > 0) {
    for (const t of model.parameters()) t.requiresGrad = false;
    lora = Lora.create(model, options.loraRank, Rng.from(options.seed, 1), options.loraAlpha);
    trainables = lora.namedParameters();
  } else {
    trainables = model.trainableParameters();
    for (const t of trainables) t.tensor.requiresGrad = true;
  }
  const params = trainables.map((t) => t.tensor);
  const opt = new AdamW(params, { lr: options.lr, betas: [0.9, 0.95], weightDecay: 0.1 });

  const N = data.chunks.length;
  const B = options.batchSize;
  const microPerEpoch = Math.ceil(N / B);
  const stepsPerEpoch = Math.ceil(microPerEpoch / options.gradAccum);
  const totalSteps = Math.min(stepsPerEpoch * options.epochs, run.maxSteps ?? Infinity);
  let loop: LoopState = {
    step: 0, epoch: 0, batchInEpoch: 0, order: [], rng: rng.state,
    options: options as unknown as Record<string, unknown>, datasetFingerprint: data.fingerprint, log: [],
  };
  let lastCheckpoint = '';
  try {
    if (resumed) {
      importTrainables(trainables, opt, resumed);
      loop = { ...resumed.loop, options: options as unknown as Record<string, unknown> };
      rng.state = loop.rng;
      lastCheckpoint = run.resume!.from;
      say(`resuming from ${lastCheckpoint} at step ${loop.step}`);
    }
    await run.onStart?.({ totalSteps, startStep: loop.step, stepsPerEpoch, trainable: params.reduce((a, t) => a + t.size, 0) });

    const log = loop.log.map((l) => JSON.parse(l) as LogRecord);
    let lastLoss = log.length ? log[log.length - 1].loss : NaN;
    const maxNorm = options.maxGradNorm ?? 1;
    while (loop.step < totalSteps) {
      if (run.signal?.aborted) throw new AbortError();
      const step = loop.step + 1;
      if (loop.batchInEpoch === 0) loop.order = rng.permutation(N);
      const firstMicro = loop.batchInEpoch;
      const micro = Math.min(options.gradAccum, microPerEpoch - firstMicro);
      let lossSum: Tensor | null = null;
      for (let m = 0; m < micro; m++) {
        const idx = loop.order.slice((firstMicro + m) * B, (firstMicro + m + 1) * B);
        const drop = idx.map(() => options.condDropout > 0 && rng.next() < options.condDropout);
        const l = tidy(() => {
          const batch = makeBatch(model, data, idx.map((i) => data.chunks[i]), drop);
          const forward = (): Tensor => lmLoss(model, batch.decoderInput, batch.labels, trainingConditioning(model, batch.hidden, batch.mask, batch.chroma));
          const loss = lora ? lora.withAdapters(forward) : forward();
          backward(loss, Tensor.from([1 / micro], [1], 'f32', model.rt));
          return noGrad(() => (lossSum ? ops.add(lossSum, loss) : ops.scale(loss, 1)));
        });
        lossSum?.dispose();
        lossSum = keep(l);
      }
      const lr = learningRate(step, totalSteps, options);
      const clip = clipGradNorm(params, maxNorm);
      opt.step(lr, clip.scale);
      const stats = tidy(() => ops.concat([ops.scale(lossSum!, 1 / micro), clip.norm], 0));
      const [loss, gradNorm] = Array.from((await stats.read()) as Float32Array);
      for (const t of [stats, lossSum!, clip.norm, clip.scale, clip.finite]) t.dispose();
      opt.zeroGrad();

      loop.batchInEpoch += micro;
      const epoch = loop.epoch + 1;
      if (loop.batchInEpoch >= microPerEpoch) {
        loop.epoch++;
        loop.batchInEpoch = 0;
      }
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new TrainingDiverged(`the loss became ${Number.isFinite(loss) ? `finite but the gradient norm ${gradNorm}` : loss} at step ${step} (epoch ${epoch}); ` +
          `stopping. ${lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint} (continue with \`resume\` = ${lastCheckpoint}, e.g. with a lower \`lr\`).` : 'No checkpoint was written yet.'}`);
      }
      lastLoss = loss;
      loop.step = step;
      loop.rng = rng.state;
      const record: LogRecord = { step, epoch, loss, lr, grad_norm: gradNorm };
      loop.log.push(JSON.stringify(record));
      log.push(record);
      await run.onStep?.({ record, totalSteps, stepsPerEpoch });

      const epochEnd = loop.batchInEpoch === 0;
      if (run.onCheckpoint && ((options.saveSteps > 0 && step % options.saveSteps === 0) || (options.saveSteps === 0 && epochEnd))) {
        const state = loop;
        lastCheckpoint = await run.onCheckpoint(step, () => exportTrainables(trainables, opt, state));
      }
    }
    const result = await run.onDone({ lora, trainables, options });
    return { steps: loop.step, lastLoss, log, result };
  } finally {
    opt.dispose();
    if (lora) lora.dispose();
    for (const t of params) {
      t.grad?.release();
      t.grad = null;
      t.requiresGrad = false;
    }
  }
}

/**
 * A LoRA run's adapter as PEFT's `adapter_model.safetensors` (F32 lora_A / lora_B) and `adapter_config.json`.
 * The config is also kept in the file's metadata (`adapter_config`), so the file alone is a complete adapter
 * (`MusicGen.load(model, { adapter })` reads it from there when no adapter_config.json lies beside it).
 */
export async function adapterFiles(lora: Lora, baseModel: string): Promise<{ weights: Uint8Array; config: Record<string, unknown> }> {
  const config = lora.adapterConfig(baseModel);
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const t of lora.namedParameters()) tensors[t.names[0]] = { dtype: 'F32', shape: [...t.tensor.shape], data: (await t.tensor.read()) as Float32Array };
  return { weights: encodeSafetensors(tensors, { format: 'pt', adapter_config: JSON.stringify(config) }), config };
}

/** One micro-batch on the GPU: decoder input, labels per codebook, T5 states, mask (0 rows dropped), chroma. */
interface Batch {
  decoderInput: Tensor;
  labels: Tensor[];
  hidden: Tensor;
  mask: Tensor;
  chroma?: Tensor;
}

function makeBatch(model: MusicgenModel, data: TrainingData, chunks: Chunk[], drop: boolean[]): Batch {
  const rt = model.rt;
  const B = chunks.length;
  const K = data.K;
  const pad = model.lm.padId;
  const { labels, T } = delayedLabels(chunks, K, model.audioChannels, pad);
  const decoderInput = Tensor.from(shiftRight(labels, B, T, K, pad), [B, K, T], 'i32', rt);
  const rows = labelsByCodebook(labels, B, T, K).map((r) => Tensor.from(r, [B * T], 'i32', rt));
  // T5 states padded to the longest caption with zeros and mask 0; a dropped row is all-zero mask (its projected
  // states become zeros, and cross-attention sees only masked keys): the unconditional branch of guidance
  const feats = chunks.map((c) => data.text.get(c.caption)!);
  const L = Math.max(...feats.map((f) => f.length));
  const dim = feats[0].dim;
  const hidden = new Float32Array(B * L * dim);
  const mask = new Float32Array(B * L);
  feats.forEach((f, b) => {
    hidden.set(f.hidden, b * L * dim);
    if (!drop[b]) mask.fill(1, b * L, b * L + f.length);
  });
  let chroma: Tensor | undefined;
  if (model.isMelody) {
    const Lc = model.cfg.chroma_length ?? 235;
    const n = model.cfg.num_chroma ?? 12;
    const c = new Float32Array(B * Lc * n);
    chunks.forEach((ch, b) => {
      // a dropped melody is the chroma of silence (bin 0), as the unconditional branch at generation
      c.set(drop[b] || !ch.chroma ? MusicgenClass.silentChroma(1, Lc, n) : ch.chroma, b * Lc * n);
    });
    chroma = Tensor.from(c, [B, Lc, n], 'f32', rt);
  }
  return {
    decoderInput, labels: rows, chroma,
    hidden: Tensor.from(hidden, [B, L, dim], 'f32', rt),
    mask: Tensor.from(mask, [B, L], 'f32', rt),
  };
}
