// The autograd tape. Ops record a GradNode on their output only when gradients are wanted (some input has
// `requiresGrad` and recording is on), so inference pays nothing. `backward` walks the nodes in reverse
// topological order, summing gradients per tensor and checking their shapes. It sits in the core beside
// tensor.ts, below the op library: the one kernel it needs itself (summing two gradients) it dispatches directly.

import { Tensor, tidy, shapeStr, type GradNode } from './tensor.js';

let recording = true;

/** Runs `fn` with gradient recording off (inference, optimiser steps, backward passes). */
export function noGrad<T>(fn: () => T): T {
  const prev = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = prev;
  }
}

export function isRecording(): boolean {
  return recording;
}

/**
 * Attaches a backward rule to `out` if any input needs a gradient. `saved` are extra tensors the rule reads
 * (inputs are kept alive anyway; the rule may read `out` itself through its closure). Returns `out`.
 */
export function record(
  name: string,
  out: Tensor,
  inputs: Tensor[],
  backward: GradNode['backward'],
  saved: Tensor[] = [],
): Tensor {
  if (!recording || !inputs.some((t) => t.requiresGrad)) return out;
  // the output lives as long as its node, so it is never "saved" (that would be a reference cycle)
  const kept = saved.filter((t) => t !== out);
  for (const t of inputs) t.retain();
  for (const t of kept) t.retain();
  out.requiresGrad = true;
  out.node = { name, inputs, backward, saved: kept };
  return out;
}

/** Marks a tensor as a trainable leaf. */
export function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  return t;
}

/**
 * Accumulates d(root)/d(leaf) into `leaf.grad` for every leaf with `requiresGrad` reachable from `root`.
 * `gradRoot` defaults to ones (root must then have one element). Intermediate gradients are freed.
 */
export function backward(root: Tensor, gradRoot?: Tensor): void {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const visit = (t: Tensor): void => {
    // iterative DFS: deep graphs (LSTM steps, many layers) would overflow the JS stack when recursive
    const stack: [Tensor, number][] = [[t, 0]];
    seen.add(t);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [u, i] = top;
      const inputs = u.node?.inputs ?? [];
      if (i < inputs.length) {
        top[1]++;
        const v = inputs[i];
        if (v.requiresGrad && !seen.has(v)) {
          seen.add(v);
          stack.push([v, 0]);
        }
      } else {
        stack.pop();
        order.push(u);
      }
    }
  };
  visit(root);

  // Every gradient in `grads` is held by one plain reference (retain) and no owner: `hold` converts a freshly
  // made tensor to that form, and each is `release`d once consumed.
  const hold = (t: Tensor): Tensor => {
    t.retain();
    t.dispose();
    return t;
  };
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    if (gradRoot) grads.set(root, gradRoot.retain());
    else {
      if (root.size !== 1) throw new Error(`backward: root has shape ${shapeStr(root)}; pass its gradient`);
      grads.set(root, hold(Tensor.from([1], root.shape, root.dtype, root.rt)));
    }
    const accumulate = (x: Tensor, g: Tensor): void => {
      const prev = grads.get(x);
      if (!prev) {
        grads.set(x, g);
        return;
      }
      grads.set(x, hold(tidy(() => addInto(prev, g))));
      prev.release();
      g.release();
    };
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.node) {
        // a leaf: its .grad holds one plain reference too
        if (t.grad) {
          const sum = hold(tidy(() => addInto(t.grad!, g)));
          t.grad.release();
          g.release();
          t.grad = sum;
        } else t.grad = g;
        continue;
      }
      const node = t.node;
      const inputGrads = tidy(() => node.backward(g));
      inputGrads.forEach((gi) => gi && hold(gi));
      g.release();
      node.inputs.forEach((x, i) => {
        const gi = inputGrads[i];
        if (!gi) return;
        if (!x.requiresGrad) {
          gi.release();
          return;
        }
        if (gi.shape.length !== x.shape.length || gi.shape.some((d, j) => d !== x.shape[j])) {
          throw new Error(
            `backward of ${node.name}: gradient ${shapeStr(gi)} for input ${i} of shape ${shapeStr(x)}`,
          );
        }
        accumulate(x, gi);
      });
    }
    for (const g of grads.values()) g.release();
  });
}

/** Drops a leaf's gradient. */
export function zeroGrad(t: Tensor): void {
  t.grad?.release();
  t.grad = null;
}

/** a + b for two f32 gradients of one shape (the shapes were checked by the caller). */
function addInto(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new Error(`backward: gradients are f32, got ${a.dtype} and ${b.dtype}`);
  const rt = a.rt;
  const c = Tensor.empty(a.shape, 'f32', rt);
  rt.dispatch({
    shader: 'grad_accumulate',
    params: { n: c.size },
    bindings: [a.binding(), b.binding(), c.binding()],
    workgroups: rt.grid(Math.ceil(c.size / 256)),
  });
  return c;
}
