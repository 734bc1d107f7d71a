// The product as users call it (src/pipeline.ts, src/cli/generate.ts): Cog's input rules, reproducible seeds,
// lengths, continuation, windows past 30 s, batches, cancelling, and clear errors with nothing half-written.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import decodeAudio from 'audio-decode';
import { gpu, FIXTURES } from './helpers.js';
import { MusicGen, InputError, AbortError, planWindows, readRequest, MAX_PROMPT_TOKENS, type GenerateRequest } from '../src/pipeline.js';
import { Tensor } from '../src/tensor.js';
import { generateCodes } from '../src/model/generate.js';
import { generateStreamed, assertOneShot } from './stream-helpers.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const TEXT = join(ROOT, 'weights', 'tiny-musicgen');
const MELODY = join(ROOT, 'weights', 'tiny-musicgen-melody');
const run = promisify(execFile);

async function melodyClip(): Promise<{ channels: Float32Array[]; sampleRate: number }> {
  const a = await decodeAudio(await readFile(join(FIXTURES, 'generate', 'melody.wav')));
  return { channels: a.channelData, sampleRate: a.sampleRate };
}

describe('pipeline (library)', function () {
  this.timeout(300_000);
  let text: MusicGen;
  let melody: MusicGen;
  before(async () => {
    await gpu();
    text = await MusicGen.load(TEXT);
    melody = await MusicGen.load(MELODY);
  });
  after(() => {
    text.dispose();
    melody.dispose();
  });

  const rejectsField = async (m: MusicGen, req: GenerateRequest, field: string): Promise<void> => {
    await assert.rejects(m.generate(req), (e: unknown) => e instanceof InputError && e.field === field,
      `expected an InputError on ${field} for ${JSON.stringify(req)}`);
  };

  it('refuses bad input with an error naming the field', async () => {
    const clip = await melodyClip();
    await rejectsField(text, {}, 'prompt');
    await rejectsField(text, { prompt: 'x', continuation: true }, 'continuation');
    await rejectsField(text, { prompt: 'x', inputAudio: clip }, 'inputAudio'); // melody to a text-only model
    for (const duration of [0, -1, Number.NaN, 1e9]) await rejectsField(text, { prompt: 'x', duration }, 'duration');
    for (const topK of [-1, 1.5]) await rejectsField(text, { prompt: 'x', topK }, 'topK');
    await rejectsField(text, { prompt: 'x', topP: 1.5 }, 'topP');
    await rejectsField(text, { prompt: 'x', temperature: -1 }, 'temperature');
    await rejectsField(text, { prompt: 'x', guidance: -2 }, 'guidance');
    await rejectsField(text, { prompt: 'x', seed: 1.5 }, 'seed');
    await rejectsField(text, { prompt: 'x', inputAudio: clip, continuation: true, continuationStart: 1.5, continuationEnd: 1 }, 'continuationStart');
    await rejectsField(text, { prompt: 'x', inputAudio: clip, continuation: true, continuationStart: 5 }, 'continuationStart');
    // Cog: the output must be longer than the slice it continues
    await rejectsField(text, { prompt: 'x', inputAudio: clip, continuation: true, duration: 1.5 }, 'duration');
    await rejectsField(text, { prompt: 'x', normalization: 'loud' as never }, 'normalization');
  });

  it('refuses options it does not know, naming the option meant', async () => {
    // Cog's names are not the library's: silently using the defaults would hide the mistake
    const req = { prompt: 'x', top_k: 1, classifier_free_guidance: 1 } as GenerateRequest;
    await assert.rejects(text.generate(req), (e: unknown) => e instanceof InputError && e.field === 'top_k' && /did you mean `topK`\?/.test(e.message));
    await assert.rejects(text.generate({ prompt: 'x', guidence: 1 } as GenerateRequest), /guidence: unknown option; did you mean `guidance`\?/);
  });

  it('bounds the prompt by tokens, counted with the model\'s tokenizer', async () => {
    const long = 'calm piano '.repeat(300);
    assert.ok(text.countTokens(long) > MAX_PROMPT_TOKENS, `${text.countTokens(long)} tokens`);
    assert.ok(text.countTokens('calm piano') <= 5);
    await assert.rejects(text.generate({ prompt: ['ok', long] }), (e: unknown) => e instanceof InputError && e.field === 'prompt' && /tokens long; the most is 512/.test(e.message));
  });

  it('takes the audio input as samples, a file path, bytes, an ArrayBuffer or a Blob', async () => {
    const path = join(FIXTURES, 'generate', 'melody.wav');
    const bytes = new Uint8Array(await readFile(path));
    const want = await melodyClip();
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    for (const inputAudio of [path, bytes, ab, new Blob([bytes])]) {
      const r = await readRequest({ prompt: 'x', inputAudio });
      assert.equal(r.inputAudio!.sampleRate, want.sampleRate);
      assert.deepEqual(r.inputAudio!.channels, want.channels);
    }
    await assert.rejects(readRequest({ prompt: 'x', inputAudio: join(FIXTURES, 'nope.wav') }), (e: unknown) => e instanceof InputError && e.field === 'inputAudio' && /nope\.wav: no such file/.test(e.message));
    await assert.rejects(readRequest({ prompt: 'x', inputAudio: new TextEncoder().encode('not audio') }), (e: unknown) => e instanceof InputError && e.field === 'inputAudio');
    await assert.rejects(readRequest({ prompt: 'x', inputAudio: { channels: [new Float32Array(3), new Float32Array(4)], sampleRate: 32000 } }), /inputAudio: has channels of different lengths/);
    await assert.rejects(readRequest({ prompt: 'x', inputAudio: 42 as never }), /inputAudio: got 42/);
  });

  it('gives the duration asked for, and the same seed gives the same audio bit for bit', async () => {
    const req: GenerateRequest = { prompt: 'calm piano', duration: 1, seed: 42 };
    const a = await text.generate(req);
    const b = await text.generate(req);
    assert.equal(a.audio[0][0].length, 32000);
    assert.equal(a.frames, 50);
    assert.equal(a.seed, 42);
    assert.deepEqual(a.codes[0], b.codes[0]);
    assert.deepEqual(a.audio[0][0], b.audio[0][0]);
    const c = await text.generate({ ...req, seed: 43 });
    assert.notDeepEqual(c.codes[0], a.codes[0], 'another seed gives other codes');
    const d = await text.generate({ prompt: 'calm piano', duration: 1 });
    assert.ok(Number.isInteger(d.seed) && d.seed >= 0, 'no seed: one is picked and returned');
  });

  it('generates a batch of prompts in one call', async () => {
    const r = await text.generate({ prompt: ['80s pop', 'calm ambient piano'], duration: 0.5, temperature: 0 });
    assert.equal(r.audio.length, 2);
    assert.notDeepEqual(r.codes[0], r.codes[1]);
  });

  it('continues a clip: the clip’s codes come first and the output has the total duration', async () => {
    const clip = await melodyClip();
    const r = await text.generate({ prompt: 'x', inputAudio: clip, continuation: true, continuationStart: 0.5, continuationEnd: 1, duration: 2, seed: 1 });
    assert.equal(r.audio[0][0].length, 64000);
    const slice = clip.channels[0].subarray(16000, 32000);
    const own = await text.encodeClip([slice]);
    assert.equal(own.frames, 25);
    for (let k = 0; k < r.numCodebooks; k++) {
      assert.deepEqual(r.codes[0].subarray(k * r.frames, k * r.frames + 25), own.codes.subarray(k * 25, (k + 1) * 25), `codebook ${k}`);
    }
  });

  it('follows a melody with a melody model, and the melody changes the result', async () => {
    const clip = await melodyClip();
    // the whole mix's chroma (stems: test/melody-stems.test.ts)
    const withMelody = await melody.generate({ prompt: 'x', inputAudio: clip, duration: 1, temperature: 0, melodyStems: false });
    const without = await melody.generate({ prompt: 'x', duration: 1, temperature: 0 });
    assert.equal(withMelody.audio[0][0].length, 32000);
    assert.notDeepEqual(withMelody.codes[0], without.codes[0]);
  });

  it('without a prompt, generates what transformers does without input_ids (melody alone; continuation alone)', async () => {
    const clip = await melodyClip();
    const fixture = (name: string): { frames: number; codes: number[][][] } =>
      JSON.parse(readFileSync(join(FIXTURES, 'generate', `${name}.json`), 'utf8')) as { frames: number; codes: number[][][] };
    const mel = fixture('melody-mono-noprompt-cfg3');
    // transformers takes the chroma of the whole mix: no Demucs stems
    const a = await melody.generate({ inputAudio: clip, duration: mel.frames / 50, temperature: 0, guidance: 3, melodyStems: false });
    assert.deepEqual(Array.from(a.codes[0]), mel.codes[0].flat());
    const cont = fixture('text-mono-continuation-noprompt-cfg3');
    const b = await text.generate({ inputAudio: clip, continuation: true, continuationEnd: 0.5, duration: cont.frames / 50, temperature: 0, guidance: 3 });
    assert.deepEqual(Array.from(b.codes[0]), cont.codes[0].flat());
  });

  it('plans windows of 30 s advanced by 18 s, each prompted by the last 12 s', () => {
    assert.deepEqual(planWindows(100, 1500, 900, 0), [{ offset: 0, frames: 100, promptFrames: 0 }]);
    assert.deepEqual(planWindows(2000, 1500, 900, 0), [
      { offset: 0, frames: 1500, promptFrames: 0 },
      { offset: 900, frames: 1100, promptFrames: 600 },
    ]);
    assert.deepEqual(planWindows(3000, 1500, 900, 100).map((w) => w.offset), [0, 900, 1800]);
  });

  it('extends past 30 s: the second window starts from the first one’s last 12 s', async () => {
    const progress: number[] = [];
    // streamed (issue 14): the chunks across the 30 s boundary join to the one-shot decode of the codes
    text.streamChunkFrames = 250;
    const streamed = await generateStreamed(text, {
      prompt: 'long', duration: 31, temperature: 0, normalization: 'none', onProgress: (p) => { if (p.stage === 'generate') progress.push(p.done / p.total); },
    }).finally(() => { text.streamChunkFrames = 25; });
    const r = streamed.r;
    await assertOneShot(text, streamed, 'past 30 s');
    assert.equal(r.frames, 1550);
    assert.equal(r.audio[0][0].length, 1550 * 640);
    assert.ok(progress.every((v, i) => i === 0 || v >= progress[i - 1]), 'progress only goes forward');
    assert.equal(progress[progress.length - 1], 1);
    // greedy, so the second window is reproducible: prompt it by hand with frames [900, 1500) of the first
    const m = text.model;
    const K = r.numCodebooks;
    const tok = m.tokenizer.encodeBatch(['long']);
    const ids = Tensor.from(tok.inputIds, [1, tok.length], 'i32');
    const mask = Tensor.from(Array.from(tok.attentionMask), [1, tok.length], 'f32');
    const states = m.projectText(m.textHidden(ids, Tensor.from(tok.attentionMask, [1, tok.length], 'i32')), mask);
    const tail = new Int32Array(K * 600);
    for (let k = 0; k < K; k++) tail.set(r.codes[0].subarray(k * 1550 + 900, k * 1550 + 1500), k * 600);
    const second = await generateCodes(m, { textStates: states, textMask: mask, prompt: { codes: tail, frames: 600 }, newTokens: 650 - 600 + K - 1 },
      { guidanceScale: 3, temperature: 0, topK: 250, topP: 0, seed: 0 });
    assert.equal(second.frames, 650);
    for (let k = 0; k < K; k++) {
      assert.deepEqual(r.codes[0].subarray(k * 1550 + 1500, (k + 1) * 1550), second.codes[0].subarray(k * 650 + 600, (k + 1) * 650), `codebook ${k}`);
    }
    for (const t of [ids, mask, states]) t.dispose();
  });

  it('stops on an AbortSignal and frees what the run held', async () => {
    const rt = (await gpu());
    const before = rt.stats.liveBuffers;
    const ctrl = new AbortController();
    const p = text.generate({ prompt: 'x', duration: 5, signal: ctrl.signal, onProgress: (q) => { if (q.stage === 'generate' && q.done > 10) ctrl.abort(); } });
    await assert.rejects(p, AbortError);
    assert.equal(rt.stats.liveBuffers, before, 'no buffer is left behind');
  });
});

