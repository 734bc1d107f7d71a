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
import { Command, InvalidArgumentError } from 'commander';
import cliProgressBars from 'cli-progress';
import { cliRuntime } from './gpu.js';
import { dirFolder } from '../io/file-source.js';
import { resolveModel } from '../io/hub.js';
import { cliProgress } from './progress.js';
import { MusicgenModel } from '../model/musicgen.js';
import { readDataset, prepareTrainingData } from '../train/dataset.js';
import { TrainingDiverged, OPTION_KEYS, type TrainOptions, type StepInfo } from '../train/loop.js';
import { finetuneFolder } from '../train/folder.js';
import { TRAIN_INPUTS, modelSource } from '../inputs.js';
import { addInputOptions, optionValues, runCli, UsageError } from './inputs.js';

const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number.');
  return n;
};

/** The flags that are not training options (those are read through the table). */
interface Flags {
  model: string;
  dataset: string;
  output: string;
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
    .exitOverride()
    .requiredOption('--model <dir|hub-id|name>', 'model folder in the transformers format, a hub id, or a short name (small, melody-large, …)');
  const inputs = addInputOptions(program, TRAIN_INPUTS);
  program
    .option('--max-dataset-mb <n>', 'most the dataset may hold, decompressed (MiB)', positiveNumber, 2048)
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the hub cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const values = optionValues(program, inputs);
  const given = (k: string): boolean => program.getOptionValueSource(k) === 'cli';

  let options = Object.fromEntries(OPTION_KEYS.filter((k) => values[k] !== undefined).map((k) => [k, values[k]])) as unknown as TrainOptions;
  options.seed ??= -1;
  if (f.resume) {
    // a resumed run keeps the options it was started with, unless they are given again (then they must agree)
    const { findCheckpoint } = await import('../train/checkpoint.js');
    const { TRAINER_STATE_FILE } = await import('../train/state.js');
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

  await cliRuntime();
  const download = cliProgress();
  const dir = await resolveModel(modelSource(f.model), { cacheDir: f.cacheDir, offline: f.offline, onProgress: download });
  download.stop();
  const folder = dirFolder(dir);
  if (path.resolve(dir) === path.resolve(f.output)) throw new UsageError('--output must not be the model folder');
  console.log(`loading ${f.model}`);
  const model = await MusicgenModel.load(folder);
  try {
    console.log(`reading ${f.dataset}`);
    // the data's problems (missing, corrupt, uncaptioned, undecodable) are bad input: exit 2, naming the flag
    const badData = (e: unknown): never => {
      if (e instanceof Error && /^dataset\b/.test(e.message)) throw new UsageError(`--${e.message}`);
      throw e;
    };
    const items = await readDataset(f.dataset, { maxBytes: Math.round(f.maxDatasetMb * 2 ** 20), limitName: '--max-dataset-mb' }).catch(badData);
    const data = await prepareTrainingData(model, items, {
      modelFolder: folder,
      chunkSeconds: f.chunkSeconds,
      cacheFile: path.join(f.output, 'cache', 'dataset.safetensors'),
      onProgress: (done, total) => { if (done === total) console.log(`encoded ${total} chunk(s)`); },
    }).catch(badData);
    console.log(`${items.length} clip(s), ${data.chunks.length} chunk(s)${data.fromCache ? ' (codes from the cache)' : ''}`);
    const bar = progress();
    try {
      const result = await finetuneFolder({
        model, source: { folder, dir }, modelName: modelSource(f.model), data, outputDir: f.output, options, resume: f.resume,
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
  runCli('finetune', () => main(argv), TRAIN_INPUTS, [TrainingDiverged]);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
