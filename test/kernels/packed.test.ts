// Packed weights (src/quant.ts, src/kernels/packed.ts): the packing's rounding bounds, and the gemv, matmul and
// embedding kernels reading packed words against a CPU product with the unpacked weights (so the only differences
// are f32 summation order). Every gemv path runs: the adapter's subgroups and the partial-sums fallback at 8, 32
// and 64 lanes (the widths of GPUs this machine lacks), and a second device without subgroups.

import assert from 'node:assert/strict';
import { gpu } from '../helpers.js';
import { Runtime } from '../../src/runtime.js';
import { Tensor, tidy } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { PackedMatrix, gemvPacked, matmulPacked, type GemvMode } from '../../src/kernels/packed.js';
import { Q4_GROUP, dataWords, packRows, scalesPerRow, unpackRows, type PackedFormat } from '../../src/quant.js';

const FORMATS: PackedFormat[] = ['f16', 'q8', 'q4'];

/** Deterministic N(0, 1)-ish values with a few outliers, like trained weights' heavy tails. */
function weights(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * (i % 97 === 0 ? 6 : 1);
  return out;
}

function pack(format: PackedFormat, w: Float32Array, cols: number): { data: Uint32Array; scales: Float32Array; deq: Float32Array } {
  const rows = w.length / cols;
  const data = new Uint32Array(dataWords(format, rows, cols));
  const scales = new Float32Array(rows * scalesPerRow(format, cols));
  packRows(format, w, cols, data, 0, scales, 0);
  return { data, scales, deq: unpackRows(format, data, scales, rows, cols) };
}

function upload(format: PackedFormat, w: Float32Array, shape: number[], rt: Runtime): { m: PackedMatrix; deq: Float32Array } {
  const { data, scales, deq } = pack(format, w, shape[shape.length - 1]);
  const m = PackedMatrix.empty(format, shape, rt);
  m.uploadRows(0, data, scales);
  return { m, deq };
}

/** act(x · Wᵀ + bias) in doubles. */
function reference(x: Float32Array, w: Float32Array, bias: Float32Array | null, K: number, gelu: boolean): Float32Array {
  const R = x.length / K;
  const N = w.length / K;
  const y = new Float32Array(R * N);
  const erf = (v: number): number => { // Abramowitz–Stegun 7.1.26 is too coarse: integrate instead
    let s = 0;
    const n = 400;
    for (let i = 0; i < n; i++) { const t = ((i + 0.5) / n) * v; s += Math.exp(-t * t); }
    return (2 / Math.sqrt(Math.PI)) * s * (v / n);
  };
  for (let r = 0; r < R; r++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      y[r * N + n] = gelu ? 0.5 * s * (1 + erf(s / Math.SQRT2)) : s;
    }
  }
  return y;
}

