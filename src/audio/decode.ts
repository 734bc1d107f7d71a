// Audio file decoding (browser-safe: no Node built-ins). Wraps the maintained `audio-decode` package
// (https://github.com/audiojs/decode), which sniffs the container from the bytes and runs the matching
// decoder (mostly wasm builds of the reference codecs). The Cog predictor reads `input_audio` with
// torchaudio / PyAV (audiocraft/data/audio.py `audio_read`): any format ffmpeg reads; the formats
// below are the ones users actually send.

import decode from 'audio-decode';

/** Decoded PCM: one Float32Array per channel (all the same length), samples nominally in [-1, 1]. */
export interface AudioData {
  channels: Float32Array[];
  sampleRate: number;
}

/** Human-readable list used in error messages. */
export const SUPPORTED_FORMATS = 'WAV, MP3, FLAC, OGG/Vorbis, Opus, AAC/M4A, AIFF, CAF, WebM';

/** Thrown for bytes that are empty, not audio, or audio that decodes to nothing. */
export class AudioDecodeError extends Error {
  constructor(readonly label: string, reason: string, options?: { cause?: unknown }) {
    super(`Cannot decode audio ${label}: ${reason}. Supported formats: ${SUPPORTED_FORMATS}.`, options);
    this.name = 'AudioDecodeError';
  }
}

export interface DecodeOptions {
  /** Told about a file that decodes but is damaged (a truncated WAV). Default: console.warn. */
  onWarning?: (message: string) => void;
}

/**
 * A WAV whose data chunk is cut short (an interrupted download or copy): decoders read what is there without a
 * word, so say so. Writers that stream leave the size 0 or 0xFFFFFFFF; those are not truncated.
 */
export function wavTruncation(bytes: Uint8Array): { announced: number; present: number } | null {
  const tag = (at: number): string => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 12; at + 8 <= bytes.length;) {
    const size = view.getUint32(at + 4, true);
    if (tag(at) === 'data') {
      const present = bytes.length - (at + 8);
      return size !== 0 && size !== 0xffffffff && present < size ? { announced: size, present } : null;
    }
    at += 8 + size + (size & 1); // chunks are padded to even sizes
  }
  return null;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

/**
 * Decodes a whole audio file held in memory.
 *
 * `label` names the source in errors (a file name or path); audio-decode's own errors are terse
 * ("Unknown audio format") or come from deep inside a wasm decoder, and some broken inputs (a bare RIFF
 * header, a FLAC/Ogg signature followed by junk) "succeed" with zero channels or zero samples, so every
 * such case is turned into one AudioDecodeError that says which file and what is supported.
 */
export async function decodeAudio(bytes: Uint8Array, label = '(in-memory data)', opts: DecodeOptions = {}): Promise<AudioData> {
  if (bytes.byteLength === 0) throw new AudioDecodeError(label, 'the file is empty (0 bytes)');
  const truncated = wavTruncation(bytes);
  if (truncated) {
    (opts.onWarning ?? ((m: string) => console.warn(`warning: ${m}`)))(
      `${label} is a truncated WAV file: its header announces ${truncated.announced} bytes of samples, it holds ${truncated.present}; only those are used`);
  }
  let result: { channelData: Float32Array[]; sampleRate: number };
  try {
    result = await decode(bytes);
  } catch (e) {
    const msg = describe(e);
    const reason = /unknown audio format/i.test(msg)
      ? 'unrecognised or unsupported format'
      : `the data is corrupt or uses an unsupported codec (${msg})`;
    throw new AudioDecodeError(label, reason, { cause: e });
  }
  const { channelData, sampleRate } = result;
  if (!Array.isArray(channelData) || channelData.length === 0) {
    throw new AudioDecodeError(label, 'no audio channels could be decoded (truncated or corrupt file?)');
  }
  if (!Number.isFinite(sampleRate) || sampleRate <= 0) {
    throw new AudioDecodeError(label, `invalid sample rate ${sampleRate}`);
  }
  const length = channelData[0].length;
  if (length === 0) throw new AudioDecodeError(label, 'the file contains no audio samples');
  const channels = channelData.map((ch, i) => {
    if (ch.length !== length) {
      throw new AudioDecodeError(label, `channel ${i} has ${ch.length} samples, channel 0 has ${length}`);
    }
    // Decoders may hand back views into a larger (wasm or pooled) buffer: copy those so callers own
    // compact arrays and the big buffer can be freed.
    return ch.byteOffset === 0 && ch.buffer.byteLength === ch.byteLength ? ch : ch.slice();
  });
  return { channels, sampleRate };
}
