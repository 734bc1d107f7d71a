// The sampler against transformers' warpers (tools/fixtures/kernels_sample.py): argmax, the filtered
// probabilities, the empirical distribution of draws, reproducibility, and the Philox generator's
// known-answer vectors.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu } from '../helpers.js';
import { Tensor } from '../../src/tensor.js';
import { applyGuidance, filteredProbs, philox4x32, sample, type FilterOptions } from '../../src/ops.js';

/** χ² critical values at α = 0.001 for 1..15 degrees of freedom. */
const CHI2_999 = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.7];

function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

describe('kernels: sampling', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/sample.safetensors');
  });

  it('Philox-4x32-10 matches the Random123 known-answer vectors', async () => {
    const M = 0xffffffff;
    const cases: [[number, number, number, number], [number, number], number[]][] = [
      [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
      [[M, M, M, M], [M, M], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
      [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
    ];
    for (const [ctr, key, want] of cases) {
      const t = philox4x32(ctr, key);
      const got = Array.from(new Uint32Array((await t.read()).buffer));
      assert.deepEqual(got, want);
      t.dispose();
    }
  });

  it('temperature 0 is argmax, first index among equal maxima (V = 2049, -inf present)', async () => {
    const logits = await fx.tensor('greedy.logits');
    const tok = sample(logits, { temperature: 0, seed: 1, step: 0 });
    assert.equal(tok.dtype, 'i32');
    assert.deepEqual([...tok.shape], [5]);
    assert.deepEqual(Array.from(await tok.read()), Array.from(await fx.i32('greedy.y')));
    // the debug entry point agrees: a one-hot row
    const probs = await filteredProbs(logits, { temperature: 0 }).read();
    const want = await fx.i32('greedy.y');
    for (let r = 0; r < 5; r++) assert.equal(argmax(probs.subarray(r * 2049, (r + 1) * 2049)), want[r]);
    logits.dispose();
    tok.dispose();
  });

  const configs: Record<string, FilterOptions> = {
    plain: { temperature: 1 },
    temp: { temperature: 0.7 },
    k5: { temperature: 0.7, topK: 5 },
    k250: { temperature: 1, topK: 250 },
    p08: { temperature: 0.7, topP: 0.8 },
    p095: { temperature: 1.3, topP: 0.95 },
    k50_p09: { temperature: 1, topK: 50, topP: 0.9 },
    k1: { temperature: 1, topK: 1 },
    p_tiny: { temperature: 1, topP: 1e-9 },
  };
  for (const [name, opts] of Object.entries(configs)) {
    it(`filtered probabilities match transformers' warpers: ${name}`, async () => {
      const logits = await fx.tensor('probs.logits');
      const got = await filteredProbs(logits, opts).read();
      const want = await fx.f32(`probs.${name}.y`);
      assertClose(got, want, name, { rtol: 0, atol: 1e-6 });
      for (let i = 0; i < want.length; i++) assert.equal(got[i] > 0, want[i] > 0, `${name}: kept set differs at ${i}`);
      logits.dispose();
    });
  }

  it('top-k keeps every logit equal to the K-th largest (TopKLogitsWarper)', async () => {
    const logits = await fx.tensor('ties_k.logits');
    const got = await filteredProbs(logits, { temperature: 1, topK: 3 }).read();
    assertClose(got, await fx.f32('ties_k.y'), 'ties_k', { rtol: 0, atol: 1e-6 });
    logits.dispose();
  });

  it('top-p with equal probabilities at the boundary removes the lowest indices first', async () => {
    const logits = await fx.tensor('ties_p.logits');
    const want = await fx.f32('ties_p.y');
    // row 2 sits exactly on the ≤ boundary: cumulative 0.5 ≤ 1 − 0.5 removes the second token too; row 3
    // would remove all four (1 − 1e-9 rounds to 1): min_tokens_to_keep keeps the highest index
    const rows = [{ topP: 0.6 }, { topP: 0.3 }, { topP: 0.5 }, { topP: 1e-9 }];
    for (let r = 0; r < rows.length; r++) {
      const row = Tensor.from((await logits.read()).subarray(r * 2048, (r + 1) * 2048), [1, 2048]);
      const got = await filteredProbs(row, { temperature: 1, ...rows[r] }).read();
      assertClose(got, want.subarray(r * 2048, (r + 1) * 2048), `ties_p row ${r}`, { rtol: 0, atol: 1e-6 });
      row.dispose();
    }
    logits.dispose();
  });

  it('top-k 1 draws the argmax', async () => {
    const logits = await fx.tensor('probs.logits');
    const x = await logits.read();
    for (const seed of [0, 1, 2]) {
      const tok = await sample(logits, { temperature: 1, topK: 1, seed, step: seed }).read();
      for (let r = 0; r < 6; r++) assert.equal(tok[r], argmax(x.subarray(r * 2048, (r + 1) * 2048)), `row ${r}`);
    }
    logits.dispose();
  });

  const dists: Record<string, FilterOptions> = {
    k5: { temperature: 0.7, topK: 5 },
    p08: { temperature: 0.7, topP: 0.8 },
    k8_p09: { temperature: 1, topK: 8, topP: 0.9 },
  };
  for (const [name, opts] of Object.entries(dists)) {
    it(`4000 draws follow the filtered distribution (χ², α = 0.001): ${name}`, async () => {
      const N = 4000;
      const row = await fx.f32('dist.logits');
      const V = row.length;
      const tiled = new Float32Array(N * V);
      for (let r = 0; r < N; r++) tiled.set(row, r * V);
      const logits = Tensor.from(tiled, [N, V]);
      const tok = await sample(logits, { ...opts, seed: 1234, step: 7 }).read();
      const p = await fx.f32(`dist.${name}.y`);
      const counts = new Map<number, number>();
      for (const t of tok) {
        assert.ok(t >= 0 && t < V && p[t] > 0, `${name}: drew token ${t} outside the kept set`);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      // bins: each kept token, the rare ones (expected < 5) pooled
      let chi2 = 0;
      let bins = 0;
      let pooledP = 0;
      let pooledN = 0;
      for (let i = 0; i < V; i++) {
        if (!(p[i] > 0)) continue;
        const e = N * p[i];
        const o = counts.get(i) ?? 0;
        if (e < 5) { pooledP += p[i]; pooledN += o; continue; }
        chi2 += (o - e) ** 2 / e;
        bins++;
      }
      if (pooledP > 0) { const e = N * pooledP; chi2 += (pooledN - e) ** 2 / e; bins++; }
      assert.ok(bins >= 2 && bins <= CHI2_999.length + 1, `${name}: ${bins} bins`);
      assert.ok(chi2 < CHI2_999[bins - 2], `${name}: χ² = ${chi2.toFixed(2)} with ${bins - 1} dof`);
      logits.dispose();
    });
  }

  it('a seed reproduces its draws; another seed or step changes them', async () => {
    const N = 512;
    const row = await fx.f32('dist.logits');
    const tiled = new Float32Array(N * row.length);
    for (let r = 0; r < N; r++) tiled.set(row, r * row.length);
    const logits = Tensor.from(tiled, [N, row.length]);
    const opts = { temperature: 1, topK: 250 };
    const a = Array.from(await sample(logits, { ...opts, seed: 42, step: 3 }).read());
    const b = Array.from(await sample(logits, { ...opts, seed: 42, step: 3 }).read());
    const c = Array.from(await sample(logits, { ...opts, seed: 43, step: 3 }).read());
    const d = Array.from(await sample(logits, { ...opts, seed: 42, step: 4 }).read());
    const e = Array.from(await sample(logits, { ...opts, seed: 42 + 2 ** 32, step: 3 }).read());
    assert.deepEqual(a, b);
    for (const [other, label] of [[c, 'seed'], [d, 'step'], [e, 'seed high bits']] as const) {
      const same = a.filter((t, i) => t === other[i]).length;
      assert.ok(same < N * 0.6, `changing the ${label} left ${same}/${N} draws the same`);
    }
    // rows of identical logits get different streams
    assert.ok(new Set(a).size > 5, 'every row drew the same token');
    logits.dispose();
  });

  it('classifier-free guidance: uncond + (cond − uncond)·scale', async () => {
    const x = Float32Array.from({ length: 2 * 3 * 37 }, (_, i) => Math.sin(i * 1.7) * 3);
    const logits = Tensor.from(x, [6, 37]);
    const y = applyGuidance(logits, 3);
    assert.deepEqual([...y.shape], [3, 37]);
    const n = 3 * 37;
    const want = Array.from({ length: n }, (_, i) => {
      const c = Math.fround(x[i]);
      const u = Math.fround(x[n + i]);
      return Math.fround(u + Math.fround(Math.fround(c - u) * 3));
    });
    assertClose(await y.read(), want, 'guidance', { rtol: 0, atol: 0 });
    logits.dispose();
    y.dispose();
  });

  it('rejects vocabularies beyond one workgroup and bad options', () => {
    const big = Tensor.zeros([1, 4000]);
    assert.throws(() => sample(big, { temperature: 1, seed: 0, step: 0 }), /vocabulary/);
    const ok = Tensor.zeros([2, 8]);
    assert.throws(() => sample(ok, { temperature: -1, seed: 0, step: 0 }), /temperature/);
    assert.throws(() => sample(ok, { temperature: 1, seed: 0.5, step: 0 }), /seed/);
    assert.throws(() => applyGuidance(Tensor.zeros([3, 8]), 3), /2R/);
    big.dispose();
    ok.dispose();
  });
});
