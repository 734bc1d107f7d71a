// Shape ops: reshape (a view), permute, narrow (slice along one axis), pad with zeros, concat.
// Every tensor stays contiguous, so permute and concat copy.

import { Tensor, numel, shapeStr, type Shape } from '../tensor.js';
import { record } from '../autograd.js';
import { launch1d, kernel1d, fields6, unravel6, offset6, params6 } from './elementwise.js';

/** A view with a new shape (one dim may be -1). Differentiable. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const y = x.reshape(shape);
  return record('reshape', y, [x], (g) => [g.reshape(x.shape)]);
}

const PERMUTE_CODE = kernel1d({
  params: `n: u32, ${fields6('d')}, ${fields6('s')}`,
  read: ['X: array<u32>'],
  write: ['Y: array<u32>'],
  body: `${unravel6('i', 'c', 'd')}
  Y[i] = X[${offset6('c', 's')}];`,
});

/** Reorders dims: y.shape[i] = x.shape[perm[i]]. Works for f32 and i32 (4-byte elements). */
export function permute(x: Tensor, perm: number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort().some((d, i) => d !== i)) {
    throw new Error(`permute: [${perm.join(', ')}] is not a permutation of ${x.rank} dims`);
  }
  if (x.dtype === 'f16') throw new Error('permute: f16 is not supported');
  const outShape = perm.map((d) => x.shape[d]);
  // when only size-1 dims move (a decode step's [B, 1, H, D] → [B, H, 1, D]), no element moves: a view
  const moved = perm.filter((d) => x.shape[d] !== 1);
  if (moved.every((d, i) => i === 0 || d > moved[i - 1])) return reshape(x, outShape);
  const rt = x.rt;
  const strides: number[] = [];
  let s = 1;
  for (let i = x.rank - 1; i >= 0; i--) { strides[i] = s; s *= x.shape[i]; }
  const y = Tensor.empty(outShape, x.dtype, rt);
  rt.dispatch({
    shader: 'permute',
    code: PERMUTE_CODE,
    params: { n: y.size, ...params6('d', outShape, 1), ...params6('s', perm.map((d) => strides[d]), 0) },
    bindings: [x.binding(), y.binding()],
    workgroups: launch1d(rt, y.size),
  });
  const inverse = new Array<number>(perm.length);
  perm.forEach((d, i) => { inverse[d] = i; });
  return record('permute', y, [x], (g) => [permute(g, inverse)]);
}

/** Swaps two dims. */
export function transpose(x: Tensor, a: number, b: number): Tensor {
  const perm = [...x.shape.keys()];
  const ax = a < 0 ? x.rank + a : a;
  const bx = b < 0 ? x.rank + b : b;
  [perm[ax], perm[bx]] = [perm[bx], perm[ax]];
  return permute(x, perm);
}

// out[o, l, i] = 0 <= l + shift < Lin ? in[o, l + shift, i] : 0, viewing both as [outer, L, inner]
const WINDOW_CODE = kernel1d({
  params: 'n: u32, lout: u32, lin: u32, inner: u32, shift: i32',
  read: ['X: array<u32>'],
  write: ['Y: array<u32>'],
  body: `let inner = i % p.inner;
  let l = (i / p.inner) % p.lout;
  let o = i / (p.inner * p.lout);
  let src = i32(l) + p.shift;
  if (src < 0 || src >= i32(p.lin)) { Y[i] = 0u; return; }
  Y[i] = X[(o * p.lin + u32(src)) * p.inner + inner];`,
});

// out[o, l + offset, i] = in[o, l, i]: writes x into a slot of a larger tensor
const PLACE_CODE = kernel1d({
  params: 'n: u32, lin: u32, lout: u32, inner: u32, offset: u32',
  read: ['X: array<u32>'],
  write: ['Y: array<u32>'],
  body: `let inner = i % p.inner;
  let l = (i / p.inner) % p.lin;
  let o = i / (p.inner * p.lin);
  Y[(o * p.lout + l + p.offset) * p.inner + inner] = X[i];`,
});

function axisOf(x: Tensor, axis: number): number {
  const a = axis < 0 ? x.rank + axis : axis;
  if (a < 0 || a >= x.rank) throw new Error(`axis ${axis} out of range for rank ${x.rank}`);
  return a;
}

function window(x: Tensor, axis: number, shift: number, lout: number): Tensor {
  if (x.dtype === 'f16') throw new Error('narrow/pad: f16 is not supported');
  const rt = x.rt;
  const inner = numel(x.shape.slice(axis + 1));
  const shape = [...x.shape];
  shape[axis] = lout;
  const y = Tensor.empty(shape, x.dtype, rt);
  rt.dispatch({
    shader: 'window',
    code: WINDOW_CODE,
    params: { n: y.size, lout, lin: x.shape[axis], inner: Math.max(1, inner), shift },
    bindings: [x.binding(), y.binding()],
    workgroups: launch1d(rt, y.size),
  });
  return y;
}

/** x[..., start:start+length, ...] along `axis`. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = axisOf(x, axis);
  if (start < 0 || length < 0 || start + length > x.shape[a]) {
    throw new Error(`narrow: [${start}, ${start + length}) is outside dim ${a} of size ${x.shape[a]}`);
  }
  const y = window(x, a, start, length);
  return record('narrow', y, [x], (g) => [padZeros(g, a, start, x.shape[a] - start - length)]);
}

/** Pads `axis` with `before` and `after` zeros. */
export function padZeros(x: Tensor, axis: number, before: number, after: number): Tensor {
  const a = axisOf(x, axis);
  const y = window(x, a, -before, x.shape[a] + before + after);
  return record('padZeros', y, [x], (g) => [narrow(g, a, before, x.shape[a])]);
}

/** Joins tensors along `axis`. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat: nothing to join');
  const first = xs[0];
  const a = axisOf(first, axis);
  for (const x of xs) {
    if (x.rank !== first.rank || x.dtype !== first.dtype || x.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`concat: ${shapeStr(x)} does not match ${shapeStr(first)} off axis ${a}`);
    }
  }
  const rt = first.rt;
  const lout = xs.reduce((s, x) => s + x.shape[a], 0);
  const shape = [...first.shape];
  shape[a] = lout;
  const y = Tensor.empty(shape, first.dtype, rt);
  const inner = Math.max(1, numel(first.shape.slice(a + 1)));
  let offset = 0;
  const offsets: number[] = [];
  for (const x of xs) {
    offsets.push(offset);
    if (x.size > 0) {
      rt.dispatch({
        shader: 'place',
        code: PLACE_CODE,
        params: { n: x.size, lin: x.shape[a], lout, inner, offset },
        bindings: [x.binding(), y.binding()],
        workgroups: launch1d(rt, x.size),
      });
    }
    offset += x.shape[a];
  }
  return record('concat', y, xs, (g) => xs.map((x, k) => narrow(g, a, offsets[k], x.shape[a])));
}
