// Where the Demucs weights come from (Node only): a file, or a URL (by default the published htdemucs package that
// audiocraft's melody conditioner uses, HTDEMUCS_URL in src/model/stems.ts) downloaded once into torch.hub's
// checkpoint cache, the folder demucs itself downloads it to ($TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to $XDG_CACHE_HOME/torch or ~/.cache/torch),
// so a Python cache is reused. A file named `{signature}-{checksum}.th` must have a sha256 starting with
// `checksum`, the check torch.hub (`check_hash=True`) and demucs's LocalRepo (repo.py check_checksum) make.

import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The steps a caller can take when the weights cannot be had: named for the CLI and the library alike. */
export const DEMUCS_HINT =
  'Pass a copy with `--demucs PATH|URL` (library: the `demucs` option), or do without stem separation: ' +
  '`--no-melody-stems` (library: `melodyStems: false`) takes the melody\'s chroma from the whole mix.';

export type DemucsWeightsErrorKind = 'offline' | 'unreachable' | 'checksum' | 'not-found' | 'http';

export class DemucsWeightsError extends Error {
  constructor(message: string, readonly kind: DemucsWeightsErrorKind, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DemucsWeightsError';
  }
}

export interface DemucsWeightsOptions {
  /** Folder for downloads (default: torch.hub's checkpoint folder, see torchHubCheckpointDir). */
  cacheDir?: string;
  /** Never touch the network (default: $HF_HUB_OFFLINE is 1/true/yes/on, the project's one offline switch). */
  offline?: boolean;
  /** Download progress in bytes; total 0 while unknown. */
  onProgress?: (p: { file: string; received: number; total: number }) => void;
  signal?: AbortSignal;
  /** For tests: the fetch to download with. */
  fetch?: typeof fetch;
}

/** torch.hub's checkpoint folder: $TORCH_HOME/hub/checkpoints, TORCH_HOME = $XDG_CACHE_HOME/torch or ~/.cache/torch. */
export function torchHubCheckpointDir(env: NodeJS.ProcessEnv = process.env): string {
  const torchHome = env.TORCH_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'torch');
  return path.join(torchHome, 'hub', 'checkpoints');
}

/**
 * The sha256 prefix a file name promises: demucs names its files `{signature}-{checksum}.th`; torch.hub takes the
 * first `-([a-f0-9]*)\.` of the name. null when the name promises none.
 */
export function checksumOfName(file: string): string | null {
  const m = /-([a-f0-9]*)\./.exec(path.basename(file));
  return m && m[1].length > 0 ? m[1] : null;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Throws a DemucsWeightsError when `file`'s sha256 does not start with what its name promises. */
export async function checkChecksum(file: string, label = file): Promise<void> {
  const want = checksumOfName(file);
  if (want === null) return;
  const got = (await sha256File(file)).slice(0, want.length);
  if (got !== want) {
    throw new DemucsWeightsError(`Invalid checksum for ${label}: its name promises a sha256 starting with ${want}, the file's starts with ${got}`, 'checksum');
  }
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.toLowerCase());
}

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/**
 * A local path to the Demucs package `spec` names: a file path (used as is, its checksum checked when its name
 * carries one) or an http(s) URL (downloaded once into the cache, checksum checked). Errors say how to get on
 * without: `--demucs` / `demucs`, `--no-melody-stems` / `melodyStems: false`.
 */
export async function resolveDemucsWeights(spec: string, opts: DemucsWeightsOptions = {}): Promise<string> {
  if (!isUrl(spec)) {
    const st = await fsp.stat(spec).catch(() => null);
    if (!st?.isFile()) throw new DemucsWeightsError(`The Demucs weights ${spec} are not a file. ${DEMUCS_HINT}`, 'not-found');
    await checkChecksum(spec);
    return spec;
  }
  const url = spec;
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  if (!name || name.startsWith('.')) throw new DemucsWeightsError(`The Demucs URL ${url} names no file. ${DEMUCS_HINT}`, 'not-found');
  const dir = opts.cacheDir ?? torchHubCheckpointDir();
  const file = path.join(dir, name);
  if ((await fsp.stat(file).catch(() => null))?.isFile()) return file;
  const offline = opts.offline ?? envFlag(process.env.HF_HUB_OFFLINE);
  if (offline) {
    throw new DemucsWeightsError(
      `The Demucs weights ${name} are not in the cache (${dir}) and offline mode is on, so they cannot be downloaded from ${url}. ${DEMUCS_HINT}`,
      'offline',
    );
  }
  await download(url, file, name, opts);
  return file;
}

/** Downloads `url` to `file` through `file.part`, checking the size and the checksum the name promises. */
async function download(url: string, file: string, name: string, opts: DemucsWeightsOptions): Promise<void> {
  const doFetch = opts.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, { signal: opts.signal, headers: { 'Accept-Encoding': 'identity' } });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new DemucsWeightsError(`Could not download the Demucs weights from ${url} (${(e as Error).message}). ${DEMUCS_HINT}`, 'unreachable', { cause: e });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new DemucsWeightsError(`Downloading the Demucs weights from ${url} failed: HTTP ${res.status}. ${DEMUCS_HINT}`, 'http');
  }
  const want = checksumOfName(name);
  const total = Number(res.headers.get('content-length') ?? 0) || 0;
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const part = `${file}.${process.pid}.part`;
  const h = createHash('sha256');
  const fh = await fsp.open(part, 'w');
  let received = 0;
  try {
    try {
      opts.onProgress?.({ file: name, received, total });
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          h.update(value);
          await fh.write(value);
          received += value.length;
          opts.onProgress?.({ file: name, received, total });
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (total > 0 && received !== total) throw new DemucsWeightsError(`Downloading ${url}: got ${received} of ${total} bytes; run again`, 'unreachable');
    const got = h.digest('hex');
    if (want !== null && !got.startsWith(want)) {
      throw new DemucsWeightsError(`Invalid checksum for ${url}: its name promises a sha256 starting with ${want}, the download's is ${got}. The file was discarded.`, 'checksum');
    }
    await fsp.rename(part, file);
  } catch (e) {
    await fsp.unlink(part).catch(() => undefined);
    if (e instanceof DemucsWeightsError || opts.signal?.aborted) throw e;
    throw new DemucsWeightsError(`Could not download the Demucs weights from ${url} (${(e as Error).message}). ${DEMUCS_HINT}`, 'unreachable', { cause: e });
  }
}
