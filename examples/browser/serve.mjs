// A tiny static file server for trying the browser build locally, with the HTTP Range support that the
// library needs to read weights (it asks for the safetensors header and then each tensor's bytes, never the
// whole file). Used by test/browser as well.
//
//   npm run build:browser
//   node examples/browser/serve.mjs [--port 8080] [--host 127.0.0.1]
//   then open http://127.0.0.1:8080/examples/browser/ in a browser with WebGPU
//
// It serves the repository root read-only. Use a real web server (or a CDN) for anything public; any server
// that answers `Range: bytes=a-b` with 206 Partial Content works (Hugging Face's does).

import { createServer } from 'node:http';
import { createReadStream, promises as fsp } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

/**
 * Parses one `bytes=` range against a file of `size` bytes. Returns [first, last] (inclusive), null for a
 * header we do not handle (then the whole file is sent, as RFC 9110 allows), or 'unsatisfiable'.
 */
export function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multiple ranges or junk: ignore the header
  let first;
  let last;
  if (m[1] === '') {
    const n = Number(m[2]); // suffix: the last n bytes
    if (n === 0) return 'unsatisfiable';
    first = Math.max(0, size - n);
    last = size - 1;
  } else {
    first = Number(m[1]);
    last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < first) return null;
  }
  if (first >= size) return 'unsatisfiable';
  return [first, last];
}

/**
 * Creates (does not start) a server for the files under `root`.
 * `onRequest` is called after each answer with { method, path, range, status, bytes }.
 */
export function createStaticServer({ root, onRequest } = {}) {
  const base = resolve(root ?? process.cwd());
  return createServer(async (req, res) => {
    const method = req.method ?? 'GET';
    const range = req.headers.range;
    let path = '/';
    let status = 500;
    let bytes = 0;
    const done = () => onRequest?.({ method, path, range, status, bytes });
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      if (method !== 'GET' && method !== 'HEAD') {
        status = 405;
        res.writeHead(status, { Allow: 'GET, HEAD' }).end();
        return done();
      }
      let file = resolve(join(base, path));
      if (file !== base && !file.startsWith(base + sep)) {
        status = 403;
        res.writeHead(status).end('forbidden');
        return done();
      }
      let st = await fsp.stat(file).catch(() => null);
      if (st?.isDirectory()) {
        if (!path.endsWith('/')) {
          status = 301;
          res.writeHead(status, { Location: `${path}/` }).end();
          return done();
        }
        file = join(file, 'index.html');
        st = await fsp.stat(file).catch(() => null);
      }
      if (!st?.isFile()) {
        status = 404;
        res.writeHead(status, { 'Content-Type': 'text/plain' }).end('not found');
        return done();
      }
      const headers = {
        'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Accept-Ranges': 'bytes',
        'Cache-Control': 'no-store',
        // what the library keys the weights it keeps in the browser by: a changed file gets a new one
        ETag: `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
        'Last-Modified': st.mtime.toUTCString(),
      };
      const r = range === undefined ? null : parseRange(range, st.size);
      if (r === 'unsatisfiable') {
        status = 416;
        res.writeHead(status, { ...headers, 'Content-Range': `bytes */${st.size}` }).end();
        return done();
      }
      const [first, last] = r ?? [0, st.size - 1];
      status = r ? 206 : 200;
      bytes = st.size === 0 ? 0 : last - first + 1;
      res.writeHead(status, {
        ...headers,
        'Content-Length': String(bytes),
        ...(r ? { 'Content-Range': `bytes ${first}-${last}/${st.size}` } : {}),
      });
      if (method === 'HEAD' || bytes === 0) {
        res.end();
        return done();
      }
      const stream = createReadStream(file, { start: first, end: last });
      stream.on('error', () => res.destroy());
      stream.on('end', done);
      stream.pipe(res);
    } catch {
      if (!res.headersSent) res.writeHead(status).end();
      else res.destroy();
      done();
    }
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const port = Number(opt('--port', '8080'));
  const host = opt('--host', '127.0.0.1');
  const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
  createStaticServer({ root }).listen(port, host, () => {
    console.log(`Serving ${root}`);
    console.log(`Open http://${host}:${port}/examples/browser/ (build first: npm run build:browser)`);
  });
}
