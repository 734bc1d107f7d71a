// MusicGen's sampler on the GPU (shaders/sample.wgsl): classifier-free guidance, then temperature, top-k,
// top-p and a draw, one workgroup per row of logits. Tokens stay on the GPU (i32) for the next decoding step.
//
// Semantics are transformers' sampling path (TemperatureLogitsWarper → TopKLogitsWarper → TopPLogitsWarper →
// softmax → draw), which applies top-k and top-p together when both are set. audiocraft's sampler uses top-p
// *instead of* top-k when topP > 0: for that behaviour pass topK: 0 with topP.
//  - temperature 0: argmax, the first index among equal maxima (torch.argmax); topK/topP are ignored.
//  - topK > 0: keeps logits ≥ the K-th largest, so ties at the boundary are all kept (TopKLogitsWarper and
//    audiocraft's sample_top_k both compare with the K-th value; torch.topk alone would keep exactly K).
//    topK = 1 therefore draws uniformly among equal maxima; use temperature 0 for a deterministic argmax.
//  - 0 < topP < 1: TopPLogitsWarper exactly (≤ boundary, stable ascending order among equal probabilities,
//    min_tokens_to_keep = 1); topP ≥ 1 or ≤ 0 disables it, as transformers does not add the warper at 1.0.
//  - the draw is an inverse CDF with one uniform per row from Philox-4x32-10, key = seed (53 bits), counter =
//    (row, step): the same (seed, step) gives the same tokens on the same device; vary `step` per decoding
//    step. Masked logits may be -inf.

import { Tensor, shapeStr } from '../tensor.js';
import type { Params } from '../runtime.js';
import { launch1d } from './elementwise.js';

/** Largest vocabulary one workgroup holds (shaders/sample.wgsl MAXV). */
export const SAMPLE_MAX_VOCAB = 3072;

export interface FilterOptions {
  /** 0 → greedy argmax. */
  temperature: number;
  /** 0 (default) → off. */
  topK?: number;
  /** 0 (default) or ≥ 1 → off. */
  topP?: number;
}

export interface SampleOptions extends FilterOptions {
  /** Any integer in [0, 2^53). */
  seed: number;
  /** Decoding step (or any other counter < 2^32): a new random stream per value. */
  step: number;
}

const U32 = 2 ** 32;

function checkU32(name: string, x: number): void {
  if (!Number.isInteger(x) || x < 0 || x >= U32) throw new Error(`sample: ${name} must be an integer in [0, 2^32), got ${x}`);
}

// The sampler's entry points share one struct P; each sets the fields it reads and leaves the others 0.
const UNUSED: Params = {
  rows: 0, V: 0, temperature: 0, topK: 0, topP: 0, q: 0, seedLo: 0, seedHi: 0, step: 0, n: 0, scale: 0,
  c0: 0, c1: 0, c2: 0, c3: 0,
};

function filterParams(logits: Tensor, opts: FilterOptions, seed = 0, step = 0): { rows: number; V: number; params: Params } {
  if (logits.dtype !== 'f32' || logits.rank < 1) throw new Error(`sample: logits must be f32 [..., V], got ${logits.dtype}${shapeStr(logits)}`);
  const V = logits.shape[logits.rank - 1];
  if (V < 1 || V > SAMPLE_MAX_VOCAB) throw new Error(`sample: vocabulary ${V} outside [1, ${SAMPLE_MAX_VOCAB}]`);
  const { temperature, topK = 0, topP = 0 } = opts;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`sample: temperature must be ≥ 0, got ${temperature}`);
  checkU32('topK', topK);
  if (!(topP >= 0)) throw new Error(`sample: topP must be ≥ 0, got ${topP}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new Error(`sample: seed must be an integer in [0, 2^53), got ${seed}`);
  checkU32('step', step);
  const rows = logits.size / V;
  const params = {
    ...UNUSED, rows, V, temperature, topK, topP, q: 1 - topP, seedLo: seed % U32, seedHi: Math.floor(seed / U32), step,
  };
  return { rows, V, params };
}

/** One token per row of `logits` [..., V]: i32 [...]. Recorded only; nothing is read back. */
export function sample(logits: Tensor, opts: SampleOptions): Tensor {
  const { rows, params } = filterParams(logits, opts, opts.seed, opts.step);
  const rt = logits.rt;
  const out = Tensor.empty(logits.shape.slice(0, -1), 'i32', rt);
  if (rows > 0) {
    rt.dispatch({ shader: 'sample', entry: 'main', params, bindings: [logits.binding(), out.binding()], workgroups: rt.grid(rows) });
  }
  return out;
}

/** The distribution `sample` draws from: the filtered, renormalised probabilities, f32 like `logits`. */
export function filteredProbs(logits: Tensor, opts: FilterOptions): Tensor {
  const { rows, params } = filterParams(logits, opts);
  const rt = logits.rt;
  const out = Tensor.empty(logits.shape, 'f32', rt);
  if (rows > 0) {
    rt.dispatch({ shader: 'sample', entry: 'probs', params, bindings: [logits.binding(), out.binding()], workgroups: rt.grid(rows) });
  }
  return out;
}

/**
 * Classifier-free guidance over logits [2R, ...] stacked [cond; uncond]: uncond + (cond − uncond)·scale, [R, ...]
 * (transformers' ClassifierFreeGuidanceLogitsProcessor). Not differentiable.
 */
export function applyGuidance(logits: Tensor, scale: number): Tensor {
  if (logits.dtype !== 'f32' || logits.rank < 1 || logits.shape[0] % 2 !== 0) {
    throw new Error(`applyGuidance: logits must be f32 [2R, ...], got ${logits.dtype}${shapeStr(logits)}`);
  }
  const rt = logits.rt;
  const out = Tensor.empty([logits.shape[0] / 2, ...logits.shape.slice(1)], 'f32', rt);
  if (out.size > 0) {
    rt.dispatch({
      shader: 'sample',
      entry: 'guidance',
      params: { ...UNUSED, n: out.size, scale },
      bindings: [logits.binding(), out.binding()],
      workgroups: launch1d(rt, out.size),
    });
  }
  return out;
}

/**
 * One Philox-4x32-10 block (the sampler's generator) for a counter and key of u32 words, as an i32 [4]
 * tensor holding the output words' bits. For checking the generator against its known-answer vectors.
 */
export function philox4x32(counter: [number, number, number, number], key: [number, number]): Tensor {
  for (const w of [...counter, ...key]) checkU32('philox word', w);
  const out = Tensor.empty([4], 'i32');
  const unused = Tensor.zeros([1], 'f32'); // the entry point shares the other entries' binding layout
  const rt = out.rt;
  rt.dispatch({
    shader: 'sample',
    entry: 'rng',
    params: { ...UNUSED, seedLo: key[0], seedHi: key[1], c0: counter[0], c1: counter[1], c2: counter[2], c3: counter[3] },
    bindings: [unused.binding(), out.binding()],
    workgroups: [1],
  });
  unused.dispose();
  return out;
}
