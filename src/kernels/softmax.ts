// softmax and log_softmax over the last axis (shaders/softmax.wgsl), max-subtracted; the backward
// (softmax_backward.wgsl) reads the output, which the node's closure holds (the output outlives its node).

import { Tensor, shapeStr, checkF32 } from '../tensor.js';
import { record } from '../autograd.js';

function softmaxImpl(x: Tensor, isLog: boolean): Tensor {
  const name = isLog ? 'logSoftmax' : 'softmax';
  checkF32(name, x);
  if (x.rank < 1) throw new Error(`${name}: input must have rank ≥ 1`);
  const C = x.shape[x.rank - 1];
  if (C < 1) throw new Error(`${name}: last axis of ${shapeStr(x)} is empty`);
  const rt = x.rt;
  const rows = x.size / C;
  const y = Tensor.empty(x.shape, 'f32', rt);
  rt.dispatch({
    shader: 'softmax',
    params: { rows, C, isLog: isLog ? 1 : 0 },
    bindings: [x.binding(), y.binding()],
    workgroups: rt.grid(rows),
  });
  // y is not put in `saved`: that would be a reference cycle (y → its node → y) that is never freed
  return record(name, y, [x], (dy) => {
    const dx = Tensor.empty(x.shape, 'f32', rt);
    rt.dispatch({
      shader: 'softmax_backward',
      params: { rows, C, isLog: isLog ? 1 : 0 },
      bindings: [y.binding(), dy.binding(), dx.binding()],
      workgroups: rt.grid(rows),
    });
    return [dx];
  });
}

/** softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  return softmaxImpl(x, false);
}

/** log_softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  return softmaxImpl(x, true);
}
