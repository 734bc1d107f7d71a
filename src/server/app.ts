// The Cog-compatible HTTP server (node:http, no framework): Cog's HTTP API (docs/http.md of replicate/cog is the
// contract; response shapes follow coglet's routes.rs) for predictions and trainings, plus the web page and the
// read-only files it needs, all in one process.
//
//   GET  /                        discovery document (JSON); the page when the client asks for HTML
//   GET  /health-check            STARTING | READY | BUSY | SETUP_FAILED | DEFUNCT, with setup details
//   GET  /openapi.json            Input / Output / PredictionRequest / PredictionResponse / Status / … (+ Training*)
//   GET  /docs                    the inputs as an HTML table
//   POST /predictions             sync JSON; `Prefer: respond-async` → 202; `Accept: text/event-stream` → SSE
//   PUT  /predictions/{id}        the same, idempotent (an id seen before is never run twice)
//   GET  /predictions/{id}        the prediction object (not in Cog; Replicate has it)
//   POST /predictions/{id}/cancel 200 {} / 404 {}
//   POST /trainings, PUT /trainings/{id}, GET /trainings/{id}, POST /trainings/{id}/cancel   (no SSE: 406)
//   GET  /model-info              what the page needs to know about the model
//   GET  /web/…, /browser/…, /model/…   the page's files, dist/browser/, the model folder (Range, HEAD)
//
// One job runs on the GPU at a time; by default another gets 409 Conflict, as Cog answers; with `maxQueue` N
// up to N wait in order. Request bodies are capped; invalid input gets 422 with pydantic-style `detail`.

import * as http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { MusicGen } from '../pipeline.js';
import { dirFolder } from '../io/file-source.js';
import {
  predictorFields, predictorCrossChecks, trainerFields, validateInput, openApiDocument,
  type Field, type ValidationIssue, type PredictorLimits,
} from './schema.js';
import { Job, JobService, WebhookSender, WEBHOOK_EVENTS, newId, type JobKind, type WebhookEvent } from './jobs.js';
import { makePredictor } from './predictor.js';
import { makeTrainer } from './trainer.js';
import { safeJoin, serveFile } from './static.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PACKAGE_VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();
/** The Cog HTTP API version this server follows (reported as `cog_version` by GET /). */
export const COG_API_VERSION = '0.22.0';

export interface ServerOptions {
  /** A model folder or a hub id (resolved, and downloaded once, at setup). */
  model: string;
  cacheDir?: string;
  offline?: boolean;
  /** Jobs that may wait for the GPU (default 0: 409 Conflict when busy, as Cog). */
  maxQueue?: number;
  /** Largest request body (default 64 MiB). */
  maxBodyBytes?: number;
  /** Fetch http(s) URL inputs (default off). */
  allowUrlInputs?: boolean;
  /** Tests only: URL inputs may reach loopback/private addresses. */
  allowPrivateAddresses?: boolean;
  /** Largest training dataset fetched from a URL (default 1 GiB). */
  maxDatasetBytes?: number;
  /** Upload file outputs with PUT under this URL (cog's --upload-url) instead of returning data: URIs. */
  uploadUrl?: string;
  /** Longest `duration` accepted, seconds (default 300). */
  maxDuration?: number;
  /** Serve /trainings (default true). */
  trainings?: boolean;
  /** The page's folder (default web/ of the repository) and the browser bundle's (default dist/browser/). */
  webDir?: string;
  browserDir?: string;
  /** Finished jobs kept for idempotent retries (count, bytes). */
  retainCount?: number;
  retainBytes?: number;
  /** Where server log lines go (default stderr). */
  log?: (line: string) => void;
}

export type HealthStatus = 'STARTING' | 'READY' | 'BUSY' | 'SETUP_FAILED' | 'DEFUNCT';

export interface MusicGenServer {
  server: http.Server;
  service: JobService;
  /** Settles when setup has finished (READY or SETUP_FAILED). */
  ready: Promise<void>;
  /** The loaded model (null before setup finished, or when it failed). */
  readonly musicgen: MusicGen | null;
  readonly status: HealthStatus;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

interface HttpResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class HttpFailure extends Error {
  constructor(readonly result: HttpResult) {
    super(`HTTP ${result.status}`);
  }
}

const validationError = (issues: ValidationIssue[]): HttpResult => ({ status: 422, body: { detail: issues } });

function wantsSse(req: http.IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.split(',').some((part) => part.trim().split(';')[0].trim().toLowerCase() === 'text/event-stream');
}

function wantsHtml(req: http.IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.split(',').some((part) => part.trim().split(';')[0].trim().toLowerCase() === 'text/html');
}

function prefersAsync(req: http.IncomingMessage): boolean {
  const prefer = req.headers.prefer;
  return (Array.isArray(prefer) ? prefer.join(',') : prefer ?? '').split(',').some((p) => p.trim().toLowerCase() === 'respond-async');
}

const isHttpUrl = (s: unknown): s is string => typeof s === 'string' && /^https?:\/\/[^\s]+$/i.test(s) && URL.canParse(s);

const PAGE_CSP = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval' blob:", "worker-src 'self' blob:", "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:", "media-src 'self' data: blob:", "connect-src 'self' data: blob:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
].join('; ');

