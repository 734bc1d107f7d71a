// `npm run finetune -- --model DIR|HUB_ID --dataset DIR|FILE.tar[.gz] --output DIR [options]`
// Fine-tunes a MusicGen model on captioned clips, as the Cog MusicGen trainer does (src/train/loop.ts), and writes
// a complete model folder that `npm run generate -- --model OUTPUT` (and MusicgenModel.load) reads as it is.
//
// OUTPUT/ after a run:
//   config.json, generation_config.json, tokenizer*.json, …   copied from the model folder
//   model.safetensors                                         every source tensor; the trained ones replaced
//   adapter_model.safetensors, adapter_config.json            with --lora-rank (PEFT layout)
//   train_log.jsonl                                           one JSON line per optimiser step
//   training_args.json                                        the options of the run
//   checkpoint-<step>/trainer_state.safetensors              the latest checkpoint (--resume OUTPUT continues)
//   cache/dataset.safetensors                                 EnCodec codes (and chroma) of every chunk

import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { Command, Option, InvalidArgumentError } from 'commander';
import cliProgressBars from 'cli-progress';
import { initRuntime } from '../runtime.js';
import { dirFolder } from '../io/file-source.js';
import { resolveModel } from '../io/hub.js';
import { cliProgress } from './progress.js';
import { MusicgenModel } from '../model/musicgen.js';
import { readDataset, prepareTrainingData } from '../train/data.js';
import { finetune, TrainingDiverged, type TrainOptions, type StepInfo } from '../train/loop.js';

