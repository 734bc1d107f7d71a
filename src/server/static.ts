// Read-only static files: the page (web/), the browser bundle (dist/browser/) and the model folder (/model/…,
// which the in-browser mode loads with ranged reads: HEAD gives Content-Length, `Range: bytes=a-b` gives 206).
// Names are checked before any disk access: no `..`, no hidden files, nothing outside the folder's tree.

import { createReadStream, promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/**
 * The file `rel` (URL-decoded, '/'-separated) under `root`, or null when the name is not acceptable.
 * `flat`: only files directly in `root` (the model folder).
 */
export function safeJoin(root: string, rel: string, flat = false): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return null;
  }
  const parts = decoded.split('/').filter((p) => p !== '');
  if (parts.length === 0 || (flat && parts.length !== 1)) return null;
  for (const p of parts) {
    if (p === '.' || p === '..' || p.startsWith('.') || p.includes('\\') || p.includes('\0') || !/^[A-Za-z0-9._@+-]+$/.test(p)) return null;
  }
  const full = path.resolve(root, ...parts);
  const base = path.resolve(root);
  if (full !== base && !full.startsWith(base + path.sep)) return null;
  return full;
}

/** Serves one file with HEAD, single-range GET (206 / 416), Last-Modified and a weak ETag. Returns false if absent. */
export async function serveFile(req: IncomingMessage, res: ServerResponse, file: string, opts: { cache?: string } = {}): Promise<boolean> {
  let stat;
  try {
    stat = await fsp.stat(file);
  } catch {
    return false;
  }
  if (!stat.isFile()) return false;
  const size = stat.size;
  const etag = `W/"${size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
  const headers: Record<string, string | number> = {
    'Content-Type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    'Last-Modified': stat.mtime.toUTCString(),
    ETag: etag,
    'Cache-Control': opts.cache ?? 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.headers['if-none-match'] === etag && !req.headers.range) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    const ifRange = req.headers['if-range'];
    if (m && (!ifRange || ifRange === etag) && (m[1] !== '' || m[2] !== '')) {
      if (m[1] === '') {
        // suffix: the last n bytes
        const n = Number(m[2]);
        start = Math.max(0, size - n);
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(Number(m[2]), size - 1);
      }
      if (start >= size || start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Type': 'text/plain' });
        res.end();
        return true;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    // multiple ranges or a malformed header: the whole file, as RFC 9110 allows
  }
  headers['Content-Length'] = size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return true;
  }
  const stream = createReadStream(file, { start, end });
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
  return true;
}
