// What fine-tuning reads and writes on disk:
//   - the trainable tensors under their transformers checkpoint names, as the loader bound them
//     (`MusicgenModel.trainableParameters()`): the LM's K stacked embedding tables and heads split back into their parts;
//   - the output model folder (`writeModelFolder`): every tensor of the source checkpoint under its own name and
//     dtype, copied byte for byte, except the trained ones, which are replaced (converted to the source dtype);
//     config, tokenizer and the other small files copied, so `MusicgenModel.load` reads it as it reads the source;
//   - resumable trainer checkpoints (`saveTrainerState` / `readTrainerState`): one safetensors file with the
//     trainable tensors, the AdamW moments, and the loop's state (step, RNG, data position, log) as JSON metadata;
//     `exportTrainables` / `importTrainables` move that state between the file's names and the live tensors.
// Files are written through a temporary file that is renamed over the target (as src/io/atomic.ts), streamed
// tensor by tensor so a multi-GB checkpoint is never held in memory whole.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { NamedTensor } from '../model/weights.js';
import {
  type CheckpointFolder,
  type Dtype,
  type TensorReader,
} from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensorsStream, type StreamTensor } from '../io/file-source.js';
import { f32ToBf16Bits, f32ToF16Bits } from '../dtype.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { openSafetensorsFile } from '../io/file-source.js';
import type { AdamW } from './optim.js';
import { InputError } from '../inputs.js';

// ---------------------------------------------------------------------------------------------------------------
// names (the loader's record: MusicgenModel.trainableParameters())

/** Splits a stacked tensor's values into its named parts. */
export function splitParts(p: NamedTensor, data: Float32Array): Map<string, Float32Array> {
  const per = p.partShape.reduce((a, b) => a * b, 1);
  if (per * p.names.length !== data.length) {
    throw new Error(`${p.names[0]}: ${data.length} values for ${p.names.length} parts of [${p.partShape.join(', ')}]`);
  }
  return new Map(p.names.map((n, i) => [n, data.subarray(i * per, (i + 1) * per)]));
}

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

export const TRAINER_STATE_FILE = 'trainer_state.safetensors';

/** Everything besides the tensors that a resumed run needs to continue exactly (JSON in the file's metadata). */
export interface LoopState {
  /** Optimiser steps done. */
  step: number;
  /** 0-based epoch of the next micro-batch, and its index in that epoch's order. */
  epoch: number;
  batchInEpoch: number;
  /** This epoch's order of chunk indices. */
  order: number[];
  /** PRNG state (condition dropout draws, shuffles). */
  rng: number;
  /** The options the run was started with (checked, or taken over, on resume). */
  options: Record<string, unknown>;
  /** Identifies the data (files, sizes, captions, chunking): a resumed run must see the same. */
  datasetFingerprint: string;
  /** train_log.jsonl lines up to `step` (a resumed run rewrites the log to these before going on). */
  log: string[];
}

export interface TrainerState {
  loop: LoopState;
  /** AdamW's count of step() calls. */
  adamStep: number;
  /** Trainable tensors by name (full fine-tuning: checkpoint names; LoRA: PEFT adapter names), f32, with their
   *  AdamW moments (null before the tensor's first update) and per-tensor step count. */
  tensors: Map<string, { shape: number[]; data: Float32Array; m: Float32Array | null; v: Float32Array | null; steps: number }>;
}

const STATE_FORMAT = 'musicgen-webgpu-trainer-state-1';

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

/** Reads what `saveTrainerState` wrote. */
export async function loadTrainerState(reader: TensorReader): Promise<TrainerState> {
  const meta = reader.metadata as Record<string, string>;
  if (meta.format !== STATE_FORMAT) {
    throw new Error(`${reader.label}: not a trainer checkpoint written by finetune (format ${JSON.stringify(meta.format)})`);
  }
  const loop = JSON.parse(meta.loop) as LoopState;
  const adam = JSON.parse(meta.adam) as { step: number; steps: Record<string, number> };
  const tensors: TrainerState['tensors'] = new Map();
  for (const [name, steps] of Object.entries(adam.steps)) {
    const has = steps > 0;
    tensors.set(name, {
      shape: [...reader.info(`param.${name}`).shape],
      data: await reader.readF32(`param.${name}`),
      m: has ? await reader.readF32(`adam.m.${name}`) : null,
      v: has ? await reader.readF32(`adam.v.${name}`) : null,
      steps,
    });
  }
  return { loop, adamStep: adam.step, tensors };
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

/** The trainable tensors' values and AdamW moments by checkpoint name (stacks split), with the loop's state. */
export async function exportTrainables(trainables: NamedTensor[], opt: AdamW, loop: LoopState): Promise<TrainerState> {
  const adam = await opt.exportState();
  const tensors: TrainerState['tensors'] = new Map();
  for (let i = 0; i < trainables.length; i++) {
    const t = trainables[i];
    const values = splitParts(t, (await t.tensor.read()) as Float32Array);
    const m = adam.steps[i] > 0 ? splitParts(t, adam.m[i]) : null;
    const v = adam.steps[i] > 0 ? splitParts(t, adam.v[i]) : null;
    for (const name of t.names) {
      tensors.set(name, { shape: t.partShape, data: values.get(name)!, m: m?.get(name) ?? null, v: v?.get(name) ?? null, steps: adam.steps[i] });
    }
  }
  return { loop: { ...loop, order: [...loop.order], log: [...loop.log] }, adamStep: adam.step, tensors };
}

/** Puts a saved state's tensors and moments back (stacks joined), checking that the names and shapes match. */
export function importTrainables(trainables: NamedTensor[], opt: AdamW, state: TrainerState): void {
  const want = new Set(trainables.flatMap((t) => t.names));
  const extra = [...state.tensors.keys()].filter((n) => !want.has(n));
  if (extra.length > 0 || want.size !== state.tensors.size) {
    const missing = [...want].filter((n) => !state.tensors.has(n));
    throw new InputError('resume', `the checkpoint's tensors do not match this model (missing ${missing.slice(0, 3).join(', ') || 'none'}; unexpected ${extra.slice(0, 3).join(', ') || 'none'})`);
  }
  const join = (parts: (Float32Array | null)[]): Float32Array => {
    const out = new Float32Array(parts.reduce((a, p) => a + (p?.length ?? 0), 0));
    let o = 0;
    for (const p of parts) if (p) { out.set(p, o); o += p.length; }
    return out;
  };
  const steps: number[] = [];
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (const t of trainables) {
    const parts = t.names.map((n) => state.tensors.get(n)!);
    for (const p of parts) {
      if (p.shape.length !== t.partShape.length || p.shape.some((d, i) => d !== t.partShape[i])) {
        throw new InputError('resume', `"${t.names[0]}" has shape [${p.shape.join(', ')}] in the checkpoint, [${t.partShape.join(', ')}] in the model`);
      }
    }
    t.tensor.upload(join(parts.map((p) => p.data)));
    steps.push(parts[0].steps);
    m.push(parts[0].steps > 0 ? join(parts.map((p) => p.m)) : new Float32Array(0));
    v.push(parts[0].steps > 0 ? join(parts.map((p) => p.v)) : new Float32Array(0));
  }
  opt.importState({ step: state.adamStep, steps, m, v });
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
