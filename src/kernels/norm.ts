// LayerNorm and T5's RMSNorm over the last axis (shaders/layer_norm.wgsl, rms_norm.wgsl), with their backward:
// dx in one row kernel shared by both (norm_backward.wgsl), weight/bias gradients as two-step column sums
// (norm_param_grad.wgsl). The forward saves per-row mean and rstd (llm.c style) so the backward need not
// recompute the statistics.

import { Tensor, shapeStr, checkF32 } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import { record, isRecording } from '../autograd.js';
import { add } from './elementwise.js';

function checkNormArgs(name: string, x: Tensor, params: (Tensor | undefined)[]): number {
  checkF32(name, x);
  if (x.rank < 1) throw new Error(`${name}: input must have rank ≥ 1`);
  const C = x.shape[x.rank - 1];
  if (C < 1) throw new Error(`${name}: last axis of ${shapeStr(x)} is empty`);
  for (const p of params) {
    if (!p) continue;
    if (p.dtype !== 'f32' || p.rank !== 1 || p.shape[0] !== C) {
      throw new Error(`${name}: parameter ${p.toString()} does not match the last axis ${C} of ${shapeStr(x)}`);
    }
  }
  return C;
}

/**
 * PyTorch LayerNorm over the last axis: (x − mean)/sqrt(var + eps)·weight + bias (biased variance). weight and
 * bias [C] are each optional. Saves mean and rstd [rows] for the backward.
 */
export function layerNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  const C = checkNormArgs('layerNorm', x, [weight, bias]);
  const rt = x.rt;
  const rows = x.size / C;
  const y = Tensor.empty(x.shape, 'f32', rt);
  const mean = Tensor.empty([rows], 'f32', rt);
  const rstd = Tensor.empty([rows], 'f32', rt);
  rt.dispatch({
    shader: 'layer_norm',
    params: { rows, C, eps, flags: (weight ? 1 : 0) | (bias ? 2 : 0) },
    bindings: [x.binding(), (weight ?? x).binding(), (bias ?? x).binding(), y.binding(), mean.binding(), rstd.binding()],
    workgroups: rt.grid(rows),
  });
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  record('layerNorm', y, inputs, (dy) => {
    const dx = x.requiresGrad ? normDx(rt, x, weight, dy, mean, rstd, false) : null;
    const [dw, db] = weight?.requiresGrad || bias?.requiresGrad ? normParamGrads(rt, x, dy, mean, rstd, 0) : [null, null];
    return [dx, ...(weight ? [weight.requiresGrad ? dw : null] : []), ...(bias ? [bias.requiresGrad ? db : null] : [])];
  }, [mean, rstd]);
  // the graph holds its own references; without one these are freed now
  mean.dispose();
  rstd.dispose();
  return y;
}

/**
 * The pre-norm residual step: [h, LayerNorm(h)] with h = x + r (x and r of one shape; weight and bias [C]). In
 * inference one kernel does both (shaders/add_layer_norm.wgsl, a dispatch saved per residual); while a gradient is
 * recorded it is `add` then `layerNorm`, whose backward rules the tape already has.
 */
export function addLayerNorm(x: Tensor, r: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): [Tensor, Tensor] {
  if (isRecording() && [x, r, weight, bias].some((t) => t.requiresGrad)) {
    const h = add(x, r);
    return [h, layerNorm(h, weight, bias, eps)];
  }
  const C = checkNormArgs('addLayerNorm', x, [weight, bias]);
  checkF32('addLayerNorm', r);
  if (r.shape.length !== x.shape.length || r.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`addLayerNorm: ${shapeStr(x)} + ${shapeStr(r)}: the shapes must be equal`);
  }
  const rt = x.rt;
  const rows = x.size / C;
  const h = Tensor.empty(x.shape, 'f32', rt);
  const y = Tensor.empty(x.shape, 'f32', rt);
  rt.dispatch({
    shader: 'add_layer_norm',
    params: { rows, C, eps },
    bindings: [x.binding(), r.binding(), weight.binding(), bias.binding(), h.binding(), y.binding()],
    workgroups: rt.grid(rows),
  });
  return [h, y];
}

/**
 * T5's T5LayerNorm (RMSNorm): x/sqrt(mean(x²) + eps)·weight, no mean subtraction, no bias. Saves rstd [rows]
 * for the backward.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const C = checkNormArgs('rmsNorm', x, [weight]);
  const rt = x.rt;
  const rows = x.size / C;
  const y = Tensor.empty(x.shape, 'f32', rt);
  const rstd = Tensor.empty([rows], 'f32', rt);
  rt.dispatch({
    shader: 'rms_norm',
    params: { rows, C, eps },
    bindings: [x.binding(), weight.binding(), y.binding(), rstd.binding()],
    workgroups: rt.grid(rows),
  });
  record('rmsNorm', y, [x, weight], (dy) => {
    const dx = x.requiresGrad ? normDx(rt, x, weight, dy, rstd, rstd, true) : null;
    const dw = weight.requiresGrad ? normParamGrads(rt, x, dy, rstd, rstd, 1)[0] : null;
    return [dx, dw];
  }, [rstd]);
  rstd.dispose();
  return y;
}

function normDx(rt: Runtime, x: Tensor, weight: Tensor | undefined, dy: Tensor, mean: Tensor, rstd: Tensor, rms: boolean): Tensor {
  const C = x.shape[x.rank - 1];
  const rows = x.size / C;
  const dx = Tensor.empty(x.shape, 'f32', rt);
  rt.dispatch({
    shader: 'norm_backward',
    params: { rows, C, flags: (weight ? 1 : 0) | (rms ? 2 : 0) },
    bindings: [x.binding(), (weight ?? x).binding(), dy.binding(), mean.binding(), rstd.binding(), dx.binding()],
    workgroups: rt.grid(rows),
  });
  return dx;
}

/** Rows per chunk of the column sums: at least 8, and at most 256 chunks. */
function chunking(rows: number): { chunk: number; chunks: number } {
  const chunk = Math.max(8, Math.ceil(rows / 256));
  return { chunk, chunks: Math.max(1, Math.ceil(rows / chunk)) };
}

/** [dWeight, dBias] as column sums over the rows; mode 0 LayerNorm, 1 RMSNorm (see norm_param_grad.wgsl). */
function normParamGrads(rt: Runtime, x: Tensor, dy: Tensor, mean: Tensor, rstd: Tensor, mode: 0 | 1): [Tensor, Tensor] {
  const C = x.shape[x.rank - 1];
  const rows = x.size / C;
  const { chunk, chunks } = chunking(rows);
  const pw = Tensor.empty([chunks, C], 'f32', rt);
  const pb = Tensor.empty([chunks, C], 'f32', rt);
  rt.dispatch({
    shader: 'norm_param_grad',
    params: { rows, C, chunk, mode },
    bindings: [x.binding(), dy.binding(), mean.binding(), rstd.binding(), pw.binding(), pb.binding()],
    workgroups: [Math.ceil(C / 256), chunks],
  });
  if (chunks === 1) return [pw.reshape([C]), pb.reshape([C])];
  const dw = Tensor.empty([C], 'f32', rt);
  const db = Tensor.empty([C], 'f32', rt);
  rt.dispatch({
    shader: 'norm_param_grad',
    params: { rows: chunks, C, chunk: chunks, mode: 2 },
    bindings: [pw.binding(), pb.binding(), pw.binding(), pw.binding(), dw.binding(), db.binding()],
    workgroups: [Math.ceil(C / 256), 1],
  });
  return [dw, db];
}
