// Norm, softmax, reduction and loss kernels against PyTorch (tools/fixtures/kernels_norm.py).
// Tolerances: forward rtol 1e-5 / atol 1e-6, gradients rtol 1e-4 / atol 1e-5, except where a case says why.

import assert from 'node:assert/strict';
import { Fixture, assertClose, checkGradCase, gpu } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { Tensor, tidy } from '../../src/tensor.js';
import { backward } from '../../src/autograd.js';

const FWD = { rtol: 1e-5, atol: 1e-6 };
const GRAD = { rtol: 1e-4, atol: 1e-5 };
const ROWS = ['r37', 'r1000', 'r2049', 'b3x5'];

describe('kernels: norms, softmax, reductions, cross-entropy', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/norm.safetensors');
  });

  describe('layerNorm', () => {
    for (const name of [...ROWS, 'small', 'tall']) {
      it(`${name}: forward and x/weight/bias gradients`, () =>
        checkGradCase(fx, `ln.${name}`, (x, w, b) => ops.layerNorm(x, w, b), FWD, GRAD));
    }
    it('eps = 1e-3 is honoured', () => checkGradCase(fx, 'ln.eps', (x, w, b) => ops.layerNorm(x, w, b, 1e-3), FWD, GRAD));
    it('without weight and bias', () => checkGradCase(fx, 'ln.plain', (x) => ops.layerNorm(x), FWD, GRAD));
    it('with weight only', () => checkGradCase(fx, 'ln.weight_only', (x, w) => ops.layerNorm(x, w), FWD, GRAD));
    it('rejects a weight of the wrong size', async () => {
      const x = Tensor.zeros([2, 5]);
      const w = Tensor.zeros([4]);
      assert.throws(() => ops.layerNorm(x, w), /does not match the last axis 5/);
      x.dispose();
      w.dispose();
    });
  });

  describe('rmsNorm (T5LayerNorm)', () => {
    for (const name of [...ROWS, 'small', 'tall']) {
      it(`${name}: forward and x/weight gradients`, () =>
        checkGradCase(fx, `rms.${name}`, (x, w) => ops.rmsNorm(x, w), FWD, GRAD));
    }
  });

  describe('softmax / logSoftmax', () => {
    for (const name of [...ROWS, 'extreme']) {
      it(`softmax ${name}`, () => checkGradCase(fx, `softmax.${name}`, ops.softmax, FWD, GRAD));
      it(`logSoftmax ${name}`, () => checkGradCase(fx, `log_softmax.${name}`, ops.logSoftmax, FWD, GRAD));
    }
  });

  describe('sum / mean / max / argmax over the last axis', () => {
    for (const name of ROWS) {
      it(`sum ${name}`, () => checkGradCase(fx, `sum.${name}`, (x) => ops.sum(x), FWD, GRAD));
      it(`mean ${name}`, () => checkGradCase(fx, `mean.${name}`, (x) => ops.mean(x), FWD, GRAD));
      it(`max ${name}`, () => checkGradCase(fx, `max.${name}`, (x) => ops.max(x), FWD, GRAD));
      it(`argmax ${name}`, () => checkArgmax(fx, `argmax.${name}`));
    }
    it('max with ties sends the gradient to the first max', () => checkGradCase(fx, 'max.ties', (x) => ops.max(x), FWD, GRAD));
    it('argmax with ties returns the first max', () => checkArgmax(fx, 'argmax.ties'));
    it('argmax of a row of −inf is 0', () => checkArgmax(fx, 'argmax.neg_inf'));
    it('keepDim keeps a trailing 1', async () => {
      const x = await fx.tensor('sum.b3x5.x0');
      for (const y of [ops.sum(x, { keepDim: true }), ops.mean(x, { keepDim: true }), ops.max(x, { keepDim: true }),
        ops.argmax(x, { keepDim: true })]) {
        assert.deepEqual([...y.shape], [3, 5, 1]);
        y.dispose();
      }
      const s = ops.sum(x, { keepDim: true });
      assertClose(await s.toArray(), await fx.f32('sum.b3x5.y'), 'sum keepDim', FWD);
      for (const t of [x, s]) t.dispose();
    });
  });

  describe('sumAll', () => {
    // atol 1e-5: thousands of O(1) terms that cancel to a small total; f32 rounding of the terms is ~1e-6 each
    for (const name of ['s1', 's1000', 's1025', 's5000', 'shape']) {
      it(name, () => checkGradCase(fx, `sum_all.${name}`, ops.sumAll, { rtol: 1e-5, atol: 1e-5 }, GRAD));
    }
    it('3,000,001 elements, on the GPU (checked against a float64 sum)', async () => {
      const n = 3_000_001;
      const data = new Float32Array(n);
      let expected = 0;
      for (let i = 0; i < n; i++) {
        data[i] = ((i * 7919) % 1009) / 1009 - 0.3;
        expected += data[i];
      }
      const x = Tensor.from(data, [n]);
      x.requiresGrad = true;
      const y = ops.sumAll(x);
      assert.deepEqual([...y.shape], [1]);
      // 3·10⁶ summed in f32 as 1024 chunks, ~46 per invocation, then trees: relative error stays near 1e-6
      assertClose(await y.toArray(), [expected], 'sumAll big', { rtol: 1e-5, atol: 0 });
      backward(y);
      const g = await x.grad!.toArray();
      assert.ok(g.length === n && g.every((v) => v === 1), 'sumAll big: gradient is all ones');
      for (const t of [x, y]) t.dispose();
    });
  });

  describe('crossEntropy', () => {
    const cases: [string, number][] = [['pad', 2048], ['default', -100], ['none_ignored', -100], ['extreme', 2048]];
    for (const [name, ignore] of cases) {
      it(`${name} (ignoreIndex ${ignore}): loss and logits gradient`, () =>
        checkGradCase(fx, `ce.${name}`, (logits, labels) => ops.crossEntropy(logits, labels, ignore), FWD, GRAD));
    }
    it('all rows ignored: loss 0 and gradient 0, not NaN', async () => {
      const logits = await fx.tensor('ce.all_ignored.x0', true);
      const labels = await fx.tensor('ce.all_ignored.x1');
      const loss = ops.crossEntropy(logits, labels, 2048);
      assert.deepEqual(await loss.toArray(), [0]);
      backward(loss);
      const g = await logits.grad!.toArray();
      assert.ok(g.every((v) => v === 0), 'gradient is all zeros');
      for (const t of [logits, labels, loss]) t.dispose();
    });
    it('rejects labels of the wrong shape or dtype', async () => {
      const logits = Tensor.zeros([3, 7]);
      const bad = Tensor.zeros([4], 'i32');
      const f = Tensor.zeros([3]);
      assert.throws(() => ops.crossEntropy(logits, bad), /labels \[4\]/);
      assert.throws(() => ops.crossEntropy(logits, f), /must be i32/);
      for (const t of [logits, bad, f]) t.dispose();
    });
  });
});

