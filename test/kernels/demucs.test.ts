// The kernels HTDemucs adds, forward only, against PyTorch (tools/fixtures/kernels_demucs.py).
// Tolerance rtol 1e-5 / atol 1e-5 (f32 sums over up to 10,000 elements), except where a case says why.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';

const TOL = { rtol: 1e-5, atol: 1e-5 };

describe('kernels: Demucs (GroupNorm, conv2d, GLU, FFT, STFT)', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/demucs.safetensors');
  });

  describe('groupNorm', () => {
    const cases: [string, number, number][] = [['g1', 1, 1e-5], ['g4', 4, 1e-5], ['long', 2, 1e-5], ['4d', 3, 1e-5],
      ['plain', 2, 1e-5], ['eps', 2, 1e-3]];
    for (const [name, groups, eps] of cases) {
      it(name, async () => {
        const x = await fx.tensor(`gn.${name}.x`);
        const affine = fx.has(`gn.${name}.w`);
        const w = affine ? await fx.tensor(`gn.${name}.w`) : undefined;
        const b = affine ? await fx.tensor(`gn.${name}.b`) : undefined;
        const y = ops.groupNorm(x, groups, w, b, eps);
        assert.deepEqual([...y.shape], fx.shape(`gn.${name}.y`));
        assertClose(await y.toArray(), await fx.f32(`gn.${name}.y`), `groupNorm ${name}`, TOL);
        for (const t of [x, w, b, y]) t?.dispose();
      });
    }
    it('rejects channels that do not split into the groups', () => {
      const x = Tensor.zeros([1, 6, 4]);
      assert.throws(() => ops.groupNorm(x, 4), /6 channels .* do not split into 4 groups/);
      x.dispose();
    });
  });

  async function run(prefix: string, inputs: string[], fn: (...xs: Tensor[]) => Tensor, tol = TOL): Promise<void> {
    const xs = await Promise.all(inputs.map((n) => fx.tensor(`${prefix}.${n}`)));
    const y = fn(...xs);
    assert.deepEqual([...y.shape], fx.shape(`${prefix}.y`));
    assertClose(await y.toArray(), await fx.f32(`${prefix}.y`), prefix, tol);
    for (const t of [...xs, y]) t.dispose();
  }

  describe('conv2d / convTranspose2d', () => {
    // atol 1e-4: sums of up to 54 products of N(0, 1) values
    const CONV = { rtol: 1e-5, atol: 1e-4 };
    const conv: [string, [number, number], [number, number]][] = [
      ['freq', [4, 1], [2, 0]], ['k3', [1, 1], [1, 1]], ['1x1', [1, 1], [0, 0]], ['general', [2, 3], [1, 2]]];
    for (const [name, stride, padding] of conv) {
      it(`conv2d ${name}`, () => run(`conv2d.${name}`, ['x', 'w', 'b'], (x, w, b) => ops.conv2d(x, w, b, { stride, padding }), CONV));
    }
    it('conv2d k3 in bands of output rows (columns over the byte budget)', () =>
      // 2 × 54 × 7 floats per output row: a 3000-byte budget gives bands of 1 row over the 8
      run('conv2d.k3', ['x', 'w', 'b'], (x, w, b) => ops.conv2d(x, w, b, { padding: 1, columnBytes: 3000 }), CONV));
    const convt: [string, [number, number]][] = [['freq', [4, 1]], ['general', [2, 3]]];
    for (const [name, stride] of convt) {
      it(`convTranspose2d ${name}`, () => run(`convt2d.${name}`, ['x', 'w', 'b'], (x, w, b) => ops.convTranspose2d(x, w, b, { stride }), CONV));
    }
  });

  describe('glu', () => {
    it('over channels', () => run('glu.ch', ['x'], (x) => ops.glu(x, 1)));
    it('over the last axis', () => run('glu.last', ['x'], (x) => ops.glu(x, -1)));
  });

  describe('fft', () => {
    // atol scales with √n·log n of O(1) inputs: 1e-4 up to n = 64, 1e-3 at 4096 (outputs of size ~64)
    for (const n of [2, 8, 64, 4096]) {
      const tol = { rtol: 1e-5, atol: n > 64 ? 1e-3 : 1e-4 };
      it(`n = ${n}, forward and inverse (unscaled)`, async () => {
        const x = await fx.tensor(`fft.n${n}.x`);
        for (const [inverse, name] of [[false, 'y'], [true, 'yi']] as const) {
          const y = ops.fft(x, inverse);
          assertClose(await y.toArray(), await fx.f32(`fft.n${n}.${name}`), `fft n${n} ${name}`, tol);
          y.dispose();
        }
        x.dispose();
      });
    }
  });

  describe('stft / istft (demucs.spec)', () => {
    // normalised transforms of N(0, 1) signals keep O(1) values; atol 1e-5 (1e-4 at n = 4096)
    for (const n of [16, 256, 4096]) {
      const tol = { rtol: 1e-5, atol: n > 256 ? 1e-4 : 1e-5 };
      it(`stft n = ${n}`, async () => {
        const x = await fx.tensor(`stft.n${n}.x`);
        const z = ops.stft(x, n, n / 4);
        assert.deepEqual([...z.shape], fx.shape(`stft.n${n}.z`));
        assertClose(await z.toArray(), await fx.f32(`stft.n${n}.z`), `stft n${n}`, tol);
        for (const t of [x, z]) t.dispose();
      });
      it(`istft n = ${n}`, async () => {
        const z = await fx.tensor(`istft.n${n}.z`);
        const y = ops.istft(z, n / 4, fx.shape(`istft.n${n}.y`)[1]);
        assertClose(await y.toArray(), await fx.f32(`istft.n${n}.y`), `istft n${n}`, tol);
        for (const t of [z, y]) t.dispose();
      });
    }
    it('rejects an n_fft that is not a power of two', () => {
      const x = Tensor.zeros([1, 100]);
      assert.throws(() => ops.stft(x, 12, 3), /power of two/);
      x.dispose();
    });
  });
});
