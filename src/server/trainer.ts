// The trainer: one Cog training = a fine-tuning run of src/train/loop.ts (as `npm run finetune`) on a dataset
// tarball sent as a data: URI (or a URL where allowed), in a temporary folder. The output is Cog's
// `TrainingOutput`: `{"weights": <the fine-tuned model folder as a tarball>}` (a data: URI
// `data:application/x-tar;base64,…`, or the URL it was uploaded to), which `tar x` turns into a folder that
// `--model` loads. The served model is not touched: the run trains its own copy, loaded from the model folder.
// Cancel stops the run between optimiser steps (or between clips while encoding the dataset).

import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import * as tar from 'tar';
import { dirFolder } from '../io/file-source.js';
import { MusicgenModel } from '../model/musicgen.js';
import { readDataset, prepareTrainingData } from '../train/dataset.js';
import type { TrainOptions } from '../train/loop.js';
import { finetuneFolder } from '../train/folder.js';
import { resolveFileInput, FileInputError, toDataUri, uploadFile } from './files.js';
import { CanceledError, JobInputError, type Job, type JobContext, type JobRunner } from './jobs.js';
import { uploadTarget } from './predictor.js';
import { toOptions, cogName } from './schema.js';
import { TRAIN_INPUTS, InputError, renameInputs } from '../inputs.js';

export interface TrainerOptions {
  /** The served model's folder on disk (a hub model's snapshot folder, downloaded when first asked for). */
  modelDir: () => Promise<string>;
  /** How the model was named (adapter_config.json's base model). */
  modelName: string;
  allowUrlInputs: boolean;
  allowPrivateAddresses?: boolean;
  /** Largest dataset, bytes: fetched from a URL, and its files decompressed (a data: URI is also bounded by the body cap). */
  maxDatasetBytes: number;
  uploadUrl?: string;
  /** A request's output_file_prefix may name loopback and private addresses (--allow-private-webhooks). */
  allowPrivateWebhooks?: boolean;
  /** Where the temporary folders go (default: the OS temp folder). */
  tmpDir?: string;
}

/** Files of the output folder that are not part of the model (kept out of the tarball). */
function isModelFile(name: string): boolean {
  return !/^checkpoint-\d+$/.test(name) && name !== 'cache' && !name.startsWith('.');
}

export function makeTrainer(o: TrainerOptions): JobRunner {
  return async (job: Job, ctx: JobContext): Promise<unknown> => {
    const v = job.values;
    const check = (): void => { if (ctx.signal.aborted) throw new CanceledError(); };
    const work = await fsp.mkdtemp(path.join(o.tmpDir ?? tmpdir(), 'musicgen-training-'));
    let model: MusicgenModel | null = null;
    try {
      // ---- the dataset ----
      let file;
      try {
        file = await resolveFileInput(String(v.dataset_path), {
          allowUrls: o.allowUrlInputs, allowPrivateAddresses: o.allowPrivateAddresses, maxBytes: o.maxDatasetBytes, signal: ctx.signal,
        });
      } catch (e) {
        check();
        if (e instanceof FileInputError) throw new JobInputError('dataset_path', e.message, 'value_error.file');
        throw e;
      }
      check();
      const gz = file.bytes[0] === 0x1f && file.bytes[1] === 0x8b;
      const archive = path.join(work, gz ? 'dataset.tar.gz' : 'dataset.tar');
      await fsp.writeFile(archive, file.bytes);
      file = null;
      let items;
      try {
        items = await readDataset(archive, { maxBytes: o.maxDatasetBytes, limitName: "the server's --max-dataset-mb" });
      } catch (e) {
        throw new JobInputError('dataset_path', (e as Error).message.replace(archive, 'the tarball'));
      }
      ctx.log(`dataset: ${items.length} clip(s)`);
      check();

      // ---- a copy of the model to train ----
      const modelDir = await o.modelDir();
      const folder = dirFolder(modelDir);
      model = await MusicgenModel.load(folder);
      check();
      let data;
      try {
        data = await prepareTrainingData(model, items, {
          modelFolder: folder,
          chunkSeconds: Number(v.chunk_seconds),
          onProgress: (done, total) => {
            check();
            if (done === total) ctx.log(`encoded ${total} chunk(s)`);
          },
        });
      } catch (e) {
        if (e instanceof CanceledError || ctx.signal.aborted) throw new CanceledError();
        if (/^dataset/.test((e as Error).message)) throw new JobInputError('dataset_path', (e as Error).message);
        throw e;
      }
      items = null;
      check();

      // ---- the run ----
      const given = toOptions(TRAIN_INPUTS, v);
      const seed = typeof given.seed === 'number' && given.seed >= 0 ? given.seed : randomInt(2 ** 31);
      const { chunkSeconds: _chunk, ...rest } = given; // a data option, not the loop's
      const options = {
        ...rest,
        // no resumable checkpoints inside a request's temporary folder
        saveSteps: Number.MAX_SAFE_INTEGER,
        seed,
      } as TrainOptions;
      ctx.log(`seed: ${seed}`);
      const out = path.join(work, 'model');
      const result = await finetuneFolder({
        model, source: { folder, dir: modelDir }, modelName: o.modelName, data, outputDir: out, options,
        onStart: ({ totalSteps, trainable }) => {
          ctx.log(`${options.loraRank > 0 ? `LoRA rank ${options.loraRank}` : 'full fine-tuning'}: ${trainable} trainable values, ${totalSteps} steps`);
        },
        onStep: ({ record, totalSteps }) => {
          ctx.log(`step ${record.step} of ${totalSteps}: epoch ${record.epoch}, loss ${record.loss.toFixed(4)}, lr ${record.lr.toExponential(2)}`);
          check(); // throwing here ends the run between optimiser steps
        },
        onMessage: (line) => ctx.log(line),
      }).catch((e: unknown) => {
        if (e instanceof CanceledError || ctx.signal.aborted) throw new CanceledError();
        if (e instanceof InputError) throw new JobInputError(cogName(TRAIN_INPUTS, e.field), renameInputs(e.reason, (n) => cogName(TRAIN_INPUTS, n)));
        throw e;
      });
      ctx.log(`trained ${result.steps} steps, last loss ${result.lastLoss.toFixed(4)}`);
      model.dispose();
      model = null;
      check();

      // ---- the tarball ----
      const names = (await fsp.readdir(out)).filter(isModelFile).sort();
      const tarFile = path.join(work, 'weights.tar');
      await tar.c({ cwd: out, file: tarFile, portable: true }, names);
      const size = (await fsp.stat(tarFile)).size;
      ctx.log(`weights: ${names.join(', ')} (${size} bytes)`);
      const target = uploadTarget(job, o.uploadUrl, o.allowPrivateWebhooks);
      if (target) {
        const bytes = await fsp.readFile(tarFile);
        const url = await uploadFile(target, `${job.id}.tar`, bytes, 'application/x-tar', ctx.signal, job.id);
        ctx.log(`uploaded to ${url}`);
        return { weights: url };
      }
      return { weights: toDataUri(await fsp.readFile(tarFile), 'application/x-tar') };
    } finally {
      model?.dispose();
      await fsp.rm(work, { recursive: true, force: true });
    }
  };
}

