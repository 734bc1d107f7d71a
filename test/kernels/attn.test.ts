// Attention (+ KV cache), embeddings and EnCodec's RVQ against PyTorch / transformers
// (tools/fixtures/kernels_attn.py). Tolerances: forward rtol 1e-4 / atol 1e-5, gradients the same; codes exact.

import assert from 'node:assert/strict';
import { Fixture, assertClose, checkGradCase, gpu } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';
import { backward } from '../../src/autograd.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };

describe('kernels: attention, embeddings, RVQ', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/attn.safetensors');
  });

  // inputs: q, k, v, then the bias where the case has one, then the mask where it has one
  const cases: Record<string, (...xs: Tensor[]) => Tensor> = {
    plain_d8: (q, k, v) => ops.attention(q, k, v),
    plain_d64: (q, k, v) => ops.attention(q, k, v),
    causal_d8: (q, k, v) => ops.attention(q, k, v, { causal: true }),
    causal_d64: (q, k, v) => ops.attention(q, k, v, { causal: true }),
    decode1_d64: (q, k, v) => ops.attention(q, k, v, { causal: true }),
    decode3_d8: (q, k, v) => ops.attention(q, k, v, { causal: true }),
    decode3_d64: (q, k, v) => ops.attention(q, k, v, { causal: true }),
    mask_f32: (q, k, v, m) => ops.attention(q, k, v, { keyMask: m }),
    mask_i32_d64: (q, k, v, m) => ops.attention(q, k, v, { keyMask: m }),
    mask_causal: (q, k, v, m) => ops.attention(q, k, v, { causal: true, keyMask: m }),
    bias_shared: (q, k, v, b, m) => ops.attention(q, k, v, { bias: b, keyMask: m, scale: 1 }),
    bias_batched_d64: (q, k, v, b) => ops.attention(q, k, v, { bias: b, scale: 1 }),
    cross_d64: (q, k, v, m) => ops.attention(q, k, v, { keyMask: m }),
  };
  for (const [name, fn] of Object.entries(cases)) {
    it(`attention ${name}, forward and backward`, () => checkGradCase(fx, `attn.${name}`, fn, TOL, TOL));
  }

  it('attention: a fully masked batch row gives zeros, not NaN', async () => {
    const [q, k, v, m] = await Promise.all(['x0', 'x1', 'x2', 'x3'].map((n) => fx.tensor(`attn.mask_f32.${n}`)));
    const y = await ops.attention(q, k, v, { keyMask: m }).toArray();
    const [, H, Tq, D] = q.shape;
    const row1 = y.slice(H * Tq * D, 2 * H * Tq * D);
    assert.ok(row1.every((x) => x === 0), 'batch row 1 is not all zeros');
    for (const t of [q, k, v, m]) t.dispose();
  });

  /**
   * Decodes causal_d64 through a KV cache in chunks of `steps` positions, each chunk entering as one q/k/v
   * projection [B, n, 3·H·D] (`appendQKV`, as self-attention's fused matmul gives it); the result must equal full
   * attention, and the queries handed back must be q's.
   */
  async function decodeWithCache(steps: number[], dtype: 'f32' | 'f16' = 'f32'): Promise<void> {
    const [q, k, v] = await Promise.all(['x0', 'x1', 'x2'].map((n) => fx.tensor(`attn.causal_d64.${n}`)));
    const [B, H, T, D] = q.shape;
    const cache = new ops.KVCache(B, H, T + 5, D, undefined, dtype);
    const outs: Tensor[] = [];
    let t = 0;
    const merged = (x: Tensor, n: number): Tensor => ops.reshape(ops.permute(ops.narrow(x, 2, t, n), [0, 2, 1, 3]), [B, n, H * D]);
    const queries: Tensor[] = [];
    for (const n of steps) {
      queries.push(cache.appendQKV(ops.concat([merged(q, n), merged(k, n), merged(v, n)], 2)));
      outs.push(cache.attend(queries[queries.length - 1], { causal: true }));
      t += n;
    }
    assertClose(await ops.concat(queries, 2).toArray(), await q.toArray(), 'appendQKV\'s queries', { rtol: 0, atol: 0 });
    assert.equal(t, T);
    assert.equal(cache.length, T);
    // f16 keys/values round to 11 significant bits (relative 2^-11 = 4.9e-4 each); the outputs are convex
    // combinations of the values with probabilities from the rounded scores
    const f16 = dtype === 'f16';
    assert.equal(cache.dtype, dtype);
    assertClose(await ops.concat(outs, 2).toArray(), await fx.f32('attn.causal_d64.y'), 'cached decoding', f16 ? { rtol: 4e-3, atol: 4e-3 } : TOL);
    const exact = f16 ? { rtol: 2 ** -11, atol: 1e-7 } : { rtol: 0, atol: 0 };
    assertClose(await cache.keys().toArray(), await k.toArray(), 'cache.keys()', exact);
    assertClose(await cache.values().toArray(), await v.toArray(), 'cache.values()', exact);
    cache.dispose();
    for (const x of [q, k, v, ...outs, ...queries]) x.dispose();
  }
  it('KV cache: decoding one position at a time equals full causal attention', () =>
    decodeWithCache(new Array<number>(40).fill(1)));
  it('KV cache: a prefill, single steps and a chunk of 3 equal full causal attention', () =>
    decodeWithCache([17, 1, 1, 3, 1, ...new Array<number>(17).fill(1)]));
  it('KV cache in f16 (shader-f16 adapters): a prefill and single steps match full f32 attention to f16 rounding', async function () {
    if (!(await gpu()).ctx.features.f16) this.skip();
    await decodeWithCache([17, 1, 1, 3, 1, ...new Array<number>(17).fill(1)], 'f16');
  });
  it('KV cache in f16: attention over it records no gradient (refused when one is wanted)', async function () {
    if (!(await gpu()).ctx.features.f16) this.skip();
    const cache = new ops.KVCache(1, 1, 4, 8, undefined, 'f16');
    const q = Tensor.zeros([1, 1, 1, 8]);
    q.requiresGrad = true;
    cache.appendQKV(Tensor.zeros([1, 1, 3 * 8]));
    assert.throws(() => cache.attend(q), /gradients need f32/);
    cache.dispose();
  });
  it('KV cache: refuses to overflow', () => {
    const cache = new ops.KVCache(1, 1, 2, 4);
    const qkv = Tensor.zeros([1, 3, 3 * 4]);
    assert.throws(() => cache.appendQKV(qkv), /exceed maxT/);
    cache.dispose();
    qkv.dispose();
  });

  it('embedding forward and backward (repeated ids)', () =>
    checkGradCase(fx, 'emb.single', (t, ids) => ops.embedding(t, ids), TOL, TOL));
  it('embeddingSum forward and backward (repeated ids)', () =>
    checkGradCase(fx, 'emb.sum', (t, ids) => ops.embeddingSum(t, ids), TOL, TOL));
  it('embeddingSum with more table rows than the scan has threads', () =>
    checkGradCase(fx, 'emb.sum_wide', (t, ids) => ops.embeddingSum(t, ids), TOL, TOL));

  it('embedding: out-of-range ids embed to zeros and get no gradient', async () => {
    const table = Tensor.from([1, 2, 3, 4, 5, 6], [3, 2]);
    table.requiresGrad = true;
    const ids = Tensor.from([2, -1, 3, 0, 1000, 2], [6], 'i32');
    const y = ops.embedding(table, ids);
    assert.deepEqual(await y.toArray(), [5, 6, 0, 0, 0, 0, 1, 2, 0, 0, 5, 6]);
    backward(y, Tensor.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [6, 2]));
    assert.deepEqual(await table.grad!.toArray(), [7, 8, 0, 0, 12, 14]);
    for (const t of [table, ids, y]) t.dispose();
  });

  it('embeddingSum backward is deterministic (bitwise equal across runs)', async () => {
    const runs: number[][] = [];
    for (let r = 0; r < 2; r++) {
      const t = await fx.tensor('emb.sum_wide.x0', true);
      const ids = await fx.tensor('emb.sum_wide.x1');
      const y = ops.embeddingSum(t, ids);
      backward(y, await fx.tensor('emb.sum_wide.gy'));
      runs.push(await t.grad!.toArray());
      for (const x of [t, ids, y]) x.dispose();
    }
    assert.deepEqual(runs[0], runs[1]);
  });

  it('rvqEncode gives transformers\' EncodecResidualVectorQuantizer codes exactly', async () => {
    const x = await fx.tensor('rvq.x');
    const cb = await fx.tensor('rvq.codebooks');
    assert.deepEqual(Array.from(await ops.rvqEncode(x, cb).read()), Array.from(await fx.i32('rvq.codes')));
    const two = ops.rvqEncode(x, cb, 2);
    assert.deepEqual([...two.shape], fx.shape('rvq.codes2'));
    assert.deepEqual(Array.from(await two.read()), Array.from(await fx.i32('rvq.codes2')));
    x.dispose();
    cb.dispose();
  });

  it('rvqDecode sums the selected entries like transformers', async () => {
    const cb = await fx.tensor('rvq.codebooks');
    for (const [codes, out] of [['codes', 'decoded'], ['codes2', 'decoded2']]) {
      const c = await fx.tensor(`rvq.${codes}`);
      const y = ops.rvqDecode(c, cb);
      assert.deepEqual([...y.shape], fx.shape(`rvq.${out}`));
      assertClose(await y.toArray(), await fx.f32(`rvq.${out}`), `rvq.${out}`, TOL);
      c.dispose();
      y.dispose();
    }
    cb.dispose();
  });
});
