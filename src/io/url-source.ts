// ByteSource over HTTP(S) with Range requests (works in browsers and Node 20's fetch).
// Safetensors format: https://github.com/huggingface/safetensors
// Only the header and the tensors asked for are downloaded, which needs a server
// that honours `Range: bytes=a-b` (answers 206); one that sends the whole file
// (200) is refused with a clear error rather than silently downloading gigabytes.
// Cross-origin note: Content-Range must be listed in Access-Control-Expose-Headers
// for the size fallback; Content-Length (HEAD) needs nothing special.

import {
  INDEX_FILE,
  SINGLE_FILE,
  SafetensorsCheckpoint,
  checkRange,
  type ByteSource,
  type Bytes,
  type CheckpointFolder,
} from './safetensors.js';

export interface UrlSourceOptions {
  /** fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Extra request headers, e.g. Authorization for gated repositories. */
  headers?: Record<string, string>;
}

/** An HTTP answer that was not what was needed; `status` lets callers tell 404 apart. */
export class HttpError extends Error {
  constructor(message: string, readonly status: number, readonly url: string) {
    super(message);
    this.name = 'HttpError';
  }
}

export class UrlSource implements ByteSource {
  readonly label: string;
  private readonly fetchFn: typeof fetch;
  private readonly headers: Record<string, string>;
  private cachedSize: number | undefined;

  constructor(readonly url: string, opts: UrlSourceOptions = {}) {
    this.label = url;
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    // identity: byte ranges must refer to the stored bytes, not a compressed stream
    // (browsers ignore this forbidden header, and then servers rarely compress ranges anyway).
    this.headers = { 'Accept-Encoding': 'identity', ...opts.headers };
  }

  async size(): Promise<number> {
    this.cachedSize ??= await this.fetchSize();
    return this.cachedSize;
  }

  private async fetchSize(): Promise<number> {
    const head = await this.fetchFn(this.url, { method: 'HEAD', headers: this.headers });
    const len = head.headers.get('content-length');
    const enc = head.headers.get('content-encoding');
    if (head.ok && len !== null && /^\d+$/.test(len) && (!enc || enc === 'identity')) return Number(len);
    if (head.status === 404 || head.status === 410) throw new HttpError(`${this.url}: HTTP ${head.status} (not found)`, head.status, this.url);
    // HEAD refused or without a usable length: ask for one byte and read the total from Content-Range.
    const res = await this.rangeGet(0, 0);
    await res.body?.cancel();
    const total = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '')?.[1];
    if (total === undefined) {
      throw new Error(`${this.url}: cannot tell the file size (no Content-Length on HEAD, no total in Content-Range)`);
    }
    return Number(total);
  }

  /** GET of bytes [first, last] that insists on a 206 answer. */
  private async rangeGet(first: number, last: number): Promise<Response> {
    const res = await this.fetchFn(this.url, { headers: { ...this.headers, Range: `bytes=${first}-${last}` } });
    if (res.status === 206) return res;
    await res.body?.cancel();
    if (res.ok) {
      throw new HttpError(
        `${this.url}: the server ignored the Range header (answered ${res.status} instead of 206 Partial Content); ` +
          'ranged reads are needed to load tensors without downloading the whole file',
        res.status,
        this.url,
      );
    }
    throw new HttpError(`${this.url}: HTTP ${res.status} ${res.statusText} for bytes ${first}-${last}`, res.status, this.url);
  }

  async read(offset: number, length: number): Promise<Bytes> {
    checkRange(offset, length);
    if (length === 0) return new Uint8Array(0);
    const res = await this.rangeGet(offset, offset + length - 1);
    const cr = res.headers.get('content-range'); // may be hidden cross-origin; check when visible
    const start = cr ? /^bytes\s+(\d+)-/.exec(cr)?.[1] : undefined;
    if (start !== undefined && Number(start) !== offset) {
      await res.body?.cancel();
      throw new Error(`${this.url}: asked for bytes from ${offset} but the server sent "${cr}"`);
    }
    const buf = new Uint8Array(await res.arrayBuffer());
    if (buf.byteLength !== length) {
      throw new Error(`${this.url}: asked for ${length} bytes at offset ${offset}, got ${buf.byteLength} (file truncated?)`);
    }
    return buf;
  }
}

function baseUrl(base: string): URL {
  // Relative URLs resolve against the page in a browser.
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const u = new URL(base, page);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}

/** A checkpoint folder served over HTTP: `base` + file name. */
export function urlFolder(base: string, opts: UrlSourceOptions = {}): CheckpointFolder {
  const root = baseUrl(base);
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  return {
    label: root.href,
    source: (fileName) => new UrlSource(new URL(fileName, root).href, opts),
    async readText(fileName) {
      const url = new URL(fileName, root).href;
      const res = await fetchFn(url, { headers: opts.headers });
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        return null;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new HttpError(`${url}: HTTP ${res.status} ${res.statusText}`, res.status, url);
      }
      return res.text();
    },
  };
}

/**
 * Opens the checkpoint at a URL folder: model.safetensors.index.json if the server
 * has it, else model.safetensors. A URL ending in .safetensors or .index.json is
 * opened directly.
 */
export async function openCheckpointUrl(base: string, opts: UrlSourceOptions = {}): Promise<SafetensorsCheckpoint> {
  const u = new URL(base, (globalThis as { location?: { href: string } }).location?.href);
  const file = u.pathname.split('/').pop() ?? '';
  if (file.endsWith('.safetensors') || file.endsWith('.index.json')) {
    const dir = new URL('.', u).href;
    return SafetensorsCheckpoint.open(urlFolder(dir, opts), decodeURIComponent(file));
  }
  const folder = urlFolder(base, opts);
  try {
    return await SafetensorsCheckpoint.open(folder);
  } catch (e) {
    // Only a missing model.safetensors means "nothing here"; a missing shard is reported as is.
    if (e instanceof HttpError && e.status === 404 && e.url === new URL(SINGLE_FILE, folder.label).href) {
      throw new Error(`${folder.label}: found neither ${INDEX_FILE} nor ${SINGLE_FILE}`);
    }
    throw e;
  }
}
