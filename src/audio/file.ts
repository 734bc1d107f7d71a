// Reading audio files from disk (Node only: uses node:fs). Decoding itself is in decode.ts, which is
// browser-safe; this file only adds file access with errors that name the path, as the Cog predictor's
// `input_audio` is a path.

import { readFile } from 'node:fs/promises';
import { decodeAudio, type AudioData } from './decode.js';

/** Thrown when an audio file cannot be read from disk (missing, a directory, no permission...). */
export class AudioFileError extends Error {
  constructor(readonly path: string, reason: string, options?: { cause?: unknown }) {
    super(`Cannot read audio file ${path}: ${reason}`, options);
    this.name = 'AudioFileError';
  }
}

function fsReason(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EISDIR': return 'it is a directory, not a file';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    default: return e instanceof Error ? e.message : String(e);
  }
}

/** Reads a file's bytes; errors are AudioFileErrors naming the path. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new AudioFileError(path, fsReason(e), { cause: e });
  }
}

/** Reads and decodes an audio file; errors name the path (AudioFileError, or AudioDecodeError for bad data). */
export async function readAudioFile(path: string): Promise<AudioData> {
  return decodeAudio(await readFileBytes(path), path);
}
