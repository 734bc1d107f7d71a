// The training loss and every gradient of the decoder and the conditioning projections against transformers
// (tools/fixtures/models.py: `train.loss`, `train.grad.*`), through the probe (`npm run probe`), for a text, a
// melody and a stereo model. Loss within 1e-4 relative; gradients within 1e-2 relative / 1e-6 absolute.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu, probeFixture } from '../helpers.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { learningRate } from '../../src/train/loop.js';
import { delayedLabels, shiftRight } from '../../src/model/pattern.js';
import { Rng } from '../../src/train/data.js';

describe('training: loss and gradients match transformers', function () {
  this.timeout(300_000);
  before(() => gpu());

  for (const model of ['text-mono', 'melody-mono', 'text-stereo']) {
    describe(model, () => {
      let out: Record<string, TensorToWrite>;
      let expected: Fixture;
      let inputs: Fixture;
      before(async () => {
        ({ inputs, expected, out } = await probeFixture(model));
      });

      it('train.loss', async () => {
        assert.ok(out['train.loss'], 'probe wrote no train.loss');
        assertClose(out['train.loss'].data as Float32Array, await expected.f32('train.loss'), 'train.loss', { rtol: 1e-4, atol: 0 });
      });

      it('train.grad.* for every decoder and projection parameter', async () => {
        const want = expected.file.names().filter((n) => n.startsWith('train.grad.')).sort();
        const got = Object.keys(out).filter((n) => n.startsWith('train.grad.')).sort();
        assert.deepEqual(got, want, 'gradient names');
        for (const name of want) {
          assert.deepEqual(out[name].shape, expected.shape(name), `${name} shape`);
          assertClose(out[name].data as Float32Array, await expected.f32(name), name, { rtol: 1e-2, atol: 1e-6 });
        }
      });
    });
  }
});

describe('training: teacher forcing, schedule, PRNG', () => {
  it('labels follow the delay pattern and the decoder input is them shifted right', () => {
    // K = 4 mono, 3 frames: codebook k's frame f at time f + k; pad (9) elsewhere
    const codes = Int32Array.from([1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33]);
    const { labels, T } = delayedLabels([{ codes, frames: 3 }], 4, 1, 9);
    assert.equal(T, 6);
    const row = (k: number): number[] => Array.from({ length: T }, (_, t) => labels[t * 4 + k]);
    assert.deepEqual(row(0), [1, 2, 3, 9, 9, 9]);
    assert.deepEqual(row(3), [9, 9, 9, 31, 32, 33]);
    const dec = shiftRight(labels, 1, T, 4, 9);
    assert.deepEqual(Array.from(dec.subarray(0, T)), [9, 1, 2, 3, 9, 9]);
    assert.deepEqual(Array.from(dec.subarray(3 * T, 4 * T)), [9, 9, 9, 9, 31, 32]);
    // stereo: the L/R pair of a level shares its delay
    const st = delayedLabels([{ codes: new Int32Array(8 * 2).fill(5), frames: 2 }], 8, 2, 9);
    assert.equal(st.T, 5);
    assert.equal(st.labels[0 * 8 + 1], 5);
    assert.equal(st.labels[0 * 8 + 2], 9);
    assert.equal(st.labels[1 * 8 + 3], 5);
  });

  it('learning rate: linear warmup, then constant or cosine toward 0', () => {
    const o = { lr: 1, warmup: 4, schedule: 'cosine' as const };
    assert.deepEqual([1, 2, 4].map((s) => learningRate(s, 14, o)), [0.25, 0.5, 1]);
    assert.equal(learningRate(5, 14, o), 1);
    assert.ok(Math.abs(learningRate(10, 14, o) - 0.5) < 1e-12);
    assert.ok(learningRate(14, 14, o) < 0.03 && learningRate(14, 14, o) > 0);
    assert.equal(learningRate(9, 14, { ...o, schedule: 'constant' }), 1);
  });

  it('the PRNG is seeded, restorable and roughly uniform', () => {
    const a = Rng.from(42);
    const b = Rng.from(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => Rng.from(43).next()));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05 && Math.min(...xs) >= 0 && Math.max(...xs) < 1);
    const c = new Rng(a.state);
    assert.equal(c.next(), a.next());
    assert.deepEqual([...Rng.from(1).permutation(10)].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
