// Greedy generation against transformers' generate() (tools/fixtures/models.py): text, melody, stereo, with
// and without guidance, and continuing a clip. Codes must match exactly, and the decoded audio closely
// (the cases are in greedy-cases.ts, which tools/gpu-check.ts runs on a real GPU too).

import { gpu } from '../helpers.js';
import type { MusicgenModel } from '../../src/model/musicgen.js';
import { GREEDY_CASES, checkGreedyCase, loadMelodyWav } from './greedy-cases.js';

describe('greedy generation: parity with transformers generate()', function () {
  this.timeout(300_000);
  const models = new Map<string, MusicgenModel>();
  let melodyWav: Float32Array;
  before(async () => {
    await gpu();
    melodyWav = await loadMelodyWav();
  });
  after(() => {
    for (const m of models.values()) m.dispose();
  });

  for (const name of GREEDY_CASES) it(name, () => checkGreedyCase(name, models, melodyWav));
});
