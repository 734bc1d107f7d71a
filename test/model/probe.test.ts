// Every network against transformers, through the probe (`npm run probe`): T5's hidden states, EnCodec's codes
// and decoded audio, the chroma one-hots and the LM's logits, for a text, a melody and a stereo model
// (fixtures: tools/fixtures/models.py). Floats within 1e-3 relative / 1e-4 absolute; codes and one-hots exact.

import assert from 'node:assert/strict';
import { Fixture, assertClose, gpu, probeFixture } from '../helpers.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';

const TOL = { rtol: 1e-3, atol: 1e-4 };

describe('probe: parity with transformers', function () {
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

      const check = async (name: string, exact = false): Promise<void> => {
        assert.ok(out[name], `probe wrote no ${name}`);
        assert.deepEqual(out[name].shape, expected.shape(name), `${name} shape`);
        const want = out[name].dtype === 'I32' ? await expected.i32(name) : await expected.f32(name);
        const got = Array.from(out[name].data as ArrayLike<number>);
        if (exact) assert.deepEqual(got, Array.from(want), `${name} differs`);
        else assertClose(got, want, name, TOL);
      };

      it('text.hidden (T5 last hidden state)', () => check('text.hidden'));
      it('encodec.codes (encode at full bandwidth), exactly', () => check('encodec.codes', true));
      it('encodec.decoded', () => check('encodec.decoded'));
      it('lm.logits', () => check('lm.logits'));
      if (model === 'melody-mono') {
        it('chroma.onehot of audio.wav, exactly', async () => {
          assert.deepEqual(out['chroma.onehot'].shape, inputs.shape('chroma.onehot'));
          assert.deepEqual(Array.from(out['chroma.onehot'].data as Float32Array), Array.from(await inputs.f32('chroma.onehot')));
        });
      }
    });
  }
});
