// A fake Hugging Face hub for tests: two real HTTP servers on 127.0.0.1 serving a temp folder
// in the hub's URL layout. The "hub" answers the listing API and resolve URLs; like the real
// one it redirects *.safetensors (LFS) files with a 302 carrying X-Linked-Size to a separate
// "CDN" server (another port, hence another origin, so token leaks to the CDN are visible).
//   GET  /api/models/{owner}/{name}/revision/{rev}   → {sha, siblings: [{rfilename}]}
//   HEAD|GET /{owner}/{name}/resolve/{rev}/{file}     → 200 (Range → 206), or 302 to the CDN
//   HEAD|GET /cdn/{owner}/{name}/{file}               → 200 (Range → 206)

import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface FakeHubOptions {
  /** Per repo id: the token the hub wants (answers 401 without a token, 403 with another). */
  gated?: Record<string, string>;
  /** Per "repo/file": lie in X-Linked-Size by this many bytes. */
  linkedSizeDelta?: Record<string, number>;
  /** Per "repo/file": the next GETs (one per entry) send this many bytes, then drop the connection. */
  dropAfter?: Record<string, number[]>;
  /** CDN answers without Content-Length (chunked), so only the streamed byte count can catch a bad size. */
  chunked?: boolean;
}

export const FAKE_SHA = '0123456789abcdef0123456789abcdef01234567';

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  private hub!: http.Server;
  private cdn!: http.Server;
  endpoint = '';
  private cdnBase = '';

  constructor(readonly root: string, readonly opts: FakeHubOptions = {}) {}

  async start(): Promise<this> {
    this.hub = http.createServer((q, r) => void this.handle('hub', q, r));
    this.cdn = http.createServer((q, r) => void this.handle('cdn', q, r));
    this.endpoint = `http://127.0.0.1:${await listen(this.hub)}`;
    this.cdnBase = `http://127.0.0.1:${await listen(this.cdn)}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise<void>((ok) => s.close(() => ok()));
    }
  }

  /** Requests of one kind, for assertions. */
  count(filter: (r: LoggedRequest) => boolean = () => true): number {
    return this.log.filter(filter).length;
  }

  private async handle(server: 'hub' | 'cdn', q: http.IncomingMessage, r: http.ServerResponse): Promise<void> {
    const url = decodeURIComponent((q.url ?? '/').split('?')[0]!);
    this.log.push({ server, method: q.method ?? 'GET', url, range: q.headers.range, authorization: q.headers.authorization });
    try {
      let m: RegExpExecArray | null;
      if (server === 'hub' && (m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url))) {
        const repo = m[1]!;
        if (!(await this.exists(repo)) ) return notFound(r, 'RepoNotFound');
        if (!this.authorized(repo, q, r)) return;
        const siblings = (await listFiles(path.join(this.root, repo))).map((rfilename) => ({ rfilename }));
        const body = JSON.stringify({ id: repo, sha: FAKE_SHA, siblings });
        r.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        r.end(body);
        return;
      }
      if (server === 'hub' && (m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url))) {
        const [, repo, , file] = m as unknown as [string, string, string, string];
        if (!(await this.exists(repo))) return notFound(r, 'RepoNotFound');
        if (!this.authorized(repo, q, r)) return;
        const data = await fsp.readFile(path.join(this.root, repo, file)).catch(() => null);
        if (data === null) return notFound(r, 'EntryNotFound');
        if (file.endsWith('.safetensors')) {
          const size = data.length + (this.opts.linkedSizeDelta?.[`${repo}/${file}`] ?? 0);
          r.writeHead(302, { Location: `${this.cdnBase}/cdn/${repo}/${file}`, 'X-Linked-Size': String(size), 'X-Linked-Etag': '"lfs"' });
          r.end();
          return;
        }
        return this.serve(q, r, `${repo}/${file}`, data);
      }
      if (server === 'cdn' && (m = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(url))) {
        const data = await fsp.readFile(path.join(this.root, m[1]!, m[2]!)).catch(() => null);
        if (data === null) return notFound(r, 'EntryNotFound');
        return this.serve(q, r, `${m[1]}/${m[2]}`, data);
      }
      notFound(r, 'RepoNotFound');
    } catch (e) {
      r.writeHead(500);
      r.end(String(e));
    }
  }

  private async exists(repo: string): Promise<boolean> {
    return (await fsp.stat(path.join(this.root, repo)).catch(() => null))?.isDirectory() ?? false;
  }

  private authorized(repo: string, q: http.IncomingMessage, r: http.ServerResponse): boolean {
    const want = this.opts.gated?.[repo];
    if (want === undefined) return true;
    const auth = q.headers.authorization;
    if (auth === `Bearer ${want}`) return true;
    r.writeHead(auth ? 403 : 401, { 'X-Error-Code': 'GatedRepo', 'X-Error-Message': 'Access to this repo is restricted.' });
    r.end();
    return false;
  }

  /** A file with Range support; may drop the connection midway when asked to. */
  private serve(q: http.IncomingMessage, r: http.ServerResponse, key: string, data: Buffer): void {
    let start = 0;
    let status = 200;
    const headers: http.OutgoingHttpHeaders = { 'Accept-Ranges': 'bytes', ETag: '"e"' };
    const range = /^bytes=(\d+)-$/.exec(q.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= data.length) {
        r.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        r.end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    if (!this.opts.chunked || q.method === 'HEAD') headers['Content-Length'] = body.length;
    r.writeHead(status, headers);
    if (q.method === 'HEAD') {
      r.end();
      return;
    }
    const drops = this.opts.dropAfter?.[key];
    const drop = drops?.shift();
    if (drop !== undefined) {
      // send part of the body, then cut the connection as a flaky network would
      r.write(body.subarray(0, drop), () => setTimeout(() => r.socket?.destroy(), 20));
      return;
    }
    r.end(body);
  }
}

function notFound(r: http.ServerResponse, code: string): void {
  r.writeHead(404, { 'X-Error-Code': code });
  r.end();
}

function listen(s: http.Server): Promise<number> {
  return new Promise((ok) => s.listen(0, '127.0.0.1', () => ok((s.address() as AddressInfo).port)));
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(path.join(dir, e.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

/** A port nothing listens on: bind one, then close it. */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}