const number = (name: string, check: (n: number) => boolean, what: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${name} must be ${what}`);
  return n;
};
const int = (name: string, min: number): ((v: string) => number) =>
  number(name, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);

interface Flags {
  model: string;
  dataset: string;
  output: string;
  epochs: number;
  lr: number;
  batchSize: number;
  gradAccum: number;
  warmup: number;
  schedule: 'constant' | 'cosine';
  saveSteps: number;
  condDropout: number;
  loraRank: number;
  loraAlpha?: number;
  seed?: number;
  resume?: string;
  chunkSeconds: number;
  maxDatasetMb: number;
  cacheDir?: string;
  offline?: boolean;
}

/** Options a resumed run takes from its checkpoint unless given on the command line. */
const FROM_CHECKPOINT: (keyof TrainOptions)[] = ['epochs', 'lr', 'batchSize', 'gradAccum', 'warmup', 'schedule', 'saveSteps', 'condDropout', 'loraRank', 'loraAlpha', 'seed'];

function progress(): { onStart: (total: number, start: number) => void; onStep: (i: StepInfo) => void; stop: () => void } {
  const tty = !!process.stderr.isTTY;
  const bar = new cliProgressBars.SingleBar({
    format: 'training |{bar}| {value}/{total} steps | epoch {epoch} | loss {loss} | {eta_formatted} left',
    stream: process.stderr,
    hideCursor: true,
    etaBuffer: 20,
  }, cliProgressBars.Presets.shades_classic);
  let started = false;
  return {
    onStart(total, start) {
      if (tty) {
        bar.start(total, start, { epoch: '-', loss: '-' });
        started = true;
      }
    },
    onStep({ record, totalSteps, stepsPerEpoch }) {
      if (tty) bar.update(record.step, { epoch: record.epoch, loss: record.loss.toFixed(4) });
      else if (record.step % stepsPerEpoch === 0 || record.step === totalSteps) {
        process.stderr.write(`epoch ${record.epoch}: step ${record.step}/${totalSteps}, loss ${record.loss.toFixed(4)}\n`);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('finetune')
    .description('Fine-tune MusicGen on a folder or tarball of audio files with .txt captions (the Cog trainer\'s data)')
    .requiredOption('--model <dir|hub-id>', 'model folder in the transformers format, or a hub id')
    .requiredOption('--dataset <dir|file.tar[.gz]>', 'audio files (wav, mp3, flac, ogg), each with a caption in a .txt of the same name')
    .requiredOption('--output <dir>', 'where the fine-tuned model folder, the log and the checkpoints go')
    .option('--epochs <n>', 'passes over the data', int('--epochs', 1), 5)
    .option('--lr <x>', 'peak learning rate', number('--lr', (n) => n > 0, 'a positive number'), 1e-4)
    .option('--batch-size <n>', 'chunks per micro-batch', int('--batch-size', 1), 1)
    .option('--grad-accum <n>', 'micro-batches per optimiser step', int('--grad-accum', 1), 1)
    .option('--warmup <n>', 'linear warmup steps', int('--warmup', 0), 0)
    .addOption(new Option('--schedule <s>', 'learning rate after warmup').choices(['constant', 'cosine']).default('constant'))
    .option('--save-steps <n>', 'a checkpoint every n optimiser steps (0: at the end of every epoch)', int('--save-steps', 0), 0)
    .option('--cond-dropout <p>', 'probability of dropping a chunk\'s text (and melody) conditioning', number('--cond-dropout', (n) => n >= 0 && n <= 1, 'in [0, 1]'), 0.2)
    .option('--lora-rank <r>', 'train rank-r LoRA adapters instead of the full weights (0: full fine-tuning)', int('--lora-rank', 0), 0)
    .option('--lora-alpha <a>', 'LoRA alpha (scale alpha / rank; default: the rank)', number('--lora-alpha', (n) => n > 0, 'a positive number'))
    .option('--seed <n>', 'seed of the shuffles, dropout draws and LoRA init (default: random, printed)', int('--seed', 0))
    .option('--resume <dir>', 'continue from a checkpoint folder, or from the newest checkpoint-N in an output folder')
    .option('--chunk-seconds <s>', 'longest training chunk', number('--chunk-seconds', (n) => n > 0 && n <= 30, 'in (0, 30]'), 30)
    .option('--max-dataset-mb <n>', 'most the dataset may hold, decompressed (MiB)', number('--max-dataset-mb', (n) => n > 0, 'a positive number'), 2048)
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the hub cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const given = (k: string): boolean => program.getOptionValueSource(k) === 'cli';

  let options: TrainOptions = {
    epochs: f.epochs, lr: f.lr, batchSize: f.batchSize, gradAccum: f.gradAccum, warmup: f.warmup, schedule: f.schedule,
    saveSteps: f.saveSteps, condDropout: f.condDropout, loraRank: f.loraRank, loraAlpha: f.loraAlpha,
    seed: f.seed ?? -1,
  };
  if (f.resume) {
    // a resumed run keeps the options it was started with, unless they are given again (then they must agree)
    const { TRAINER_STATE_FILE, findCheckpoint } = await import('../train/checkpoint.js');
    const { openSafetensorsFile } = await import('../io/file-source.js');
    const file = await openSafetensorsFile(path.join(await findCheckpoint(f.resume), TRAINER_STATE_FILE));
    const saved = (JSON.parse((file.metadata as Record<string, string>).loop ?? '{}') as { options?: Partial<TrainOptions> }).options ?? {};
    await file.close();
    const merged: Record<string, unknown> = { ...options };
    for (const k of FROM_CHECKPOINT) if (!given(k) && saved[k] !== undefined) merged[k] = saved[k];
    options = merged as unknown as TrainOptions;
  }
  if (options.seed < 0) {
    options.seed = randomInt(2 ** 31);
    console.log(`seed ${options.seed}`);
  }

  await initRuntime();
  const download = cliProgress();
  const dir = await resolveModel(f.model, { cacheDir: f.cacheDir, offline: f.offline, onProgress: download });
  download.stop();
  const folder = dirFolder(dir);
  if (path.resolve(dir) === path.resolve(f.output)) throw new Error('--output must not be the model folder');
  console.log(`loading ${f.model}`);
  const model = await MusicgenModel.load(folder);
  try {
    console.log(`reading ${f.dataset}`);
    const items = await readDataset(f.dataset, { maxBytes: Math.round(f.maxDatasetMb * 2 ** 20), limitName: '--max-dataset-mb' });
    const data = await prepareTrainingData(model, items, {
      modelFolder: folder,
      chunkSeconds: f.chunkSeconds,
      cacheFile: path.join(f.output, 'cache', 'dataset.safetensors'),
      onProgress: (done, total) => { if (done === total) console.log(`encoded ${total} chunk(s)`); },
    });
    console.log(`${items.length} clip(s), ${data.chunks.length} chunk(s)${data.fromCache ? ' (codes from the cache)' : ''}`);
    const bar = progress();
    try {
      const result = await finetune({
        model, source: { folder, dir }, modelName: f.model, data, outputDir: f.output, options, resume: f.resume,
        onStart: ({ totalSteps, startStep, trainable }) => {
          console.log(`${options.loraRank > 0 ? `LoRA rank ${options.loraRank}` : 'full fine-tuning'}: ${trainable.toLocaleString('en')} trainable values, ${totalSteps} steps`);
          bar.onStart(totalSteps, startStep);
        },
        onStep: bar.onStep,
        onMessage: (line) => {
          // with a bar, only notes interrupt it (progress and checkpoints are visible in the folder)
          if (!process.stderr.isTTY || line.startsWith('note:')) console.log(line);
        },
      });
      bar.stop();
      console.log(`done: ${result.steps} steps, last loss ${result.lastLoss.toFixed(4)}; model written to ${f.output}`);
    } finally {
      bar.stop();
    }
  } finally {
    model.dispose();
  }
}

/** `musicgen finetune` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  main(argv).then(() => process.exit(0), (e: unknown) => {
    const err = e as Error;
    console.error(`\nfinetune: ${err.message}`);
    process.exit(err instanceof TrainingDiverged ? 2 : 1);
  });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
