// 1-D padding, convolution and transposed convolution over [B, C, T] (PyTorch semantics), each with its
// backward, plus weight normalisation for loading weight-normed convs (EnCodec's SEANet).
//
// Three kernels cover the six directions: conv1d (a gather over input samples) is also convTranspose1d's input
// gradient; conv_transpose1d (a gather split by stride phase) is also conv1d's input gradient; and
// conv1d_grad_weight (a correlation of the two, chunked over time) gives both weight gradients.

import { Tensor, shapeStr, checkF32, tidy } from '../tensor.js';
import { specialise, type Runtime } from '../runtime.js';
import { noGrad, record } from '../autograd.js';
import { add, launch1d, sumTo } from './elementwise.js';
import { narrow, permute } from './shape.js';
import { matmul } from './matmul.js';

// ---- padding ----

export type PadMode = 'zero' | 'constant' | 'reflect' | 'replicate';
const PAD_MODE_ID: Record<PadMode, number> = { zero: 0, constant: 0, reflect: 1, replicate: 2 };



/**
 * torch.nn.functional.pad on the last axis with (left, right) ≥ 0. 'zero' is 'constant' with value 0;
 * 'reflect' mirrors without repeating the edge and (as in PyTorch) needs left, right < T; 'replicate' repeats
 * the edge sample. Differentiable in x (reflect and replicate fold the copied gradients back).
 */
export function pad1d(x: Tensor, left: number, right: number, mode: PadMode = 'zero', value = 0): Tensor {
  checkF32('pad1d', x);
  if (x.rank < 1) throw new Error('pad1d: needs at least one dim');
  if (!Number.isInteger(left) || !Number.isInteger(right) || left < 0 || right < 0) {
    throw new Error(`pad1d: pads (${left}, ${right}) must be integers ≥ 0`);
  }
  const T = x.shape[x.rank - 1];
  if (mode === 'reflect' && (left >= T || right >= T)) {
    throw new Error(`pad1d: reflect padding (${left}, ${right}) must be < the input length ${T} (use encodecPad1d)`);
  }
  if (mode === 'replicate' && T === 0 && left + right > 0) throw new Error('pad1d: replicate needs a non-empty input');
  const rt = x.rt;
  const Tout = T + left + right;
  const y = Tensor.empty([...x.shape.slice(0, -1), Tout], 'f32', rt);
  const params = (n: number) => ({ n, T, Tout, left, mode: PAD_MODE_ID[mode], value: mode === 'constant' ? value : 0 });
  if (y.size > 0) {
    rt.dispatch({
      shader: 'pad1d', params: params(y.size), bindings: [x.binding(), y.binding()], workgroups: launch1d(rt, y.size),
    });
  }
  return record('pad1d', y, [x], (gy) => {
    const gx = Tensor.empty(x.shape, 'f32', rt);
    if (gx.size > 0) {
      rt.dispatch({
        shader: 'pad1d', entry: 'backward', params: params(gx.size),
        bindings: [gy.binding(), gx.binding()], workgroups: launch1d(rt, gx.size),
      });
    }
    return [gx];
  });
}

/**
 * EnCodec's `_pad1d` (transformers EncodecConv1d): like pad1d, but reflect padding also works on inputs no
 * longer than the pad: the input is first zero-padded on the right by `max(left, right) − T + 1`, reflected,
 * and that many samples are cut from the end. Differentiable in x.
 */
export function encodecPad1d(x: Tensor, left: number, right: number, mode: PadMode = 'zero', value = 0): Tensor {
  if (mode !== 'reflect') return pad1d(x, left, right, mode, value);
  const T = x.shape[x.rank - 1];
  const maxPad = Math.max(left, right);
  if (T > maxPad) return pad1d(x, left, right, 'reflect');
  const extra = maxPad - T + 1;
  const x1 = pad1d(x, 0, extra, 'zero');
  const padded = pad1d(x1, left, right, 'reflect');
  const y = narrow(padded, -1, 0, padded.shape[padded.rank - 1] - extra);
  // the recorded graph (if any) holds its own references to the intermediates
  x1.dispose();
  padded.dispose();
  return y;
}

// ---- raw kernels (nothing recorded) ----

/**
 * The conv kernels compute CO output channels per invocation (`const CO = 16u` in the .wgsl). Layers with
 * fewer output channels per group get a variant with the smallest CO that covers them, so little is wasted
 * (EnCodec's last conv has one output channel).
 */
