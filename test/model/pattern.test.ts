// The delay pattern against the decoder sequences transformers' generate() produced.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers.js';
import { buildDelayPattern, undoDelay } from '../../src/model/pattern.js';

interface GenFixture {
  num_codebooks: number;
  max_new_tokens: number;
  frames: number;
  codes: number[][][];
  pattern_sequence: number[][][];
  input_audio?: { codes: number[][] };
}

const cases: [string, number][] = [
  ['text-mono-cfg3', 1], ['text-stereo-cfg3', 2], ['text-mono-continuation-cfg3', 1], ['melody-mono-melody-cfg3', 1],
];

describe('delay pattern', () => {
  for (const [name, channels] of cases) {
    it(`reproduces ${name}: forced cells, frame count, and undoing the delay`, () => {
      const fx = JSON.parse(readFileSync(join(FIXTURES, 'generate', `${name}.json`), 'utf8')) as GenFixture;
      const K = fx.num_codebooks;
      const prompt = fx.input_audio ? Int32Array.from(fx.input_audio.codes.flat()) : null;
      const Tp = fx.input_audio ? fx.input_audio.codes[0].length : 0;
      const pad = fx.pattern_sequence[0][0][0];
      const p = buildDelayPattern(K, channels, pad, fx.max_new_tokens, prompt, Tp);
      assert.equal(p.frames, fx.frames);
      for (let b = 0; b < fx.pattern_sequence.length; b++) {
        const seq = Int32Array.from(fx.pattern_sequence[b].flat());
        assert.equal(seq.length, K * p.length);
        for (let i = 0; i < seq.length; i++) {
          if (p.forced[i] >= 0) assert.equal(seq[i], p.forced[i], `forced cell ${i} of batch ${b}`);
          else assert.notEqual(seq[i], pad, `free cell ${i} holds a generated code`);
        }
        assert.deepEqual(Array.from(undoDelay(p, seq)), fx.codes[b].flat());
      }
    });
  }
});
