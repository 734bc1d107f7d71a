// Routing of the Cog HTTP API and the page's files (the table of routes is in app.ts's header). Handlers read the
// server's state (setup progress, the loaded model, its input fields) through `AppState`, which app.ts owns.

import type * as http from 'node:http';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ModelPool } from './models.js';
import { predictorCrossChecks, validateInput, type Field, type PredictorLimits } from './schema.js';
import { Job, WebhookSender, newId, type JobKind, type JobService } from './jobs.js';
import { privateAddressOf } from './files.js';
import { readBody, parseRequest, validationError, wantsSse, wantsHtml, prefersAsync, isValidId, ID_RULE_TEXT, type HttpResult } from './request.js';
import { send, finalResult, streamJob, docsPage, PAGE_CSP, NOT_FOUND } from './respond.js';
import { safeJoin, serveFile } from './static.js';

/** The Cog HTTP API version this server follows (reported as `cog_version` by GET /). */
export const COG_API_VERSION = '0.22.0';

export type HealthStatus = 'STARTING' | 'READY' | 'BUSY' | 'SETUP_FAILED' | 'DEFUNCT';

export interface InputFields {
  predictor: Field[];
  trainer: Field[] | null;
  limits: PredictorLimits;
}

/** What the handlers need from the server (fixed options, then what setup fills in). */
export interface AppState {
  readonly service: JobService;
  readonly log: (line: string) => void;
  readonly version: string;
  /** The --model argument as given ('' with --models). */
  readonly modelName: string;
  readonly maxBody: number;
  /** Longest pause within a request body, ms. */
  readonly bodyIdleMs: number;
  readonly maxDuration: number;
  readonly maxQueue: number;
  readonly trainingsOn: boolean;
  /** `serve --stream`: predictions output an iterator of files (the audio as it is made, then the whole clip). */
  readonly stream: boolean;
  /** `webhook` and `output_file_prefix` may name loopback and private addresses. */
  readonly allowPrivateWebhooks: boolean;
  readonly webDir: string;
  readonly browserDir: string;
  /** Aborted when the server closes (stops webhook retries). */
  readonly shutdownSignal: AbortSignal;
  /** POST /shutdown: stop gracefully (running jobs are canceled), after the answer is sent. */
  readonly requestShutdown: () => void;
  status: 'STARTING' | 'READY' | 'SETUP_FAILED' | 'DEFUNCT';
  readonly setup: { started_at: string; completed_at: string | null; status: 'starting' | 'succeeded' | 'failed'; logs: string };
  /** The models offered (null before setup). */
  models: ModelPool | null;
  /** The default model's folder (its files are the page's /model/), '' until known. */
  modelDir: string;
  fields: InputFields | null;
  openapi: Record<string, unknown> | null;
}

/** /health-check's status: READY turns BUSY while no job can be taken. */
export const health = (s: AppState): HealthStatus => (s.status === 'READY' && s.service.atCapacity ? 'BUSY' : s.status);

function notReady(s: AppState): HttpResult {
  const why = s.status === 'STARTING' ? 'Setup has not finished yet' : s.status === 'SETUP_FAILED' ? 'Setup failed' : 'The model is defunct';
  return { status: 503, body: { error: `${why}; try again later (see /health-check)`, status: 'failed' } };
}

// ---- predictions and trainings ----

function stream(s: AppState, job: Job, res: http.ServerResponse): void {
  streamJob(job, res, () => {
    // a client that made a streamed job and went away: nobody will see the result (coglet does the same)
    if (job.streamed && !job.terminal && job.subscribers === 0 && !job.webhook) s.service.cancel(job.kind, job.id);
  });
}

async function respondExisting(s: AppState, job: Job, mode: 'sync' | 'async' | 'sse', res: http.ServerResponse): Promise<void> {
  if (mode === 'sse') return stream(s, job, res);
  if (mode === 'async') return send(res, { status: 202, body: job.toJSON() });
  await job.done;
  send(res, finalResult(job));
}