function coPerInvocation(coutG: number): number {
  return [1, 2, 4, 8].find((c) => c >= coutG) ?? 16;
}


/**
 * Whether a layer takes the subgroup kernels (conv*_sg.wgsl: 16 output channels per workgroup, ~3× fewer loads
 * on llvmpipe); layers with fewer than 8 output channels per group (EnCodec's last conv has 1) keep the plain
 * ones, which do not compute 16 channels to store one.
 */
function subgroupConv(rt: Runtime, coutG: number): boolean {
  return coutG >= 8 && rt.shuffleSubgroups;
}

/**
 * Steps per invocation for the subgroup conv kernels (64·CN per workgroup): enough to cover `n` steps, then fewer
 * while that leaves under 16 workgroups (`others` = workgroups over channels and batch), so every core has work.
 */
function stepsPerInvocation(n: number, others: number): number {
  let cn = n <= 64 ? 1 : n <= 128 ? 2 : 4;
  while (cn > 1 && Math.ceil(n / (64 * cn)) * others < 16) cn /= 2;
  return cn;
}

interface ConvGeometry {
  B: number;
  /** input channels and length */
  Cin: number;
  T: number;
  /** output channels and length */
  Cout: number;
  Tout: number;
  groups: number;
  K: number;
  stride: number;
  dilation: number;
}

/** What both conv kernels start from: channels per group, the output, and blocks of `co` output channels. */
function convOutput(rt: Runtime, geo: ConvGeometry): { CinG: number; CoutG: number; y: Tensor; co: number; coBlocks: number } {
  const CoutG = geo.Cout / geo.groups;
  const co = coPerInvocation(CoutG);
  const y = Tensor.empty([geo.B, geo.Cout, geo.Tout], 'f32', rt);
  return { CinG: geo.Cin / geo.groups, CoutG, y, co, coBlocks: Math.ceil(CoutG / co) };
}

/** Y[b,o,t] = bias + Σ W[o,i,k]·X[b,i,t·stride − padL + k·dil]; W [Cout, Cin/groups, K]. */
function conv1dRaw(rt: Runtime, x: Tensor, w: Tensor, bias: Tensor | undefined, geo: ConvGeometry, padL: number): Tensor {
  const { B, Cin, T, Cout, Tout, groups, K, stride, dilation } = geo;
  // a short pointwise conv is a matmul W [Cout, Cin] · X[b] (the bias then costs one broadcast add): on a quiet
  // llvmpipe 50 against 68–82 ms for EnCodec's 1×1 residual conv at 800 steps, but 1.5× slower at 64000
  if (K === 1 && stride === 1 && groups === 1 && padL === 0 && T <= MATMUL_MAX_T && B * Cout * Tout > 0) {
    return tidy(() => noGrad(() => {
      const m = matmul(w.reshape([Cout, Cin]), x);
      return bias ? add(m, bias.reshape([Cout, 1])) : m;
    }));
  }
  const { CinG, CoutG, y, co, coBlocks } = convOutput(rt, geo);
  if (y.size === 0) return y;
  if (subgroupConv(rt, CoutG)) {
    const blocks = Math.ceil(CoutG / 16);
    const wy = groups * blocks;
    const cn = stepsPerInvocation(Tout, wy * B);
    const wx = Math.ceil(Tout / (64 * cn));
    checkGrid('conv1d', rt, wx, wy, B);
    rt.dispatch({
      ...specialise('conv1d_sg', 'CN', cn),
      params: { T, Tout, Cin, Cout, CinG, CoutG, K, stride, dil: dilation, padL, coBlocks: blocks, hasBias: bias ? 1 : 0 },
      bindings: [x.binding(), w.binding(), (bias ?? w).binding(), y.binding()],
      workgroups: [wx, wy, B],
    });
    return y;
  }
  const wy = groups * coBlocks;
  checkGrid('conv1d', rt, Math.ceil(Tout / 256), wy, B);
  rt.dispatch({
    ...specialise('conv1d', 'CO', co),
    params: { T, Tout, Cin, Cout, CinG, CoutG, K, stride, dil: dilation, padL, coBlocks, hasBias: bias ? 1 : 0 },
    bindings: [x.binding(), w.binding(), (bias ?? w).binding(), y.binding()],
    workgroups: [Math.ceil(Tout / 256), wy, B],
  });
  return y;
}

