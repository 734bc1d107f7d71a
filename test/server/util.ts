// Helpers of the server tests: a server on a free port with the tiny model, JSON and SSE requests, a little
// HTTP server that records what it receives (webhooks, uploads, URL inputs), and test audio.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMusicGenServer, type MusicGenServer, type ServerOptions } from '../../src/server/app.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TINY = join(REPO, 'weights', 'tiny-musicgen');
export const TINY_MELODY = join(REPO, 'weights', 'tiny-musicgen-melody');

export interface Running {
  app: MusicGenServer;
  base: string;
  logs: string[];
}

export async function startServer(opts: Partial<ServerOptions> = {}): Promise<Running> {
  const logs: string[] = [];
  const app = createMusicGenServer({ model: TINY, log: (l) => logs.push(l), ...opts });
  const addr = await app.listen(0, '127.0.0.1');
  await app.ready;
  if (app.status !== 'READY') {
    await app.close();
    throw new Error(`server setup failed:\n${logs.join('\n')}`);
  }
  return { app, base: `http://127.0.0.1:${addr.port}`, logs };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export async function request(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const res = await fetch(base + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { _text: text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export interface SseMessage {
  event: string;
  data: Record<string, unknown>;
}

/** Sends a request with `Accept: text/event-stream` and collects the events until the stream ends. */
export async function sse(base: string, method: string, path: string, body: unknown, onEvent?: (e: SseMessage) => void): Promise<{ status: number; contentType: string; events: SseMessage[] }> {
  const res = await fetch(base + path, {
    method, headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' }, body: JSON.stringify(body),
  });
  const events: SseMessage[] = [];
  if (!res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await res.text();
    return { status: res.status, contentType: res.headers.get('content-type') ?? '', events };
  }
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trim());
      }
      if (data.length) {
        const e = { event, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
        events.push(e);
        onEvent?.(e);
      }
    }
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', events };
}

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** A recording HTTP server; `respond` decides each answer (default 200 {}). */
export async function recorder(respond?: (r: Received, res: http.ServerResponse) => void): Promise<{ base: string; received: Received[]; close: () => Promise<void>; waitFor: (pred: (r: Received[]) => boolean, ms?: number) => Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
    received.push(r);
    if (respond) respond(r, res);
    else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
    async waitFor(pred, ms = 30_000) {
      const t0 = Date.now();
      while (!pred(received)) {
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting; received ${received.length} request(s)`);
        await sleep(20);
      }
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls GET until `pred` holds. */
export async function pollUntil(base: string, path: string, pred: (b: Record<string, unknown>) => boolean, ms = 60_000): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  for (;;) {
    const r = await request(base, 'GET', path);
    if (r.status === 200 && pred(r.body)) return r.body;
    if (Date.now() - t0 > ms) throw new Error(`timed out polling ${path}: last ${JSON.stringify(r.body).slice(0, 300)}`);
    await sleep(25);
  }
}

export { tones } from '../helpers.js';

/** The bytes of a data: URI (base64). */
export function dataUriBytes(uri: unknown): { mediaType: string; bytes: Buffer } {
  const s = String(uri);
  const m = /^data:([^;,]*)(?:;[^,]*)?;base64,(.*)$/s.exec(s);
  if (!m) throw new Error(`not a base64 data URI: ${s.slice(0, 60)}`);
  return { mediaType: m[1], bytes: Buffer.from(m[2], 'base64') };
}

/** Seconds of audio in a 16-bit PCM WAV (parses the chunks). */
export function wavInfo(bytes: Buffer): { sampleRate: number; channels: number; bits: number; seconds: number } {
  if (bytes.toString('ascii', 0, 4) !== 'RIFF' || bytes.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a RIFF/WAVE file');
  let off = 12;
  let fmt: { channels: number; sampleRate: number; bits: number } | null = null;
  while (off + 8 <= bytes.length) {
    const id = bytes.toString('ascii', off, off + 4);
    const size = bytes.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = { channels: bytes.readUInt16LE(off + 10), sampleRate: bytes.readUInt32LE(off + 12), bits: bytes.readUInt16LE(off + 22) };
    if (id === 'data') {
      if (!fmt) throw new Error('data before fmt');
      return { ...fmt, seconds: size / (fmt.channels * (fmt.bits / 8)) / fmt.sampleRate };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error('no data chunk');
}
