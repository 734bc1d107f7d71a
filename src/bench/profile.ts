// Where the time goes, on a loaded model (`npm run bench -- --model DIR --profile`):
//  1. one decode step of the token loop (B = 1 with guidance: 2 rows, KV cache ~70 positions in), whole and
//     split by kind of work, each kind replayed alone with the model's own weights and the same op calls as
//     lm.ts / generate.ts: the matmuls, the attention kernels, the glue (norms, residual adds, head permutes,
//     KV appends), input/output (embedding, positions, final norm, logits permute, guidance, sampling);
//  2. the dispatches per step times the measured cost of a dispatch, as a share of the step;
//  3. the weight bytes a step reads over the measured bandwidths (the bound);
//  4. the text stage (T5) and EnCodec's decoder layer by layer (2 s of codes).

import { Tensor, tidy, keep } from '../tensor.js';
import * as ops from '../ops.js';
import type { MusicgenModel } from '../model/musicgen.js';
import type { LayerCache } from '../model/lm.js';
import { sinusoidalPositions } from '../model/lm.js';
import { randomF32, table, timeGpu, type GpuTiming } from './util.js';
import { measureBandwidth, type Bandwidth } from './kernels.js';
import { benchPrompt } from './pipeline.js';

export interface Part {
  name: string;
  ms: number;
  msMin: number;
  msMax: number;
  dispatches: number;
}

export interface Profile {
  step: Part;
  parts: Part[];
  dispatchUs: number;
  dispatchShare: number;
  weightBytesPerStep: number;
  bandwidth: Bandwidth;
  boundMs: { lavapipeRead: number; machineRead: number };
  text: Part[];
  encodec: Part[];
}

const part = (name: string, t: GpuTiming): Part => ({ name, ms: t.ms.median, msMin: t.ms.min, msMax: t.ms.max, dispatches: t.dispatches });

