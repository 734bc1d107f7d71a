// Batched matmul with optional transposes, bias and a fused activation (shaders/matmul.wgsl).
// When gradients are recorded the activation runs as its own op, so its backward sees the pre-activation.

import { Tensor, shapeStr } from '../tensor.js';
import { specialise, type Runtime } from '../runtime.js';
import { isRecording, record } from '../autograd.js';
import { unary, sumTo } from './elementwise.js';
import { gemv, gemvApplies } from './gemv.js';
import { PackedMatrix, fewRowsWorkgroup, linearPacked, type Matrix } from './packed.js';

export type Activation = 'none' | 'relu' | 'gelu';
const ACT_ID: Record<Activation, number> = { none: 0, relu: 1, gelu: 2 };

export interface MatmulOptions {
  /** Use Aᵀ: A is [..., K, M]. */
  transA?: boolean;
  /** Use Bᵀ: B is [..., N, K] (a PyTorch Linear weight [out, in]). */
  transB?: boolean;
  /** Added to every row: [N]. */
  bias?: Tensor;
  act?: Activation;
}

/**
 * C = act(op(A)·op(B) + bias). A is [...batch, M, K] (or [..., K, M] with transA); B is [...batch, K, N] (or
 * [..., N, K] with transB). Either operand may be 2-D and shared by the other's batch. C is [...batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false, bias, act = 'none' } = opts;
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error('matmul: expects f32 tensors');
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: ranks ${a.rank} and ${b.rank}; both need ≥ 2`);
  const aBatched = a.rank > 2;
  const bBatched = b.rank > 2;
  const batchDims = aBatched ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  if (aBatched && bBatched && (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batchDims[i]))) {
    throw new Error(`matmul: batch dims of ${shapeStr(a)} and ${shapeStr(b)} differ`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (K !== Kb) {
    throw new Error(`matmul: inner dims differ: ${shapeStr(a)}${transA ? 'ᵀ' : ''} · ${shapeStr(b)}${transB ? 'ᵀ' : ''}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N)) throw new Error(`matmul: bias ${shapeStr(bias)} for N = ${N}`);
  const batch = batchDims.reduce((x, y) => x * y, 1);
  const recording = isRecording() && (a.requiresGrad || b.requiresGrad || !!bias?.requiresGrad);
  const fuseAct = act !== 'none' && !recording;
  const rt = a.rt;
  // decoding: a few rows against a Linear weight as stored → the memory-bound gemv kernel
  if (!recording && !transA && transB && !bBatched && gemvApplies(rt, M * batch, K)) {
    return gemv(a, b, bias, ACT_ID[act], [...batchDims, M, N]);
  }
  const c = Tensor.empty([...batchDims, M, N], 'f32', rt);

  // A shared B with a plain A folds the batch into M: one big matmul instead of many small ones.
  const fold = aBatched && !bBatched && !transA;
  const Mk = fold ? M * batch : M;
  const nb = fold ? 1 : batch;
  const sAb = fold || !aBatched ? 0 : M * K;
  const sBb = bBatched ? K * N : 0;
  const shared = { M: Mk, N, hasBias: bias ? 1 : 0, act: fuseAct ? ACT_ID[act] : 0 };
  const bindings = [a.binding(), b.binding(), (bias ?? a).binding(), c.binding()];
  if (!rt.shuffleSubgroups) {
    rt.dispatch({
      shader: 'matmul',
      params: {
        ...shared, K, sAb, sAm: transA ? 1 : K, sAk: transA ? M : 1, sBb, sBk: transB ? 1 : N, sBn: transB ? K : 1,
      },
      bindings,
      workgroups: [Math.ceil(N / 32), Math.ceil(Mk / 32), nb],
    });
  } else if (!transA && transB && K % 4 === 0) {
    // both operands contiguous along k: vec4 loads
    const { CN, WG } = sg4Shape(rt, N, Mk, nb);
    rt.dispatch({
      ...specialise('matmul_sg4', { CN, WG }),
      params: { ...shared, K4: K / 4, sAb4: sAb / 4, sBb4: sBb / 4 },
      bindings,
      workgroups: [Math.ceil(N / (WG * CN)), Math.ceil(Mk / 16), nb],
    });
  } else {
    const cn = columnsPerInvocation(N, Mk, nb, [4, 2, 1]);
    rt.dispatch({
      ...specialise('matmul_sg', 'CN', cn),
      params: {
        ...shared, K, sAb, sAm: transA ? 1 : K, sAk: transA ? M : 1, sBb, sBk: transB ? 1 : N, sBn: transB ? K : 1,
      },
      bindings,
      workgroups: [Math.ceil(N / (64 * cn)), Math.ceil(Mk / 16), nb],
    });
  }
  const inputs = bias ? [a, b, bias] : [a, b];
  const out = record('matmul', c, inputs, (dC) => {
    let dA = transA
      ? matmul(b, dC, { transA: transB, transB: true })
      : matmul(dC, b, { transB: !transB });
    if (!aBatched && dA.rank > 2) dA = sumTo(dA, a.shape);
    // with a shared B, fold the batch into the rows so dB comes out summed over it
    const a2 = fold ? a.reshape([-1, K]) : a;
    const dC2 = fold ? dC.reshape([-1, N]) : dC;
    let dB = transB
      ? matmul(dC2, a2, { transA: true, transB: transA })
      : matmul(a2, dC2, { transA: !transA });
    if (!bBatched && dB.rank > 2) dB = sumTo(dB, b.shape);
    return bias ? [dA, dB, sumTo(dC, [N])] : [dA, dB];
  });
  return act !== 'none' && !fuseAct ? unary(act, out) : out;
}

/**
 * Columns per invocation for the subgroup kernels: the most (fewest loads per FMA) that still leave ≥ 16
 * workgroups, so small products (T5's [16×768]·[768×768]) keep every core busy.
 */
function columnsPerInvocation(N: number, M: number, batch: number, choices: number[]): number {
  const rowBlocks = Math.ceil(M / 16) * batch;
  return choices.find((cn) => Math.ceil(N / (64 * cn)) * rowBlocks >= 16) ?? choices[choices.length - 1];
}

/**
 * matmul_sg4's columns per invocation and workgroup size. A product of a few row blocks (T5's 16 rows, a short
 * prompt's prefill) gets 64 columns per workgroup as 32 lanes (or a wider subgroup) × 2 columns: 4 loads per 128
 * FMAs where 64 × 1 (what `columnsPerInvocation` must pick there to keep ≥ 16 workgroups) loads 3 times per 64.
 * 16 × 4 (6 loads per 256) measured no faster within this loaded machine's noise and took llvmpipe ~3× as long
 * to compile (13 s against 4 s). More rows keep 64 invocations and `columnsPerInvocation`.
 */
function sg4Shape(rt: Runtime, N: number, M: number, batch: number): { CN: number; WG: number } {
  if (Math.ceil(M / 16) * batch > 4) return { CN: columnsPerInvocation(N, M, batch, [2, 1]), WG: 64 };
  return fewRowsWorkgroup(rt);
}

/** PyTorch's Linear: x·Wᵀ + b with W [out, in], f32 or packed (src/kernels/packed.ts). */
export function linear(x: Tensor, weight: Matrix, bias?: Tensor, act: Activation = 'none'): Tensor {
  if (weight instanceof PackedMatrix) return linearPacked(x, weight, bias, act);
  return matmul(x, weight, { transB: true, bias, act });
}