/**
 * Input lengths up to which a transposed conv (groups 1, dilation 1) runs as a matmul and a fold, and a
 * pointwise conv as a matmul: on llvmpipe the matmul ran EnCodec's 1024 → 512 layer (100 steps) ~2.3× faster
 * than conv_transpose1d_sg.wgsl and its 512 → 256 layer (800 steps) about as fast; longer inputs keep the
 * conv kernels (and no [T, Cout·K] buffer is made).
 */
const MATMUL_MAX_T = 1024;

/** convTranspose1dRaw as Z = Xᵀ·W ([B, T, Cout·K], the weight as stored seen as [Cin, Cout·K]) then a fold of Z. */
function convTransposeByMatmul(
  rt: Runtime, x: Tensor, w: Tensor, bias: Tensor | undefined, geo: ConvGeometry, pad: number,
): Tensor {
  const { B, Cin, T, Cout, Tout, K, stride } = geo;
  const z = tidy(() => noGrad(() => matmul(x, w.reshape([Cin, Cout * K]), { transA: true })));
  const y = Tensor.empty([B, Cout, Tout], 'f32', rt);
  rt.dispatch({
    shader: 'conv_transpose1d_fold',
    params: { n: y.size, T, Tout, Cout, K, stride, pad, hasBias: bias ? 1 : 0 },
    bindings: [z.binding(), (bias ?? z).binding(), y.binding()],
    workgroups: launch1d(rt, y.size),
  });
  z.dispose();
  return y;
}

/** Y[b,o,t] = bias + Σ_{t+pad = stride·m + k·dil} X[b,i,m]·W[i,o,k]; W [Cin, Cout/groups, K]. */
function convTranspose1dRaw(
  rt: Runtime, x: Tensor, w: Tensor, bias: Tensor | undefined, geo: ConvGeometry, pad: number,
): Tensor {
  const { B, Cin, T, Cout, Tout, groups, K, stride, dilation } = geo;
  if (groups === 1 && dilation === 1 && T <= MATMUL_MAX_T && Tout > 0) return convTransposeByMatmul(rt, x, w, bias, geo, pad);
  const { CinG, CoutG, y, co, coBlocks } = convOutput(rt, geo);
  if (y.size === 0) return y;
  const mLo = Math.floor(pad / stride);
  const nM = Math.floor((Tout - 1 + pad) / stride) - mLo + 1;
  const sg = subgroupConv(rt, CoutG);
  const blocks = sg ? Math.ceil(CoutG / 16) : coBlocks;
  const wy = stride * groups * blocks;
  const cn = sg ? stepsPerInvocation(nM, wy * B) : 1;
  const wx = sg ? Math.ceil(nM / (64 * cn)) : Math.ceil(nM / 256);
  checkGrid('convTranspose1d', rt, wx, wy, B);
  // tap-major [K, Cin, CoutG]: a block's output channels adjacent for each tap (one pass over the weight; it
  // paid for itself ~1.4× on EnCodec's 1024 → 512 upsampling layer with either kernel)
  const wk = noGrad(() => permute(w, [2, 0, 1]));
  if (sg) {
    rt.dispatch({
      ...specialise('conv_transpose1d_sg', 'CN', cn),
      params: { T, Tout, Cin, Cout, CinG, CoutG, K, stride, dil: dilation, pad, coBlocks: blocks, hasBias: bias ? 1 : 0, mLo, nM },
      bindings: [x.binding(), wk.binding(), (bias ?? w).binding(), y.binding()],
      workgroups: [wx, wy, B],
    });
    wk.dispose();
    return y;
  }
  rt.dispatch({
    ...specialise('conv_transpose1d', 'CO', co),
    params: { T, Tout, Cin, Cout, CinG, CoutG, K, stride, dil: dilation, pad, coBlocks, hasBias: bias ? 1 : 0, mLo, nM },
    bindings: [x.binding(), wk.binding(), (bias ?? w).binding(), y.binding()],
    workgroups: [Math.ceil(nM / 256), wy, B],
  });
  wk.dispose();
  return y;
}

