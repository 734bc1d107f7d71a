// The end-to-end benchmark: the same work as tools/bench_torch.py, stage by stage.
//   text      tokenise the 16-token prompt, T5, enc_to_dec_proj (MusicGen.generate's text stage)
//   generate  the token loop with guidance 3 and top-k 250 (generateCodes: prefill + 50·S + 3 steps)
//   decode    EnCodec's decoder on the codes (decodeChunked, which ends with the readback of the audio)
// Every stage starts after `await rt.sync()` and ends with a sync or a readback, so GPU work lands in its stage.

import { DEFAULT_DTYPE, type WeightDType } from '../quant.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tensor, tidy } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { dirFolder } from '../io/file-source.js';
import { MusicgenModel } from '../model/musicgen.js';
import { generateCodes } from '../model/generate.js';
import { now, spread, median, type Spread } from './util.js';

/** tools/make_bench_model.py's prompt: 16 tokens with </s> in the tiny tokenizer. */
export const BENCH_PROMPT = '80s pop track with bassy drums and synth and warm piano and soft strings';

export interface PipelineRun {
  text_s: number;
  generate_total_s: number;
  encodec_decode_s: number;
  per_step_ms: number;
  steps: number;
  /** Dispatches the token loop recorded, per step (prefill included in the average). */
  dispatches_per_step: number;
  submits: number;
  /** Time of the first (prefill) step, and the median of the others, from the GPU's completion times. */
  prefill_ms: number;
  step_ms_median: number;
  step_ms_p90: number;
  audio_samples: number;
}

export async function benchPrompt(dir: string): Promise<string> {
  try {
    const j = JSON.parse(await readFile(join(dir, 'bench_prompt.json'), 'utf8')) as { prompt?: string };
    if (typeof j.prompt === 'string') return j.prompt;
  } catch { /* no file: the default */ }
  return BENCH_PROMPT;
}

export async function loadModel(dir: string, rt: Runtime, log: (s: string) => void, dtype?: WeightDType): Promise<{ model: MusicgenModel; load_s: number }> {
  const t0 = now();
  let last = 0;
  const model = await MusicgenModel.load(dirFolder(dir), {
    rt,
    dtype: dtype ?? (await MusicgenModel.storedDType(dirFolder(dir))) ?? DEFAULT_DTYPE,
    onProgress: (done, total) => {
      const t = now();
      if (t - last > 5000 || done === total) {
        last = t;
        log(`loading: ${done}/${total} tensors, ${((t - t0) / 1000).toFixed(0)} s`);
      }
    },
  });
  rt.trimPool();
  await rt.sync();
  return { model, load_s: (now() - t0) / 1000 };
}

/** One run: text → tokens → audio, each stage timed after a sync. */
export async function runPipeline(model: MusicgenModel, prompt: string, frames: number, seed: number): Promise<PipelineRun> {
  const rt = model.rt;
  await rt.sync();

  // ---- text (as MusicGen.generate) ----
  const tText = now();
  const tok = model.tokenizer.encodeBatch([prompt]);
  const text = tidy(() => {
    const ids = Tensor.from(tok.inputIds, [1, tok.length], 'i32', rt);
    const maskI = Tensor.from(tok.attentionMask, [1, tok.length], 'i32', rt);
    const mask = ops.castToF32(maskI);
    return { states: model.projectText(model.textHidden(ids, maskI), mask), mask };
  });
  await rt.sync();
  const text_s = (now() - tText) / 1000;

  // ---- token loop ----
  const K = model.lm.numCodebooks;
  const steps = frames + K - 1;
  const done: number[] = [];
  const d0 = rt.stats.dispatches;
  const s0 = rt.stats.submits;
  const tGen = now();
  let codes: Int32Array;
  let outFrames = frames;
  try {
    const out = await generateCodes(model, {
      textStates: text.states, textMask: text.mask, newTokens: steps,
      onStep: () => done.push(now()),
    }, { guidanceScale: 3, temperature: 1, topK: 250, topP: 0, seed });
    codes = out.codes[0];
    outFrames = out.frames;
  } finally {
    text.states.dispose();
    text.mask.dispose();
  }
  const generate_total_s = (now() - tGen) / 1000;
  const dispatches = rt.stats.dispatches - d0;
  const submits = rt.stats.submits - s0;
  const stepMs = done.map((t, i) => t - (i === 0 ? tGen : done[i - 1]));
  const rest = stepMs.slice(1).sort((a, b) => a - b);

  // ---- EnCodec decode ----
  await rt.sync();
  const tDec = now();
  const t = Tensor.from(codes, [1, K, outFrames], 'i32', rt);
  const audio = await model.encodec.decodeChunked(t);
  t.dispose();
  const encodec_decode_s = (now() - tDec) / 1000;

  return {
    text_s, generate_total_s, encodec_decode_s,
    per_step_ms: (generate_total_s * 1000) / steps,
    steps,
    dispatches_per_step: dispatches / steps,
    submits,
    prefill_ms: stepMs[0] ?? NaN,
    step_ms_median: median(rest),
    step_ms_p90: rest.length ? rest[Math.min(rest.length - 1, Math.floor(rest.length * 0.9))] : NaN,
    audio_samples: audio.length,
  };
}

export interface PipelineSummary {
  runs: PipelineRun[];
  text_s: Spread;
  generate_total_s: Spread;
  encodec_decode_s: Spread;
  per_step_ms: Spread;
}

export function summarise(runs: PipelineRun[]): PipelineSummary {
  return {
    runs,
    text_s: spread(runs.map((r) => r.text_s)),
    generate_total_s: spread(runs.map((r) => r.generate_total_s)),
    encodec_decode_s: spread(runs.map((r) => r.encodec_decode_s)),
    per_step_ms: spread(runs.map((r) => r.per_step_ms)),
  };
}
