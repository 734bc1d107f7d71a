// Gradient-norm clipping as torch.nn.utils.clip_grad_norm_ (2-norm), entirely on the GPU
// (shaders/sum_squares.wgsl): the total norm, the clip coefficient and a finite flag stay in [1] tensors, and
// the optimiser multiplies the gradients by the coefficient (`AdamW.step(lr, clip.scale)`), so nothing is read
// back. The gradients themselves are not modified. A kernel like adam.ts: the training loop calls it, the op
// library exports it.

import { Tensor } from '../tensor.js';

export interface ClipResult {
  /** ‖all gradients‖₂ as one vector: [1] f32. */
  norm: Tensor;
  /** min(1, maxNorm / (norm + 1e-6)): [1] f32, the factor torch multiplies the gradients by (NaN if norm is). */
  scale: Tensor;
  /** 1 when the norm is finite (no NaN/inf in any gradient, no overflow), else 0: [1] f32. */
  finite: Tensor;
}

const WG = 256;
/** Most workgroups one tensor's partial sum is split over. */
const MAX_GROUPS = 256;

/**
 * Total gradient norm of `params` (those without a gradient are skipped, as torch does) and the clip scale.
 * Two dispatches per call plus one per gradient tensor; nothing is submitted.
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): ClipResult {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null && g.size > 0);
  for (const g of grads) if (g.dtype !== 'f32') throw new Error(`clipGradNorm: gradients must be f32, got ${g.dtype}`);
  const rt = params[0]?.rt;
  if (grads.length === 0 || !rt) {
    // torch returns a zero norm and leaves nothing to scale
    return {
      norm: Tensor.from([0], [1], 'f32', rt),
      scale: Tensor.from([1], [1], 'f32', rt),
      finite: Tensor.from([1], [1], 'f32', rt),
    };
  }
  const groups = grads.map((g) => Math.min(MAX_GROUPS, Math.ceil(g.size / WG)));
  const count = groups.reduce((a, b) => a + b, 0);
  const partials = Tensor.empty([count], 'f32', rt);
  let offset = 0;
  grads.forEach((g, k) => {
    rt.dispatch({
      shader: 'sum_squares',
      entry: 'partial',
      params: { n: g.size, offset, count: 0, maxNorm: 0 },
      bindings: [g.binding(), partials.binding()],
      workgroups: [groups[k]],
    });
    offset += groups[k];
  });
  const norm = Tensor.empty([1], 'f32', rt);
  const scale = Tensor.empty([1], 'f32', rt);
  const finite = Tensor.empty([1], 'f32', rt);
  rt.dispatch({
    shader: 'sum_squares',
    entry: 'finish',
    params: { n: 0, offset: 0, count, maxNorm },
    bindings: [partials.binding(), norm.binding(), scale.binding(), finite.binding()],
    workgroups: [1],
  });
  partials.dispose();
  return { norm, scale, finite };
}
