// GroupNorm over [B, C, ...] (shaders/group_norm.wgsl): PyTorch nn.GroupNorm, forward only (its users, Demucs
// and multi-band diffusion, run inference).

import { Tensor, shapeStr, checkF32 } from '../tensor.js';

/**
 * nn.GroupNorm(groups, C, eps)(x) for x [B, C, ...]: each of the `groups` groups of C/groups consecutive
 * channels is normalised over its channels and every trailing position (biased variance), then
 * y·weight[c] + bias[c]. weight and bias [C] are each optional. Not differentiable.
 */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  checkF32('groupNorm', x, weight, bias);
  if (x.rank < 2) throw new Error(`groupNorm: input ${shapeStr(x)} must be [B, C, ...]`);
  if (x.requiresGrad || weight?.requiresGrad || bias?.requiresGrad) {
    throw new Error('groupNorm: forward only (no backward is implemented)');
  }
  const [B, C] = [x.shape[0], x.shape[1]];
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new Error(`groupNorm: ${C} channels of ${shapeStr(x)} do not split into ${groups} groups`);
  }
  for (const t of [weight, bias]) {
    if (t && (t.rank !== 1 || t.shape[0] !== C)) {
      throw new Error(`groupNorm: parameter ${t.toString()} does not match the ${C} channels of ${shapeStr(x)}`);
    }
  }
  const rt = x.rt;
  const L = x.size / (B * C);
  const Cg = C / groups;
  const y = Tensor.empty(x.shape, 'f32', rt);
  const rows = B * groups;
  if (y.size === 0) return y;
  rt.dispatch({
    shader: 'group_norm',
    params: { rows, C: Cg * L, L, Cg, G: groups, eps, flags: (weight ? 1 : 0) | (bias ? 2 : 0) },
    bindings: [x.binding(), (weight ?? x).binding(), (bias ?? x).binding(), y.binding()],
    workgroups: rt.grid(rows),
  });
  return y;
}
