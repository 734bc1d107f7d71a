// What fine-tuning reads and writes on disk:
//   - the output model folder (`writeModelFolder`): every tensor of the source checkpoint under its own name and
//     dtype, copied byte for byte, except the trained ones, which are replaced (converted to the source dtype);
//     config, tokenizer and the other small files copied, so `MusicgenModel.load` reads it as it reads the source;
//   - resumable trainer checkpoints (`saveTrainerState` / `readTrainerState`): one safetensors file with the
//     trainable tensors, the AdamW moments, and the loop's state (step, RNG, data position, log) as JSON metadata
//     (the state itself, and how it moves to and from the live tensors, is state.ts's: no files there).
// Files are written through a temporary file that is renamed over the target (as src/io/atomic.ts), streamed
// tensor by tensor so a multi-GB checkpoint is never held in memory whole.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { CheckpointFolder, Dtype } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensorsStream, type StreamTensor } from '../io/file-source.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../dtype.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { openSafetensorsFile } from '../io/file-source.js';
import { InputError } from '../inputs.js';
import { STATE_FORMAT, TRAINER_STATE_FILE, loadTrainerState, type TrainerState } from './state.js';

/** Bytes of an f32 array in the target float dtype (the source checkpoint's). */
export function encodeFloats(values: Float32Array, dtype: Dtype, name: string): Uint8Array {
  switch (dtype) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16':
      return new Uint8Array(Uint16Array.from(values, f32ToF16Bits).buffer);
    case 'BF16':
      return new Uint8Array(Uint16Array.from(values, f32ToBf16Bits).buffer);
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    default:
      throw new Error(`tensor "${name}": cannot store trained values as ${dtype}`);
  }
}

const CHUNK = 8 << 20;

// ---------------------------------------------------------------------------------------------------------------
// the output model folder

/** Files of a model folder that are weights (rewritten) or not ours to copy. */
function isWeightFile(name: string): boolean {
  return name.endsWith('.safetensors') || name === 'model.safetensors.index.json' || name.endsWith('.bin')
    || name.endsWith('.pt') || name.endsWith('.ckpt') || name.endsWith('.msgpack') || name.endsWith('.h5');
}

/** Small files of a hub folder worth copying when the folder cannot be listed (a URL). */
const HUB_FILES = ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json',
  'tokenizer_config.json', 'special_tokens_map.json', 'README.md'];

export interface ModelSource {
  folder: CheckpointFolder;
  /** The local directory, when the model is one (its files are listed and copied); null for a URL. */
  dir: string | null;
}

/**
 * Writes `outDir/model.safetensors` (+ config and tokenizer files): the source checkpoint with `replaced` tensors
 * (checkpoint name → f32 values) swapped in, in the source dtype and shape; every other tensor copied byte for byte.
 */
export async function writeModelFolder(src: ModelSource, outDir: string, replaced: Map<string, Float32Array>): Promise<void> {
  await fsp.mkdir(outDir, { recursive: true });
  // the small files first: a folder with weights but no config would not load anyway
  if (src.dir) {
    if (path.resolve(src.dir) === path.resolve(outDir)) throw new Error(`the output folder ${outDir} is the model folder itself`);
    for (const entry of await fsp.readdir(src.dir, { withFileTypes: true })) {
      if (!entry.isFile() || isWeightFile(entry.name) || entry.name.startsWith('.')) continue;
      await fsp.copyFile(path.join(src.dir, entry.name), path.join(outDir, entry.name));
    }
  } else {
    for (const name of HUB_FILES) {
      const text = await src.folder.readText(name);
      if (text !== null) await writeFileAtomic(path.join(outDir, name), text);
    }
  }
  const reader = await openCheckpoint(src.folder);
  try {
    for (const name of replaced.keys()) {
      if (!reader.has(name)) throw new Error(`writeModelFolder: trained tensor "${name}" is not in ${reader.label}`);
    }
    const tensors: StreamTensor[] = reader.names().map((name) => {
      const info = reader.info(name);
      const values = replaced.get(name);
      if (values) {
        const n = info.shape.reduce((a, b) => a * b, 1);
        if (values.length !== n) throw new Error(`writeModelFolder: "${name}" has ${values.length} trained values for [${info.shape.join(', ')}]`);
        return { name, dtype: info.dtype, shape: info.shape, bytes: () => [encodeFloats(values, info.dtype, name)] };
      }
      return { name, dtype: info.dtype, shape: info.shape, bytes: () => reader.readRawChunks(name, CHUNK) };
    });
    const meta = Object.fromEntries(Object.entries(reader.metadata).filter((e): e is [string, string] => typeof e[1] === 'string'));
    // a sharded source becomes one file: drop a stale index that would shadow it
    await fsp.rm(path.join(outDir, 'model.safetensors.index.json'), { force: true });
    await writeSafetensorsStream(path.join(outDir, 'model.safetensors'), tensors, Object.keys(meta).length ? meta : { format: 'pt' });
  } finally {
    await reader.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// trainer checkpoints


/** Writes `dir/trainer_state.safetensors` atomically (the folder is created). */
export async function saveTrainerState(dir: string, state: TrainerState): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const f32Bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: StreamTensor[] = [];
  const steps: Record<string, number> = {};
  for (const [name, t] of state.tensors) {
    tensors.push({ name: `param.${name}`, dtype: 'F32', shape: t.shape, bytes: () => [f32Bytes(t.data)] });
    steps[name] = t.steps;
    if (t.m && t.v) {
      const [m, v] = [t.m, t.v];
      tensors.push({ name: `adam.m.${name}`, dtype: 'F32', shape: t.shape, bytes: () => [f32Bytes(m)] });
      tensors.push({ name: `adam.v.${name}`, dtype: 'F32', shape: t.shape, bytes: () => [f32Bytes(v)] });
    }
  }
  const meta = {
    format: STATE_FORMAT,
    loop: JSON.stringify(state.loop),
    adam: JSON.stringify({ step: state.adamStep, steps }),
  };
  await writeSafetensorsStream(path.join(dir, TRAINER_STATE_FILE), tensors, meta);
}

/** Reads `dir/trainer_state.safetensors`. */
export async function readTrainerState(dir: string): Promise<TrainerState> {
  const f = await openSafetensorsFile(path.join(dir, TRAINER_STATE_FILE));
  try {
    return await loadTrainerState(f);
  } finally {
    await f.close();
  }
}

/** `dir` itself when it holds a trainer state, else its newest `checkpoint-N` folder that does. */
export async function findCheckpoint(dir: string): Promise<string> {
  const has = async (d: string): Promise<boolean> => fsp.access(path.join(d, TRAINER_STATE_FILE)).then(() => true, () => false);
  if (await has(dir)) return dir;
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch (e) {
    throw new InputError('resume', `${dir}: ${(e as Error).message}`);
  }
  const steps = entries.map((e) => /^checkpoint-(\d+)$/.exec(e)).filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1])).sort((a, b) => b - a);
  for (const s of steps) {
    const d = path.join(dir, `checkpoint-${s}`);
    if (await has(d)) return d;
  }
  throw new InputError('resume', `${dir}: no ${TRAINER_STATE_FILE} there, nor a checkpoint-N folder holding one`);
}