function assertNear(actual: ArrayLike<number>, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= 1e-5 * scale + 1e-6)) {
      assert.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (scale ${scale})`);
    }
  }
}

describe('packed weights: formats and kernels', () => {
  let rt: Runtime;
  before(async () => {
    rt = await gpu();
  });

  it('packing: f16 and q8 round within half a step; q4 picks scales of less error than Q4_0 (absmax/8)', () => {
    const cols = 64;
    const w = weights(8 * cols, 1);
    for (const format of ['f16', 'q8'] as const) {
      const { scales, deq } = pack(format, w, cols);
      for (let i = 0; i < w.length; i++) {
        const step = format === 'f16' ? Math.abs(w[i]) * 2 ** -10 : Math.abs(scales[Math.floor(i / cols)]);
        assert.ok(Math.abs(deq[i] - w[i]) <= step / 2 + 1e-7, `${format} element ${i}: ${w[i]} → ${deq[i]} (step ${step})`);
      }
    }
    // Q4_0 written out: the group's largest magnitude maps to −8, round to nearest, clamp to 7
    const { deq } = pack('q4', w, cols);
    let ours = 0;
    let q40 = 0;
    for (let g = 0; g < w.length / Q4_GROUP; g++) {
      const group = Array.from(w.subarray(g * Q4_GROUP, (g + 1) * Q4_GROUP));
      const s = group.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a)) / -8;
      const e40 = group.reduce((e, v) => e + (Math.max(-8, Math.min(7, Math.round(v / s))) * s - v) ** 2, 0);
      const e = group.reduce((acc, v, i) => acc + (deq[g * Q4_GROUP + i] - v) ** 2, 0);
      assert.ok(e <= e40 * (1 + 1e-5), `q4 group ${g}: squared error ${e} above Q4_0's ${e40}`);
      ours += e;
      q40 += e40;
    }
    assert.ok(ours < 0.97 * q40, `q4: squared error ${ours}, Q4_0 ${q40}`);
    assert.throws(() => pack('q4', new Float32Array(48), 48), /cannot be stored as q4/);
  });

  const modes: GemvMode[] = [{ kind: 'subgroup' }, ...[8, 32, 64].map((lanes) => ({ kind: 'partials', lanes }) as GemvMode)];
  for (const format of FORMATS) {
    it(`${format} gemv (bias and gelu) on subgroups and on 8/32/64 lanes of partial sums`, async () => {
      // 80 values a row end in half a chunk of gemv.wgsl's 32 (its last lane loads are skipped); q4's rows are
      // whole groups of 32, so whole chunks
      const [N, K] = [37, format === 'q4' ? 96 : 80];
      const w = weights(N * K, 2);
      const bias = weights(N, 3);
      const { m, deq } = upload(format, w, [N, K], rt);
      // every row count compiles its own kernel (slow on llvmpipe): 8 rows for one format only
      for (const R of format === 'q8' ? [1, 3, 8] : [1, 3]) {
        const xv = weights(R * K, 4 + R);
        const x = Tensor.from(xv, [R, K], 'f32', rt);
        const b = Tensor.from(bias, [N], 'f32', rt);
        for (const mode of modes) {
          if (mode.kind === 'subgroup' && !rt.ctx.features.subgroups) continue;
          const y = gemvPacked(x, m, b, 2, [R, N], mode);
          assertNear(await y.read(), reference(xv, deq, bias, K, true), `${format} R=${R} ${mode.kind}${mode.kind === 'partials' ? mode.lanes : ''}`);
          y.dispose();
        }
        x.dispose();
        b.dispose();
      }
      m.dispose();
    });

    // the adapter's subgroups (packed_matmul_sg); q4 also at 32 emulated lanes (the shuffles through workgroup
    // memory, lanes 8… of each subgroup in use); the plain packed_matmul runs in 'the fallback' below
    it(`${format} matmul (5 and 70 rows) and linear routing${format === 'q4' ? ', also at 32 forced lanes' : ''}`, async () => {
      const [N, K] = [45, 64];
      const w = weights(N * K, 5);
      const { m, deq } = upload(format, w, [N, K], rt);
      for (const [M, lanes] of [[5, null], [70, null], ...(format === 'q4' ? [[70, 32]] : [])] as [number, number | null][]) {
        rt.forcedSubgroupSize = lanes;
        const xv = weights(M * K, 6 + M);
        const x = Tensor.from(xv, [M, K], 'f32', rt);
        const y = matmulPacked(x, m, undefined, 0, [M, N]);
        assertNear(await y.read(), reference(xv, deq, null, K, false), `${format} M=${M}${lanes ? ` at ${lanes} lanes` : ''}`);
        const viaOps = ops.linear(x.reshape([1, M, K]), m, undefined, 'relu');
        assert.deepEqual(viaOps.shape, [1, M, N]);
        assertNear(await viaOps.read(), reference(xv, deq, null, K, false).map((v) => Math.max(v, 0)), `${format} linear M=${M}`);
        for (const t of [x, y, viaOps]) t.dispose();
      }
      rt.forcedSubgroupSize = null;
      m.dispose();
    });

    it(`${format} embedding and embeddingSum (ids out of range embed to zero)`, async () => {
      const [K, V, D] = [3, 10, 64];
      const w = weights(K * V * D, 7);
      const { m, deq } = upload(format, w, [K, V, D], rt);
      const ids = [0, 9, 3, -1, 2, 5, 10, 1, 4, 4, 8, 7]; // B 2, K 3, T 2
      const idsT = Tensor.from(ids, [2, K, 2], 'i32', rt);
      const y = ops.embeddingSum(m, idsT);
      const expected = new Float32Array(2 * 2 * D);
      for (let b = 0; b < 2; b++) for (let t = 0; t < 2; t++) for (let k = 0; k < K; k++) {
        const id = ids[(b * K + k) * 2 + t];
        if (id < 0 || id >= V) continue;
        for (let d = 0; d < D; d++) expected[(b * 2 + t) * D + d] += deq[(k * V + id) * D + d];
      }
      assertNear(await y.read(), expected, `${format} embeddingSum`);
      const single = upload(format, w.subarray(0, V * D), [V, D], rt);
      const one = ops.embedding(single.m, Tensor.from([3, 7], [2], 'i32', rt));
      assertNear(await one.read(), Float32Array.from([...single.deq.subarray(3 * D, 4 * D), ...single.deq.subarray(7 * D, 8 * D)]), `${format} embedding`);
      for (const t of [m, single.m, idsT, y, one]) t.dispose();
    });
  }

  it('the fallback: a device without subgroups', async () => {
    const bare = await Runtime.create({ without: ['subgroups'] });
    assert.equal(bare.ctx.features.subgroups, false);
    const [N, K] = [21, 64];
    const w = weights(N * K, 8);
    for (const format of FORMATS) {
      const { m, deq } = upload(format, w, [N, K], bare);
      for (const R of [2, 11]) {
        const xv = weights(R * K, 9);
        const x = Tensor.from(xv, [R, K], 'f32', bare);
        const y = ops.linear(x, m);
        assertNear(await y.read(), reference(xv, deq, null, K, false), `${format} R=${R} without subgroups`);
        x.dispose();
        y.dispose();
      }
      m.dispose();
    }
  });

  it('a packed weight has no backward: recording through it is an error', () => {
    const { m } = upload('q8', weights(16 * 32, 10), [16, 32], rt);
    const x = Tensor.from(weights(32, 11), [1, 32], 'f32', rt);
    x.requiresGrad = true;
    assert.throws(() => tidy(() => ops.linear(x, m)), /no backward/);
    x.dispose();
    m.dispose();
  });
});