describe('generate CLI', function () {
  this.timeout(300_000);
  const cli = (args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'generate.ts'), ...args], { cwd: ROOT });

  it('writes the same file twice for the same seed, and the codes as JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-cli-'));
    const args = ['--model', TEXT, '--prompt', 'calm piano', '--duration', '1', '--seed', '3'];
    await cli([...args, '--output', join(dir, 'a.wav'), '--codes-out', join(dir, 'a.json')]);
    await cli([...args, '--output', join(dir, 'b.wav')]);
    const a = await readFile(join(dir, 'a.wav'));
    assert.deepEqual(a, await readFile(join(dir, 'b.wav')));
    const wav = await decodeAudio(a);
    assert.equal(wav.sampleRate, 32000);
    assert.equal(wav.channelData[0].length, 32000);
    const codes = JSON.parse(await readFile(join(dir, 'a.json'), 'utf8')) as { codes: number[][] };
    assert.equal(codes.codes.length, 4);
    assert.equal(codes.codes[0].length, 50);
  });

  it('fails clearly on bad input and leaves nothing on disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-cli-'));
    const garbage = join(dir, 'noise.mp3');
    await writeFile(garbage, 'this is not audio');
    const cases: [string[], RegExp][] = [
      [['--model', TEXT, '--duration', '1'], /prompt/],
      [['--model', TEXT, '--prompt', 'x', '--continuation'], /continuation/],
      [['--model', TEXT, '--prompt', 'x', '--input-audio', join(FIXTURES, 'generate', 'melody.wav')], /text-only model/],
      [['--model', TEXT, '--prompt', 'x', '--duration', '-3'], /duration/],
      [['--model', TEXT, '--prompt', 'x', '--top-p', 'abc'], /top-p/],
      [['--model', MELODY, '--prompt', 'x', '--input-audio', garbage], /noise\.mp3/],
      [['--model', TEXT, '--prompt', 'x', '--duration', 'NaN'], /'--duration <s>' argument 'NaN' is invalid/],
      [['--model', TEXT, '--prompt', 'x', '--format', 'flac'], /'--format <fmt>' argument 'flac' is invalid/],
      [['--model', TEXT, '--prompt', 'calm '.repeat(600)], /--prompt: is \d+ tokens long; the most is 512/],
      // bad flags and files are found before the model loads (the model folder does not exist here)
      [['--model', join(dir, 'no-model'), '--prompt', 'x', '--top-k', '-1'], /--top-k/],
      [['--model', join(dir, 'no-model'), '--prompt', 'x', '--input-audio', join(dir, 'missing.wav')], /--input-audio: .*missing\.wav: no such file/],
      [['--model', join(dir, 'no-model'), '--prompt', 'x', '--codes-out', join(dir, 'no-folder', 'c.json')], /--codes-out: the folder .*no-folder does not exist/],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(cli([...args, '--output', join(dir, 'out.wav')]), (e: { stderr: string; code: number }) => {
        assert.match(e.stderr, message);
        assert.equal(e.code, 2, `${args.join(' ').slice(0, 80)}: exit ${e.code}\n${e.stderr}`);
        return true;
      });
    }
    // not an input error: the model cannot be loaded
    await assert.rejects(cli(['--model', join(dir, 'no-model'), '--prompt', 'x', '--output', join(dir, 'out.wav')]), (e: { stderr: string; code: number }) => {
      assert.match(e.stderr, /no-model/);
      assert.equal(e.code, 1);
      return true;
    });
    // the output's folder is checked before the model loads, and the flag is named (not a temporary file)
    await assert.rejects(cli(['--model', join(dir, 'no-model'), '--prompt', 'x', '--output', join(dir, 'no-folder', 'out.wav')]), (e: { stderr: string; code: number }) => {
      assert.match(e.stderr, /--output: the folder .*no-folder does not exist/);
      assert.doesNotMatch(e.stderr, /\.tmp/);
      assert.equal(e.code, 2);
      return true;
    });
    assert.deepEqual((await readdir(dir)).sort(), ['noise.mp3'], 'no output, no temporary file');
  });
});