describe('kernels: addLayerNorm (the residual add fused into the next norm)', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/add_norm.safetensors');
  });
  for (const name of ['r1000', 'b2x1x1024']) {
    it(`${name}: h = x + r and LayerNorm(h) in one dispatch`, async () => {
      const rt = await gpu();
      const [x, r, w, b] = await Promise.all(['x', 'r', 'w', 'b'].map((n) => fx.tensor(`add_ln.${name}.${n}`)));
      const before = rt.stats.dispatches;
      const [h, y] = ops.addLayerNorm(x, r, w, b);
      assert.equal(rt.stats.dispatches - before, 1);
      assertClose(await h.read(), await (await fx.tensor(`add_ln.${name}.h`)).read(), 'h', FWD);
      assertClose(await y.read(), await (await fx.tensor(`add_ln.${name}.y`)).read(), 'y', FWD);
    });
  }
  it('while a gradient is recorded: add then layerNorm, with the same values and a backward', async () => {
    const [x, r, w, b] = await Promise.all(['x', 'r', 'w', 'b'].map((n) => fx.tensor('add_ln.r1000.' + n, n === 'x')));
    const [h, y] = ops.addLayerNorm(x, r, w, b);
    assert.ok(h.requiresGrad && y.requiresGrad);
    assertClose(await y.read(), await (await fx.tensor('add_ln.r1000.y')).read(), 'y', FWD);
    backward(ops.sumAll(y));
    assert.ok(x.grad, 'x has a gradient');
  });
  it('rejects operands of different shapes', async () => {
    const x = Tensor.zeros([2, 8]);
    const w = Tensor.zeros([8]);
    assert.throws(() => ops.addLayerNorm(x, Tensor.zeros([1, 8]), w, w), /shapes must be equal/);
  });
});

