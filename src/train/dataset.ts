// Fine-tuning data from files, as the Cog MusicGen trainer takes it: a folder (or a .tar / .tar.gz) where every
// audio file (wav, mp3, flac, ogg) has its caption in a .txt file of the same name. Each clip is decoded and handed
// to data.ts (resampling, chunking, EnCodec, T5 states: the same code the browser trains with). The codes and
// chroma are cached in a safetensors file (reused when the data, the chunking and the codec are unchanged), and a
// fingerprint of the data lets a resumed run check that it sees the same.

import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar';
import type { MusicgenModel } from '../model/musicgen.js';
import { decodeAudio } from '../audio/decode.js';
import { openSafetensorsFile, writeSafetensorsStream, type StreamTensor } from '../io/file-source.js';
import { SafetensorsCheckpoint, type CheckpointFolder } from '../io/safetensors.js';
import { captionStates, encodeClips, type Chunk, type TrainingClip, type TrainingData } from './data.js';

// ---------------------------------------------------------------------------------------------------------------
// reading the dataset

export const AUDIO_EXTENSIONS = ['.wav', '.mp3', '.flac', '.ogg'];

/** One clip: where it came from, its bytes and its caption. */
export interface DatasetItem {
  /** Path inside the folder or archive (forward slashes). */
  name: string;
  audio: Uint8Array;
  caption: string;
}

/** The most a dataset may hold unless the caller says otherwise: 2 GiB of files, decompressed. */
export const DEFAULT_MAX_DATASET_BYTES = 2048 * 2 ** 20;
/** A caption is a line or two of text; a bigger .txt is not buffered. */
const MAX_CAPTION_BYTES = 2 ** 20;

export interface DatasetOptions {
  /**
   * Most bytes the dataset may hold: an archive's members decompressed (skipped ones included, so a small
   * .tar.gz cannot make the reader inflate gigabytes), or a folder's clips and captions. Default 2 GiB.
   */
  maxBytes?: number;
  /** How the caller's users raise the limit, for the error (default: the `maxBytes` option). */
  limitName?: string;
}

/** Reads a dataset folder or tarball; throws naming every clip without a caption, or when there are no clips. */
export async function readDataset(location: string, opts: DatasetOptions = {}): Promise<DatasetItem[]> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_DATASET_BYTES;
  const tooLarge = (): Error => new Error(`dataset ${location}: more than ${+(maxBytes / 2 ** 20).toFixed(2)} MiB of files once decompressed, the limit (${opts.limitName ?? 'the maxBytes option'} raises it)`);
  let stat;
  try {
    stat = await fsp.stat(location);
  } catch {
    throw new Error(`dataset ${location}: no such file or folder`);
  }
  const files = new Map<string, () => Promise<Uint8Array>>();
  if (stat.isDirectory()) {
    let total = 0;
    for (const rel of await walk(location)) {
      files.set(rel, async () => {
        const bytes = await fsp.readFile(path.join(location, rel));
        total += bytes.byteLength;
        if (total > maxBytes) throw tooLarge();
        return bytes;
      });
    }
  } else if (/\.(tar|tar\.gz|tgz)$/i.test(location)) {
    for (const [name, bytes] of await readTar(location, maxBytes, tooLarge)) {
      files.set(name, () => (bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`dataset ${location}: ${name} was not kept`))));
    }
  } else {
    throw new Error(`dataset ${location}: expected a folder or a .tar / .tar.gz / .tgz file`);
  }
  const stem = (n: string): string => n.slice(0, n.length - path.extname(n).length);
  const audio = [...files.keys()].filter((n) => AUDIO_EXTENSIONS.includes(path.extname(n).toLowerCase())).sort();
  const captions = new Map([...files.keys()].filter((n) => path.extname(n).toLowerCase() === '.txt').map((n) => [stem(n), n]));
  if (audio.length === 0) {
    throw new Error(`dataset ${location}: no audio files (${AUDIO_EXTENSIONS.join(', ')}) found` +
      (files.size ? `; it holds ${[...files.keys()].slice(0, 10).join(', ')}${files.size > 10 ? ', …' : ''}` : '; it is empty'));
  }
  const missing = audio.filter((n) => !captions.has(stem(n)));
  if (missing.length > 0) {
    throw new Error(`dataset ${location}: ${missing.length} audio file(s) have no caption (a .txt of the same name): ${missing.join(', ')}`);
  }
  const items: DatasetItem[] = [];
  for (const name of audio) {
    const caption = new TextDecoder().decode(await files.get(captions.get(stem(name))!)!()).trim();
    items.push({ name, audio: await files.get(name)!(), caption });
  }
  return items;
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue; // hidden files, macOS "._x.wav" resource forks
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

