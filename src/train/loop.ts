// Fine-tuning MusicGen's LM, as the Cog trainer / audiocraft do: teacher forcing through the delay pattern,
// cross-entropy per codebook over the valid positions averaged over codebooks (transformers'
// MusicgenForCausalLM loss), AdamW (betas 0.9/0.95, weight decay 0.1), gradient clipping at norm 1, linear warmup
// then a constant or cosine learning rate, condition dropout (text and melody dropped together) so that
// classifier-free guidance keeps working. T5 and EnCodec stay frozen; the LM and the conditioning projections
// train (or, with LoRA, low-rank adapters on the LM's attention and feed-forward matrices).
//
// The teacher-forced decoder input and labels are built beside the delay pattern (model/pattern.ts); trainer
// state and the output folder are read and written by checkpoint.ts; the probe's training reference is in
// cli/probe.ts.
//
// A step records forward, backward, clipping and the AdamW update without reading anything back, then reads one
// [2] tensor (loss, gradient norm) for the log. Everything the run needs to continue exactly is checkpointed.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Tensor, tidy, keep } from '../tensor.js';
import * as ops from '../ops.js';
import type { MusicgenModel } from '../model/musicgen.js';
import { MusicgenModel as MusicgenClass } from '../model/musicgen.js';
import type { Conditioning } from '../model/lm.js';
import type { NamedTensor } from '../model/weights.js';
import { delayedLabels, labelsByCodebook, shiftRight } from '../model/pattern.js';
import { writeFileAtomic } from '../io/atomic.js';
import { encodeSafetensors } from '../io/safetensors.js';
import { backward, noGrad } from '../autograd.js';
import { AdamW } from './optim.js';
import { clipGradNorm } from '../kernels/clip.js';
import { Lora } from './lora.js';
import { InputError, TRAIN_INPUTS, checkOptions } from '../inputs.js';
import { Rng, type Chunk, type TrainingData } from './data.js';
import {
  exportTrainables, findCheckpoint, importTrainables, readTrainerState, saveTrainerState, splitParts, writeModelFolder,
  type LoopState, type ModelSource, type TrainerState,
} from './checkpoint.js';

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

