// GLU along an axis (shaders/glu.wgsl), forward only: Demucs's encoder and decoder layers gate their rewrite
// convolutions with it.

import { Tensor, shapeStr, checkF32 } from '../tensor.js';
import { launch1d } from './elementwise.js';

/** torch.nn.functional.glu(x, axis): the first half of `axis` times the sigmoid of the second half. */
export function glu(x: Tensor, axis: number): Tensor {
  checkF32('glu', x);
  const a = axis < 0 ? axis + x.rank : axis;
  if (a < 0 || a >= x.rank) throw new Error(`glu: axis ${axis} for ${shapeStr(x)}`);
  if (x.shape[a] % 2 !== 0) throw new Error(`glu: axis ${a} of ${shapeStr(x)} has an odd size`);
  if (x.requiresGrad) throw new Error('glu: forward only (no backward)');
  const C = x.shape[a] / 2;
  const shape = [...x.shape];
  shape[a] = C;
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const rt = x.rt;
  const y = Tensor.empty(shape, 'f32', rt);
  if (y.size === 0) return y;
  rt.dispatch({
    shader: 'glu', params: { n: y.size, C, inner }, bindings: [x.binding(), y.binding()], workgroups: launch1d(rt, y.size),
  });
  return y;
}