const isKept = (name: string): boolean => {
  const ext = path.extname(name).toLowerCase();
  return AUDIO_EXTENSIONS.includes(ext) || ext === '.txt';
};

/**
 * The regular files of a tar (gzip detected) by path, streamed: clips and captions are kept, every other member is
 * read past without being held (its value is null), hidden and macOS "._" entries are left out. The members'
 * declared sizes count against `maxBytes` before they are read, so the archive is abandoned as soon as it
 * declares more.
 */
async function readTar(file: string, maxBytes: number, tooLarge: () => Error): Promise<Map<string, Uint8Array | null>> {
  const out = new Map<string, Uint8Array | null>();
  const pending: Promise<void>[] = [];
  let total = 0;
  let failure: Error | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      const input = createReadStream(file);
      const stop = (e: Error): void => {
        failure ??= e;
        input.destroy();
        parser.abort(e);
      };
      const parser = new tar.Parser({
        // node-tar only warns about a corrupt archive and lists nothing: make that an error, not "empty"
        strict: true,
        onReadEntry: (entry) => {
          const name = entry.path.replace(/^\.\//, '');
          total += entry.size ?? 0;
          if (total > maxBytes) {
            entry.resume();
            return stop(tooLarge());
          }
          if (entry.type !== 'File' || path.basename(name).startsWith('.')) {
            entry.resume();
            return;
          }
          if (!isKept(name)) {
            out.set(name, null);
            entry.resume();
            return;
          }
          if (path.extname(name).toLowerCase() === '.txt' && (entry.size ?? 0) > MAX_CAPTION_BYTES) {
            entry.resume();
            return stop(new Error(`dataset ${file}: ${name} is ${entry.size} bytes; a caption is a short text (at most 1 MiB)`));
          }
          pending.push(entry.concat().then((buf) => { out.set(name, new Uint8Array(buf)); }));
        },
      });
      input.on('error', (e) => stop(e));
      parser.on('error', (e: Error) => reject(failure ?? e));
      parser.on('end', () => resolve());
      input.pipe(parser);
    });
    await Promise.all(pending);
  } catch (e) {
    if (failure) throw failure;
    throw new Error(`dataset ${file}: cannot read the archive: it is corrupt or not a tar file (${(e as Error).message})`);
  }
  if (failure) throw failure;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// decoded, encoded, cached

export interface DataOptions {
  /** Longest chunk, seconds. Default 30 (MusicGen's window). */
  chunkSeconds?: number;
  /** Trailing pieces shorter than this are dropped unless they are the whole clip. Default 1 s. */
  minChunkSeconds?: number;
  /** Codes/chroma cache file (read when it matches, written otherwise); none when absent. */
  cacheFile?: string;
  /** The model folder (its codec identity goes into the fingerprint). */
  modelFolder: CheckpointFolder;
  onProgress?: (done: number, total: number, what: string) => void;
}

