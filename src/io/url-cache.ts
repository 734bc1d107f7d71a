// Keeps what the browser reads of a model over HTTP in Cache Storage, so a second visit reads the weights from
// disk (also offline) instead of downloading them again. Node does not use this: it has its own file cache for
// hub downloads (hub.ts).
//
// Each ranged read (the safetensors header, then each tensor) is one Cache Storage entry, keyed by the file's URL,
// its validator (size + ETag, or Last-Modified where the server sends no ETag) and the byte range. The loader reads
// the same ranges each time, so a second load finds them all; an interrupted first load resumes where it stopped.
// Every load asks the server for the file's HEAD (no bytes) to learn the validator: a changed file has a new one,
// its old entries are deleted and its bytes fetched again. When that HEAD fails at the network level (offline),
// the stored copy is used. Small files (config.json, tokenizer.json, ...) are fetched first and read from the cache
// only when the network fails. Before storing, navigator.storage.estimate() is asked whether the rest of the file
// fits; if not, the load fails with a StorageQuotaError saying how much is needed and how much is free.

import { HttpError, UrlSource, urlFolder, type UrlSourceOptions } from './url-source.js';
import { checkRange, type ByteSource, type Bytes, type CheckpointFolder } from './safetensors.js';

/** The Cache Storage cache the weights are kept in. */
export const WEIGHT_CACHE = 'musicgen-weights';

// Query parameters appended to a file's URL to make the cache keys (kept last, so the URL before them is the file's).
const VERSION_PARAM = 'musicgen-version';
const BYTES_PARAM = 'musicgen-bytes';
const TEXT_PARAM = 'musicgen-text';
const MISSING_HEADER = 'x-musicgen-missing';

/** Progress of the weight bytes a load reads (the same shape as Node's hub download progress). */
export interface DownloadProgress {
  /** URL of the file. */
  file: string;
  /** Bytes of it read so far, from the network and the cache together. */
  received: number;
  /** Its size. */
  total: number;
  fileIndex: number;
  files: number;
  /** How many of `received` came from the browser's cache rather than the network. */
  fromCache?: number;
}

export interface CachedUrlOptions extends UrlSourceOptions {
  /** Keep what is read in Cache Storage (default true; without Cache Storage, e.g. on plain http, nothing is kept). */
  cache?: boolean;
  onDownload?: (p: DownloadProgress) => void;
}

/** A model file kept in the browser. */
export interface StoredFile {
  url: string;
  /** Size of the file when it was stored. */
  size: number;
  /** Bytes of it kept (all of it once a load has read every tensor). */
  stored: number;
  /** The ETag (or Last-Modified) it was stored under; '' when the server sent neither. */
  etag: string;
}

/** The model does not fit in what the browser lets this site store. */
export class StorageQuotaError extends Error {
  constructor(message: string, readonly needed: number, readonly available: number) {
    super(message);
    this.name = 'StorageQuotaError';
  }
}

function cacheStorage(): CacheStorage | null {
  return (globalThis as { caches?: CacheStorage }).caches ?? null;
}

/** Whether this environment can keep weights (Cache Storage exists: a browser page or worker on a secure origin). */
export function canStoreWeights(): boolean {
  return cacheStorage() !== null;
}

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

function withParams(url: string, params: string): string {
  return `${url.replace(/#.*$/, '')}${url.includes('?') ? '&' : '?'}${params}`;
}

function versionOf(size: number, etag: string): string {
  return `${VERSION_PARAM}=${encodeURIComponent(`${size}:${etag}`)}`;
}

function rangeKey(url: string, version: string, offset: number, length: number): string {
  return withParams(url, `${version}&${BYTES_PARAM}=${offset}-${length}`);
}

function textKey(url: string): string {
  return withParams(url, `${TEXT_PARAM}=1`);
}

type Entry =
  | { kind: 'range'; url: string; size: number; etag: string; version: string; length: number }
  | { kind: 'text'; url: string };

/** What a cache key says, or null for a key this module did not write. */
function parseKey(key: string): Entry | null {
  const text = new RegExp(`[?&]${TEXT_PARAM}=1$`).exec(key);
  if (text) return { kind: 'text', url: key.slice(0, text.index) };
  const m = new RegExp(`[?&](${VERSION_PARAM}=([^&]*))&${BYTES_PARAM}=(\\d+)-(\\d+)$`).exec(key);
  if (!m) return null;
  const v = decodeURIComponent(m[2]);
  const colon = v.indexOf(':');
  if (colon < 0) return null;
  return { kind: 'range', url: key.slice(0, m.index), size: Number(v.slice(0, colon)), etag: v.slice(colon + 1), version: m[1], length: Number(m[4]) };
}

