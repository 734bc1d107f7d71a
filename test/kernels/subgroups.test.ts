// The kernels that use subgroups (the f32 decode gemv, the one-sequence LSTM step, the packed gemv, the shuffle
// kernels of matmul and conv) at every subgroup width the runtime can force: 8 and 32 lanes, emulated through workgroup memory
// (Runtime.forcedSubgroupSize: this adapter's subgroups are 8 wide only), on the adapter's own subgroups (the
// other kernel tests), and on a device without subgroups, where each falls back to a kernel without them.
// Fixtures from PyTorch (kernels/core, kernels/conv) where they exist; larger shapes, whose rows are longer than
// 32 lanes × 4, against products in doubles.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu } from '../helpers.js';
import { Runtime, emulateSubgroups } from '../../src/runtime.js';
import { Tensor } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { gemvApplies } from '../../src/kernels/gemv.js';
import { PackedMatrix, defaultGemvMode, gemvPacked } from '../../src/kernels/packed.js';
import { dataWords, packRows, scalesPerRow, unpackRows } from '../../src/quant.js';

// each width compiles its own kernels, with barriers (slow on llvmpipe): the two widths the issue names
const FORCED = [8, 32];
const TOL = { rtol: 1e-4, atol: 1e-5 };

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31) - 1);
}

/** x [R, K] · w [N, K]ᵀ + b in doubles. */
function product(x: Float32Array, w: Float32Array, b: Float32Array, K: number): Float32Array {
  const R = x.length / K;
  const N = w.length / K;
  const y = new Float32Array(R * N);
  for (let r = 0; r < R; r++) for (let n = 0; n < N; n++) {
    let s = b[n];
    for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
    y[r * N + n] = s;
  }
  return y;
}

/** nn.LSTM for one sequence (x [T, I], zero initial state) in doubles: the hidden states [T, H]. */
function lstmReference(x: Float32Array, wih: Float32Array, whh: Float32Array, bih: Float32Array, bhh: Float32Array, I: number, H: number): Float32Array {
  const T = x.length / I;
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  let h = new Float64Array(H);
  const c = new Float64Array(H);
  const out = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    const g = new Float64Array(4 * H);
    for (let r = 0; r < 4 * H; r++) {
      let s = bih[r] + bhh[r];
      for (let k = 0; k < I; k++) s += wih[r * I + k] * x[t * I + k];
      for (let k = 0; k < H; k++) s += whh[r * H + k] * h[k];
      g[r] = s;
    }
    const next = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      c[j] = sig(g[H + j]) * c[j] + sig(g[j]) * Math.tanh(g[2 * H + j]);
      next[j] = sig(g[3 * H + j]) * Math.tanh(c[j]);
      out[t * H + j] = next[j];
    }
    h = next;
  }
  return out;
}