describe('kernels: norms, softmax, reductions, cross-entropy — grid and lifetimes', () => {
  it('more than 65535 rows (2-D workgroup grid): softmax and layerNorm match a float64 reference', async () => {
    const rt = await gpu();
    const rows = 70001;
    const C = 3;
    const data = Float32Array.from({ length: rows * C }, (_, i) => Math.sin(i * 0.37) * 4);
    const x = Tensor.from(data, [rows, C]);
    const sm = ops.softmax(x);
    const ln = ops.layerNorm(x);
    const expSm: number[] = [];
    const expLn: number[] = [];
    for (let r = 0; r < rows; r++) {
      const v = Array.from(data.subarray(r * C, r * C + C));
      const m = Math.max(...v);
      const s = v.reduce((a, b) => a + Math.exp(b - m), 0);
      const mu = v.reduce((a, b) => a + b, 0) / C;
      const rstd = 1 / Math.sqrt(v.reduce((a, b) => a + (b - mu) ** 2, 0) / C + 1e-5);
      for (const b of v) { expSm.push(Math.exp(b - m) / s); expLn.push((b - mu) * rstd); }
    }
    assertClose(await sm.toArray(), expSm, 'softmax, 70001 rows', FWD);
    // 3-wide rows of close values have a large rstd, which scales up the f32 rounding of x − mean: the float64
    // reference differs by up to ~2e-6 there (PyTorch's f32 fixtures above are held to 1e-6)
    assertClose(await ln.toArray(), expLn, 'layerNorm, 70001 rows', { rtol: 1e-5, atol: 1e-5 });
    for (const t of [x, sm, ln]) t.dispose();
    await rt.sync();
  });

  it('forward + backward + dispose leaves no live buffers behind (saved mean/rstd/lse/indices are freed)', async () => {
    const rt = await gpu();
    await rt.sync();
    const before = rt.stats.liveBuffers;
    const x = Tensor.from(Float32Array.from({ length: 6 * 50 }, (_, i) => Math.cos(i)), [6, 50]);
    const w = Tensor.from(new Float32Array(50).fill(1.5), [50]);
    const b = Tensor.from(new Float32Array(50).fill(0.1), [50]);
    const labels = Tensor.from([1, 2, 3, -100, 4, 5], [6], 'i32');
    for (const t of [x, w, b]) t.requiresGrad = true;
    // tidy frees the intermediates' owner references; the graph keeps them until the losses go
    const losses = tidy(() => [
      ops.sumAll(ops.layerNorm(x, w, b)), ops.sumAll(ops.rmsNorm(x, w)), ops.sumAll(ops.softmax(x)),
      ops.sumAll(ops.logSoftmax(x)), ops.sumAll(ops.max(x)), ops.sumAll(ops.mean(x)), ops.sumAll(ops.sum(x)),
      ops.crossEntropy(x, labels),
    ]);
    for (const l of losses) backward(l);
    for (const t of [...losses, x, w, b, labels]) t.dispose();
    tidy(() => { ops.argmax(Tensor.zeros([2, 3])); });
    await rt.sync();
    assert.equal(rt.stats.liveBuffers - before, 0, 'live buffers left behind');
  });
});

async function checkArgmax(fx: Fixture, name: string): Promise<void> {
  const x = await fx.tensor(`${name}.x`);
  const y = ops.argmax(x);
  assert.equal(y.dtype, 'i32');
  assert.deepEqual([...y.shape], fx.shape(`${name}.y`));
  assert.deepEqual(Array.from(await y.read()), Array.from(await fx.i32(`${name}.y`)));
  x.dispose();
  y.dispose();
}