export async function profileModel(model: MusicgenModel, o: { quick: boolean; log: (s: string) => void; say: (s: string) => void; promptDir?: string }): Promise<Profile> {
  const rt = model.rt;
  const lm = model.lm;
  const { hidden_size: D, num_attention_heads: H, ffn_dim: F, vocab_size: V } = lm.cfg;
  const K = lm.numCodebooks;
  const rows = 2; // one prompt with guidance
  const Dh = D / H;
  const iters = o.quick ? 4 : 8;
  const rounds = o.quick ? 2 : 3;

  o.log('profile: memory bandwidth…');
  const bw = await measureBandwidth(rt, true);

  // ---- conditioning and a KV cache ~50 positions in (the middle of a 2 s clip) ----
  const prompt = await benchPrompt(o.promptDir ?? '');
  const tok = model.tokenizer.encodeBatch([prompt]);
  const cond = keep(tidy(() => {
    const ids = Tensor.from(tok.inputIds, [1, tok.length], 'i32', rt);
    const maskI = Tensor.from(tok.attentionMask, [1, tok.length], 'i32', rt);
    const mask = ops.castToF32(maskI);
    const states = model.projectText(model.textHidden(ids, maskI), mask);
    return ops.concat([states, Tensor.zeros(states.shape, 'f32', rt)], 0);
  }));
  const condMask = keep(tidy(() => ops.concat([Tensor.from(new Float32Array(tok.length).fill(1), [1, tok.length], 'f32', rt), Tensor.zeros([1, tok.length], 'f32', rt)], 0)));
  const conditioning = { encoderStates: cond, encoderMask: condMask };
  const L = 512;
  const caches: LayerCache[] = lm.layers.map(() => ({ self: new ops.KVCache(rows, H, L, Dh, rt, lm.kvDtype) }));
  const forced = keep(Tensor.from(new Int32Array(K * L).fill(-1), [1, K, L], 'i32', rt));
  const seq = keep(Tensor.from(new Int32Array(K * L).fill(lm.padId), [1, K, L], 'i32', rt));
  let t = 1;
  const step = (): void => {
    // generate.ts's loop body
    let x = ops.narrow(seq, 2, t - 1, 1);
    x = ops.concat([x, x], 0);
    let logits = lm.forward(x, conditioning, t - 1, caches, true);
    logits = ops.reshape(logits, [rows * K, V]);
    logits = ops.applyGuidance(logits, 3);
    const tokens = ops.sample(logits, { temperature: 1, topK: 250, topP: 0, seed: 1, step: t });
    ops.placeColumn(seq, forced, tokens, t);
    t++;
  };
  o.log('profile: decode step…');
  for (let i = 0; i < 48; i++) { tidy(step); rt.flush(); }
  await rt.sync();
  const whole = part('whole decode step (generate.ts loop body)', await timeGpu(rt, step, { iters, rounds }));

  // ---- the parts, replayed alone ----
  const h = keep(Tensor.from(randomF32(rows * D, 3), [rows, 1, D], 'f32', rt));
  const hf = keep(Tensor.from(randomF32(rows * F, 4), [rows, 1, F], 'f32', rt));
  const weightsOf = (l: (typeof lm.layers)[number]): { w: ops.Matrix; x: Tensor; act?: 'gelu' }[] => [
    { w: l.selfAttn.qkv.weight, x: h }, { w: l.selfAttn.out.weight, x: h },
    ...(l.crossAttn ? [{ w: l.crossAttn.q.weight, x: h }, { w: l.crossAttn.out.weight, x: h }] : []),
    { w: l.fc1.weight, x: h, act: 'gelu' as const }, { w: l.fc2.weight, x: hf },
  ];
  const mm = lm.layers.flatMap(weightsOf);
  // the stacked heads (one group for musicgen-small; older layouts had one tensor)
  const heads: ops.Matrix[] = lm.heads.map((g) => g.tensor);
  const tables: ops.Matrix[] = lm.embedTokens.map((g) => g.tensor);
  const weightBytes = mm.reduce((s, m) => s + m.w.bytes, 0) + heads.reduce((s, w) => s + w.bytes, 0);
  const matmuls = part('matmuls (library, 6 per layer: fused q/k/v, out, cross q, cross out, fc1, fc2; + heads)', await timeGpu(rt, () => {
    for (const m of mm) ops.linear(m.x, m.w, undefined, m.act ?? 'none');
    for (const w of heads) ops.linear(h, w);
  }, { iters, rounds }));

  const q = keep(Tensor.from(randomF32(rows * D, 5, 0.1), [rows, H, 1, Dh], 'f32', rt));
  const tk = caches[0].self.length;
  const attention = part(`attention kernels (self over ${tk} keys, cross over ${tok.length})`, await timeGpu(rt, () => {
    for (let i = 0; i < lm.layers.length; i++) {
      ops.attention(q, caches[i].self.k, caches[i].self.v, { causal: true, tk });
      const c = caches[i];
      if (c.crossK && c.crossV) ops.attention(q, c.crossK, c.crossV, { keyMask: condMask });
    }
  }, { iters, rounds }));

  const scratch = new ops.KVCache(rows, H, 4, Dh, rt, lm.kvDtype);
  const kv = keep(Tensor.from(randomF32(rows * D, 6), [rows, H, 1, Dh], 'f32', rt));
  const qkv = keep(Tensor.from(randomF32(rows * 3 * D, 7), [rows, 1, 3 * D], 'f32', rt));
  const glue = part('glue: 3 residual adds fused into the norms, 2 head permutes, q/k/v split + KV append per layer', await timeGpu(rt, () => {
    for (const l of lm.layers) {
      ops.addLayerNorm(h, h, ...l.selfAttnNorm, 1e-5);
      if (l.crossNorm) ops.addLayerNorm(h, h, ...l.crossNorm, 1e-5);
      ops.addLayerNorm(h, h, ...l.finalNorm, 1e-5);
      ops.permute(ops.reshape(h, [rows, 1, H, Dh]), [0, 2, 1, 3]); // cross q
      ops.permute(kv, [0, 2, 1, 3]); ops.permute(kv, [0, 2, 1, 3]); // merges
      scratch.reset();
      scratch.appendQKV(qkv);
    }
  }, { iters, rounds }));
  scratch.dispose();

  const logitsIn = keep(Tensor.from(randomF32(rows * K * V, 8), [rows, 1, K * V], 'f32', rt));
  const io = part('in/out: embedding, positions, final norm, logits permute, guidance, sampling, placement', await timeGpu(rt, () => {
    const col = ops.concat([ops.narrow(seq, 2, 0, 1), ops.narrow(seq, 2, 0, 1)], 0);
    const x = tables.length === 1 ? ops.embeddingSum(tables[0], col)
      : tables.map((tb, g) => ops.embeddingSum(tb, ops.narrow(col, 1, g * tb.shape[0], tb.shape[0]))).reduce((a, b) => ops.add(a, b));
    ops.add(x, Tensor.from(sinusoidalPositions(60, 1, D), [1, D], 'f32', rt));
    ops.narrow(ops.addLayerNorm(x, x, ...lm.norm, 1e-5)[1], 1, 0, 1);
    const lg = ops.reshape(ops.permute(ops.reshape(logitsIn, [rows, 1, K, V]), [0, 2, 1, 3]), [rows * K, V]);
    const tokens = ops.sample(ops.applyGuidance(lg, 3), { temperature: 1, topK: 250, topP: 0, seed: 1, step: 3 });
    ops.placeColumn(seq, forced, tokens, 3);
  }, { iters, rounds }));

  const parts = [matmuls, attention, glue, io];
  const sum = parts.reduce((s, p) => s + p.ms, 0);
  const dispatchUs = bw.dispatchUs.median;
  const dispatchShare = (whole.dispatches * dispatchUs) / 1000 / whole.ms;

  const lavapipeBound = (weightBytes / 1e9 / bw.gpuRead.median) * 1000;
  const machineBound = (weightBytes / 1e9 / bw.cpuReadAllCores.median) * 1000;
  o.say(`\nDecode step (1 prompt with guidance = ${rows} rows, ${lm.layers.length} layers, KV cache at ${tk}): median (min–max) of ${rounds} rounds × ${iters} steps`);
  o.say(table(['part', 'ms/step', 'share', 'dispatches'], [
    ...[whole, ...parts].map((p) => [p.name, `${p.ms.toFixed(1)} (${p.msMin.toFixed(1)}–${p.msMax.toFixed(1)})`, `${((100 * p.ms) / whole.ms).toFixed(0)}%`, p.dispatches]),
    ['sum of parts', sum.toFixed(1), `${((100 * sum) / whole.ms).toFixed(0)}%`, parts.reduce((s, p) => s + p.dispatches, 0)],
  ]));
  o.say(`dispatch overhead: ${whole.dispatches} dispatches × ${dispatchUs.toFixed(1)} µs = ${((whole.dispatches * dispatchUs) / 1000).toFixed(1)} ms (${(100 * dispatchShare).toFixed(0)}% of the step)`);
  o.say(`weights read per step: ${(weightBytes / 2 ** 20).toFixed(0)} MiB → bound ${lavapipeBound.toFixed(0)} ms at lavapipe's read-kernel ${bw.gpuRead.median.toFixed(1)} GB/s, `
    + `${machineBound.toFixed(0)} ms at the machine's ${bw.cpuReadAllCores.median.toFixed(1)} GB/s (all cores, memcmp); step/bound = ${(whole.ms / lavapipeBound).toFixed(1)}× / ${(whole.ms / machineBound).toFixed(1)}×`);

  for (const tt of [cond, condMask, forced, seq, h, hf, q, kv, qkv, logitsIn]) tt.dispose();
  for (const c of caches) { c.self.dispose(); c.crossK?.dispose(); c.crossV?.dispose(); }
  rt.trimPool();

  // ---- text stage ----
  o.log('profile: text…');
  const ids = keep(Tensor.from(tok.inputIds, [1, tok.length], 'i32', rt));
  const maskI = keep(Tensor.from(tok.attentionMask, [1, tok.length], 'i32', rt));
  const t5 = part('T5 encoder (16 tokens)', await timeGpu(rt, () => { model.textHidden(ids, maskI); }, { iters: 3, rounds }));
  const tcfg = model.cfg.text_encoder;
  const inner = tcfg.num_heads * tcfg.d_kv;
  const xs = keep(Tensor.from(randomF32(tok.length * tcfg.d_model, 2), [1, tok.length, tcfg.d_model], 'f32', rt));
  const xff = keep(Tensor.from(randomF32(tok.length * tcfg.d_ff, 2), [1, tok.length, tcfg.d_ff], 'f32', rt));
  const wq = keep(Tensor.from(randomF32(inner * tcfg.d_model, 1, 0.05), [inner, tcfg.d_model], 'f32', rt));
  const wi = keep(Tensor.from(randomF32(tcfg.d_ff * tcfg.d_model, 1, 0.05), [tcfg.d_ff, tcfg.d_model], 'f32', rt));
  const wo = keep(Tensor.from(randomF32(tcfg.d_ff * tcfg.d_model, 1, 0.05), [tcfg.d_model, tcfg.d_ff], 'f32', rt));
  const t5mm = part(`T5 matmuls alone (${tcfg.num_layers} × (4 attention + 2 FFN), same shapes)`, await timeGpu(rt, () => {
    for (let l = 0; l < tcfg.num_layers; l++) {
      for (let i = 0; i < 4; i++) ops.linear(xs, wq);
      ops.linear(xs, wi, undefined, 'relu');
      ops.linear(xff, wo);
    }
  }, { iters: 3, rounds }));
  for (const tt of [ids, maskI, xs, xff, wq, wi, wo]) tt.dispose();
  o.say('\nText stage');
  o.say(table(['part', 'ms', 'dispatches'], [t5, t5mm].map((p) => [p.name, `${p.ms.toFixed(1)} (${p.msMin.toFixed(1)}–${p.msMax.toFixed(1)})`, p.dispatches])));

  // ---- EnCodec decoder, layer by layer, on 2 s of codes ----
  o.log('profile: EnCodec…');
  const enc = model.encodec;
  const frames = 100;
  const codesIn = keep(Tensor.from(Int32Array.from({ length: enc.numQuantizers * frames }, (_, i) => (i * 7919) % enc.cfg.codebook_size), [1, enc.numQuantizers, frames], 'i32', rt));
  const encParts: Part[] = [];
  let cur = keep(tidy(() => ops.rvqDecode(codesIn, enc.codebooks)));
  encParts.push(part('rvqDecode', await timeGpu(rt, () => { ops.rvqDecode(codesIn, enc.codebooks); }, { iters: 2, rounds: 2 })));
  const layers = enc.decoder.layers;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const input = cur;
    const name = `${i}: ${l.constructor.name} [${input.shape.slice(1).join('×')}]`;
    encParts.push(part(name, await timeGpu(rt, () => { l.forward(input); }, { iters: 1, rounds: 2 })));
    cur = keep(tidy(() => l.forward(input)));
    input.dispose();
  }
  cur.dispose();
  codesIn.dispose();
  rt.trimPool();
  const encTotal = encParts.reduce((s, p) => s + p.ms, 0);
  o.say(`\nEnCodec decoder, layer by layer, ${frames} frames (2 s): ${encTotal.toFixed(0)} ms in all`);
  o.say(table(['layer [input channels×length]', 'ms', 'share', 'dispatches'], encParts.map((p) => [p.name, p.ms.toFixed(1), `${((100 * p.ms) / encTotal).toFixed(0)}%`, p.dispatches])));

  return {
    step: whole, parts, dispatchUs, dispatchShare, weightBytesPerStep: weightBytes, bandwidth: bw,
    boundMs: { lavapipeRead: lavapipeBound, machineRead: machineBound }, text: [t5, t5mm], encodec: encParts,
  };
}