export function createMusicGenServer(opts: ServerOptions): MusicGenServer {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const maxBody = opts.maxBodyBytes ?? 64 * 2 ** 20;
  const maxDuration = opts.maxDuration ?? 300;
  const webDir = opts.webDir ?? path.join(REPO, 'web');
  const browserDir = opts.browserDir ?? path.join(REPO, 'dist', 'browser');
  const trainingsOn = opts.trainings ?? true;
  const shutdown = new AbortController();

  let status: 'STARTING' | 'READY' | 'SETUP_FAILED' | 'DEFUNCT' = 'STARTING';
  const setup = { started_at: new Date().toISOString(), completed_at: null as string | null, status: 'starting' as 'starting' | 'succeeded' | 'failed', logs: '' };
  const setupLog = (line: string): void => {
    setup.logs += `${line}\n`;
    log(line);
  };
  let musicgen: MusicGen | null = null;
  let modelDir = '';
  let fields: { predictor: Field[]; trainer: Field[] | null; limits: PredictorLimits } | null = null;
  let openapi: Record<string, unknown> | null = null;
  let closing = false;

  const service = new JobService({ runners: {}, maxQueue: opts.maxQueue ?? 0, retainCount: opts.retainCount, retainBytes: opts.retainBytes, log });

  // ---- setup: resolve and load the model ----
  const ready = (async () => {
    try {
      setupLog(`loading model ${opts.model}`);
      const t0 = Date.now();
      const { resolveModel } = await import('../io/hub.js');
      let lastDownload = 0;
      modelDir = await resolveModel(opts.model, {
        cacheDir: opts.cacheDir, offline: opts.offline,
        onProgress: (p) => {
          if (Date.now() - lastDownload > 2000 || p.received === p.total) {
            lastDownload = Date.now();
            setupLog(`downloading ${p.file}: ${p.received} of ${p.total} bytes`);
          }
        },
      });
      let lastPct = -1;
      musicgen = await MusicGen.load(dirFolder(modelDir), {
        onProgress: (done, total) => {
          const pct = Math.floor((100 * done) / Math.max(1, total) / 10) * 10;
          if (pct !== lastPct || done === total) {
            lastPct = pct;
            setupLog(`uploading weights: ${done} of ${total} tensors`);
          }
        },
      });
      const limits: PredictorLimits = { maxDuration, isMelody: musicgen.isMelody };
      fields = { predictor: predictorFields(limits), trainer: trainingsOn ? trainerFields() : null, limits };
      openapi = openApiDocument({ version: PACKAGE_VERSION, predictor: fields.predictor, trainer: fields.trainer ?? undefined });
      service.setRunner('prediction', makePredictor({
        musicgen, allowUrlInputs: opts.allowUrlInputs ?? false, allowPrivateAddresses: opts.allowPrivateAddresses,
        maxInputBytes: maxBody, uploadUrl: opts.uploadUrl,
      }));
      if (trainingsOn) {
        service.setRunner('training', makeTrainer({
          modelDir, modelName: opts.model, allowUrlInputs: opts.allowUrlInputs ?? false, allowPrivateAddresses: opts.allowPrivateAddresses,
          maxDatasetBytes: opts.maxDatasetBytes ?? 2 ** 30, uploadUrl: opts.uploadUrl,
        }));
      }
      void musicgen.model.rt.device.lost.then((info) => {
        if (closing) return;
        status = 'DEFUNCT';
        service.defunct = true;
        log(`the GPU device was lost (${info.reason}: ${info.message}); the server cannot run predictions any more`);
      });
      const mg = musicgen;
      setupLog(`model ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${mg.isMelody ? 'melody' : 'text'} model, ${mg.channels} channel(s), ${mg.sampleRate} Hz`);
      setup.status = 'succeeded';
      if (status === 'STARTING') status = 'READY';
    } catch (e) {
      setupLog(`setup failed: ${(e as Error).message}`);
      setup.status = 'failed';
      status = 'SETUP_FAILED';
    } finally {
      setup.completed_at = new Date().toISOString();
    }
  })();

  const health = (): HealthStatus => (status === 'READY' && service.atCapacity ? 'BUSY' : status);

  // ---- request bodies ----

  async function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    const tooLarge: HttpResult = {
      status: 413, body: { detail: `request body too large (the limit is ${maxBody} bytes)` }, headers: { Connection: 'close' },
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      req.resume();
      res.on('finish', () => req.destroy());
      throw new HttpFailure(tooLarge);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > maxBody) {
        req.resume();
        res.on('finish', () => req.destroy());
        throw new HttpFailure(tooLarge);
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new HttpFailure(validationError([{ loc: ['body', 0], msg: `invalid JSON: ${(e as Error).message}`, type: 'value_error.jsondecode' }]));
    }
  }

  interface CreateRequest {
    id?: string;
    input: unknown;
    webhook?: string;
    filter: Set<WebhookEvent>;
    outputFilePrefix?: string;
  }

  function parseRequest(body: unknown, pathId?: string): CreateRequest {
    const issues: ValidationIssue[] = [];
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HttpFailure(validationError([{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }]));
    }
    const b = body as Record<string, unknown>;
    if (b.id !== undefined && b.id !== null && (typeof b.id !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(b.id))) {
      issues.push({ loc: ['body', 'id'], msg: 'must be a string of 1-128 letters, digits, _ . : -', type: 'value_error' });
    }
    if (pathId !== undefined && typeof b.id === 'string' && b.id !== pathId) {
      issues.push({ loc: ['body', 'id'], msg: 'prediction ID must match the ID supplied in the URL', type: 'value_error' });
    }
    if (b.webhook !== undefined && b.webhook !== null && !isHttpUrl(b.webhook)) {
      issues.push({ loc: ['body', 'webhook'], msg: 'invalid or missing URL scheme', type: 'value_error.url.scheme' });
    }
    const filter = new Set<WebhookEvent>(WEBHOOK_EVENTS);
    if (b.webhook_events_filter !== undefined && b.webhook_events_filter !== null) {
      if (!Array.isArray(b.webhook_events_filter)) {
        issues.push({ loc: ['body', 'webhook_events_filter'], msg: 'value is not a valid list', type: 'type_error.list' });
      } else {
        filter.clear();
        b.webhook_events_filter.forEach((e, i) => {
          if (typeof e === 'string' && (WEBHOOK_EVENTS as readonly string[]).includes(e)) filter.add(e as WebhookEvent);
          else issues.push({ loc: ['body', 'webhook_events_filter', i], msg: "value is not a valid enumeration member; permitted: 'start', 'output', 'logs', 'completed'", type: 'type_error.enum' });
        });
      }
    }
    if (b.output_file_prefix !== undefined && b.output_file_prefix !== null && !isHttpUrl(b.output_file_prefix)) {
      issues.push({ loc: ['body', 'output_file_prefix'], msg: 'invalid or missing URL scheme', type: 'value_error.url.scheme' });
    }
    if (issues.length) throw new HttpFailure(validationError(issues));
    return {
      id: typeof b.id === 'string' ? b.id : undefined,
      input: b.input,
      webhook: typeof b.webhook === 'string' ? b.webhook : undefined,
      filter,
      outputFilePrefix: typeof b.output_file_prefix === 'string' ? b.output_file_prefix : undefined,
    };
  }

  // ---- responses ----

  function send(res: http.ServerResponse, r: HttpResult): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(r.body);
    res.writeHead(r.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...r.headers });
    res.end(text);
  }

  function finalResult(job: Job): HttpResult {
    const body = job.toJSON();
    if (job.status === 'failed' && job.issues) return { status: 422, body: { ...body, detail: job.issues } };
    return { status: 200, body };
  }

  function stream(job: Job, res: http.ServerResponse): void {
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
      // a client that made a streamed job and went away: nobody will see the result (coglet does the same)
      if (!wasEnded && job.streamed && !job.terminal && job.subscribers === 0 && !job.webhook) {
        service.cancel(job.kind, job.id);
      }
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

  async function respondExisting(job: Job, mode: 'sync' | 'async' | 'sse', res: http.ServerResponse): Promise<void> {
    if (mode === 'sse') return stream(job, res);
    if (mode === 'async') return send(res, { status: 202, body: job.toJSON() });
    await job.done;
    send(res, finalResult(job));
  }

  function notReady(): HttpResult {
    const why = status === 'STARTING' ? 'Setup has not finished yet' : status === 'SETUP_FAILED' ? 'Setup failed' : 'The model is defunct';
    return { status: 503, body: { error: `${why}; try again later (see /health-check)`, status: 'failed' } };
  }

  async function create(kind: JobKind, req: http.IncomingMessage, res: http.ServerResponse, pathId?: string): Promise<void> {
    const sse = wantsSse(req);
    if (kind === 'training' && sse) return send(res, { status: 406, body: { error: 'Training endpoints do not support streaming responses.' } });
    const body = await readBody(req, res);
    if (status !== 'READY' || !fields) return send(res, notReady());
    const mode = sse ? 'sse' : prefersAsync(req) ? 'async' : 'sync';
    const r = parseRequest(body, pathId);
    const id = pathId ?? r.id ?? newId();

    // idempotent: an id seen before is answered from that job, never run again
    const existing = service.get(kind, id);
    if (existing) return respondExisting(existing, mode, res);

    const f = kind === 'prediction' ? fields.predictor : fields.trainer!;
    const v = validateInput(f, r.input);
    if (v.issues.length === 0 && kind === 'prediction') v.issues.push(...predictorCrossChecks(v.values, fields.limits));
    if (v.issues.length) return send(res, validationError(v.issues));

    const webhook = r.webhook ? new WebhookSender(r.webhook, r.filter, shutdown.signal, log) : null;
    const job = new Job({ id, kind, input: v.given, values: v.values, webhook, outputFilePrefix: r.outputFilePrefix, streamed: mode === 'sse' });
    if (v.stripped.length) {
      const note = `ignored unknown input(s): ${v.stripped.join(', ')}`;
      job.logs += `${note}\n`;
      log(`${kind} ${id}: ${note}`);
    }
    const accepted = job.toJSON(); // status "starting", as Cog answers 202
    if (service.submit(job) === 'at_capacity') {
      return send(res, { status: 409, body: { error: `At capacity - all ${kind} slots busy`, status: 'failed' } });
    }
    if (mode === 'sse') return stream(job, res);
    if (mode === 'async') return send(res, { status: 202, body: accepted });
    // synchronous: a client that hangs up cancels its job (coglet's SyncPredictionGuard)
    res.on('close', () => {
      if (!res.writableFinished && !job.terminal) service.cancel(kind, id);
    });
    await job.done;
    send(res, finalResult(job));
  }

  function discovery(): Record<string, unknown> {
    const doc: Record<string, unknown> = {
      cog_version: COG_API_VERSION,
      docs_url: '/docs',
      openapi_url: '/openapi.json',
      healthcheck_url: '/health-check',
      predictions_url: '/predictions',
      predictions_idempotent_url: '/predictions/{prediction_id}',
      predictions_cancel_url: '/predictions/{prediction_id}/cancel',
    };
    if (trainingsOn) {
      doc.trainings_url = '/trainings';
      doc.trainings_idempotent_url = '/trainings/{training_id}';
      doc.trainings_cancel_url = '/trainings/{training_id}/cancel';
    }
    return doc;
  }

  function modelInfo(): Record<string, unknown> {
    const mg = musicgen;
    return {
      // a local folder is shown by its name only: visitors need not see the server's paths
      model: existsSync(opts.model) ? path.basename(path.resolve(opts.model)) : opts.model,
      status: health(),
      sample_rate: mg?.sampleRate ?? null,
      channels: mg?.channels ?? null,
      is_melody: mg?.isMelody ?? null,
      frame_rate: mg?.frameRate ?? null,
      max_duration: maxDuration,
      trainings: trainingsOn,
      queue: opts.maxQueue ?? 0,
      model_url: '/model/',
      browser_bundle: existsSync(path.join(browserDir, 'musicgen.js')) ? '/browser/musicgen.js' : null,
    };
  }

  function docsPage(): string {
    const esc = (s: unknown): string => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
    const table = (title: string, list: Field[]): string => `<h2>${esc(title)}</h2><table><tr><th>input</th><th>type</th><th>default</th><th>range / choices</th><th>description</th></tr>${list.map((f) => {
      const range = f.choices ? f.choices.join(', ') : [f.exclusiveMinimum !== undefined ? `> ${f.exclusiveMinimum}` : f.minimum !== undefined ? `≥ ${f.minimum}` : '', f.maximum !== undefined ? `≤ ${f.maximum}` : ''].filter(Boolean).join(', ');
      return `<tr><td><code>${esc(f.name)}</code>${f.required ? ' (required)' : ''}</td><td>${esc(f.type)}${f.format ? ` (${esc(f.format)})` : ''}</td><td>${f.default === undefined ? '' : esc(JSON.stringify(f.default))}</td><td>${esc(range)}</td><td>${esc(f.description)}</td></tr>`;
    }).join('')}</table>`;
    return `<!doctype html><meta charset="utf-8"><title>API docs</title><style>body{font:14px system-ui;margin:2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}</style>
<h1>MusicGen: Cog HTTP API</h1><p>OpenAPI document: <a href="/openapi.json">/openapi.json</a>. Page: <a href="/">/</a>.</p>
${fields ? table('POST /predictions — input', fields.predictor) + (fields.trainer ? table('POST /trainings — input', fields.trainer) : '') : '<p>The model is not loaded yet.</p>'}`;
  }

  // ---- routing ----

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';
    const notAllowed = (): void => send(res, { status: 405, body: { detail: 'Method Not Allowed' } });

    if (p === '/') {
      if (!get) return notAllowed();
      if (wantsHtml(req)) {
        res.setHeader('Content-Security-Policy', PAGE_CSP);
        if (await serveFile(req, res, path.join(webDir, 'index.html'))) return;
      }
      return send(res, { status: 200, body: discovery() });
    }
    if (p === '/health-check') {
      if (!get) return notAllowed();
      return send(res, { status: 200, body: { status: health(), setup, version: { musicgen_webgpu: PACKAGE_VERSION, node: process.version } } });
    }
    if (p === '/openapi.json') {
      if (!get) return notAllowed();
      return send(res, openapi ? { status: 200, body: openapi } : { status: 503, body: { error: 'OpenAPI schema not available' } });
    }
    if (p === '/docs') {
      if (!get) return notAllowed();
      const html = docsPage();
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
      res.end(method === 'HEAD' ? undefined : html);
      return;
    }
    if (p === '/model-info') {
      if (!get) return notAllowed();
      return send(res, { status: 200, body: modelInfo() });
    }
    const m = /^\/(predictions|trainings)(?:\/([^/]+))?(\/cancel)?\/?$/.exec(p);
    if (m) {
      const kind: JobKind = m[1] === 'predictions' ? 'prediction' : 'training';
      if (kind === 'training' && !trainingsOn) return send(res, { status: 404, body: { detail: 'Not Found' } });
      let id: string | undefined;
      try {
        id = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
      } catch {
        return send(res, { status: 404, body: { detail: 'Not Found' } });
      }
      if (id === undefined) {
        if (method !== 'POST') return notAllowed();
        return create(kind, req, res);
      }
      if (m[3]) {
        if (method !== 'POST') return notAllowed();
        req.resume();
        return send(res, { status: service.cancel(kind, id) ? 200 : 404, body: {} });
      }
      if (method === 'PUT') return create(kind, req, res, id);
      if (get) {
        const job = service.get(kind, id);
        return send(res, job ? { status: 200, body: job.toJSON() } : { status: 404, body: { detail: 'Not Found' } });
      }
      return notAllowed();
    }
    const s = /^\/(web|browser|model)\/(.*)$/.exec(p);
    if (s) {
      if (!get) return notAllowed();
      const root = s[1] === 'web' ? webDir : s[1] === 'browser' ? browserDir : modelDir;
      const file = root ? safeJoin(root, s[2], s[1] === 'model') : null;
      if (file && (await serveFile(req, res, file, { cache: s[1] === 'model' ? 'public, max-age=3600' : 'no-cache' }))) return;
      return send(res, { status: 404, body: { detail: 'Not Found' } });
    }
    if (p === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    send(res, { status: 404, body: { detail: 'Not Found' } });
  }

  const server = http.createServer((req, res) => {
    const t0 = Date.now();
    res.on('finish', () => {
      if (!/^\/(web|browser|model)\//.test(req.url ?? '')) log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`);
    });
    route(req, res).catch((e: unknown) => {
      if (e instanceof HttpFailure) return send(res, e.result);
      log(`${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) send(res, { status: 500, body: { detail: 'Internal Server Error' } });
      else res.destroy();
    });
  });
  server.requestTimeout = 0; // synchronous predictions can take minutes
  server.headersTimeout = 60_000;

  return {
    server,
    service,
    ready,
    get musicgen() { return musicgen; },
    get status() { return health(); },
    listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close(): Promise<void> {
      closing = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      await service.close();
      shutdown.abort();
      server.closeAllConnections();
      await closed;
      await ready;
      musicgen?.dispose();
      musicgen = null;
    },
  };
}