describe('subgroup kernels at every width the runtime can force, and without subgroups', function () {
  this.timeout(300_000);
  let core: Fixture;
  let conv: Fixture;
  let rt: Runtime;
  before(async () => {
    rt = await gpu();
    core = await Fixture.open('kernels/core.safetensors');
    conv = await Fixture.open('kernels/conv.safetensors');
  });
  afterEach(() => {
    rt.forcedSubgroupSize = null;
  });

  /** The f32 gemv (through linear, as the decoder calls it): fixture rows, and a long row against doubles. */
  async function checkGemv(r: Runtime, label: string, rows: number[]): Promise<void> {
    for (const R of rows) {
      const [x, w, b] = await Promise.all(['x', 'w', 'b'].map(async (n) => {
        const name = `gemv.r${R}.${n}`;
        return Tensor.from(await core.f32(name), core.shape(name), 'f32', r);
      }));
      const y = ops.linear(x, w, b, 'gelu');
      assertClose(await y.toArray(), await core.f32(`gemv.r${R}.y`), `${label} gemv r${R}`, TOL);
      for (const t of [x, w, b, y]) t.dispose();
    }
    const [R, N, K] = [1, 37, 4 * 80]; // 80 vec4s per row: more than 64 lanes' first step
    const [xv, wv, bv] = [values(R * K, 1), values(N * K, 2), values(N, 3)];
    const [x, w, b] = [Tensor.from(xv, [R, K], 'f32', r), Tensor.from(wv, [N, K], 'f32', r), Tensor.from(bv, [N], 'f32', r)];
    const y = ops.linear(x, w, b);
    assertClose(await y.toArray(), product(xv, wv, bv, K), `${label} gemv ${R}×${K}·${K}×${N}`, TOL);
    for (const t of [x, w, b, y]) t.dispose();
  }

  /**
   * The LSTM without gradients for one sequence: H = 160 (40 vec4s per row) against doubles, over 9 steps (the
   * input projection of more than 8 rows takes the general matmul, not a gemv of its own); `fixture` adds the
   * fixture's b1_h12.
   */
  async function checkLstm(r: Runtime, label: string, fixture: boolean): Promise<void> {
    const [T, I, H] = [9, 8, 160];
    const scale = (a: Float32Array): Float32Array => a.map((v) => v * 0.2);
    const v = [values(T * I, 4), scale(values(4 * H * I, 5)), scale(values(4 * H * H, 6)), values(4 * H, 7), values(4 * H, 8)];
    const shapes = [[T, 1, I], [4 * H, I], [4 * H, H], [4 * H], [4 * H]];
    const ts = v.map((a, i) => Tensor.from(a, shapes[i], 'f32', r));
    const out = ops.lstm(ts[0], ts[1], ts[2], ts[3], ts[4]);
    assertClose(await out.y.toArray(), lstmReference(v[0], v[1], v[2], v[3], v[4], I, H), `${label} lstm H=${H}`, TOL);
    for (const t of [...ts, out.y, out.h, out.c]) t.dispose();
    if (!fixture) return;
    const xs: Tensor[] = [];
    for (let i = 0; conv.has(`lstm.b1_h12.x${i}`); i++) {
      const name = `lstm.b1_h12.x${i}`;
      xs.push(Tensor.from(await conv.f32(name), conv.shape(name), 'f32', r));
    }
    const [x, wih, whh, bih, bhh, h0, c0] = xs;
    const { y, h, c } = ops.lstm(x, wih, whh, bih, bhh, h0, c0);
    const expected = await conv.f32('lstm.b1_h12.y');
    assertClose(await y.toArray(), expected.subarray(0, y.size), `${label} lstm b1_h12 y`, TOL);
    assertClose(await c.toArray(), expected.subarray(y.size + h.size), `${label} lstm b1_h12 c`, TOL);
    for (const t of [...xs, y, h, c]) t.dispose();
  }

  /** The packed (q8) gemv on subgroups against the unpacked weights in doubles. */
  async function checkPackedGemv(r: Runtime, label: string): Promise<void> {
    const [R, N, K] = [1, 21, 4 * 128];
    const wv = values(N * K, 9);
    const data = new Uint32Array(dataWords('q8', N, K));
    const scales = new Float32Array(N * scalesPerRow('q8', K));
    packRows('q8', wv, K, data, 0, scales, 0);
    const m = PackedMatrix.empty('q8', [N, K], r);
    m.uploadRows(0, data, scales);
    const xv = values(R * K, 10);
    const x = Tensor.from(xv, [R, K], 'f32', r);
    const y = gemvPacked(x, m, undefined, 0, [R, N], { kind: 'subgroup' });
    assertClose(await y.read(), product(xv, unpackRows('q8', data, scales, N, K), new Float32Array(N), K), `${label} q8 gemv`, TOL);
    for (const t of [x, y, m]) t.dispose();
  }

  /**
   * The shuffle kernels (matmul_sg, matmul_sg4, conv1d_sg, conv_transpose1d_sg) against doubles, with shapes past
   * one workgroup's 16 rows and 64 columns.
   */
  async function checkShuffleKernels(r: Runtime, label: string): Promise<void> {
    assert.ok(r.shuffleSubgroups, `${label}: the subgroup matmul kernels are chosen`);
    const [M, N, K] = [21, 70, 12];
    const [av, bv, biasv] = [values(M * K, 13), values(N * K, 14), values(N, 15)];
    const [a, w, bias] = [Tensor.from(av, [M, K], 'f32', r), Tensor.from(bv, [N, K], 'f32', r), Tensor.from(biasv, [N], 'f32', r)];
    // x·Wᵀ + b (matmul_sg4, K a multiple of 4) and the same through strides (matmul_sg: Wᵀ given as [K, N])
    const wT = Tensor.from(Float32Array.from({ length: K * N }, (_, i) => bv[(i % N) * K + Math.floor(i / N)]), [K, N], 'f32', r);
    const want = product(av, bv, biasv, K);
    const ys = [ops.linear(a, w, bias), ops.matmul(a, wT, { bias })];
    for (const [i, y] of ys.entries()) assertClose(await y.toArray(), want, `${label} ${['linear', 'matmul'][i]} ${M}×${K}·${K}×${N}`, TOL);
    // conv1d [1, 3, 30] * [18, 3, 3], dilation 2, padding 1; conv_transpose1d [1, 4, 9] * [4, 10, 4], stride 2
    const [Cin, Cout, T, Kc] = [3, 18, 30, 3];
    const [xv, cwv] = [values(Cin * T, 16), values(Cout * Cin * Kc, 17)];
    const [x, cw] = [Tensor.from(xv, [1, Cin, T], 'f32', r), Tensor.from(cwv, [Cout, Cin, Kc], 'f32', r)];
    const conv = ops.conv1d(x, cw, undefined, { dilation: 2, padding: 1 });
    const Tout = T + 2 - 2 * (Kc - 1);
    const convWant = new Float32Array(Cout * Tout);
    for (let o = 0; o < Cout; o++) for (let t = 0; t < Tout; t++) {
      let s = 0;
      for (let i = 0; i < Cin; i++) for (let k = 0; k < Kc; k++) {
        const ti = t - 1 + 2 * k;
        if (ti >= 0 && ti < T) s += xv[i * T + ti] * cwv[(o * Cin + i) * Kc + k];
      }
      convWant[o * Tout + t] = s;
    }
    assertClose(await conv.toArray(), convWant, `${label} conv1d`, TOL);
    const [Ci, Co, Ti, Kt, stride] = [4, 10, 9, 4, 2];
    const [tv, twv] = [values(Ci * Ti, 18), values(Ci * Co * Kt, 19)];
    const [tx, tw] = [Tensor.from(tv, [1, Ci, Ti], 'f32', r), Tensor.from(twv, [Ci, Co, Kt], 'f32', r)];
    const convT = ops.convTranspose1d(tx, tw, undefined, { stride });
    const To = (Ti - 1) * stride + Kt;
    const convTWant = new Float32Array(Co * To);
    for (let i = 0; i < Ci; i++) for (let t = 0; t < Ti; t++) for (let o = 0; o < Co; o++) for (let k = 0; k < Kt; k++) {
      convTWant[o * To + t * stride + k] += tv[i * Ti + t] * twv[(i * Co + o) * Kt + k];
    }
    assertClose(await convT.toArray(), convTWant, `${label} conv_transpose1d`, TOL);
    for (const t of [a, w, bias, wT, ...ys, x, cw, conv, tx, tw, convT]) t.dispose();
  }

  it('the shuffle kernels on the adapter\'s own subgroups', async () => {
    await checkShuffleKernels(rt, `${rt.minSubgroupSize} lanes (adapter)`);
  });

  for (const lanes of FORCED) {
    it(`subgroups forced to ${lanes} lanes: the shuffle kernels (matmul, linear, conv, transposed conv)`, async () => {
      rt.forcedSubgroupSize = lanes;
      assert.equal(rt.minSubgroupSize, lanes);
      await checkShuffleKernels(rt, `${lanes} lanes`);
    });
    it(`subgroups forced to ${lanes} lanes: gemv, the one-sequence LSTM step, the packed gemv`, async () => {
      rt.forcedSubgroupSize = lanes;
      assert.equal(rt.maxSubgroupSize, lanes);
      assert.ok(gemvApplies(rt, 1, 36), 'linear routes to the subgroup gemv');
      const before = rt.stats.dispatches;
      const probe = ops.linear(Tensor.from(values(36, 11), [1, 36], 'f32', rt), Tensor.from(values(36 * 5, 12), [5, 36], 'f32', rt));
      assert.equal(rt.stats.dispatches - before, 1, 'one dispatch: the gemv');
      probe.dispose();
      await checkGemv(rt, `${lanes} lanes`, [1]);
      await checkLstm(rt, `${lanes} lanes`, false);
      await checkPackedGemv(rt, `${lanes} lanes`);
    });
  }

  it('without subgroups: linear takes the general matmul, the LSTM its batched step kernel', async () => {
    const bare = await Runtime.create({ without: ['subgroups'], limits: rt.ctx.limits });
    try {
      assert.equal(bare.subgroups, false);
      assert.equal(gemvApplies(bare, 1, 36), false);
      await checkGemv(bare, 'no subgroups', [1, 5]);
      await checkLstm(bare, 'no subgroups', true);
    } finally {
      bare.destroy();
    }
  });

  it('subgroups of 4 lanes: too few to share x, the packed gemv takes its partial sums', () => {
    rt.forcedSubgroupSize = 4;
    assert.deepEqual(defaultGemvMode(rt), { kind: 'partials', lanes: 16 });
    rt.forcedSubgroupSize = 8;
    assert.deepEqual(defaultGemvMode(rt), { kind: 'subgroup' });
  });

  it('the emulation refuses what it cannot do', () => {
    const k = (body: string, wg = '64'): string => `enable subgroups;\n@compute @workgroup_size(${wg})\nfn main(@builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {\n${body}\n}`;
    assert.match(emulateSubgroups(k('let s = subgroupAdd(1.0);'), 32), /emu_subgroup_add\(1\.0\)/);
    assert.throws(() => emulateSubgroups(k('let s = subgroupAdd(1.0);'), 24), /power of two/);
    assert.throws(() => emulateSubgroups(k('let s = subgroupAdd(1.0);', '16'), 32), /not a multiple/);
    assert.throws(() => emulateSubgroups(k('let s = subgroupBroadcast(1.0, 0u);'), 8), /subgroupBroadcast is not emulated/);
    assert.match(emulateSubgroups(k('let v = vec2<f32>(1.0, 2.0);\nlet s = subgroupShuffle(v, 3u);'), 32), /emu_subgroup_shuffle_0\(v, 3u\)[^]*array<vec2<f32>, 64>/);
    assert.throws(() => emulateSubgroups(k('let v = f(1.0);\nlet s = subgroupShuffle(v, 3u);'), 32), /shuffled value v is not declared/);
    assert.throws(() => emulateSubgroups(k('let s = subgroupAdd(1.0);', '8, 8'), 8), /one literal x size/);
    // a workgroup size given as a constant (what `specialise` sets, as matmul_sg4's WG) is read from its declaration
    const named = (wg: number): string => `const WG: u32 = ${wg}u;\n${k('let v = f32(1.0);\nlet s = subgroupShuffle(v, 3u);', 'WG, 1, 1')}`;
    assert.match(emulateSubgroups(named(16), 8), /array<f32, 16>/);
    assert.throws(() => emulateSubgroups(named(16), 32), /workgroup \(16\) is not a multiple/);
  });
});
