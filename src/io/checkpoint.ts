// A model folder's weights in either format transformers writes: `model.safetensors` (or a sharded
// `model.safetensors.index.json`), else `pytorch_model.bin` (or `pytorch_model.bin.index.json`), safetensors first
// as transformers' from_pretrained prefers it. Loaders take the TensorReader and never see which format it was.
// Platform-neutral: the folder may be on disk (Node) or behind a URL (browser).

import {
  INDEX_FILE,
  SINGLE_FILE,
  SafetensorsCheckpoint,
  ShardedCheckpoint,
  type CheckpointFolder,
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
      return ShardedCheckpoint.fromIndex(folder, entry, text, openTorchStateDict);
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
  if (index !== null) return ShardedCheckpoint.fromIndex(folder, TORCH_INDEX_FILE, index, openTorchStateDict);
  try {
    return await openTorchStateDict(folder.source(TORCH_SINGLE_FILE), joinLabel(folder.label, TORCH_SINGLE_FILE));
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new Error(`${folder.label}: no weights (looked for ${WEIGHT_FILES.join(', ')})`);
  }
}