/**
 * D[o, i, k] = Σ_b Σ_t A[b, o, t] · X[b, g·IG + i, t·stride − padL + k·dil]: conv1d's weight gradient with
 * A = dY, X = input (and convTranspose1d's with A = input, X = dY). A [B, O, TA], X [B, I, TX] → [O, I/groups, K].
 */
function convGradWeightRaw(
  rt: Runtime, a: Tensor, x: Tensor, groups: number, K: number, stride: number, dilation: number, padL: number,
): Tensor {
  const [B, O, TA] = a.shape;
  const [, I, TX] = x.shape;
  const OG = O / groups;
  const IG = I / groups;
  const N = IG * K;
  const oBlocks = Math.ceil(OG / 32);
  const wx = Math.ceil(N / 32);
  const wy = groups * oBlocks;
  // Long signals with few weights (EnCodec's first layers) have little parallelism over the weights: split the
  // time sum into chunks (at least 64 steps each) so there are ~256 workgroups, then add the chunks up.
  const chunks = Math.max(1, Math.min(Math.ceil(256 / (wx * wy)), Math.ceil(TA / 64)));
  const chunk = Math.max(1, Math.ceil(TA / chunks));
  const nChunks = Math.max(1, Math.ceil(TA / chunk));
  checkGrid('conv weight gradient', rt, wx, wy, nChunks);
  const d = Tensor.empty(nChunks === 1 ? [O, IG, K] : [nChunks, O * N], 'f32', rt);
  if (TA === 0 || B === 0) {
    rt.clear(d.buffer, d.bytes);
  } else {
    rt.dispatch({
      shader: 'conv1d_grad_weight',
      params: { TA, TX, O, I, OG, IG, K, stride, dil: dilation, padL, oBlocks, chunk, B },
      bindings: [a.binding(), x.binding(), d.binding()],
      workgroups: [wx, wy, nChunks],
    });
  }
  if (nChunks === 1) return d;
  const summed = sumTo(d, [O * N]);
  d.dispose();
  const out = summed.reshape([O, IG, K]);
  summed.dispose();
  return out;
}

function checkGrid(name: string, rt: Runtime, x: number, y: number, z: number): void {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (x > max || y > max || z > max) throw new Error(`${name}: grid [${x}, ${y}, ${z}] exceeds ${max} per dimension`);
}

/** Σ over batch and time of dY [B, C, T] → [C]: the bias gradient. */
function biasGrad(gy: Tensor): Tensor {
  const C = gy.shape[1];
  const s = sumTo(gy, [1, C, 1]);
  const out = s.reshape([C]);
  if (s !== gy) s.dispose();
  return out;
}

// ---- convolutions ----

export interface Conv1dOptions {
  stride?: number;
  dilation?: number;
  groups?: number;
  /** zeros on both sides */
  padding?: number;
}

function checkConvArgs(name: string, x: Tensor, weight: Tensor, bias: Tensor | undefined, groups: number): void {
  checkF32(name, x, weight, bias);
  if (x.rank !== 3) throw new Error(`${name}: x must be [B, C, T], got ${shapeStr(x)}`);
  if (weight.rank !== 3) throw new Error(`${name}: weight must be 3-D, got ${shapeStr(weight)}`);
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${name}: groups ${groups}`);
  if (bias && bias.rank !== 1) throw new Error(`${name}: bias must be 1-D, got ${shapeStr(bias)}`);
}

function positiveInt(name: string, what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${name}: ${what} must be an integer ≥ ${min}, got ${v}`);
}