export interface FinetuneRun {
  model: MusicgenModel;
  source: ModelSource;
  /** A label for the base model (adapter_config.json's base_model_name_or_path). */
  modelName: string;
  data: TrainingData;
  outputDir: string;
  options: TrainOptions;
  /** A checkpoint folder (or an output folder holding checkpoint-N folders) to continue from. */
  resume?: string;
  onStep?: (info: StepInfo) => void;
  onMessage?: (line: string) => void;
  onStart?: (info: { totalSteps: number; startStep: number; stepsPerEpoch: number; trainable: number }) => void;
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


/**
 * Runs (or continues) a fine-tuning; writes checkpoints, the log and finally the model folder. The model's
 * weights are trained in place (with LoRA they are left unchanged: the adapters live beside them and are merged
 * only into the written folder); its parameters end without gradients and with `requiresGrad` off.
 */
export async function finetune(run: FinetuneRun): Promise<{ steps: number; lastLoss: number }> {
  const { model, data, outputDir } = run;
  checkOptions(TRAIN_INPUTS.filter((f) => OPTION_KEYS.includes(f.option as keyof TrainOptions)), run.options);
  const options: TrainOptions = { ...run.options };
  // alpha defaults to the rank (scale 1) and means nothing without LoRA: normalise before any comparison
  options.loraAlpha = options.loraRank > 0 ? options.loraAlpha ?? options.loraRank : undefined;
  const say = run.onMessage ?? (() => undefined);
  if (options.seed === -1) {
    options.seed = Math.floor(Math.random() * 2 ** 31);
    say(`seed ${options.seed}`);
  }
  await fsp.mkdir(outputDir, { recursive: true });

  if (!run.resume) {
    // a fresh run must not mix its checkpoints with an earlier run's (resuming from the folder would pick the wrong one)
    const stale = (await fsp.readdir(outputDir)).filter((e) => /^checkpoint-\d+$/.test(e));
    if (stale.length > 0) {
      throw new InputError('outputDir', `${outputDir} already holds checkpoints of an earlier run (${stale.join(', ')}): continue it with \`resume\` = ${outputDir}, or choose another folder`);
    }
  }

  // ---- resume: the state, and the options it was started with ----
  let resumed: TrainerState | null = null;
  let resumedFrom = '';
  if (run.resume) {
    resumedFrom = await findCheckpoint(run.resume);
    resumed = await readTrainerState(resumedFrom);
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
  const totalSteps = stepsPerEpoch * options.epochs;
  let loop: LoopState = {
    step: 0, epoch: 0, batchInEpoch: 0, order: [], rng: rng.state,
    options: options as unknown as Record<string, unknown>, datasetFingerprint: data.fingerprint, log: [],
  };
  if (resumed) {
    importTrainables(trainables, opt, resumed);
    loop = { ...resumed.loop, options: options as unknown as Record<string, unknown> };
    rng.state = loop.rng;
    say(`resuming from ${resumedFrom} at step ${loop.step}`);
  }
  const logFile = path.join(outputDir, 'train_log.jsonl');
  await writeFileAtomic(logFile, loop.log.map((l) => `${l}\n`).join(''));
  await writeFileAtomic(path.join(outputDir, 'training_args.json'), JSON.stringify({ ...options, model: run.modelName, chunks: N }, null, 1) + '\n');
  run.onStart?.({ totalSteps, startStep: loop.step, stepsPerEpoch, trainable: params.reduce((a, t) => a + t.size, 0) });

  let lastCheckpoint = resumed ? resumedFrom : '';
  let lastLoss = loop.log.length ? (JSON.parse(loop.log[loop.log.length - 1]) as LogRecord).loss : NaN;
  const maxNorm = options.maxGradNorm ?? 1;
  try {
    while (loop.step < totalSteps) {
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
      const line = JSON.stringify(record);
      loop.log.push(line);
      await fsp.appendFile(logFile, `${line}\n`);
      run.onStep?.({ record, totalSteps, stepsPerEpoch });

      const epochEnd = loop.batchInEpoch === 0;
      if ((options.saveSteps > 0 && step % options.saveSteps === 0) || (options.saveSteps === 0 && epochEnd)) {
        const dir = path.join(outputDir, `checkpoint-${step}`);
        await saveTrainerState(dir, await exportTrainables(trainables, opt, loop));
        if (lastCheckpoint && lastCheckpoint !== dir && path.dirname(path.resolve(lastCheckpoint)) === path.resolve(outputDir)) {
          await fsp.rm(lastCheckpoint, { recursive: true, force: true });
        }
        lastCheckpoint = dir;
        say(`checkpoint ${dir}`);
      }
    }

    // ---- the model folder ----
    say(`writing the model to ${outputDir}`);
    let replaced: Map<string, Float32Array>;
    if (lora) {
      replaced = await lora.merged();
      const adapters: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (const t of trainables) adapters[t.names[0]] = { dtype: 'F32', shape: [...t.tensor.shape], data: (await t.tensor.read()) as Float32Array };
      await writeFileAtomic(path.join(outputDir, 'adapter_model.safetensors'), encodeSafetensors(adapters, { format: 'pt' }));
      await writeFileAtomic(path.join(outputDir, 'adapter_config.json'), JSON.stringify(lora.adapterConfig(run.modelName), null, 1) + '\n');
    } else {
      replaced = new Map();
      for (const t of trainables) {
        const all = (await t.tensor.read()) as Float32Array;
        for (const [name, part] of splitParts(t, all)) replaced.set(name, part);
      }
    }
    await writeModelFolder(run.source, outputDir, replaced);
    return { steps: loop.step, lastLoss };
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
