// T5 encoders with config values MusicGen's t5-base does not use (tools/fixtures/t5_variants.py): gated-GELU
// feed-forward, other bucket counts and distances, odd head sizes, a padded row. Within 1e-3 / 1e-4.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import { openCheckpointDir } from '../../src/io/file-source.js';
import { Weights } from '../../src/model/weights.js';
import { T5Encoder } from '../../src/model/t5.js';
import { parseT5Config } from '../../src/model/config.js';

describe('T5 for other config values', function () {
  this.timeout(120_000);

  for (const name of ['gated-gelu', 'relu-long']) {
    it(name, async () => {
      const rt = await gpu();
      const dir = join(FIXTURES, 't5', name);
      const cfg = parseT5Config(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), '');
      const reader = await openCheckpointDir(dir);
      const w = new Weights(reader, rt);
      const t5 = await T5Encoder.load(w, cfg);
      assert.deepEqual(w.unused(), [], 'every weight is used');
      await reader.close();
      const fx = await Fixture.open(`t5/${name}.safetensors`);
      const ids = await fx.tensor('input_ids');
      const mask = await fx.tensor('attention_mask');
      const hidden = t5.forward(ids, mask);
      assertClose(await hidden.toArray(), await fx.f32('hidden'), `${name} hidden`, { rtol: 1e-3, atol: 1e-4 });
      for (const t of [ids, mask, hidden]) t.dispose();
      t5.dispose();
    });
  }
});
