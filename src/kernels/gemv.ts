// The decode-time matmul: y[R, N] = act(x[R, K] · Wᵀ + bias) for a handful of rows R (one token per batch row,
// twice with guidance) against an f32 weight W [N, K] as PyTorch stores a Linear: shaders/gemv.wgsl, one subgroup
// per 4 rows of W (packed weights have their own, src/kernels/packed.ts). matmul() routes here when it applies
// (see `gemvApplies`); measured 2.4× the general kernel on lavapipe.

import { Tensor } from '../tensor.js';
import { specialise, type Runtime } from '../runtime.js';

const ROWS_PER_SUBGROUP = 4; // shaders/gemv.wgsl's ROWS
const WG = 256; // 256 rather than 64: ~15% more bandwidth on lavapipe (fewer workgroups to schedule); SwiftShader allows 256
export const GEMV_MAX_ROWS = 8;

/** Whether `gemv` can compute x [R, K] · Wᵀ for W [N, K]: few rows, K a multiple of 4, subgroups available. */
export function gemvApplies(rt: Runtime, rows: number, K: number): boolean {
  return rt.subgroups && rows >= 1 && rows <= GEMV_MAX_ROWS && K % 4 === 0;
}

/**
 * y = act(x · Wᵀ + bias) for x holding R = x.size / K rows; act 0 none, 1 relu, 2 gelu; y gets `outShape`
 * (R·N elements). Forward only: matmul sends recorded work to the general kernel.
 */
export function gemv(x: Tensor, w: Tensor, bias: Tensor | undefined, act: number, outShape: readonly number[]): Tensor {
  const rt = x.rt;
  const [N, K] = w.shape;
  const rows = x.size / K;
  const y = Tensor.empty(outShape, 'f32', rt);
  const invocations = Math.ceil(N / ROWS_PER_SUBGROUP) * rt.maxSubgroupSize;
  rt.dispatch({
    ...specialise('gemv', 'R', rows),
    params: { N, K, hasBias: bias ? 1 : 0, act },
    bindings: [x.binding(), w.binding(), (bias ?? x).binding(), y.binding()],
    workgroups: rt.grid(Math.ceil(invocations / WG)),
  });
  return y;
}
