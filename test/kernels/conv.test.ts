// Padding, conv1d, conv_transpose1d, weight norm and LSTM kernels against PyTorch (tools/fixtures/kernels_conv.py).
// Tolerances: forward and gradients rtol 1e-4 / atol 1e-5 everywhere (weight gradients of the long cases sum
// 450, 500 and 300 steps and still meet it); the loader's weight-norm folding (src/model/weights.ts), computed in
// doubles, rtol 1e-6 / atol 1e-7.

import { Fixture, assertClose, checkGradCase, gpu, type Tolerance } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';
import { Runtime } from '../../src/runtime.js';
import { foldWeightNorm } from '../../src/model/weights.js';

const FWD = { rtol: 1e-4, atol: 1e-5 };
const GRAD = { rtol: 1e-4, atol: 1e-5 };

describe('kernels: pad1d, conv1d, convTranspose1d, weight norm, lstm', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/conv.safetensors');
  });

  const pads: [string, number, number, ops.PadMode, number][] = [
    ['zero', 3, 2, 'zero', 0],
    ['constant', 1, 4, 'constant', 1.5],
    ['reflect', 3, 6, 'reflect', 0],
    ['reflect_max', 4, 4, 'reflect', 0],
    ['replicate', 3, 5, 'replicate', 0],
    ['replicate_one', 2, 3, 'replicate', 0],
  ];
  for (const [name, left, right, mode, value] of pads) {
    it(`pad1d ${name} (${mode} ${left}, ${right}), forward and backward`, () =>
      checkGradCase(fx, `pad.${name}`, (x) => ops.pad1d(x, left, right, mode, value), FWD, GRAD));
  }
  it('pad1d reflect refuses pads ≥ the length, as PyTorch', async () => {
    const x = await fx.tensor('encodec_pad.short.x0');
    let threw = false;
    try { ops.pad1d(x, 6, 2, 'reflect'); } catch { threw = true; }
    x.dispose();
    if (!threw) throw new Error('pad1d reflect accepted a pad longer than the input');
  });
  const encodecPads: [string, number, number][] = [['long', 3, 3], ['short', 6, 2], ['short_right', 1, 5], ['equal', 4, 0]];
  for (const [name, left, right] of encodecPads) {
    it(`encodecPad1d reflect ${name} (${left}, ${right}), forward and backward`, () =>
      checkGradCase(fx, `encodec_pad.${name}`, (x) => ops.encodecPad1d(x, left, right, 'reflect'), FWD, GRAD));
  }

  const convs: [string, ops.Conv1dOptions][] = [
    ['k1', {}],
    ['k3', { padding: 1 }],
    ['k7', { padding: 3 }],
    ['k7_nobias', {}],
    ['dil3', { dilation: 3, padding: 3 }],
    ['s2', { stride: 2, padding: 1 }],
    ['s4', { stride: 4, padding: 2 }],
    ['groups2', { groups: 2, padding: 1 }],
    ['groups2_s2_dil3', { groups: 2, stride: 2, dilation: 3, padding: 2 }],
    ['long', { padding: 2 }],
    ['long_s2_dil2', { stride: 2, dilation: 2, padding: 2 }],
    ['wide', { padding: 1 }],
    ['out1', { padding: 3 }],
  ];
  for (const [name, opts] of convs) {
    it(`conv1d ${name} ${JSON.stringify(opts)}, forward and backward`, () =>
      checkGradCase(fx, `conv.${name}`, (x, w, b?: Tensor) => ops.conv1d(x, w, b, opts), FWD, GRAD));
  }

  const convts: [string, ops.ConvTranspose1dOptions][] = [
    ['s2', { stride: 2 }],
    ['s4', { stride: 4 }],
    ['s5', { stride: 5 }],
    ['s8', { stride: 8 }],
    ['s1_k3', { padding: 1 }],
    ['s3_pad_outpad', { stride: 3, padding: 2, outputPadding: 1 }],
    ['s2_dil2_groups2', { stride: 2, padding: 1, outputPadding: 1, dilation: 2, groups: 2 }],
    ['long', { stride: 4 }],
    ['wide', { stride: 2 }],
    ['out1', { stride: 3 }],
  ];
  for (const [name, opts] of convts) {
    it(`convTranspose1d ${name} ${JSON.stringify(opts)}, forward and backward`, () =>
      checkGradCase(fx, `convt.${name}`, (x, w, b?: Tensor) => ops.convTranspose1d(x, w, b, opts), FWD, GRAD));
  }

  it('conv1d and convTranspose1d at sizes that take every tiling of the subgroup kernels match a float64 CPU conv, and so does the fallback without subgroups', async () => {
    // The fixtures are too short for the wider tilings (2 and 4 steps per invocation are chosen only when they
    // still leave ≥ 16 workgroups); these take each, with channel blocks past 16, groups, stride and dilation
    // (transposed ones longer than 1024 steps: shorter ones with groups 1 and dilation 1 run as a matmul).
    // A second device without subgroups runs the plain kernels the subgroup ones replaced on this adapter.
    for (const rt of [await gpu(), await Runtime.create({ without: ['subgroups'] })]) await convAgainstCpu(rt);
  });

  async function convAgainstCpu(rt: Runtime): Promise<void> {
    let seed = 7;
    const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1);
    // [transpose, B, Cin, Cout, T, K, stride, padding, dilation, groups, outputPadding]
    const cases: [boolean, number, number, number, number, number, number, number, number, number, number][] = [
      [false, 1, 4, 20, 2100, 3, 1, 2, 2, 1, 0], [false, 2, 8, 32, 1000, 4, 2, 1, 1, 2, 0],
      // pointwise (K 1, stride 1, groups 1, no padding, ≤ 1024 steps) runs as a matmul and a bias add
      [false, 2, 12, 20, 300, 1, 1, 0, 1, 1, 0],
      [true, 1, 6, 24, 1100, 8, 4, 0, 1, 1, 0], [true, 1, 16, 18, 150, 6, 3, 2, 1, 2, 1],
      // inputs up to 1024 steps with groups 1, dilation 1 take the matmul and fold (a batch of 2, padding)
      [true, 2, 16, 20, 90, 8, 4, 2, 1, 1, 1],
    ];
    for (const [transpose, B, Cin, Cout, T, K, stride, padding, dilation, groups, outputPadding] of cases) {
      const CinG = Cin / groups;
      const CoutG = Cout / groups;
      const xv = rand(B * Cin * T);
      const wv = rand(Cin * CoutG * K);
      const bv = rand(Cout);
      const x = Tensor.from(xv, [B, Cin, T], 'f32', rt);
      const w = Tensor.from(wv, transpose ? [Cin, CoutG, K] : [Cout, CinG, K], 'f32', rt);
      const b = Tensor.from(bv, [Cout], 'f32', rt);
      const y = transpose
        ? ops.convTranspose1d(x, w, b, { stride, padding, dilation, groups, outputPadding })
        : ops.conv1d(x, w, b, { stride, padding, dilation, groups });
      const Tout = y.shape[2];
      const want = new Float64Array(B * Cout * Tout);
      for (let n = 0; n < B; n++) {
        for (let o = 0; o < Cout; o++) want.fill(bv[o], (n * Cout + o) * Tout, (n * Cout + o + 1) * Tout);
        for (let i = 0; i < Cin; i++) {
          const g = Math.floor(i / CinG);
          for (let oo = 0; oo < CoutG; oo++) {
            for (let k = 0; k < K; k++) {
              for (let t = 0; t < (transpose ? T : Tout); t++) {
                const o = g * CoutG + oo;
                if (transpose) {
                  const q = t * stride - padding + k * dilation; // input step t lands on output q
                  if (q >= 0 && q < Tout) want[(n * Cout + o) * Tout + q] += xv[(n * Cin + i) * T + t] * wv[(i * CoutG + oo) * K + k];
                } else {
                  const s = t * stride - padding + k * dilation;
                  if (s >= 0 && s < T) want[(n * Cout + o) * Tout + t] += xv[(n * Cin + i) * T + s] * wv[(o * CinG + (i - g * CinG)) * K + k];
                }
              }
            }
          }
        }
      }
      const label = `${transpose ? 'convTranspose1d' : 'conv1d'} ${Cin}→${Cout} T ${T}${rt.ctx.features.subgroups ? '' : ', no subgroups'}`;
      assertClose(await y.toArray(), want, label, FWD);
      for (const t of [x, w, b, y]) t.dispose();
    }
  }

  for (const name of ['conv', 'convt']) {
    it(`weight norm (dim 0) folded at load for a ${name} weight`, async () => {
      const w = foldWeightNorm(await fx.f32(`wn.${name}.g`), await fx.f32(`wn.${name}.v`));
      assertClose(w, await fx.f32(`wn.${name}.w`), `wn.${name}`, { rtol: 1e-6, atol: 1e-7 });
    });
  }

  // the fixture's y is concat([y, h_T, c_T]) along time, so gradients flow into all three outputs
  const lstmPacked = (...xs: Tensor[]): Tensor => {
    const [x, wih, whh, bih, bhh, h0, c0] = xs;
    const { y, h, c } = ops.lstm(x, wih, whh, bih, bhh, h0, c0);
    const [B, H] = h.shape;
    return ops.concat([y, ops.reshape(h, [1, B, H]), ops.reshape(c, [1, B, H])], 0);
  };
  for (const name of ['i5h5', 'i5h5_state', 'i6h4', 'i6h4_state', 'b5_h33', 'b1_h12']) {
    it(`lstm ${name}, forward and backward through time`, () => checkGradCase(fx, `lstm.${name}`, lstmPacked, FWD, GRAD));
  }
  it('lstm without gradients (inference path) gives the same y, h and c', async () => {
    for (const name of ['i5h5_state', 'b5_h33', 'i6h4', 'b1_h12']) {
      const xs: Tensor[] = [];
      for (let i = 0; fx.has(`lstm.${name}.x${i}`); i++) xs.push(await fx.tensor(`lstm.${name}.x${i}`));
      const [x, wih, whh, bih, bhh, h0, c0] = xs;
      const { y, h, c } = ops.lstm(x, wih, whh, bih, bhh, h0, c0);
      const expected = await fx.f32(`lstm.${name}.y`);
      const n = y.size;
      const m = h.size;
      assertClose(await y.toArray(), expected.subarray(0, n), `${name} y`, FWD);
      assertClose(await h.toArray(), expected.subarray(n, n + m), `${name} h`, FWD);
      assertClose(await c.toArray(), expected.subarray(n + m), `${name} c`, FWD);
      for (const t of [...xs, y, h, c]) t.dispose();
    }
  });
});
