// Answering Cog HTTP API requests: JSON responses, a job's final answer (422 for input problems found while
// running), a job's server-sent event stream (replayed history, then live events, keep-alives), and the /docs page.

import type * as http from 'node:http';
import type { Job } from './jobs.js';
import type { Field } from './schema.js';
import type { HttpResult } from './request.js';

/** The page's Content-Security-Policy: its own scripts (and WebAssembly, blob: workers) only. */
export const PAGE_CSP = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval' blob:", "worker-src 'self' blob:", "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:", "media-src 'self' data: blob:", "connect-src 'self' data: blob:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
].join('; ');

export const NOT_FOUND: HttpResult = { status: 404, body: { detail: 'Not Found' } };

export function send(res: http.ServerResponse, r: HttpResult): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(r.body);
  res.writeHead(r.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...r.headers });
  res.end(text);
}

/** A finished job as a synchronous request's answer. */
export function finalResult(job: Job): HttpResult {
  const body = job.toJSON();
  if (job.status === 'failed' && job.issues) return { status: 422, body: { ...body, detail: job.issues } };
  return { status: 200, body };
}

/**
 * Streams a job's events (start, output, log, completed) as server-sent events until it completes. `onGone` runs
 * when the client goes away before the end, with the job's subscriber count already updated.
 */
export function streamJob(job: Job, res: http.ServerResponse, onGone: () => void): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    sub.unsubscribe();
    res.end();
  };
  const write = (event: string, data: unknown): void => {
    if (!ended) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const sub = job.subscribe((e) => {
    write(e.event, e.data);
    if (e.event === 'completed') end();
  });
  const keepAlive = setInterval(() => { if (!ended) res.write(':keep-alive\n\n'); }, 15_000);
  res.on('close', () => {
    const wasEnded = ended;
    end();
    if (!wasEnded) onGone();
  });
  if (sub.skipped > 0) {
    write('error', { error: 'SSE stream replay truncated; events were dropped', skipped: sub.skipped });
    end();
    return;
  }
  for (const e of sub.replay) write(e.event, e.data);
  if (job.terminal) {
    if (!sub.replay.some((e) => e.event === 'completed')) write('completed', job.toJSON());
    end();
  }
}

/** GET /docs: the inputs as HTML tables (null fields: the model is not loaded yet). */
export function docsPage(fields: { predictor: Field[]; trainer: Field[] | null } | null): string {
  const esc = (s: unknown): string => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  const table = (title: string, list: Field[]): string => `<h2>${esc(title)}</h2><table><tr><th>input</th><th>type</th><th>default</th><th>range / choices</th><th>description</th></tr>${list.map((f) => {
    const range = f.choices ? f.choices.join(', ') : [f.exclusiveMinimum !== undefined ? `> ${f.exclusiveMinimum}` : f.minimum !== undefined ? `≥ ${f.minimum}` : '', f.maximum !== undefined ? `≤ ${f.maximum}` : ''].filter(Boolean).join(', ');
    return `<tr><td><code>${esc(f.name)}</code>${f.required ? ' (required)' : ''}</td><td>${esc(f.type)}${f.format ? ` (${esc(f.format)})` : ''}</td><td>${f.default === undefined ? '' : esc(JSON.stringify(f.default))}</td><td>${esc(range)}</td><td>${esc(f.description)}</td></tr>`;
  }).join('')}</table>`;
  return `<!doctype html><meta charset="utf-8"><title>API docs</title><style>body{font:14px system-ui;margin:2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}</style>
<h1>MusicGen: Cog HTTP API</h1><p>OpenAPI document: <a href="/openapi.json">/openapi.json</a>. Page: <a href="/">/</a>.</p>
${fields ? table('POST /predictions — input', fields.predictor) + (fields.trainer ? table('POST /trainings — input', fields.trainer) : '') : '<p>The model is not loaded yet.</p>'}`;
}
