// One greedy-generation case against transformers' generate() (tools/fixtures/models.py): codes exactly, the
// decoded audio closely. Shared by test/model/generate.test.ts and tools/gpu-check.ts (the same cases on a real
// GPU, where mocha is not at hand); it throws an AssertionError naming what differs.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import decodeAudio from 'audio-decode';
import { FIXTURES, assertClose } from '../helpers.js';
import { Tensor, tidy } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { dirFolder } from '../../src/io/file-source.js';
import { generateCodes } from '../../src/model/generate.js';
import { extractChroma } from '../../src/model/chroma.js';

interface GenFixture {
  model: string;
  prompt: string[];
  input_ids: number[][];
  guidance_scale: number;
  max_new_tokens: number;
  frames: number;
  codes: number[][][];
  audio: { channels: number; length: number; first64: number[][][] };
  melody?: { chroma_argmax: number[] };
  input_audio?: { start: number; length: number; codes: number[][] };
}

export const GREEDY_CASES = ['text-mono-cfg3', 'text-mono-cfg1', 'text-stereo-cfg3', 'melody-mono-melody-cfg3', 'melody-mono-nomelody-cfg3', 'text-mono-continuation-cfg3'];

/** The fixtures' melody clip (mono, 32 kHz), used by the melody and continuation cases. */
export async function loadMelodyWav(): Promise<Float32Array> {
  const decoded = await decodeAudio(readFileSync(join(FIXTURES, 'generate', 'melody.wav')));
  return decoded.channelData[0];
}

/** Runs case `name`, loading its tiny model into `models` once (the caller disposes them). */
export async function checkGreedyCase(name: string, models: Map<string, MusicgenModel>, melodyWav: Float32Array): Promise<void> {
  const fx = JSON.parse(readFileSync(join(FIXTURES, 'generate', `${name}.json`), 'utf8')) as GenFixture;
  let model = models.get(fx.model);
  if (!model) {
    model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', fx.model)));
    models.set(fx.model, model);
  }
  const tokens = model.tokenizer.encodeBatch(fx.prompt);
  assert.deepEqual(Array.from(tokens.inputIds), fx.input_ids.flat(), 'tokenizer ids');
  const B = tokens.batch;
  const ids = Tensor.from(tokens.inputIds, [B, tokens.length], 'i32');
  const mask = Tensor.from(tokens.attentionMask, [B, tokens.length], 'i32');
  const maskF = ops.castToF32(mask);
  const states = tidy(() => model!.projectText(model!.textHidden(ids, mask), maskF));

  let chroma: Tensor | undefined;
  if (fx.melody) {
    const c = extractChroma(melodyWav);
    const argmax = Array.from({ length: c.frames }, (_, f) => c.onehot.subarray(f * 12, f * 12 + 12).indexOf(1));
    assert.deepEqual(argmax, fx.melody.chroma_argmax, 'chroma of melody.wav');
    const batch = new Float32Array(B * c.onehot.length);
    for (let b = 0; b < B; b++) batch.set(c.onehot, b * c.onehot.length);
    chroma = Tensor.from(batch, [B, c.frames, 12]);
  }
  let prompt: { codes: Int32Array; frames: number } | undefined;
  if (fx.input_audio) {
    const clip = melodyWav.subarray(fx.input_audio.start, fx.input_audio.start + fx.input_audio.length);
    const codes = model.encodec.encode(Tensor.from(clip, [1, 1, clip.length]));
    const data = (await codes.read()) as Int32Array;
    assert.deepEqual(Array.from(data), fx.input_audio.codes.flat(), 'EnCodec codes of the clip');
    prompt = { codes: data, frames: codes.shape[2] };
  }
  const out = await generateCodes(model, { textStates: states, textMask: maskF, chroma, prompt, newTokens: fx.max_new_tokens },
    { guidanceScale: fx.guidance_scale, temperature: 0, topK: 250, topP: 0, seed: 0 });
  assert.equal(out.frames, fx.frames);
  for (let b = 0; b < B; b++) assert.deepEqual(Array.from(out.codes[b]), fx.codes[b].flat(), `codes of batch row ${b}`);

  // the decoded audio of row 0, channel by channel (stereo: interleaved codebooks)
  const C = model.audioChannels;
  const K = model.lm.numCodebooks;
  for (let c = 0; c < C; c++) {
    const rows = Array.from({ length: K / C }, (_, k) => k * C + c);
    const mine = new Int32Array(rows.length * out.frames);
    rows.forEach((r, i) => mine.set(out.codes[0].subarray(r * out.frames, (r + 1) * out.frames), i * out.frames));
    const audio = model.encodec.decode(Tensor.from(mine, [1, rows.length, out.frames], 'i32'));
    const data = (await audio.read()) as Float32Array;
    assert.equal(data.length, fx.audio.length);
    assertClose(Array.from(data.subarray(0, 64)), fx.audio.first64[0][c], `audio of row 0, channel ${c}`, { rtol: 1e-3, atol: 1e-4 });
    audio.dispose();
  }
  for (const t of [ids, mask, maskF, states, ...(chroma ? [chroma] : [])]) t.dispose();
}