/** Decodes, chunks and encodes every clip (or loads them from the cache), and computes the captions' T5 states. */
export async function prepareTrainingData(model: MusicgenModel, items: DatasetItem[], opts: DataOptions): Promise<TrainingData> {
  const chunkSeconds = opts.chunkSeconds ?? 30;
  const minChunkSeconds = Math.min(opts.minChunkSeconds ?? 1, chunkSeconds);
  const fingerprint = await dataFingerprint(model, items, opts.modelFolder, chunkSeconds, minChunkSeconds);

  let chunks = opts.cacheFile ? await readCache(opts.cacheFile, fingerprint) : null;
  const fromCache = chunks !== null;
  if (!chunks) {
    const unreadable: string[] = [];
    const clips: TrainingClip[] = [];
    for (const item of items) {
      try {
        const audio = await decodeAudio(item.audio, item.name);
        if (audio.channels[0].length === 0) throw new Error('no samples');
        clips.push({ name: item.name, caption: item.caption, audio: audio.channels, sampleRate: audio.sampleRate });
      } catch (e) {
        unreadable.push(`${item.name} (${(e as Error).message})`);
      }
    }
    if (unreadable.length > 0) throw new Error(`dataset: ${unreadable.length} file(s) could not be read: ${unreadable.join('; ')}`);
    chunks = await encodeClips(model, clips, { chunkSeconds, minChunkSeconds, onProgress: opts.onProgress });
    if (opts.cacheFile) await writeCache(opts.cacheFile, fingerprint, chunks);
  }
  if (chunks.length === 0) throw new Error('dataset: no chunks to train on');
  return { chunks, text: await captionStates(model, chunks), K: model.lm.numCodebooks, fingerprint, fromCache };
}

// ---------------------------------------------------------------------------------------------------------------
// fingerprint and cache

async function dataFingerprint(model: MusicgenModel, items: DatasetItem[], folder: CheckpointFolder, chunkSeconds: number, minChunkSeconds: number): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, chunkSeconds, minChunkSeconds, channels: model.audioChannels, melody: model.isMelody, codec: model.cfg.audio_encoder }));
  // the codec's identity: its first codebook (1 MB for the real model) stands for the weights
  const reader = await SafetensorsCheckpoint.open(folder);
  try {
    const key = 'audio_encoder.quantizer.layers.0.codebook.embed';
    if (reader.has(key)) h.update(await reader.readRaw(key));
  } finally {
    await reader.close();
  }
  for (const it of items) {
    h.update(`\n${it.name}\n${it.caption}\n`);
    h.update(createHash('sha256').update(it.audio).digest());
  }
  return h.digest('hex');
}

async function readCache(file: string, fingerprint: string): Promise<Chunk[] | null> {
  try {
    await fsp.access(file);
  } catch {
    return null;
  }
  const f = await openSafetensorsFile(file);
  try {
    if (f.metadata.fingerprint !== fingerprint) return null;
    const index = JSON.parse(f.metadata.chunks) as { id: string; caption: string; frames: number }[];
    const chunks: Chunk[] = [];
    for (let i = 0; i < index.length; i++) {
      chunks.push({
        ...index[i],
        codes: await f.readI32(`codes.${i}`),
        chroma: f.has(`chroma.${i}`) ? await f.readF32(`chroma.${i}`) : null,
      });
    }
    return chunks;
  } catch {
    return null; // unreadable cache: encode again
  } finally {
    await f.close();
  }
}

async function writeCache(file: string, fingerprint: string, chunks: Chunk[]): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const bytes = (a: Int32Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: StreamTensor[] = [];
  chunks.forEach((c, i) => {
    tensors.push({ name: `codes.${i}`, dtype: 'I32', shape: [c.codes.length / c.frames, c.frames], bytes: () => [bytes(c.codes)] });
    if (c.chroma) tensors.push({ name: `chroma.${i}`, dtype: 'F32', shape: [c.chroma.length / 12, 12], bytes: () => [bytes(c.chroma!)] });
  });
  const index = chunks.map(({ id, caption, frames }) => ({ id, caption, frames }));
  await writeSafetensorsStream(file, tensors, { fingerprint, chunks: JSON.stringify(index) });
}

