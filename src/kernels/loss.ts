// Cross-entropy with ignore_index and 'mean' reduction, as torch.nn.functional.cross_entropy: per-row
// log-sum-exp and loss (shaders/cross_entropy.wgsl), then one workgroup adds rows and counts and divides
// (cross_entropy_finish.wgsl) — no readback; 0 loss and 0 gradient when every row is ignored. The backward
// is one fused element-wise kernel (cross_entropy_backward.wgsl) from the saved per-row lse and 1/count.

import { Tensor, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { launch1d } from './elementwise.js';

/**
 * Mean cross-entropy of logits [..., V] (f32) against labels [...] (i32) over the rows whose label is not
 * `ignoreIndex` → [1]. Labels outside [0, V) are treated as ignored too (PyTorch would raise).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, ignoreIndex = -100): Tensor {
  if (logits.dtype !== 'f32') throw new Error(`crossEntropy: logits must be f32, got ${logits.dtype}`);
  if (labels.dtype !== 'i32') throw new Error(`crossEntropy: labels must be i32, got ${labels.dtype}`);
  if (logits.rank < 2) throw new Error(`crossEntropy: logits ${shapeStr(logits)} need rank ≥ 2 ([N, V])`);
  const lead = logits.shape.slice(0, -1);
  if (labels.rank !== lead.length || labels.shape.some((d, i) => d !== lead[i])) {
    throw new Error(`crossEntropy: labels ${shapeStr(labels)} for logits ${shapeStr(logits)}`);
  }
  const V = logits.shape[logits.rank - 1];
  if (V < 1) throw new Error('crossEntropy: no classes');
  const rt = logits.rt;
  const rows = labels.size;
  const stat = Tensor.empty([rows, 2], 'f32', rt);
  const lse = Tensor.empty([rows], 'f32', rt);
  rt.dispatch({
    shader: 'cross_entropy',
    params: { rows, V, ignoreIndex },
    bindings: [logits.binding(), labels.binding(), stat.binding(), lse.binding()],
    workgroups: rt.grid(rows),
  });
  const loss = Tensor.empty([1], 'f32', rt);
  const inv = Tensor.empty([1], 'f32', rt);
  rt.dispatch({
    shader: 'cross_entropy_finish',
    params: { rows },
    bindings: [stat.binding(), loss.binding(), inv.binding()],
    workgroups: [1],
  });
  stat.dispose();
  record('crossEntropy', loss, [logits, labels], (gy) => {
    const dx = Tensor.empty(logits.shape, 'f32', rt);
    rt.dispatch({
      shader: 'cross_entropy_backward',
      params: { n: logits.size, V, ignoreIndex },
      bindings: [logits.binding(), labels.binding(), lse.binding(), inv.binding(), gy.binding(), dx.binding()],
      workgroups: launch1d(rt, logits.size),
    });
    return [dx, null];
  }, [lse, inv]);
  // the graph holds its own references; without one these are freed now
  lse.dispose();
  inv.dispose();
  return loss;
}
