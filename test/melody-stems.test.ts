// Melody stems as users meet them: on by default in the library (melodyStems), `--no-melody-stems` and `--demucs`
// on the command line, the error when the weights cannot be had offline, and `musicgen separate`.
// The small random Demucs of test/fixtures/demucs stands in for htdemucs (parity: test/model/stems.test.ts).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { gpu, FIXTURES, tones } from './helpers.js';
import { MusicGen } from '../src/pipeline.js';
import { encodeWav } from '../src/audio/encode.js';
import { decodeAudio } from '../src/audio/decode.js';
import type { DemucsWeightsError } from '../src/io/demucs-weights.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const MELODY = join(ROOT, 'weights', 'tiny-musicgen-melody');
const DEMUCS = join(FIXTURES, 'demucs', 'melody44k.th');
const run = promisify(execFile);

const HINT = /--no-melody-stems.*melodyStems: false|melodyStems: false.*--no-melody-stems/s;

describe('melody stems (library)', function () {
  this.timeout(300_000);
  const melody = { channels: [tones(0.3, [60, 64, 67, 72], 32000)], sampleRate: 32000 };
  before(() => gpu());

  it('are on by default for a melody model and change its chroma; melodyStems: false takes the whole mix', async () => {
    const mg = await MusicGen.load(MELODY, { demucs: DEMUCS });
    try {
      const stages: string[] = [];
      const req = { prompt: 'x', inputAudio: melody, duration: 0.2, temperature: 0 };
      const stemmed = await mg.generate({ ...req, onProgress: (p) => stages.push(p.stage) });
      assert.ok(stages.includes('stems'), 'Demucs ran');
      const whole = await mg.generate({ ...req, melodyStems: false, onProgress: (p) => stages.push(`off:${p.stage}`) });
      assert.ok(!stages.includes('off:stems'));
      assert.notDeepEqual(stemmed.codes[0], whole.codes[0], 'the stems\' chroma leads elsewhere');
    } finally {
      mg.dispose();
    }
  });

  it('offline without the weights: an error naming --demucs / --no-melody-stems and the library options', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mg-demucs-'));
    const mg = await MusicGen.load(MELODY, { offline: true, demucsCacheDir: cache });
    try {
      await assert.rejects(mg.generate({ prompt: 'x', inputAudio: melody, duration: 0.1 }), (e: unknown) => {
        // (by name: the loader imports it dynamically, which tsx may load as another module instance)
        assert.ok(e instanceof Error && e.name === 'DemucsWeightsError' && (e as DemucsWeightsError).kind === 'offline', String(e));
        assert.match(e.message, HINT);
        assert.match(e.message, /--demucs PATH\|URL/);
        return true;
      });
      // no melody, or stems off: no Demucs needed
      await mg.generate({ prompt: 'x', duration: 0.1 });
      await mg.generate({ prompt: 'x', inputAudio: melody, duration: 0.1, melodyStems: false });
    } finally {
      mg.dispose();
    }
  });
});

describe('melody stems and separate (CLI)', function () {
  this.timeout(300_000);
  const musicgen = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> =>
    run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } });

  let dir: string;
  let clip: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mg-stems-'));
    clip = join(dir, 'clip.wav');
    await writeFile(clip, encodeWav([tones(0.15, [60, 67], 48000), tones(0.15, [64, 72], 48000)], 48000));
  });

  it('generate: offline without Demucs weights fails naming --no-melody-stems; with it, it generates', async () => {
    const env = { TORCH_HOME: join(dir, 'torch'), HF_HUB_OFFLINE: '1' };
    const args = ['generate', '--model', MELODY, '--prompt', 'x', '--input-audio', clip, '--duration', '0.1'];
    await assert.rejects(musicgen([...args, '--output', join(dir, 'a.wav')], env), (e: { stderr: string; code: number }) => {
      assert.match(e.stderr, /--no-melody-stems/);
      assert.match(e.stderr, /--demucs/);
      assert.equal(e.code, 1);
      return true;
    });
    await musicgen([...args, '--no-melody-stems', '--output', join(dir, 'b.wav')], env);
    assert.ok((await readdir(dir)).includes('b.wav'));
  });

  it('separate: one WAV per stem asked for; an unknown stem exits 2 naming the choices and writes nothing', async () => {
    const out = join(dir, 'stems');
    const r = await musicgen(['separate', '--input', clip, '--output-dir', out, '--demucs', DEMUCS, '--stems', 'vocals,other']);
    assert.match(r.stdout, /vocals\.wav/);
    assert.deepEqual((await readdir(out)).sort(), ['other.wav', 'vocals.wav']);
    const v = await decodeAudio(await readFile(join(out, 'vocals.wav')));
    assert.equal(v.sampleRate, 44100);
    assert.equal(v.channels.length, 2);
    assert.equal(v.channels[0].length, Math.floor((0.15 * 48000 * 44100) / 48000));

    const none = join(dir, 'none');
    await assert.rejects(musicgen(['separate', '--input', clip, '--output-dir', none, '--demucs', DEMUCS, '--stems', 'vocals,voice']),
      (e: { stderr: string; code: number }) => {
        assert.match(e.stderr, /--stems.*'voice'.*drums, bass, other, vocals/);
        assert.equal(e.code, 2);
        return true;
      });
    await assert.rejects(readdir(none), /ENOENT/);
  });
});
