// Adam/AdamW and gradient-norm clipping against torch.optim and clip_grad_norm_
// (tools/fixtures/kernels_optim.py): three clipped steps, the norms and clip factors, the moments, an LR
// schedule fed from the GPU, per-parameter step counts, checkpointing the state, and the finite flag.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu } from '../helpers.js';
import { Tensor } from '../../src/tensor.js';
import { Adam, AdamW } from '../../src/train/optim.js';
import { clipGradNorm } from '../../src/kernels/clip.js';

const N_PARAMS = 4;
const STEPS = 3;
const TOL = { rtol: 1e-5, atol: 1e-6 };

describe('optimisers: AdamW / Adam with gradient clipping', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/optim.safetensors');
  });

  async function freshParams(): Promise<Tensor[]> {
    const ps: Tensor[] = [];
    for (let i = 0; i < N_PARAMS; i++) ps.push(await fx.tensor(`p0.${i}`));
    return ps;
  }

  /** Gives each parameter step s's gradient (none where `missing` says), scaled by gmul. */
  async function setGrads(ps: Tensor[], s: number, gmul: number, missing: number[] = []): Promise<void> {
    for (let i = 0; i < ps.length; i++) {
      ps[i].grad?.release();
      ps[i].grad = null;
      if (missing.includes(i)) continue;
      const g = await fx.f32(`g${s}.${i}`);
      ps[i].grad = Tensor.from(g.map((x) => x * gmul), ps[i].shape);
    }
  }

  async function checkParams(ps: Tensor[], opt: AdamW, c: string): Promise<void> {
    for (let i = 0; i < ps.length; i++) assertClose(await ps[i].read(), await fx.f32(`${c}.p.${i}`), `${c}.p.${i}`, TOL);
    const state = await opt.exportState();
    for (let i = 0; i < ps.length; i++) {
      assertClose(state.m[i], await fx.f32(`${c}.m.${i}`), `${c}.m.${i}`, TOL);
      assertClose(state.v[i], await fx.f32(`${c}.v.${i}`), `${c}.v.${i}`, { rtol: 1e-5, atol: 1e-9 });
    }
  }

  type Make = (ps: Tensor[]) => AdamW;
  const cases: Record<string, { make: Make; gmul?: number; lrs?: number[]; missing?: Record<number, number[]> }> = {
    adamw: { make: (ps) => new AdamW(ps, { lr: 1e-3 }) },
    adam: { make: (ps) => new Adam(ps, { lr: 1e-3, weightDecay: 0.1 }) },
    noclip: { make: (ps) => new AdamW(ps, { lr: 1e-3 }), gmul: 0.0005 },
    skip: { make: (ps) => new AdamW(ps, { lr: 1e-3 }), missing: { 1: [1] } },
  };
  for (const [c, { make, gmul = 1, missing = {} }] of Object.entries(cases)) {
    it(`${c}: 3 clipped steps match torch (params, moments, norms, clip factors)`, async () => {
      const ps = await freshParams();
      const opt = make(ps);
      const norms: number[] = [];
      const scales: number[] = [];
      for (let s = 0; s < STEPS; s++) {
        await setGrads(ps, s, gmul, missing[s]);
        const clip = clipGradNorm(ps, 1.0);
        opt.step(undefined, clip.scale);
        norms.push((await clip.norm.read())[0]);
        scales.push((await clip.scale.read())[0]);
        assert.equal((await clip.finite.read())[0], 1);
        for (const t of [clip.norm, clip.scale, clip.finite]) t.dispose();
      }
      assertClose(norms, await fx.f32(`${c}.norm`), `${c}.norm`, TOL);
      assertClose(scales, await fx.f32(`${c}.scale`), `${c}.scale`, TOL);
      await checkParams(ps, opt, c);
      opt.zeroGrad();
      opt.dispose();
      for (const p of ps) p.dispose();
    });
  }

  for (const mode of ['numbers', 'a GPU tensor'] as const) {
    it(`a learning-rate schedule given as ${mode} matches torch`, async () => {
      const lrs = [1e-3, 5e-4, 2.5e-4];
      const ps = await freshParams();
      const opt = new AdamW(ps, { lr: 1 });
      for (let s = 0; s < STEPS; s++) {
        await setGrads(ps, s, 1);
        const clip = clipGradNorm(ps, 1.0);
        const lr = mode === 'numbers' ? lrs[s] : Tensor.from([lrs[s]], [1]);
        opt.step(lr, clip.scale);
        if (lr instanceof Tensor) lr.dispose();
        for (const t of [clip.norm, clip.scale, clip.finite]) t.dispose();
      }
      await checkParams(ps, opt, 'sched');
      opt.dispose();
      for (const p of ps) p.dispose();
    });
  }

  it('exportState / importState resume a run exactly', async () => {
    const ps = await freshParams();
    let opt = new AdamW(ps, { lr: 1e-3 });
    for (let s = 0; s < STEPS; s++) {
      if (s === 2) {
        const state = await opt.exportState();
        assert.equal(state.step, 2);
        assert.deepEqual(state.steps, [2, 2, 2, 2]);
        opt.dispose();
        opt = new AdamW(ps, { lr: 1e-3 });
        opt.importState(state);
      }
      await setGrads(ps, s, 1);
      const clip = clipGradNorm(ps, 1.0);
      opt.step(undefined, clip.scale);
      for (const t of [clip.norm, clip.scale, clip.finite]) t.dispose();
    }
    await checkParams(ps, opt, 'adamw');
    opt.dispose();
    for (const p of ps) p.dispose();
  });

  it('the norm of 3M gradient values (256 workgroups, grid-stride) matches a float64 sum', async () => {
    const sizes = [3_000_001, 1, 777];
    const ps = sizes.map((n) => Tensor.zeros([n]));
    let ss = 0;
    ps.forEach((p, k) => {
      const g = Float32Array.from({ length: sizes[k] }, (_, i) => Math.sin(i * 0.37 + k) * (1 + (i % 7)));
      for (const x of g) ss += x * x;
      p.grad = Tensor.from(g, [sizes[k]]);
    });
    const clip = clipGradNorm(ps, 5.0);
    const norm = Math.sqrt(ss);
    assertClose(await clip.norm.read(), [norm], 'norm', { rtol: 2e-5, atol: 0 });
    assertClose(await clip.scale.read(), [Math.fround(5 / Math.fround(norm + 1e-6))], 'scale', { rtol: 2e-5, atol: 0 });
    for (const p of ps) p.dispose();
    for (const t of [clip.norm, clip.scale, clip.finite]) t.dispose();
  });

  it('the finite flag catches NaN and inf gradients', async () => {
    for (const [bad, want] of [[0.5, 1], [NaN, 0], [Infinity, 0], [-Infinity, 0], [1e30, 0]] as const) {
      const ps = [Tensor.zeros([300]), Tensor.zeros([5])];
      const g = new Float32Array(300).fill(0.25);
      g[123] = bad;
      ps[0].grad = Tensor.from(g, [300]);
      ps[1].grad = Tensor.from([1, 2, 3, 4, 5], [5]);
      const clip = clipGradNorm(ps, 1.0);
      assert.equal((await clip.finite.read())[0], want, `gradient value ${bad}`);
      for (const p of ps) p.dispose();
      for (const t of [clip.norm, clip.scale, clip.finite]) t.dispose();
    }
  });

  it('no gradients: norm 0 and scale 1, as torch', async () => {
    const ps = [Tensor.zeros([3])];
    const clip = clipGradNorm(ps, 1.0);
    assert.deepEqual(Array.from(await clip.norm.read()), [0]);
    assert.deepEqual(Array.from(await clip.scale.read()), [1]);
    for (const t of [...ps, clip.norm, clip.scale, clip.finite]) t.dispose();
  });
});