/** A network failure (offline, DNS, CORS), as opposed to an answer from the server. */
function isNetworkError(e: unknown): boolean {
  return !(e instanceof HttpError) && e instanceof TypeError;
}

/** Shared by the files of one load: their cache, the space they reserve, progress numbering. */
interface LoadState {
  cache: Promise<Cache | null>;
  reserved: number;
  files: number;
  opts: CachedUrlOptions;
}

class CachedUrlSource implements ByteSource {
  readonly label: string;
  private readonly inner: UrlSource;
  private ready: Promise<{ size: number; version: string }> | undefined;
  private storing = true;
  private received = 0;
  private fromCache = 0;
  private readonly index: number;

  constructor(readonly url: string, private readonly load: LoadState) {
    this.inner = new UrlSource(url, load.opts);
    this.label = url;
    this.index = load.files++;
  }

  async size(): Promise<number> {
    return (await this.prepare()).size;
  }

  private prepare(): Promise<{ size: number; version: string }> {
    this.ready ??= this.validate();
    return this.ready;
  }

  /** The file's size and validator from the server (or, offline, from what is stored); stale entries dropped. */
  private async validate(): Promise<{ size: number; version: string }> {
    const cache = await this.load.cache;
    const kept = cache ? await this.storedEntries(cache) : [];
    let size: number;
    let etag: string;
    try {
      const fetchFn = this.load.opts.fetch ?? globalThis.fetch.bind(globalThis);
      const head = await fetchFn(this.url, { method: 'HEAD', headers: { 'Accept-Encoding': 'identity', ...this.load.opts.headers } });
      const len = head.headers.get('content-length');
      size = head.ok && len !== null && /^\d+$/.test(len) ? Number(len) : await this.inner.size();
      etag = head.headers.get('etag') ?? head.headers.get('last-modified') ?? '';
    } catch (e) {
      if (!isNetworkError(e) || kept.length === 0) throw e;
      // offline: the version with most bytes kept
      const bytes = new Map<string, number>();
      for (const k of kept) bytes.set(k.version, (bytes.get(k.version) ?? 0) + k.length);
      const best = kept.reduce((a, b) => ((bytes.get(b.version) ?? 0) > (bytes.get(a.version) ?? 0) ? b : a));
      this.storing = false;
      return { size: best.size, version: best.version };
    }
    const version = versionOf(size, etag);
    if (!cache) return { size, version };
    // a changed file: its old bytes go
    const stale = kept.filter((k) => k.version !== version);
    await Promise.all(stale.map((k) => cache.delete(k.key)));
    const stored = kept.filter((k) => k.version === version).reduce((s, k) => s + k.length, 0);
    const need = Math.max(0, size - stored);
    const estimate = await (globalThis as { navigator?: Navigator }).navigator?.storage?.estimate?.();
    if (need > 0 && estimate?.quota !== undefined) {
      const free = Math.max(0, estimate.quota - (estimate.usage ?? 0));
      if (need + this.load.reserved > free) {
        throw new StorageQuotaError(
          `${this.url}: the model does not fit in this browser's storage for this site: it needs ${mb(need + this.load.reserved)} ` +
            `more but only ${mb(free)} of ${mb(estimate.quota)} are free. Clear stored models (clearStoredModels()) ` +
            'or load with { cache: false } to read it over the network each time.',
          need + this.load.reserved,
          free,
        );
      }
      this.load.reserved += need;
    }
    return { size, version };
  }

  /** The range entries kept for this URL, any version. */
  private async storedEntries(cache: Cache): Promise<Array<{ key: Request; version: string; size: number; length: number }>> {
    const keys = await cache.keys(this.url, { ignoreSearch: true });
    const out: Array<{ key: Request; version: string; size: number; length: number }> = [];
    for (const key of keys) {
      const e = parseKey(key.url);
      if (e?.kind === 'range' && e.url === this.url) out.push({ key, version: e.version, size: e.size, length: e.length });
    }
    return out;
  }

