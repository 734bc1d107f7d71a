// The token loop: MusicGen's autoregressive decoding over the delay pattern, entirely on the GPU.
// One batched pass per step holds the conditional rows and, with guidance > 1, the unconditional ones;
// the guided logits are sampled on the GPU and the tokens written into the code sequence there, which is
// also where the next step reads its input. Nothing is read back until the end, so the CPU records step
// n + 1 while the GPU runs step n. Decoding transformers' way: KV cache, prefix (melody) only in the prefill.

import { Tensor, tidy, keep } from '../tensor.js';
import * as ops from '../ops.js';
import { MusicgenModel } from './musicgen.js';
import type { LayerCache } from './lm.js';
import { buildDelayPattern, undoDelay, type DelayPattern } from './pattern.js';

export interface SamplingOptions {
  /** 1 = no unconditional pass. */
  guidanceScale: number;
  /** 0 = greedy argmax. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 0 = off; when set, top-k is not applied (audiocraft's rule). */
  topP: number;
  /** Any integer in [0, 2^53). */
  seed: number;
}

export interface TokenLoopInput {
  /** Projected, masked T5 states [B, S, D] and the mask f32 [B, S]. */
  textStates: Tensor;
  textMask: Tensor;
  /** Melody models: chroma one-hots f32 [B, F, 12] (absent: the chroma of silence). */
  chroma?: Tensor;
  /** Continuation: codes [K, Tp] every batch row starts from (the clip's EnCodec codes). */
  prompt?: { codes: Int32Array; frames: number };
  /** Tokens to generate after the prompt. */
  newTokens: number;
  onStep?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /**
   * Streaming: handed codes i32 [B, K, n] (delay undone) of frames [from, from + n) on the GPU as soon as they are
   * complete (frame f once step f + max delay + 1 wrote its last codebook; prompt frames at once), in calls of at
   * least `chunkFrames` frames; the last call (`last`) has the rest. Nothing is read back: the callback records
   * GPU work; `codes` is freed when it returns.
   */
  onFrames?: (codes: Tensor, from: number, last: boolean) => void;
  chunkFrames?: number;
}

/** Frames [from, from + n) of every codebook of the delayed sequence [B, K, L]: codes [B, K, n]. */
function completeFrames(seq: Tensor, p: DelayPattern, from: number, n: number): Tensor {
  return ops.concat(p.delays.map((d, k) => ops.narrow(ops.narrow(seq, 1, k, 1), 2, from + d + 1, n)), 1);
}

export class AbortError extends Error {
  constructor() {
    super('generation aborted');
    this.name = 'AbortError';
  }
}

/** Generates codes: one Int32Array [K, frames] per batch row (prompt frames first), delay pattern undone. */
export async function generateCodes(model: MusicgenModel, input: TokenLoopInput, opts: SamplingOptions): Promise<{ codes: Int32Array[]; frames: number }> {
  const rt = model.rt;
  const lm = model.lm;
  const K = lm.numCodebooks;
  const B = input.textStates.shape[0];
  const guided = opts.guidanceScale !== 1;
  const rows = guided ? 2 * B : B;
  const pattern = buildDelayPattern(K, model.audioChannels, lm.padId, input.newTokens, input.prompt?.codes ?? null, input.prompt?.frames ?? 0);
  const L = pattern.length;
  const forcedAll = new Int32Array(B * K * L);
  for (let b = 0; b < B; b++) forcedAll.set(pattern.forced, b * K * L);

  const forced = keep(Tensor.from(forcedAll, [B, K, L], 'i32', rt));
  const seq = keep(Tensor.from(forcedAll, [B, K, L], 'i32', rt)); // free cells are overwritten before use
  // conditioning of the batched pass: [cond; uncond] when guided
  const cond = tidy(() => {
    let states = input.textStates;
    let mask = input.textMask;
    let chroma = input.chroma;
    if (model.isMelody && !chroma) chroma = Tensor.from(MusicgenModel.silentChroma(B), [B, 1, 12], 'f32', rt);
    if (guided) {
      states = ops.concat([states, Tensor.zeros(states.shape, 'f32', rt)], 0);
      mask = ops.concat([mask, Tensor.zeros(mask.shape, 'f32', rt)], 0);
      if (chroma) chroma = ops.concat([chroma, Tensor.from(MusicgenModel.silentChroma(B, chroma.shape[1]), chroma.shape, 'f32', rt)], 0);
    }
    return model.conditioning(states, mask, chroma);
  });
  const prefixLength = cond.prefix ? cond.prefix.shape[1] : 0;
  const { hidden_size: D, num_attention_heads: H } = lm.cfg;
  const caches: LayerCache[] = lm.layers.map(() => ({ self: new ops.KVCache(rows, H, prefixLength + L, D / H, rt, lm.kvDtype) }));
  const condTensors = [cond.encoderStates, cond.encoderMask, cond.prefix].filter((t): t is Tensor => !!t && t !== input.textStates && t !== input.textMask).map(keep);

  const total = L - pattern.start;
  const inFlight: Promise<void>[] = [];
  const maxDelay = Math.max(...pattern.delays);
  const promptFrames = pattern.start - 1;
  let streamed = 0; // frames handed to onFrames
  try {
    for (let t = pattern.start; t < L; t++) {
      if (input.signal?.aborted) throw new AbortError();
      tidy(() => {
        const first = t === pattern.start;
        // the prefill feeds every column before `start`; later steps feed the column just written
        let x = first ? ops.narrow(seq, 2, 0, t) : ops.narrow(seq, 2, t - 1, 1);
        if (guided) x = ops.concat([x, x], 0);
        const stepCond = first ? cond : { encoderStates: cond.encoderStates, encoderMask: cond.encoderMask };
        const offset = first ? 0 : prefixLength + t - 1;
        let logits = lm.forward(x, stepCond, offset, caches, true); // [rows, K, 1, V]
        logits = ops.reshape(logits, [rows * K, logits.shape[3]]);
        if (guided) logits = ops.applyGuidance(logits, opts.guidanceScale);
        const tokens = ops.sample(logits, {
          temperature: opts.temperature,
          topK: opts.topP > 0 ? 0 : opts.topK,
          topP: opts.topP,
          seed: opts.seed,
          step: t,
        });
        ops.placeColumn(seq, forced, tokens, t);
      });
      if (input.onFrames) {
        const complete = Math.min(pattern.frames, Math.max(promptFrames, t - maxDelay));
        const last = t === L - 1;
        if (last || complete - streamed >= Math.max(1, input.chunkFrames ?? 1)) {
          const from = streamed;
          tidy(() => input.onFrames!(completeFrames(seq, pattern, from, complete - from), from, last));
          streamed = complete;
        }
      }
      rt.flush();
      const done = t - pattern.start + 1;
      inFlight.push(rt.device.queue.onSubmittedWorkDone().then(() => input.onStep?.(done, total)));
      // let the CPU run at most two steps ahead of the GPU
      if (inFlight.length > 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
    const all = (await seq.read()) as Int32Array;
    const codes = Array.from({ length: B }, (_, b) => undoDelay(pattern, all.subarray(b * K * L, (b + 1) * K * L)));
    return { codes, frames: pattern.frames };
  } finally {
    await Promise.allSettled(inFlight);
    for (const c of caches) {
      c.self.dispose();
      c.crossK?.dispose();
      c.crossV?.dispose();
    }
    for (const t of [forced, seq, ...condTensors]) t.dispose();
  }
}
