// Loading checkpoints as published: both weight-norm namings, tied T5 tables under either name, the old
// sinusoidal table; and errors that name the tensor or file at fault.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, cp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { FIXTURES, Fixture, assertClose, gpu, probeFixture } from '../helpers.js';
import * as ops from '../../src/ops.js';
import { probe } from '../../src/cli/probe.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder, openSafetensorsFile } from '../../src/io/file-source.js';
import { splitParts } from '../../src/train/state.js';
import { encodeSafetensors, SafetensorsFile, BufferSource, type TensorToWrite } from '../../src/io/safetensors.js';

/** Rewrites a model folder's checkpoint through `edit` into a temporary folder. */
async function editedCopy(model: string, edit: (t: Record<string, TensorToWrite>) => void): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mg-load-'));
  await cp(join(FIXTURES, 'models', model), dir, { recursive: true });
  const file = await SafetensorsFile.open(new BufferSource(await readFile(join(dir, 'model.safetensors'))));
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of file.names()) {
    const info = file.info(name);
    tensors[name] = { dtype: 'F32', shape: [...info.shape], data: await file.readF32(name) };
  }
  edit(tensors);
  await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  return dir;
}

describe('loading checkpoints', function () {
  this.timeout(120_000);
  before(() => gpu());

  it('loads the hub naming (weight_g/weight_v, embed_tokens only, embed_positions table) to the same logits', async () => {
    const { inputs, out: a } = await probeFixture('melody-mono');
    const b = await probe(join(FIXTURES, 'models', 'melody-mono-wg'), inputs.file);
    for (const name of ['lm.logits', 'encodec.decoded', 'encodec.codes', 'text.hidden']) {
      assert.deepEqual(Array.from(b[name].data as ArrayLike<number>), Array.from(a[name].data as ArrayLike<number>), name);
    }
  });

  it('splits the stacked codebook tables and heads into groups when one binding cannot hold them', async () => {
    const inputs = await Fixture.open('probe/text-stereo.inputs.safetensors');
    const expected = await Fixture.open('probe/text-stereo.outputs.safetensors');
    const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', 'text-stereo')), { maxGroupBytes: 3 * 65 * 64 * 4 });
    assert.deepEqual(model.lm.embedTokens.map((g) => g.size), [3, 3, 2]);
    const ids = await inputs.tensor('text.input_ids');
    const maskI = await inputs.tensor('text.attention_mask');
    const codes = await inputs.tensor('lm.codes');
    const mask = ops.castToF32(maskI);
    const logits = model.lm.forward(codes, model.conditioning(model.projectText(model.textHidden(ids, maskI), mask), mask));
    assertClose(await logits.toArray(), await expected.f32('lm.logits'), 'lm.logits (grouped)', { rtol: 1e-3, atol: 1e-4 });
    model.dispose();
    await inputs.file.close();
    await expected.file.close();
  });

  it('records what it binds: each tensor under its checkpoint key(s), the stacked groups split into their parts', async () => {
    const dir = join(FIXTURES, 'models', 'text-stereo');
    const model = await MusicgenModel.load(dirFolder(dir), { maxGroupBytes: 3 * 65 * 64 * 4 });
    const file = await openSafetensorsFile(join(dir, 'model.safetensors'));
    try {
      const named = model.namedParameters();
      const keys = named.flatMap((p) => p.names);
      assert.equal(new Set(keys).size, keys.length, 'each key bound once');
      assert.ok(keys.includes('decoder.model.decoder.embed_tokens.7.weight') && keys.includes('decoder.lm_heads.5.weight'));
      for (const p of named) {
        for (const [name, part] of splitParts(p, (await p.tensor.read()) as Float32Array)) {
          assert.deepEqual(Array.from(part), Array.from(await file.readF32(name)), name);
        }
      }
      // what trains is exactly the decoder's and the text projection's keys
      const trainable = model.trainableParameters();
      const want = file.names().filter((n) => n.startsWith('decoder.') || n.startsWith('enc_to_dec_proj.')).sort();
      assert.deepEqual(trainable.flatMap((p) => p.names).sort(), want);
      assert.deepEqual(model.lm.parameters(), model.lm.namedParameters().map((p) => p.tensor));
      // parameters() is every weight of every network
      const all = new Set(model.parameters());
      assert.ok(trainable.every((p) => all.has(p.tensor)), 'the trainable tensors are among the parameters');
      assert.ok([...model.t5.parameters(), ...model.encodec.parameters()].every((t) => all.has(t)), 'T5 and EnCodec are too');
      assert.equal(all.size, model.t5.parameters().length + model.encodec.parameters().length + trainable.length);
    } finally {
      await file.close();
      model.dispose();
    }
  });

  it('names a missing tensor', async () => {
    const dir = await editedCopy('text-mono', (t) => { delete t['decoder.model.decoder.layers.1.fc2.weight']; });
    await assert.rejects(MusicgenModel.load(dirFolder(dir)), /decoder\.model\.decoder\.layers\.1\.fc2\.weight.*missing/);
    await rm(dir, { recursive: true });
  });

  it('names a misshapen tensor with both shapes', async () => {
    const dir = await editedCopy('text-mono', (t) => {
      const w = t['decoder.model.decoder.layers.0.fc1.weight']; // [128, 64]
      t['decoder.model.decoder.layers.0.fc1.weight'] = { ...w, shape: [w.shape[1], w.shape[0]] };
    });
    await assert.rejects(MusicgenModel.load(dirFolder(dir)), /layers\.0\.fc1\.weight.*shape \[64, 128\], expected \[128, 64\]/);
    await rm(dir, { recursive: true });
  });

  it('refuses a checkpoint with tensors nothing reads, naming them', async () => {
    const dir = await editedCopy('text-mono', (t) => {
      t['decoder.model.decoder.layers.2.fc1.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    });
    await assert.rejects(MusicgenModel.load(dirFolder(dir)), /layers\.2\.fc1\.weight/);
    await rm(dir, { recursive: true });
  });

  it('says which file a model folder lacks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-load-'));
    await cp(join(FIXTURES, 'models', 'text-mono'), dir, { recursive: true });
    await rm(join(dir, 'tokenizer.json'));
    await assert.rejects(MusicgenModel.load(dirFolder(dir)), /missing tokenizer\.json/);
    await writeFile(join(dir, 'config.json'), '{ not json');
    await assert.rejects(MusicgenModel.load(dirFolder(dir)), /config\.json: not valid JSON/);
    await rm(dir, { recursive: true });
  });
});
