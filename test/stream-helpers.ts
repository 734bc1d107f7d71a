// Streaming test helpers (test/stream.test.ts, test/pipeline.test.ts): generate with `onAudio`, check the chunks
// are contiguous per row, join them, and hold them against the one-shot EnCodec decode of the final codes.

import assert from 'node:assert/strict';
import type { MusicGen, AudioChunk, GenerateRequest, GenerateResult } from '../src/pipeline.js';
import { Tensor } from '../src/tensor.js';

/** The whole clip's decode in one pass (no windows): [C][N] per batch row, stereo channels as MusicGen.decode. */
export async function oneShot(m: MusicGen, r: GenerateResult, b: number): Promise<Float32Array[]> {
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
export async function generateStreamed(m: MusicGen, req: GenerateRequest): Promise<{ r: GenerateResult; joined: Float32Array[][]; chunks: AudioChunk[]; firstAt: number }> {
  const chunks: AudioChunk[] = [];
  let stepsDone = 0;
  let firstAt = -1; // generation progress when the first chunk arrived
  const r = await m.generate({
    ...req,
    onProgress: (p) => { if (p.stage === 'generate') stepsDone = p.done / p.total; req.onProgress?.(p); },
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

export function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Every row and channel of the streamed audio against the one-shot decode, and against the result (normalisation 'none'). */
export async function assertOneShot(m: MusicGen, s: { r: GenerateResult; joined: Float32Array[][] }, label: string): Promise<void> {
  for (let b = 0; b < s.r.codes.length; b++) {
    const want = await oneShot(m, s.r, b);
    for (let c = 0; c < m.channels; c++) {
      const d = maxDiff(s.joined[b][c], want[c]);
      assert.ok(d <= 1e-5, `${label} row ${b} channel ${c}: streamed vs one-shot max diff ${d}`);
      assert.deepEqual(s.r.audio[b][c], s.joined[b][c], `${label}: the result is the streamed audio`);
    }
  }
}
