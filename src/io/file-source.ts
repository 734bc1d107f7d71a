// Node-only ByteSource over a local file, checkpoint-folder helpers, and the streaming safetensors writer.
// Safetensors format: https://github.com/huggingface/safetensors
// Reads are positional (FileHandle.read at an offset) so multi-GB checkpoints
// are never held in memory whole; only the tensors asked for are read.

import { constants as fsc, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import {
  INDEX_FILE,
  SINGLE_FILE,
  SafetensorsCheckpoint,
  SafetensorsFile,
  checkRange,
  encodeSafetensorsHeader,
  type ByteSource,
  type Bytes,
  type CheckpointFolder,
  type TensorEntry,
} from './safetensors.js';
import { writeFileAtomic } from './atomic.js';

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isDirectory()) return 'a folder';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Opens a file for reading, refusing anything but a regular file: opening a FIFO waits for a writer, reading a
 * device may never end. O_NONBLOCK makes the open itself return at once (it changes nothing for regular files), and
 * the check is on the opened handle, so the path cannot be swapped in between.
 */
export async function openRegularFile(file: string): Promise<fsp.FileHandle> {
  const fh = await fsp.open(file, fsc.O_RDONLY | (fsc.O_NONBLOCK ?? 0));
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw e;
  });
  if (!st.isFile()) {
    await fh.close();
    throw new Error(`${file}: ${kindOf(st)}, not a regular file; model and data files must be regular files`);
  }
  return fh;
}

export class FileSource implements ByteSource {
  readonly label: string;
  private handle: Promise<fsp.FileHandle> | undefined;
  private cachedSize: number | undefined;

  constructor(readonly path: string) {
    this.label = path;
  }

  /** Opened on first use, so constructing a FileSource never fails or leaks. */
  private open(): Promise<fsp.FileHandle> {
    this.handle ??= openRegularFile(this.path);
    return this.handle;
  }

  async size(): Promise<number> {
    this.cachedSize ??= (await (await this.open()).stat()).size;
    return this.cachedSize;
  }

  async read(offset: number, length: number): Promise<Bytes> {
    checkRange(offset, length);
    // A fresh Uint8Array (not a pooled Buffer) starts at byteOffset 0, so typed views over it are aligned.
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, out: Uint8Array): Promise<void> {
    const length = out.byteLength;
    checkRange(offset, length);
    const fh = await this.open();
    let done = 0;
    while (done < length) {
      // read() may return fewer bytes than asked; loop until full or end of file.
      // Node caps one read at 2 GiB - 1; stay well below.
      const { bytesRead } = await fh.read(out, done, Math.min(length - done, 1 << 30), offset + done);
      if (bytesRead === 0) {
        throw new Error(`${this.path}: unexpected end of file reading ${length} bytes at offset ${offset} (got ${done})`);
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    // A handle that never opened (e.g. missing file) has nothing to close.
    const fh = await h?.catch(() => undefined);
    await fh?.close();
  }
}

/** A checkpoint folder on local disk. */
export function dirFolder(dir: string): CheckpointFolder {
  return {
    label: dir,
    source: (fileName) => new FileSource(path.join(dir, fileName)),
    async readText(fileName) {
      let fh;
      try {
        fh = await openRegularFile(path.join(dir, fileName));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
      try {
        return await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    },
  };
}

/** Opens one .safetensors file from disk. */
export function openSafetensorsFile(file: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(new FileSource(file), file);
}

/**
 * Opens the checkpoint in a local folder: model.safetensors.index.json (sharded)
 * if present, else model.safetensors. `dir` may also name a .safetensors or
 * .index.json file directly.
 */
export async function openCheckpointDir(dir: string): Promise<SafetensorsCheckpoint> {
  const st = await fsp.stat(dir);
  if (st.isFile()) return SafetensorsCheckpoint.open(dirFolder(path.dirname(dir)), path.basename(dir));
  const files = await fsp.readdir(dir);
  for (const entry of [INDEX_FILE, SINGLE_FILE]) {
    if (files.includes(entry)) return SafetensorsCheckpoint.open(dirFolder(dir), entry);
  }
  const shown = files.length ? files.sort().slice(0, 20).join(', ') + (files.length > 20 ? ', ...' : '') : '(empty)';
  throw new Error(`${dir}: no ${INDEX_FILE} or ${SINGLE_FILE} here; the folder holds: ${shown}`);
}

/** One tensor to stream: its header entry and its bytes (little-endian), produced when written. */
export interface StreamTensor extends TensorEntry {
  bytes: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/**
 * Writes a safetensors file tensor by tensor (tensors in sorted name order, no gaps), atomically, so a multi-GB
 * checkpoint is never held in memory whole and readers never see half of it. Every tensor's byte count is checked.
 */
export async function writeSafetensorsStream(file: string, tensors: StreamTensor[], metadata?: Record<string, string>): Promise<void> {
  const { head, order, sizes } = encodeSafetensorsHeader(tensors, metadata);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield head;
    for (let i = 0; i < order.length; i++) {
      let done = 0;
      for await (const chunk of order[i].bytes()) {
        yield chunk;
        done += chunk.byteLength;
      }
      if (done !== sizes[i]) throw new Error(`${file}: tensor "${order[i].name}" produced ${done} bytes, expected ${sizes[i]}`);
    }
  }
  await writeFileAtomic(file, chunks());
}