/**
 * PyTorch's conv1d: x [B, Cin, T], weight [Cout, Cin/groups, K], bias [Cout] → [B, Cout, Tout] with
 * Tout = ⌊(T + 2·padding − dilation·(K − 1) − 1) / stride⌋ + 1. Differentiable in x, weight and bias.
 */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor, opts: Conv1dOptions = {}): Tensor {
  const { stride = 1, dilation = 1, groups = 1, padding = 0 } = opts;
  checkConvArgs('conv1d', x, weight, bias, groups);
  positiveInt('conv1d', 'stride', stride, 1);
  positiveInt('conv1d', 'dilation', dilation, 1);
  positiveInt('conv1d', 'padding', padding, 0);
  const [B, Cin, T] = x.shape;
  const [Cout, CinG, K] = weight.shape;
  if (Cin % groups !== 0 || Cout % groups !== 0 || CinG * groups !== Cin) {
    throw new Error(`conv1d: x ${shapeStr(x)} and weight ${shapeStr(weight)} do not fit groups = ${groups}`);
  }
  if (bias && bias.shape[0] !== Cout) throw new Error(`conv1d: bias ${shapeStr(bias)} for ${Cout} output channels`);
  const Tout = Math.floor((T + 2 * padding - dilation * (K - 1) - 1) / stride) + 1;
  if (Tout < 1 || K < 1) {
    throw new Error(`conv1d: input length ${T} (padding ${padding}) is shorter than the kernel span ${dilation * (K - 1) + 1}`);
  }
  const rt = x.rt;
  const geo: ConvGeometry = { B, Cin, T, Cout, Tout, groups, K, stride, dilation };
  const y = conv1dRaw(rt, x, weight, bias, geo, padding);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv1d', y, inputs, (gy) => [
    // dX is a transposed conv of dY with the same weight, cut to the input length
    x.requiresGrad
      ? convTranspose1dRaw(rt, gy, weight, undefined, { ...geo, Cin: Cout, T: Tout, Cout: Cin, Tout: T }, padding)
      : null,
    weight.requiresGrad ? convGradWeightRaw(rt, gy, x, groups, K, stride, dilation, padding) : null,
    ...(bias ? [bias.requiresGrad ? biasGrad(gy) : null] : []),
  ]);
}

export interface ConvTranspose1dOptions {
  stride?: number;
  /** trimmed from both ends of the full output */
  padding?: number;
  /** added to the end of the output (< stride or < dilation, as PyTorch) */
  outputPadding?: number;
  dilation?: number;
  groups?: number;
}

/**
 * PyTorch's conv_transpose1d: x [B, Cin, T], weight [Cin, Cout/groups, K], bias [Cout] → [B, Cout, Tout] with
 * Tout = (T − 1)·stride − 2·padding + dilation·(K − 1) + outputPadding + 1. Differentiable in x, weight, bias.
 */
export function convTranspose1d(x: Tensor, weight: Tensor, bias?: Tensor, opts: ConvTranspose1dOptions = {}): Tensor {
  const { stride = 1, padding = 0, outputPadding = 0, dilation = 1, groups = 1 } = opts;
  checkConvArgs('convTranspose1d', x, weight, bias, groups);
  positiveInt('convTranspose1d', 'stride', stride, 1);
  positiveInt('convTranspose1d', 'dilation', dilation, 1);
  positiveInt('convTranspose1d', 'padding', padding, 0);
  positiveInt('convTranspose1d', 'outputPadding', outputPadding, 0);
  if (outputPadding >= Math.max(stride, dilation)) {
    throw new Error(`convTranspose1d: outputPadding ${outputPadding} must be < stride or dilation`);
  }
  const [B, Cin, T] = x.shape;
  const [Cw, CoutG, K] = weight.shape;
  if (Cw !== Cin || Cin % groups !== 0) {
    throw new Error(`convTranspose1d: x ${shapeStr(x)} and weight ${shapeStr(weight)} do not fit groups = ${groups}`);
  }
  const Cout = CoutG * groups;
  if (bias && bias.shape[0] !== Cout) throw new Error(`convTranspose1d: bias ${shapeStr(bias)} for ${Cout} output channels`);
  const Tout = (T - 1) * stride - 2 * padding + dilation * (K - 1) + outputPadding + 1;
  if (Tout < 1 || K < 1 || T < 1) throw new Error(`convTranspose1d: output length ${Tout} for input length ${T}`);
  const rt = x.rt;
  const geo: ConvGeometry = { B, Cin, T, Cout, Tout, groups, K, stride, dilation };
  const y = convTranspose1dRaw(rt, x, weight, bias, geo, padding);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('convTranspose1d', y, inputs, (gy) => [
    // dX is a conv of dY with the same weight (seen as [Cin, Cout/groups, K] conv weight), T long
    x.requiresGrad ? conv1dRaw(rt, gy, weight, undefined, { ...geo, Cin: Cout, T: Tout, Cout: Cin, Tout: T }, padding) : null,
    weight.requiresGrad ? convGradWeightRaw(rt, x, gy, groups, K, stride, dilation, padding) : null,
    ...(bias ? [bias.requiresGrad ? biasGrad(gy) : null] : []),
  ]);
}
