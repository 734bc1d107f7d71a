// config.json parsing: the fixtures' configs (as transformers writes them) parse; a wrong field fails with its path.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, cp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { FIXTURES, gpu } from '../helpers.js';
import { parseEncodecConfig, parseMusicgenConfig, parseT5Config } from '../../src/model/config.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder } from '../../src/io/file-source.js';

type Json = Record<string, Record<string, unknown>>;

async function config(dir: string): Promise<Json> {
  return JSON.parse(await readFile(join(FIXTURES, dir, 'config.json'), 'utf8')) as Json;
}

describe('config.json parsing', () => {
  it('parses every fixture model (MusicGen, stereo, melody) and the standalone T5 and EnCodec configs', async () => {
    for (const m of ['text-mono', 'text-stereo', 'melody-mono', 'melody-mono-wg']) {
      const cfg = parseMusicgenConfig(await config(join('models', m)));
      assert.equal(cfg.decoder.hidden_size, 64, m);
      assert.equal(cfg.text_encoder.feed_forward_proj, 'relu', m);
      assert.deepEqual(cfg.audio_encoder.upsampling_ratios, [8, 5, 4, 4], m);
      assert.equal(cfg.chroma_length, m.startsWith('melody') ? 235 : undefined, m);
    }
    assert.equal(parseT5Config(await config('t5/gated-gelu'), '').feed_forward_proj, 'gated-gelu');
    assert.equal(parseEncodecConfig(await config('encodec/groupnorm-constant'), '').pad_mode, 'constant');
  });

  it('names a head count that does not divide the width', async () => {
    const cfg = await config('models/text-mono');
    cfg.decoder.num_attention_heads = 3;
    assert.throws(() => parseMusicgenConfig(cfg), { message: 'decoder.num_attention_heads: 3 does not divide decoder.hidden_size 64' });
  });

  it('names a missing section', async () => {
    const cfg = await config('models/text-mono');
    delete cfg.decoder;
    assert.throws(() => parseMusicgenConfig(cfg), { message: 'decoder: missing' });
  });

  it('names a zero sampling rate', async () => {
    const cfg = await config('models/melody-mono');
    cfg.audio_encoder.sampling_rate = 0;
    assert.throws(() => parseMusicgenConfig(cfg), { message: 'audio_encoder.sampling_rate: must be > 0' });
  });

  it('names a wrong type and an unsupported choice, with the path into arrays', async () => {
    const cfg = await config('models/text-mono');
    cfg.text_encoder.d_model = '32';
    assert.throws(() => parseMusicgenConfig(cfg), { message: 'text_encoder.d_model: expected a number, got "32"' });
    const ratios = await config('models/text-mono');
    ratios.audio_encoder.upsampling_ratios = [8, 5, 0.5, 4];
    assert.throws(() => parseMusicgenConfig(ratios), { message: 'audio_encoder.upsampling_ratios.2: must be an integer, got 0.5' });
    const act = await config('models/text-mono');
    act.decoder.activation_function = 'silu';
    assert.throws(() => parseMusicgenConfig(act), { message: 'decoder.activation_function: "silu" is not supported (gelu, relu)' });
  });

  it('ignores fields it does not read', async () => {
    const plain = await config('models/text-stereo');
    const extra = await config('models/text-stereo');
    extra.decoder.some_new_field = { nested: [1, 2] };
    extra.text_encoder.another = 'x';
    (extra as Record<string, unknown>).top_level_extra = 7;
    assert.deepEqual(parseMusicgenConfig(extra), parseMusicgenConfig(plain));
  });

  it('MusicgenModel.load reports the folder, the file and the field', async () => {
    await gpu();
    const dir = await mkdtemp(join(tmpdir(), 'mg-cfg-'));
    try {
      await cp(join(FIXTURES, 'models', 'text-mono'), dir, { recursive: true });
      const cfg = await config('models/text-mono');
      cfg.decoder.num_attention_heads = 3;
      await writeFile(join(dir, 'config.json'), JSON.stringify(cfg));
      await assert.rejects(MusicgenModel.load(dirFolder(dir)), (e: Error) => e.message.endsWith('/config.json: decoder.num_attention_heads: 3 does not divide decoder.hidden_size 64'));
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
