// A model folder's weights in either format transformers writes: `model.safetensors` (or a sharded
// `model.safetensors.index.json`), else `pytorch_model.bin` (or `pytorch_model.bin.index.json`), safetensors first
// as transformers' from_pretrained prefers it. Loaders take the TensorReader and never see which format it was.
// Platform-neutral: the folder may be on disk (Node) or behind a URL (browser).

import {
  INDEX_FILE,
  SINGLE_FILE,
  SafetensorsCheckpoint,
  tensorNotFound,
  type Bytes,
  type CheckpointFolder,
  type TensorInfo,
  type TensorReader,
} from './safetensors.js';
import { openTorchStateDict } from './pytorch.js';
import { HttpError } from './url-source.js';

export const TORCH_SINGLE_FILE = 'pytorch_model.bin';
export const TORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

/** The weight files a model folder may hold, in the order they are looked for. */
export const WEIGHT_FILES: readonly string[] = [INDEX_FILE, SINGLE_FILE, TORCH_INDEX_FILE, TORCH_SINGLE_FILE];

function joinLabel(folder: string, file: string): string {
  return folder.endsWith('/') ? folder + file : `${folder}/${file}`;
}

function isNotFound(e: unknown): boolean {
  return (e instanceof HttpError && (e.status === 404 || e.status === 410)) || (e as { code?: string } | null)?.code === 'ENOENT';
}

/** True for names of PyTorch weight files (`.bin`, `.pt`, `.pth`, `.th`, `.ckpt`). */
export function isTorchFileName(name: string): boolean {
  return /\.(bin|pt|pth|th|ckpt)$/.test(name);
}

/**
 * Opens `entry` of the folder (a .safetensors or PyTorch file, or an index of either), or without `entry` the
 * first of WEIGHT_FILES the folder has.
 */
export async function openCheckpoint(folder: CheckpointFolder, entry?: string): Promise<TensorReader> {
  if (entry !== undefined) {
    if (entry.endsWith('.safetensors') || entry.endsWith('.safetensors.index.json')) return SafetensorsCheckpoint.open(folder, entry);
    if (entry.endsWith('.index.json')) {
      const text = await folder.readText(entry);
      if (text === null) throw new Error(`${folder.label}: no file "${entry}"`);
      return ShardedReader.open(folder, entry, text);
    }
    return openTorchStateDict(folder.source(entry), joinLabel(folder.label, entry));
  }
  if ((await folder.readText(INDEX_FILE)) !== null) return SafetensorsCheckpoint.open(folder, INDEX_FILE);
  try {
    return await SafetensorsCheckpoint.open(folder, SINGLE_FILE);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const index = await folder.readText(TORCH_INDEX_FILE);
  if (index !== null) return ShardedReader.open(folder, TORCH_INDEX_FILE, index);
  try {
    return await openTorchStateDict(folder.source(TORCH_SINGLE_FILE), joinLabel(folder.label, TORCH_SINGLE_FILE));
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new Error(`${folder.label}: no weights (looked for ${WEIGHT_FILES.join(', ')})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The shard files an index's weight_map names, checked so a hostile index cannot point outside the folder. */
export function indexShards(text: string, where: string): { weightMap: Record<string, string>; shards: string[]; metadata: Record<string, unknown> } {
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(index) || !isObject(index.weight_map)) throw new Error(`${where}: no "weight_map" object`);
  const shards = [...new Set(Object.values(index.weight_map))];
  if (shards.length === 0) throw new Error(`${where}: "weight_map" is empty`);
  for (const s of shards) {
    if (typeof s !== 'string' || s === '' || s.startsWith('/') || s.split(/[\\/]/).some((p) => p === '..' || p === '.')) {
      throw new Error(`${where}: invalid shard file name ${JSON.stringify(s)}`);
    }
  }
  return { weightMap: index.weight_map as Record<string, string>, shards: shards as string[], metadata: isObject(index.metadata) ? index.metadata : {} };
}

/** A PyTorch checkpoint split over shards by a `*.bin.index.json` (`{"weight_map": {tensor: shardFile}}`). */
export class ShardedReader implements TensorReader {
  private constructor(
    readonly label: string,
    private readonly owner: Map<string, TensorReader>,
    private readonly shards: TensorReader[],
    readonly metadata: Readonly<Record<string, unknown>>,
  ) {}

  static async open(folder: CheckpointFolder, entry: string, text: string): Promise<ShardedReader> {
    const where = joinLabel(folder.label, entry);
    const { weightMap, shards: names, metadata } = indexShards(text, where);
    const settled = await Promise.allSettled(names.map((s) => openTorchStateDict(folder.source(s), joinLabel(folder.label, s))));
    const shards = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const closeAll = () => Promise.all(shards.map((f) => f.close()));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await closeAll(); // do not leak the handles of the shards that did open
      throw failed.reason;
    }
    const byName = new Map(names.map((s, i) => [s, shards[i]!] as const));
    const owner = new Map<string, TensorReader>();
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      const shard = byName.get(shardName)!;
      if (!shard.has(tensor)) {
        await closeAll();
        throw new Error(`${where}: weight_map puts tensor "${tensor}" in ${shardName}, but that shard has no such tensor`);
      }
      owner.set(tensor, shard);
    }
    return new ShardedReader(where, owner, shards, Object.freeze({ ...metadata }));
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  readRaw(name: string): Promise<Bytes> {
    return this.shard(name).readRaw(name);
  }

  readRawChunks(name: string, chunkBytes: number): AsyncGenerator<Bytes, void, undefined> {
    return this.shard(name).readRawChunks(name, chunkBytes);
  }

  readF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return this.shard(name).readF32(name);
  }

  readI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return this.shard(name).readI32(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((f) => f.close()));
  }

  private shard(name: string): TensorReader {
    const f = this.owner.get(name);
    if (!f) throw tensorNotFound(name, this.label, this.names());
    return f;
  }
}
