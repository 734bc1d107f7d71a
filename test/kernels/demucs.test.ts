// The kernels HTDemucs adds, forward only, against PyTorch (tools/fixtures/kernels_demucs.py).
// Tolerance rtol 1e-5 / atol 1e-5: f32 sums over up to 10,000 elements.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';

const TOL = { rtol: 1e-5, atol: 1e-5 };

describe('kernels: Demucs (GroupNorm, ...)', () => {
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
});
