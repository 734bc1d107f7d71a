// A trainer's resumable state, without files: the loop's position (step, data order, RNG, log) and the trainable
// tensors with their AdamW moments, moved between the live tensors and checkpoint names (`exportTrainables` /
// `importTrainables`), and read back from a safetensors reader (`loadTrainerState`). Writing it to a folder is
// checkpoint.ts's (Node); the loop (loop.ts) only needs what is here, so it runs in the browser bundle too.

import type { NamedTensor } from '../model/weights.js';
import type { TensorReader } from '../io/safetensors.js';
import type { AdamW } from './optim.js';
import { InputError } from '../inputs.js';

export const TRAINER_STATE_FILE = 'trainer_state.safetensors';
export const STATE_FORMAT = 'musicgen-webgpu-trainer-state-1';

/** Splits a stacked tensor's values into its named parts. */
export function splitParts(p: NamedTensor, data: Float32Array): Map<string, Float32Array> {
  const per = p.partShape.reduce((a, b) => a * b, 1);
  if (per * p.names.length !== data.length) {
    throw new Error(`${p.names[0]}: ${data.length} values for ${p.names.length} parts of [${p.partShape.join(', ')}]`);
  }
  return new Map(p.names.map((n, i) => [n, data.subarray(i * per, (i + 1) * per)]));
}

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
