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
import { MusicGen, type AudioChunk, type GenerateRequest } from '../src/pipeline.js';
import { generateStreamed, assertOneShot } from './stream-helpers.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const TEXT = join(ROOT, 'weights', 'tiny-musicgen');
const MELODY = join(ROOT, 'weights', 'tiny-musicgen-melody');
const STEREO = join(FIXTURES, 'models', 'text-stereo');

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

  it('continuation, mono: the clip’s own frames stream first, then the new ones', async () => {
    const clip = (await text.generate({ prompt: 'c', duration: 1, seed: 5, normalization: 'none' })).audio[0];
    const s = await generateStreamed(text, { prompt: 'c', inputAudio: { channels: clip, sampleRate: text.sampleRate }, continuation: true, duration: 2, seed: 6, normalization: 'none' });
    await assertOneShot(text, s, 'continuation');
  });

  it('a batch of two across window boundaries (rows batched, then one by one): the chunks join to the one-shot decode', async () => {
    // the path of generations past 30 s with 1 s windows advanced by 0.6 s (the 30 s boundary itself: pipeline.test.ts)
    text.windows = { maxSeconds: 1, strideSeconds: 0.6 };
    const s = await generateStreamed(text, { prompt: ['x', 'y'], duration: 2.3, seed: 7, normalization: 'none' })
      .finally(() => { text.windows = { maxSeconds: 30, strideSeconds: 18 }; });
    assert.equal(s.r.frames, 115);
    await assertOneShot(text, s, 'windows');
  });

  it('melody (mono) and stereo models stream the one-shot decode too', async () => {
    const melody = await MusicGen.load(MELODY);
    const stereo = await MusicGen.load(STEREO);
    try {
      melody.streamChunkFrames = 7;
      stereo.streamChunkFrames = 7;
      const a = await decodeAudio(await readFile(join(FIXTURES, 'generate', 'melody.wav')));
      const s = await generateStreamed(melody, { prompt: 'm', inputAudio: { channels: a.channelData, sampleRate: a.sampleRate }, duration: 1.5, seed: 8, normalization: 'none', melodyStems: false });
      await assertOneShot(melody, s, 'melody');
      assert.equal(stereo.channels, 2);
      const st = await generateStreamed(stereo, { prompt: 's', duration: 1.5, seed: 9, normalization: 'none' });
      await assertOneShot(stereo, st, 'stereo');
      const cont = await generateStreamed(stereo, { inputAudio: { channels: st.r.audio[0], sampleRate: stereo.sampleRate }, continuation: true, duration: 2.5, seed: 10, normalization: 'none' });
      await assertOneShot(stereo, cont, 'stereo continuation');
    } finally {
      melody.dispose();
      stereo.dispose();
    }
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

describe('generate CLI: --output - and --stream', function () {
  this.timeout(300_000);
  const cli = (args: string[]): Promise<{ stdout: Buffer; stderr: Buffer }> =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'generate.ts'), ...args], { cwd: ROOT, encoding: 'buffer', maxBuffer: 1 << 26 });

  it('writes a WAV stream to stdout (length unknown in the header) and nothing else; --stream times each chunk on stderr', async () => {
    const { stdout, stderr } = await cli(['--model', TEXT, '--prompt', 'calm', '--duration', '1', '--seed', '4', '--output', '-', '--stream']);
    const v = new DataView(stdout.buffer, stdout.byteOffset, stdout.byteLength);
    const text4 = (at: number): string => stdout.subarray(at, at + 4).toString('latin1');
    assert.deepEqual([text4(0), text4(8), text4(12), text4(36)], ['RIFF', 'WAVE', 'fmt ', 'data']);
    assert.equal(v.getUint32(4, true), 0xffffffff);
    assert.equal(v.getUint32(40, true), 0xffffffff);
    assert.deepEqual([v.getUint16(20, true), v.getUint16(22, true), v.getUint32(24, true), v.getUint16(34, true)], [1, 1, 32000, 16]);
    assert.equal(stdout.length, 44 + 32000 * 2, 'the header and 1 s of 16-bit samples, nothing more');
    const log = stderr.toString();
    assert.match(log, /chunk 0: 0\.00-[\d.]+ s of audio at [\d.]+ s \(first audio\)/);
    assert.match(log, /chunk \d+: [\d.]+-1\.00 s of audio .*final/);
    // the samples are the library's raw streamed audio, as 16-bit PCM
    const m = await MusicGen.load(TEXT);
    const r = await m.generate({ prompt: 'calm', duration: 1, seed: 4, normalization: 'none' });
    m.dispose();
    let worst = 0;
    for (let i = 0; i < 32000; i++) {
      const want = Math.round(Math.max(-1, Math.min(1, r.audio[0][0][i])) * 32767);
      worst = Math.max(worst, Math.abs(v.getInt16(44 + 2 * i, true) - want));
    }
    assert.ok(worst <= 1, `samples within one step of the library's (worst ${worst})`);
  });

  it('refuses a batch or mp3 on stdout before loading anything', async () => {
    for (const extra of [['--prompt', 'b'], ['--format', 'mp3']]) {
      await assert.rejects(cli(['--model', TEXT, '--prompt', 'a', '--duration', '1', '--output', '-', ...extra]),
        (e: { code?: number; stderr?: Buffer; stdout?: Buffer }) => e.code === 2 && /--output -/.test(String(e.stderr)) && e.stdout?.length === 0);
    }
  });
});
