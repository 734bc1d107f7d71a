// decodeAudio / readAudioFile: real files decode to the right shape, and every kind of bad input gives
// an error naming the file and the supported formats.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAudio, AudioDecodeError, SUPPORTED_FORMATS } from '../../src/audio/decode.js';
import { readAudioFile, AudioFileError } from '../../src/audio/file.js';
import { encodeWav } from '../../src/audio/encode.js';

function sine(n: number, freq: number, sr: number, amp = 0.5): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / sr);
  return x;
}

async function rejectsWith(p: Promise<unknown>, check: (e: Error) => void): Promise<void> {
  let err: unknown;
  try { await p; } catch (e) { err = e; }
  assert.ok(err instanceof Error, 'expected a rejection');
  check(err);
}

describe('audio/decode', () => {
  it('decodes a stereo 16-bit WAV to channels and sample rate', async () => {
    const l = sine(1000, 440, 32000), r = sine(1000, 660, 32000, 0.25);
    const data = await decodeAudio(encodeWav([l, r], 32000), 'tone.wav');
    assert.equal(data.sampleRate, 32000);
    assert.equal(data.channels.length, 2);
    assert.equal(data.channels[0].length, 1000);
    assert.ok(Math.abs(data.channels[1][123] - r[123]) <= 1 / 32768);
  });

  it('returns arrays it owns (not views into a decoder buffer)', async () => {
    const data = await decodeAudio(encodeWav([sine(300, 100, 8000)], 8000));
    for (const ch of data.channels) {
      assert.equal(ch.byteOffset, 0);
      assert.equal(ch.buffer.byteLength, ch.byteLength);
    }
  });

  it('rejects empty data, naming the file and the formats', async () => {
    await rejectsWith(decodeAudio(new Uint8Array(0), 'empty.wav'), (e) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.match(e.message, /empty\.wav/);
      assert.match(e.message, /empty/);
      assert.ok(e.message.includes(SUPPORTED_FORMATS));
    });
  });

  it('rejects garbage bytes as an unrecognised format', async () => {
    const junk = new Uint8Array(2000).map((_, i) => (i * 73 + 11) & 255);
    await rejectsWith(decodeAudio(junk, 'junk.bin'), (e) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.match(e.message, /junk\.bin/);
      assert.match(e.message, /unrecognised or unsupported format/);
      assert.match(e.message, /Supported formats: WAV, MP3, FLAC/);
    });
    await rejectsWith(decodeAudio(new TextEncoder().encode('just some text, not audio'), 'notes.txt'), (e) => {
      assert.match(e.message, /notes\.txt/);
    });
  });

  it('rejects a header with no audio (audio-decode returns zero channels there)', async () => {
    const riff = new TextEncoder().encode('RIFF\x24\x00\x00\x00WAVEfmt ');
    await rejectsWith(decodeAudio(riff, 'cut.wav'), (e) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.match(e.message, /cut\.wav/);
      assert.match(e.message, /no audio/);
    });
    const flacJunk = new Uint8Array([0x66, 0x4c, 0x61, 0x43, ...new Array(60).fill(7)]);
    await rejectsWith(decodeAudio(flacJunk, 'bad.flac'), (e) => assert.match(e.message, /bad\.flac/));
  });

  it('rejects a WAV with a header but zero samples', async () => {
    const wav = encodeWav([new Float32Array(0)], 32000);
    await rejectsWith(decodeAudio(wav, 'silent.wav'), (e) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.match(e.message, /silent\.wav/);
    });
  });
});

describe('audio/decode: damaged files', () => {
  it('warns about a truncated WAV (and decodes what it holds); a whole one gives no warning', async () => {
    const whole = encodeWav([sine(3200, 440, 32000)], 32000);
    const warnings: string[] = [];
    await decodeAudio(whole, 'whole.wav', { onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 0);
    const cut = whole.subarray(0, whole.length - 2000);
    const data = await decodeAudio(cut, 'cut.wav', { onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /cut\.wav is a truncated WAV file: its header announces 6400 bytes of samples, it holds 4400/);
    assert.equal(data.channels[0].length, 2200);
  });
});

describe('audio/file', () => {
  let dir = '';
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'audio-test-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('reads and decodes a file', async () => {
    const path = join(dir, 'a.wav');
    await writeFile(path, encodeWav([sine(800, 440, 16000)], 16000));
    const data = await readAudioFile(path);
    assert.equal(data.sampleRate, 16000);
    assert.equal(data.channels.length, 1);
    assert.equal(data.channels[0].length, 800);
  });

  it('names the path of a missing file', async () => {
    const path = join(dir, 'nope', 'missing.mp3');
    await rejectsWith(readAudioFile(path), (e) => {
      assert.ok(e instanceof AudioFileError);
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /no such file/);
    });
  });

  it('names the path of a directory', async () => {
    const path = join(dir, 'folder.wav');
    await mkdir(path);
    await rejectsWith(readAudioFile(path), (e) => {
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /directory/);
    });
  });

  it('names the path of an empty or undecodable file', async () => {
    const empty = join(dir, 'empty.wav');
    await writeFile(empty, new Uint8Array(0));
    await rejectsWith(readAudioFile(empty), (e) => {
      assert.ok(e instanceof AudioDecodeError);
      assert.ok(e.message.includes(empty), e.message);
    });
    const bad = join(dir, 'bad.mp3');
    await writeFile(bad, new TextEncoder().encode('<html>not found</html>'));
    await rejectsWith(readAudioFile(bad), (e) => assert.ok(e.message.includes(bad), e.message));
  });
});
