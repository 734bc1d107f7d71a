// `--lm-weights`: an audiocraft LM state dict (audiocraft's own LMModel, the Cog trainer's file layout, f16; made by
// tools/fixtures/audiocraft_lm.py from a transformers MusicGen with re-drawn decoder weights) applied on top of
// text-mono must give that transformers model's logits; keys that fit nothing, or a model they do not cover, fail.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { MusicGen } from '../../src/pipeline.js';
import { withAudiocraftLm } from '../../src/model/audiocraft-lm.js';
import { FileSource, dirFolder } from '../../src/io/file-source.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';

const LM = join(FIXTURES, 'io', 'torch', 'lm_final.pt');
const model = (name: string) => dirFolder(join(FIXTURES, 'models', name));

describe('audiocraft LM weights on a transformers model', function () {
  this.timeout(300_000);

  it('maps every key (in_proj split into q/k/v) and gives the source model\'s logits', async () => {
    await gpu();
    const inputs = await Fixture.open('probe/text-mono.inputs.safetensors');
    const expected = await Fixture.open('io/torch/lm_final.expected.safetensors');
    const base = await Fixture.open('probe/text-mono.outputs.safetensors');
    const want = await expected.f32('lm.logits');
    // the fixture's LM really differs from text-mono's, so only the mapped weights can match it
    const baseLogits = await base.f32('lm.logits');
    assert.ok(want.some((v, i) => Math.abs(v - baseLogits[i]!) > 0.1));

    // through the library's option, as `generate --lm-weights FILE` passes it
    const m = (await MusicGen.load(join(FIXTURES, 'models', 'text-mono'), { lmWeights: LM })).model;
    const ids = await inputs.tensor('text.input_ids');
    const maskI = await inputs.tensor('text.attention_mask');
    const codes = await inputs.tensor('lm.codes');
    const mask = ops.castToF32(maskI);
    const logits = m.lm.forward(codes, m.conditioning(m.projectText(m.textHidden(ids, maskI), mask), mask));
    assertClose(await logits.toArray(), want, 'lm.logits with --lm-weights', { rtol: 1e-3, atol: 1e-4 });
    m.dispose();
    await assert.rejects(MusicGen.load(join(FIXTURES, 'models', 'text-mono'), { lmWeights: join(FIXTURES, 'nope.pt') }), /ENOENT.*nope\.pt/);
    for (const f of [inputs, expected, base]) await f.file.close();
  });

  it('refuses keys with no counterpart, and a model the state dict does not cover', async () => {
    const melody = await openCheckpoint(model('melody-mono')); // no cross-attention
    await assert.rejects(withAudiocraftLm(melody, new FileSource(LM)), /keys match nothing in .*transformer\.layers\.0\.cross_attention\.in_proj_weight \(→ decoder\.model\.decoder\.layers\.0\.encoder_attn\.q_proj\.weight, which the model lacks\)/);
    await melody.close();
    const stereo = await openCheckpoint(model('text-stereo')); // 8 codebooks: the file has 4
    await assert.rejects(withAudiocraftLm(stereo, new FileSource(LM)), /lacks \d+ of the model's LM tensors, e\.g\. .*embed_tokens\.4\.weight/);
    await stereo.close();
    const plain = await openCheckpoint(model('text-mono'));
    await assert.rejects(withAudiocraftLm(plain, new FileSource(join(FIXTURES, 'io', 'torch', 'tensors.zip.pt'))), /not an audiocraft LM state dict/);
    await plain.close();
  });
});
