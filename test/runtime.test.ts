// The runtime's promises: many kernels per submit, pipelines compiled once, no growth across repeated work,
// autograd that costs nothing when off.

import assert from 'node:assert/strict';
import { gpu } from './helpers.js';
import { Tensor, tidy, keep } from '../src/tensor.js';
import type { Runtime } from '../src/runtime.js';
import * as ops from '../src/ops.js';
import { backward, noGrad } from '../src/autograd.js';

describe('runtime', () => {
  let rt: Runtime;
  before(async () => {
    rt = await gpu();
  });

  it('takes uniforms by the names of the shader’s struct P, typed by its fields, and refuses missing or unknown ones', async () => {
    const code = `
struct P { a: f32, n: u32, s: i32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(1)
fn main() { Y[0] = p.a; Y[1] = f32(p.n); Y[2] = f32(p.s); }`;
    const y = Tensor.zeros([3]);
    const run = (params: Record<string, number>): void =>
      rt.dispatch({ shader: 'test_named_params', code, params, bindings: [y.binding()], workgroups: [1] });
    run({ s: -7, n: 3, a: 0.25 }); // any order; the padding field is not given
    assert.deepEqual(await y.toArray(), [0.25, 3, -7]);
    assert.throws(() => run({ a: 1, n: 3 }), /uniform "s" is missing/);
    assert.throws(() => run({ a: 1, n: 3, s: 0, b: 2 }), /no uniform named "b"/);
    assert.throws(() => run({ a: 1, n: -1, s: 0 }), /uniform "n" is u32, got -1/);
    assert.throws(() => run({ a: 1, n: 3, s: 0.5 }), /uniform "s" is i32, got 0.5/);
    y.dispose();
  });

  it('records a 100-op chain into one encoder and submits it once', async () => {
    const x = Tensor.from([1, 2, 3, 4], [4]);
    await rt.sync();
    const submitsBefore = rt.stats.submits;
    const dispatchesBefore = rt.stats.dispatches;
    const y = tidy(() => {
      let t = x;
      for (let i = 0; i < 100; i++) t = ops.affine(t, 1, 1); // t + 1
      return t;
    });
    assert.equal(rt.stats.submits, submitsBefore, 'nothing may be submitted while recording');
    assert.equal(rt.stats.dispatches - dispatchesBefore, 100);
    assert.deepEqual(await y.toArray(), [101, 102, 103, 104]);
    assert.equal(rt.stats.submits - submitsBefore, 1, 'the chain and its readback go in one submit');
    x.dispose();
    y.dispose();
  });

  it('running the same work twice reuses the first run’s buffers: the pool does not grow', async () => {
    const w = keep(Tensor.from(Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i)), [64, 32]));
    const run = async (): Promise<number[]> => {
      const out = tidy(() => {
        const x = Tensor.from(Array.from({ length: 8 * 32 }, (_, i) => Math.cos(i)), [8, 32]);
        const h = ops.linear(x, w, undefined, 'gelu');
        return ops.sumTo(ops.mul(h, h), [1, 64]);
      });
      const v = await out.toArray();
      out.dispose();
      return v;
    };
    const first = await run();
    const live = rt.stats.liveBuffers;
    const created = rt.stats.buffersCreated;
    for (let i = 0; i < 5; i++) assert.deepEqual(await run(), first);
    assert.equal(rt.stats.liveBuffers, live, 'live buffers after each run');
    assert.equal(rt.stats.buffersCreated, created, 'no new buffers after the first run');
    w.dispose();
  });

  it('tidy frees intermediates, keeps what is returned, and dispose is idempotent', async () => {
    const live = rt.stats.liveBuffers;
    const y = tidy(() => {
      const a = Tensor.from([1, 2], [2]);
      const b = ops.scale(a, 2);
      return ops.add(a, b);
    });
    assert.equal(rt.stats.liveBuffers, live + 1);
    assert.deepEqual(await y.toArray(), [3, 6]);
    y.dispose();
    y.dispose();
    assert.equal(rt.stats.liveBuffers, live);
    assert.throws(() => y.buffer, /after dispose/);
  });

  it('records nothing when no input wants a gradient, and backward frees the graph’s extra buffers', async () => {
    const x = Tensor.from([0.5, -1, 2], [3]);
    const y = ops.gelu(x);
    assert.equal(y.node, null);
    assert.equal(y.requiresGrad, false);
    y.dispose();

    const live = rt.stats.liveBuffers;
    const p = Tensor.from([0.5, -1, 2], [3]);
    p.requiresGrad = true;
    const loss = tidy(() => ops.sumTo(ops.square(ops.gelu(p)), [1]));
    assert.ok(loss.node, 'a node is recorded when an input wants a gradient');
    backward(loss);
    const g = await p.grad!.toArray();
    assert.equal(g.length, 3);
    loss.dispose();
    p.dispose();
    assert.equal(rt.stats.liveBuffers, live, 'graph, gradients and parameters are all freed');
    noGrad(() => assert.equal(ops.gelu(x).node, null));
    x.dispose();
  });

  it('uploads made while work is recorded go through staging, submitted every 64 MiB so copies cannot pile up', async () => {
    const chunk = 8 << 20;
    const t = Tensor.zeros([(10 * chunk) / 4]); // the clear opens the encoder: every write below is staged
    const submits = rt.stats.submits;
    for (let i = 0; i < 10; i++) t.upload(new Float32Array(chunk / 4).fill(i + 1), (i * chunk) / 4);
    // 80 MiB staged: one submit at 64 MiB, while the rest waits for the next
    assert.equal(rt.stats.submits - submits, 1);
    const back = await t.read();
    for (let i = 0; i < 10; i++) assert.equal(back[(i * chunk) / 4 + 7], i + 1, `chunk ${i}`);
    t.dispose();
  });

  it('Tensor.exact (weights) takes a buffer of exactly its size, never pooled', () => {
    const pooledT = Tensor.empty([1000]);
    assert.equal(pooledT.buffer.size, 4096); // the pool's size class
    // measured after the pooled tensor took its buffer: that may have come out of the pool
    const pooled = rt.stats.pooledBytes;
    const t = Tensor.exact([1000]);
    assert.equal(t.buffer.size, 4000);
    t.dispose();
    assert.equal(rt.stats.pooledBytes, pooled, 'an odd-sized buffer is destroyed, not pooled');
    pooledT.dispose();
  });

  it('compiles each pipeline once', () => {
    const a = rt.pipeline('matmul');
    const b = rt.pipeline('matmul');
    assert.equal(a, b);
  });
});