async function create(s: AppState, kind: JobKind, req: http.IncomingMessage, res: http.ServerResponse, pathId?: string): Promise<void> {
  const sse = wantsSse(req);
  if (kind === 'training' && sse) return send(res, { status: 406, body: { error: 'Training endpoints do not support streaming responses.' } });
  const body = await readBody(req, res, { maxBytes: s.maxBody, idleMs: s.bodyIdleMs });
  const fields = s.fields;
  if (s.status !== 'READY' || !fields) return send(res, notReady(s));
  const mode = sse ? 'sse' : prefersAsync(req) ? 'async' : 'sync';
  const r = parseRequest(body, pathId);
  const id = pathId ?? r.id ?? newId();

  // idempotent while in flight: a retry attaches to the queued or running job; a finished job's id runs anew (Cog)
  const existing = s.service.active(kind, id);
  if (existing) return respondExisting(s, existing, mode, res);

  const f = kind === 'prediction' ? fields.predictor : fields.trainer!;
  const v = validateInput(f, r.input);
  if (v.issues.length === 0 && kind === 'prediction') v.issues.push(...predictorCrossChecks(v.values, fields.limits));
  if (!s.allowPrivateWebhooks) {
    // refused at once where the name already leads somewhere private; the connection is checked again on sending
    for (const [field, url] of [['webhook', r.webhook], ['output_file_prefix', r.outputFilePrefix]] as const) {
      const address = url ? await privateAddressOf(url) : null;
      if (address) {
        v.issues.push({
          loc: ['body', field], type: 'value_error.url.host',
          msg: `${address} is a loopback, private or special-purpose address, which this server does not send to (the operator can allow it with --allow-private-webhooks)`,
        });
      }
    }
  }
  if (v.issues.length) return send(res, validationError(v.issues));

  const webhook = r.webhook ? new WebhookSender(r.webhook, r.filter, s.shutdownSignal, s.log, { allowPrivateAddresses: s.allowPrivateWebhooks }) : null;
  const job = new Job({ id, kind, input: v.given, values: v.values, webhook, outputFilePrefix: r.outputFilePrefix, streamed: mode === 'sse' });
  if (v.stripped.length) {
    const note = `ignored unknown input(s): ${v.stripped.join(', ')}`;
    job.logs += `${note}\n`;
    s.log(`${kind} ${id}: ${note}`);
  }
  const accepted = job.toJSON(); // status "starting", as Cog answers 202
  if (s.service.submit(job) === 'at_capacity') {
    return send(res, { status: 409, body: { error: `At capacity - all ${kind} slots busy`, status: 'failed' } });
  }
  if (mode === 'sse') return stream(s, job, res);
  if (mode === 'async') return send(res, { status: 202, body: accepted });
  // synchronous: a client that hangs up cancels its job (coglet's SyncPredictionGuard)
  res.on('close', () => {
    if (!res.writableFinished && !job.terminal) s.service.cancel(kind, id);
  });
  await job.done;
  send(res, finalResult(job));
}

// ---- documents ----

function discovery(s: AppState): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    cog_version: COG_API_VERSION,
    docs_url: '/docs',
    openapi_url: '/openapi.json',
    shutdown_url: '/shutdown',
    healthcheck_url: '/health-check',
    predictions_url: '/predictions',
    predictions_idempotent_url: '/predictions/{prediction_id}',
    predictions_cancel_url: '/predictions/{prediction_id}/cancel',
  };
  if (s.trainingsOn) {
    doc.trainings_url = '/trainings';
    doc.trainings_idempotent_url = '/trainings/{training_id}';
    doc.trainings_cancel_url = '/trainings/{training_id}/cancel';
  }
  return doc;
}

function modelInfo(s: AppState): Record<string, unknown> {
  // the default model's facts, once it is loaded
  const name = s.models?.defaultName ?? s.modelName;
  const mg = s.models?.peek(name) ?? null;
  const shown = s.modelName || (s.models ? s.models.spec(name).model : '');
  return {
    // a local folder is shown by its name only: visitors need not see the server's paths
    model: existsSync(shown) ? path.basename(path.resolve(shown)) : shown,
    model_versions: s.fields?.limits.modelVersions ?? null,
    status: health(s),
    sample_rate: mg?.sampleRate ?? null,
    channels: mg?.channels ?? null,
    is_melody: mg?.isMelody ?? null,
    frame_rate: mg?.frameRate ?? null,
    max_duration: s.maxDuration,
    trainings: s.trainingsOn,
    stream: s.stream,
    queue: s.maxQueue,
    model_url: '/model/',
    browser_bundle: existsSync(path.join(s.browserDir, 'musicgen.js')) ? '/browser/musicgen.js' : null,
  };
}

