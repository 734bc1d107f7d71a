// Fine-tuning into a folder (Node: the `finetune` CLI and the server's trainings). The loop is loop.ts's; this
// file keeps its results on disk:
//   OUTPUT/train_log.jsonl                        one JSON line per optimiser step
//   OUTPUT/training_args.json                     the options of the run
//   OUTPUT/checkpoint-<step>/trainer_state.safetensors   the latest checkpoint (`resume` = OUTPUT continues)
//   OUTPUT/model.safetensors, config, tokenizer…  the complete trained model folder (checkpoint.ts)
//   OUTPUT/adapter_model.safetensors, adapter_config.json   with LoRA (PEFT layout)

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { MusicgenModel } from '../model/musicgen.js';
import { writeFileAtomic } from '../io/atomic.js';
import { InputError } from '../inputs.js';
import type { TrainingData } from './data.js';
import { splitParts } from './state.js';
import { findCheckpoint, readTrainerState, saveTrainerState, writeModelFolder, type ModelSource } from './checkpoint.js';
import { adapterFiles, checkTrainOptions, trainLoop, type StepInfo, type TrainOptions } from './loop.js';

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

/**
 * Runs (or continues) a fine-tuning; writes checkpoints, the log and finally the model folder. The model's
 * weights are trained in place (with LoRA they are left unchanged: the adapters live beside them and are merged
 * only into the written folder); its parameters end without gradients and with `requiresGrad` off.
 */
export async function finetuneFolder(run: FinetuneRun): Promise<{ steps: number; lastLoss: number }> {
  const { outputDir } = run;
  const say = run.onMessage ?? (() => undefined);
  const options = checkTrainOptions(run.options, say);
  await fsp.mkdir(outputDir, { recursive: true });
  if (!run.resume) {
    // a fresh run must not mix its checkpoints with an earlier run's (resuming from the folder would pick the wrong one)
    const stale = (await fsp.readdir(outputDir)).filter((e) => /^checkpoint-\d+$/.test(e));
    if (stale.length > 0) {
      throw new InputError('outputDir', `${outputDir} already holds checkpoints of an earlier run (${stale.join(', ')}): continue it with \`resume\` = ${outputDir}, or choose another folder`);
    }
  }
  let resume: { state: Awaited<ReturnType<typeof readTrainerState>>; from: string } | undefined;
  if (run.resume) {
    const from = await findCheckpoint(run.resume);
    resume = { state: await readTrainerState(from), from };
  }

  const logFile = path.join(outputDir, 'train_log.jsonl');
  let lastCheckpoint = resume?.from ?? '';
  const { steps, lastLoss } = await trainLoop({
    model: run.model, data: run.data, options, resume,
    onMessage: run.onMessage,
    onStart: async (info) => {
      await writeFileAtomic(logFile, (resume?.state.loop.log ?? []).map((l) => `${l}\n`).join(''));
      await writeFileAtomic(path.join(outputDir, 'training_args.json'), JSON.stringify({ ...options, model: run.modelName, chunks: run.data.chunks.length }, null, 1) + '\n');
      run.onStart?.(info);
    },
    onStep: async (info) => {
      await fsp.appendFile(logFile, `${JSON.stringify(info.record)}\n`);
      run.onStep?.(info);
    },
    onCheckpoint: async (step, state) => {
      const dir = path.join(outputDir, `checkpoint-${step}`);
      await saveTrainerState(dir, await state());
      if (lastCheckpoint && lastCheckpoint !== dir && path.dirname(path.resolve(lastCheckpoint)) === path.resolve(outputDir)) {
        await fsp.rm(lastCheckpoint, { recursive: true, force: true });
      }
      lastCheckpoint = dir;
      say(`checkpoint ${dir}`);
      return dir;
    },
    onDone: async ({ lora, trainables }) => {
      say(`writing the model to ${outputDir}`);
      let replaced: Map<string, Float32Array>;
      if (lora) {
        replaced = await lora.merged();
        const adapter = await adapterFiles(lora, run.modelName);
        await writeFileAtomic(path.join(outputDir, 'adapter_model.safetensors'), adapter.weights);
        await writeFileAtomic(path.join(outputDir, 'adapter_config.json'), JSON.stringify(adapter.config, null, 1) + '\n');
      } else {
        replaced = new Map();
        for (const t of trainables) {
          const all = (await t.tensor.read()) as Float32Array;
          for (const [name, part] of splitParts(t, all)) replaced.set(name, part);
        }
      }
      await writeModelFolder(run.source, outputDir, replaced);
    },
  });
  return { steps, lastLoss };
}