  private report(length: number, cached: boolean, size: number): void {
    this.received += length;
    if (cached) this.fromCache += length;
    this.load.opts.onDownload?.({
      file: this.url,
      received: this.received,
      total: size,
      fileIndex: this.index,
      files: this.load.files,
      fromCache: this.fromCache,
    });
  }

  async read(offset: number, length: number): Promise<Bytes> {
    checkRange(offset, length);
    const { size, version } = await this.prepare();
    if (length === 0) return new Uint8Array(0);
    const cache = await this.load.cache;
    const key = rangeKey(this.url, version, offset, length);
    const hit = cache ? await cache.match(key) : undefined;
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if (bytes.byteLength === length) {
        this.report(length, true, size);
        return bytes;
      }
      await cache!.delete(key); // damaged entry
    }
    const bytes = await this.inner.read(offset, length);
    if (cache && this.storing) {
      try {
        await cache.put(key, new Response(bytes)); // Response copies the bytes
      } catch (e) {
        // e.g. QuotaExceededError despite the estimate: keep loading from the network, stop storing
        this.storing = false;
        console.warn(`${this.url}: could not keep the weights in the browser (${(e as Error).message})`);
      }
    }
    this.report(length, false, size);
    return bytes;
  }
}

/**
 * A checkpoint folder served over HTTP, as urlFolder, whose reads are kept in the browser's Cache Storage
 * (see the top of this file) and reported through `onDownload`.
 */
export function cachedUrlFolder(base: string, opts: CachedUrlOptions = {}): CheckpointFolder {
  const plain = urlFolder(base, opts);
  const storage = opts.cache === false ? null : cacheStorage();
  const load: LoadState = { cache: storage ? storage.open(WEIGHT_CACHE).catch(() => null) : Promise.resolve(null), reserved: 0, files: 0, opts };
  return {
    label: plain.label,
    source: (fileName) => new CachedUrlSource(new URL(fileName, plain.label).href, load),
    async readText(fileName) {
      const cache = await load.cache;
      if (!cache) return plain.readText(fileName);
      const key = textKey(new URL(fileName, plain.label).href);
      let text: string | null;
      try {
        text = await plain.readText(fileName);
      } catch (e) {
        const hit = isNetworkError(e) ? await cache.match(key) : undefined;
        if (!hit) throw e;
        return hit.headers.has(MISSING_HEADER) ? null : hit.text();
      }
      // kept for offline use, absence included (the shard index a single-file model does not have)
      const res = text === null ? new Response('', { headers: { [MISSING_HEADER]: '1' } }) : new Response(text);
      await cache.put(key, res).catch(() => undefined);
      return text;
    },
  };
}

/** The model files kept in this browser (by cachedUrlFolder / MusicGen.load of a URL). */
export async function listStoredModels(): Promise<StoredFile[]> {
  const storage = cacheStorage();
  if (!storage || !(await storage.has(WEIGHT_CACHE))) return [];
  const cache = await storage.open(WEIGHT_CACHE);
  const files = new Map<string, StoredFile>();
  for (const key of await cache.keys()) {
    const e = parseKey(key.url);
    if (e?.kind !== 'range') continue;
    const id = `${e.url} ${e.version}`;
    const f = files.get(id) ?? { url: e.url, size: e.size, stored: 0, etag: e.etag };
    f.stored = Math.min(f.size, f.stored + e.length);
    files.set(id, f);
  }
  return [...files.values()].sort((a, b) => a.url.localeCompare(b.url));
}

/**
 * Deletes what is kept of the files whose URL starts with `prefix` (a model folder's URL), or of every model when
 * no prefix is given. Returns the number of entries deleted.
 */
export async function clearStoredModels(prefix?: string): Promise<number> {
  const storage = cacheStorage();
  if (!storage || !(await storage.has(WEIGHT_CACHE))) return 0;
  if (prefix === undefined) {
    const n = (await (await storage.open(WEIGHT_CACHE)).keys()).length;
    await storage.delete(WEIGHT_CACHE);
    return n;
  }
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const from = new URL(prefix, page).href;
  const cache = await storage.open(WEIGHT_CACHE);
  const gone = (await cache.keys()).filter((k) => {
    const e = parseKey(k.url);
    return e !== null && e.url.startsWith(from);
  });
  await Promise.all(gone.map((k) => cache.delete(k)));
  return gone.length;
}