// ---- the router ----

export async function route(s: AppState, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const p = url.pathname;
  const method = req.method ?? 'GET';
  const get = method === 'GET' || method === 'HEAD';
  const notAllowed = (): void => send(res, { status: 405, body: { detail: 'Method Not Allowed' } });

  if (p === '/') {
    if (!get) return notAllowed();
    if (wantsHtml(req)) {
      res.setHeader('Content-Security-Policy', PAGE_CSP);
      if (await serveFile(req, res, path.join(s.webDir, 'index.html'))) return;
    }
    return send(res, { status: 200, body: discovery(s) });
  }
  if (p === '/health-check') {
    if (!get) return notAllowed();
    return send(res, { status: 200, body: { status: health(s), setup: s.setup, version: { musicgen_webgpu: s.version, node: process.version } } });
  }
  if (p === '/openapi.json') {
    if (!get) return notAllowed();
    return send(res, s.openapi ? { status: 200, body: s.openapi } : { status: 503, body: { error: 'OpenAPI schema not available' } });
  }
  if (p === '/docs') {
    if (!get) return notAllowed();
    const html = docsPage(s.fields);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
    res.end(method === 'HEAD' ? undefined : html);
    return;
  }
  if (p === '/shutdown') {
    if (method !== 'POST') return notAllowed();
    req.resume();
    s.log('shutdown requested over HTTP');
    res.on('finish', () => s.requestShutdown());
    return send(res, { status: 200, body: {} });
  }
  if (p === '/model-info') {
    if (!get) return notAllowed();
    return send(res, { status: 200, body: modelInfo(s) });
  }
  const m = /^\/(predictions|trainings)(?:\/([^/]+))?(\/cancel)?\/?$/.exec(p);
  if (m) {
    const kind: JobKind = m[1] === 'predictions' ? 'prediction' : 'training';
    if (kind === 'training' && !s.trainingsOn) return send(res, NOT_FOUND);
    let id: string | undefined;
    try {
      id = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } catch {
      return send(res, NOT_FOUND);
    }
    if (id === undefined) {
      if (method !== 'POST') return notAllowed();
      return create(s, kind, req, res);
    }
    if (!isValidId(id)) {
      // no job can have such an id; creating one would put it into upload URLs and log lines
      req.resume();
      if (method !== 'PUT' || m[3]) return send(res, NOT_FOUND);
      return send(res, validationError([{ loc: ['path', `${kind}_id`], msg: ID_RULE_TEXT, type: 'value_error' }]));
    }
    if (m[3]) {
      if (method !== 'POST') return notAllowed();
      req.resume();
      return send(res, { status: s.service.cancel(kind, id) ? 200 : 404, body: {} });
    }
    if (method === 'PUT') return create(s, kind, req, res, id);
    if (get) {
      const job = s.service.get(kind, id);
      return send(res, job ? { status: 200, body: job.toJSON() } : NOT_FOUND);
    }
    return notAllowed();
  }
  const f = /^\/(web|browser|model)\/(.*)$/.exec(p);
  if (f) {
    if (!get) return notAllowed();
    const root = f[1] === 'web' ? s.webDir : f[1] === 'browser' ? s.browserDir : s.modelDir;
    const file = root ? safeJoin(root, f[2], f[1] === 'model') : null;
    if (file && (await serveFile(req, res, file, { cache: f[1] === 'model' ? 'public, max-age=3600' : 'no-cache' }))) return;
    return send(res, NOT_FOUND);
  }
  if (p === '/favicon.ico') {
    res.writeHead(204);
    res.end();
    return;
  }
  send(res, NOT_FOUND);
}
