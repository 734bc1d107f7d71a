// Weight dtypes end to end: `probe --dtype` on the tiny text model against transformers' f32 outputs (the committed
// probe fixtures from tools/fixtures/models.py), with the relative RMS bounds. The tiny model's weights are
// transformers' own initialisation (normal, std 0.02; T5's token table std 1), the same distributions as the
// full-size random model in BENCHMARKS.md. Its rows are short (64 and 32 wide: 2 or 1 q4 groups per row), and q4's
// logits do not reach the 6e-2 here (measured 1.2e-2 text.hidden, 8.9e-2 logits; 0.14 / 0.11 before T5 was
// kept in q8 and the scales chosen for least error): its bound below is set to catch a regression, not the target.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, Fixture, gpu } from '../helpers.js';
import { probe } from '../../src/cli/probe.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder } from '../../src/io/file-source.js';
import { PackedMatrix } from '../../src/kernels/packed.js';
import { convert } from '../../src/cli/convert.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
}

describe('weight dtypes: accuracy against transformers f32 (tiny text model)', () => {
  let inputs: Fixture;
  let expected: Fixture;
  before(async () => {
    await gpu();
    inputs = await Fixture.open('probe/text-mono.inputs.safetensors');
    expected = await Fixture.open('probe/text-mono.outputs.safetensors');
  });

  const bounds = { f16: 1e-3, q8: 2e-2, q4: 0.12 } as const;
  for (const [dtype, bound] of Object.entries(bounds) as [keyof typeof bounds, number][]) {
    it(`${dtype}: lm.logits and text.hidden within ${bound} relative RMS, and not exact`, async () => {
      const out = await probe(join(FIXTURES, 'models', 'text-mono'), inputs.file, { dtype });
      for (const name of ['lm.logits', 'text.hidden']) {
        const err = relRms(out[name].data as Float32Array, await expected.file.readF32(name));
        assert.ok(err <= bound, `${dtype} ${name}: relative RMS ${err.toExponential(2)} > ${bound}`);
        // the weights really were rounded (f32 gives ~3e-7 here)
        assert.ok(err > 1e-5, `${dtype} ${name}: relative RMS ${err.toExponential(2)}: nothing was rounded?`);
      }
    });
  }

  it('q8 stores the LM and T5 matrices packed (about a quarter of the f32 bytes); EnCodec stays f32', async () => {
    const folder = dirFolder(join(FIXTURES, 'models', 'text-mono'));
    const f32 = await MusicgenModel.load(folder, { dtype: 'f32' });
    const q8 = await MusicgenModel.load(folder, { dtype: 'q8' });
    try {
      const bytes = (m: MusicgenModel): number => m.lm.parameters().reduce((s, t) => s + t.bytes, 0);
      assert.ok(bytes(q8) < 0.35 * bytes(f32), `LM bytes: q8 ${bytes(q8)}, f32 ${bytes(f32)}`);
      // the body in q8; T5 and the self-attention output projections kept in f16 (src/quant.ts, KEPT)
      const format = (m: unknown): string => (m instanceof PackedMatrix ? m.format : 'f32');
      assert.equal(format(q8.lm.layers[0].fc1.weight), 'q8');
      assert.equal(format(q8.lm.layers[0].selfAttn.qkv.weight), 'q8');
      assert.equal(format(q8.lm.layers[0].selfAttn.out.weight), 'f16');
      assert.equal(format(q8.t5.blocks[0].attn.q), 'f16');
      assert.deepEqual(q8.encodec.parameters().map((t) => t.dtype), f32.encodec.parameters().map((t) => t.dtype));
      assert.throws(() => q8.trainableParameters(), /fine-tuning needs the model's f32 weights/);
    } finally {
      f32.dispose();
      q8.dispose();
    }
  });
});

describe('musicgen convert: a packed folder that loads as it is', () => {
  before(async () => {
    await gpu();
  });
  for (const dtype of ['q8', 'q4'] as const) {
    it(`${dtype}: the converted folder loads in ${dtype} and gives the same outputs as packing at load`, async () => {
      const out = await mkdtemp(join(tmpdir(), `convert-${dtype}-`));
      try {
        const src = join(FIXTURES, 'models', 'text-mono');
        await convert(src, dtype, out);
        const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { quantization: { dtype: string; kept: Record<string, string> } };
        assert.equal(cfg.quantization.dtype, dtype);
        assert.equal(cfg.quantization.kept['text_encoder.*'], dtype === 'q8' ? 'f16' : 'q8');
        const inputs = await Fixture.open('probe/text-mono.inputs.safetensors');
        const direct = await probe(src, inputs.file, { dtype });
        const converted = await probe(out, inputs.file); // no dtype: the folder's own
        for (const name of ['lm.logits', 'text.hidden', 'encodec.decoded']) {
          assert.deepEqual(converted[name].data, direct[name].data, `${name} differs`);
        }
        await assert.rejects(probe(out, inputs.file, { dtype: 'f32' }), /is stored as q[48]; load this model with dtype q[48]/);
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    });
  }
});
