// Reductions over the last axis — sum, mean, max (with the index it came from), argmax — and sumAll over a
// whole tensor, all in shaders/reduce.wgsl (one workgroup per row). Backward in reduce_backward.wgsl.

import { Tensor, shapeStr, checkF32, type Shape } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import { record } from '../autograd.js';
import { launch1d } from './elementwise.js';

export interface ReduceOptions {
  /** Keep the reduced axis with size 1 (default: drop it). */
  keepDim?: boolean;
}

const MODE = { sum: 0, mean: 1, max: 2 } as const;

function lastAxis(name: string, x: Tensor, nonEmpty: boolean): number {
  checkF32(name, x);
  if (x.rank < 1) throw new Error(`${name}: input must have rank ≥ 1`);
  const C = x.shape[x.rank - 1];
  if (nonEmpty && C < 1) throw new Error(`${name}: last axis of ${shapeStr(x)} is empty`);
  return C;
}

function outShape(x: Tensor, keepDim: boolean): Shape {
  return keepDim ? [...x.shape.slice(0, -1), 1] : x.shape.slice(0, -1);
}

/** One dispatch of reduce.wgsl over `rows` rows of C elements of x, bounded by n. Returns [values, indices]. */
function reduceRows(rt: Runtime, x: Tensor, rows: number, C: number, n: number, mode: number, shape: Shape): [Tensor, Tensor | null] {
  const y = Tensor.empty(shape, 'f32', rt);
  // sum and mean never write I, but the binding must exist
  const idx = Tensor.empty(mode === MODE.max ? shape : [1], 'i32', rt);
  rt.dispatch({
    shader: 'reduce',
    params: { rows, C, n, mode },
    bindings: [x.binding(), y.binding(), idx.binding()],
    workgroups: rt.grid(rows),
  });
  if (mode === MODE.max) return [y, idx];
  idx.dispose();
  return [y, null];
}

/** dx for sum / mean / sumAll (mode 0: dy[row]·scale) or max (mode 1: dy[row] at idx[row]). */
function reduceBackward(rt: Runtime, x: Tensor, C: number, dy: Tensor, idx: Tensor | null, scale: number): Tensor {
  const dx = Tensor.empty(x.shape, 'f32', rt);
  rt.dispatch({
    shader: 'reduce_backward',
    params: { n: x.size, C: Math.max(1, C), mode: idx ? 1 : 0, scale },
    bindings: [dy.binding(), (idx ?? dy).binding(), dx.binding()],
    workgroups: launch1d(rt, x.size),
  });
  return dx;
}

function sumOrMean(name: 'sum' | 'mean', x: Tensor, keepDim: boolean): Tensor {
  const C = lastAxis(name, x, name === 'mean');
  const rt = x.rt;
  const shape = outShape(x, keepDim);
  const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1); // not x.size / C: C may be 0 for sum
  const [y] = reduceRows(rt, x, rows, C, x.size, MODE[name], shape);
  return record(name, y, [x], (dy) => [reduceBackward(rt, x, C, dy, null, name === 'mean' ? 1 / C : 1)]);
}

/** Σ over the last axis: [..., C] → [...] (or [..., 1] with keepDim). */
export function sum(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return sumOrMean('sum', x, opts.keepDim ?? false);
}

/** Mean over the last axis: [..., C] → [...] (or [..., 1] with keepDim). */
export function mean(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return sumOrMean('mean', x, opts.keepDim ?? false);
}

/** Max over the last axis; its gradient goes to the first index holding the max (as torch.max(x, -1)). */
export function max(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const C = lastAxis('max', x, true);
  const rt = x.rt;
  const shape = outShape(x, opts.keepDim ?? false);
  const [y, idx] = reduceRows(rt, x, x.size / C, C, x.size, MODE.max, shape);
  record('max', y, [x], (dy) => [reduceBackward(rt, x, C, dy, idx, 1)], [idx!]);
  idx!.dispose(); // the graph holds its own reference
  return y;
}

/** Index (i32) of the first max over the last axis, as torch.argmax(x, -1). Not differentiable. */
export function argmax(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const C = lastAxis('argmax', x, true);
  const shape = outShape(x, opts.keepDim ?? false);
  const [y, idx] = reduceRows(x.rt, x, x.size / C, C, x.size, MODE.max, shape);
  y.dispose();
  return idx!;
}

/** Σ of every element → [1], on the GPU in two passes (≤ 1024 partial sums, then one workgroup). */
export function sumAll(x: Tensor): Tensor {
  if (x.dtype !== 'f32') throw new Error(`sumAll: expects f32 input, got ${x.dtype}`);
  const rt = x.rt;
  const n = x.size;
  // each of ≤ 1024 workgroups adds a contiguous chunk of ≥ 1024 elements
  const chunks = Math.max(1, Math.min(1024, Math.ceil(n / 1024)));
  const C = Math.max(1, Math.ceil(n / chunks));
  let y: Tensor;
  if (chunks === 1) {
    [y] = reduceRows(rt, x, 1, C, n, MODE.sum, [1]);
  } else {
    const [partial] = reduceRows(rt, x, chunks, C, n, MODE.sum, [chunks]);
    [y] = reduceRows(rt, partial, 1, chunks, chunks, MODE.sum, [1]);
    partial.dispose();
  }
  return record('sumAll', y, [x], (dy) => [reduceBackward(rt, x, n, dy, null, 1)]);
}
