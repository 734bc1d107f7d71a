// The Cog-compatible HTTP server (node:http, no framework): Cog's HTTP API (docs/http.md of replicate/cog is the
// contract; response shapes follow coglet's routes.rs) for predictions and trainings, plus the web page and the
// read-only files it needs, all in one process.
//
//   GET  /                        discovery document (JSON); the page when the client asks for HTML
//   GET  /health-check            STARTING | READY | BUSY | SETUP_FAILED | DEFUNCT, with setup details
//   GET  /openapi.json            Input / Output / PredictionRequest / PredictionResponse / Status / … (+ Training*)
//   GET  /docs                    the inputs as an HTML table
//   POST /predictions             sync JSON; `Prefer: respond-async` → 202; `Accept: text/event-stream` → SSE
//                                 (with `stream`, the output is an iterator of files: see predictor.ts)
//   PUT  /predictions/{id}        the same, idempotent while it runs (a finished id runs anew, as Cog)
//   GET  /predictions/{id}        the prediction object (not in Cog; Replicate has it)
//   POST /predictions/{id}/cancel 200 {} / 404 {} (unknown or finished)
//   POST /trainings, PUT /trainings/{id}, GET /trainings/{id}, POST /trainings/{id}/cancel   (no SSE: 406)
//   POST /shutdown                200 {}, then stop (cancels running jobs), as Cog
//   GET  /model-info              what the page needs to know about the model
//   GET  /web/…, /browser/…, /model/…   the page's files, dist/browser/, the model folder (Range, HEAD)
//
// Parsing is in request.ts, answers and event streams in respond.ts, the routes in routes.ts; this file owns the
// options, setup (loading the model) and the node:http server.
//
// One job runs on the GPU at a time; by default another gets 409 Conflict, as Cog answers; with `maxQueue` N
// up to N wait in order. Request bodies are capped; invalid input gets 422 with pydantic-style `detail`.

import type { WeightDType } from '../quant.js';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { MusicGen } from '../pipeline.js';
import { initRuntime } from '../runtime.js';
import type { LimitsMode } from '../device.js';
import { isHubId } from '../io/hub.js';
import { MODEL_VERSIONS, modelSource } from '../inputs.js';
import { ModelPool, parseModels, type ModelSpec } from './models.js';
import { predictorFields, trainerFields, openApiDocument } from './schema.js';
import { JobService } from './jobs.js';
import { makePredictor, predictorLimits } from './predictor.js';
import { makeTrainer } from './trainer.js';
import { DEFAULT_MAX_DATASET_BYTES } from '../train/dataset.js';
import { HttpFailure } from './request.js';
import { send } from './respond.js';
import { route, health, type AppState, type HealthStatus } from './routes.js';
import { PACKAGE_ROOT as REPO, PACKAGE_VERSION } from '../io/package.js';

export { COG_API_VERSION, type HealthStatus } from './routes.js';

export interface ServerOptions {
  /**
   * The one model: a folder, a hub id or a short name (`small`; then it is also `model_version`'s one choice),
   * resolved (downloaded once) and loaded at setup. Not with `models`.
   */
  model?: string;
  /** A LoRA adapter applied to `model` while it loads. */
  adapter?: string;
  /**
   * The models offered as `model_version` choices (the first the default), each loaded on first use:
   * `serve --models`' comma list or JSON map (see `parseModels`), or its parsed form.
   */
  models?: string | readonly ModelSpec[];
  /** Models held on the GPU at once; the least recently used is disposed (default 1). */
  maxLoaded?: number;
  /** How the models' matrices are stored (`MusicGen.load`'s dtype); default: each folder's own, else DEFAULT_DTYPE. */
  dtype?: WeightDType;
  /** The WebGPU limits the runtime is created with (`MusicGen.load`'s limits; `serve` takes MUSICGEN_LIMITS). */
  limits?: LimitsMode;
  cacheDir?: string;
  offline?: boolean;
  /** Multi-band diffusion weights for `multi_band_diffusion: true` (path or URL; default the published file, fetched on first use). */
  mbd?: string;
  /** Melody models: the Demucs package for the melody's stems (default: htdemucs, fetched on first use). */
  demucs?: string;
  /** Jobs that may wait for the GPU (default 0: 409 Conflict when busy, as Cog). */
  maxQueue?: number;
  /** Largest request body (default 64 MiB). */
  maxBodyBytes?: number;
  /** Longest time to receive a request's headers, ms (default 60 s). */
  headersTimeoutMs?: number;
  /** Longest time to receive a whole request, headers and body, ms (default 300 s; answering may take longer). */
  requestTimeoutMs?: number;
  /** Longest pause within a request body, ms (default 30 s). */
  bodyIdleTimeoutMs?: number;
  /** Fetch http(s) URL inputs (default off). */
  allowUrlInputs?: boolean;
  /** Tests only: URL inputs may reach loopback/private addresses. */
  allowPrivateAddresses?: boolean;
  /** `webhook` and `output_file_prefix` may name loopback and private addresses (default off: public only). */
  allowPrivateWebhooks?: boolean;
  /** Largest training dataset, fetched from a URL and decompressed (default 2 GiB). */
  maxDatasetBytes?: number;
  /** Upload file outputs with PUT under this URL (cog's --upload-url) instead of returning data: URIs. */
  uploadUrl?: string;
  /** The output is Cog's iterator of files, growing while a prediction runs: the audio as it is made, then the whole clip. */
  stream?: boolean;
  /** Shortest streamed item, seconds (default 0.25); shorter chunks of the library are joined to the next. */
  streamChunkSeconds?: number;
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
  /** Called once the server has closed after POST /shutdown (the CLI exits the process). */
  onShutdown?: () => void;
}

export interface MusicGenServer {
  server: http.Server;
  service: JobService;
  /** Settles when setup has finished (READY or SETUP_FAILED). */
  ready: Promise<void>;
  /** The default model, while it is loaded (null before, or when setup failed). */
  readonly musicgen: MusicGen | null;
  readonly status: HealthStatus;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

export function createMusicGenServer(opts: ServerOptions): MusicGenServer {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const shutdown = new AbortController();
  const state: AppState = {
    service: new JobService({ runners: {}, maxQueue: opts.maxQueue ?? 0, retainCount: opts.retainCount, retainBytes: opts.retainBytes, log }),
    log,
    version: PACKAGE_VERSION,
    modelName: opts.model ?? '',
    maxBody: opts.maxBodyBytes ?? 64 * 2 ** 20,
    bodyIdleMs: opts.bodyIdleTimeoutMs ?? 30_000,
    maxDuration: opts.maxDuration ?? 300,
    maxQueue: opts.maxQueue ?? 0,
    trainingsOn: opts.trainings ?? true,
    stream: opts.stream ?? false,
    allowPrivateWebhooks: opts.allowPrivateWebhooks ?? false,
    webDir: opts.webDir ?? path.join(REPO, 'web'),
    browserDir: opts.browserDir ?? path.join(REPO, 'dist', 'browser'),
    shutdownSignal: shutdown.signal,
    requestShutdown: () => {
      if (!closing) void app.close().then(() => opts.onShutdown?.());
    },
    status: 'STARTING',
    setup: { started_at: new Date().toISOString(), completed_at: null, status: 'starting', logs: '' },
    models: null,
    modelDir: '',
    fields: null,
    openapi: null,
  };
  const { service, setup } = state;
  const setupLog = (line: string): void => {
    setup.logs += `${line}\n`;
    log(line);
  };
  let closing = false;

  // ---- setup: the models offered; the one `--model` is loaded now, `--models` each on first use ----
  const ready = (async () => {
    try {
      if ((opts.model === undefined) === (opts.models === undefined)) throw new Error('give either a model or the models offered');
      if (opts.models !== undefined && opts.adapter) throw new Error('an adapter applies to `model`; give each of `models` its own ({"model": …, "adapter": …})');
      const named = opts.models !== undefined;
      // the runtime first, with the limits asked for: every model the pool loads then shares it
      const rt = await initRuntime({ limits: opts.limits });
      const specs = typeof opts.models === 'string' ? parseModels(opts.models)
        : opts.models ?? [{ name: opts.model!, model: opts.model!, adapter: opts.adapter }];
      const models = new ModelPool(specs, { maxLoaded: opts.maxLoaded, cacheDir: opts.cacheDir, offline: opts.offline, mbd: opts.mbd, dtype: opts.dtype, demucs: opts.demucs });
      state.models = models;
      // a short name given to --model is also the one model_version the server answers to
      const versions = named || Object.hasOwn(MODEL_VERSIONS, opts.model!);
      if (named) {
        setupLog(`offering ${models.names.join(', ')} (model_version; the first is the default), each loaded on first use, at most ${opts.maxLoaded ?? 1} at once`);
        // the page's /model/ files: the default model's folder when it is one already (a hub model's once downloaded)
        const local = modelSource(models.spec(models.defaultName).model);
        if (!isHubId(local)) state.modelDir = path.resolve(local);
      } else {
        state.modelDir = await models.dir(models.defaultName, setupLog);
        await models.get(models.defaultName, setupLog);
      }
      const limits = predictorLimits(models, state.maxDuration, versions);
      state.fields = { predictor: predictorFields(limits), trainer: state.trainingsOn ? trainerFields() : null, limits };
      state.openapi = openApiDocument({ version: PACKAGE_VERSION, predictor: state.fields.predictor, trainer: state.fields.trainer ?? undefined, streamOutput: state.stream });
      service.setRunner('prediction', makePredictor({
        models, allowUrlInputs: opts.allowUrlInputs ?? false, allowPrivateAddresses: opts.allowPrivateAddresses,
        maxInputBytes: state.maxBody, uploadUrl: opts.uploadUrl, allowPrivateWebhooks: state.allowPrivateWebhooks,
        stream: state.stream, streamChunkSeconds: opts.streamChunkSeconds,
      }));
      if (state.trainingsOn) {
        // trainings fine-tune the default model (from its files: the served copy is not touched)
        const base = modelSource(models.spec(models.defaultName).model);
        service.setRunner('training', makeTrainer({
          modelDir: async () => (state.modelDir = await models.dir(models.defaultName)), modelName: base,
          allowUrlInputs: opts.allowUrlInputs ?? false, allowPrivateAddresses: opts.allowPrivateAddresses,
          maxDatasetBytes: opts.maxDatasetBytes ?? DEFAULT_MAX_DATASET_BYTES, uploadUrl: opts.uploadUrl, allowPrivateWebhooks: state.allowPrivateWebhooks,
        }));
      }
      void rt.device.lost.then((info) => {
        if (closing) return;
        state.status = 'DEFUNCT';
        service.defunct = true;
        log(`the GPU device was lost (${info.reason}: ${info.message}); the server cannot run predictions any more`);
      });
      setup.status = 'succeeded';
      if (state.status === 'STARTING') state.status = 'READY';
    } catch (e) {
      setupLog(`setup failed: ${(e as Error).message}`);
      setup.status = 'failed';
      state.status = 'SETUP_FAILED';
    } finally {
      setup.completed_at = new Date().toISOString();
    }
  })();

  // A client that sends slowly, or stops, is cut off (408): headers within headersTimeout, the whole request within
  // requestTimeout (the answer itself, a synchronous prediction, may take longer), no body pause over bodyIdleMs.
  const requestTimeout = opts.requestTimeoutMs ?? 300_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 60_000, requestTimeout);
  const server = http.createServer({
    requestTimeout, headersTimeout,
    // how often node looks for connections over those limits (30 s by default, too coarse for short limits)
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, headersTimeout / 4)),
  }, (req, res) => {
    const t0 = Date.now();
    res.on('finish', () => {
      if (!/^\/(web|browser|model)\//.test(req.url ?? '')) log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`);
    });
    route(state, req, res).catch((e: unknown) => {
      if (e instanceof HttpFailure) return send(res, e.result);
      log(`${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) send(res, { status: 500, body: { detail: 'Internal Server Error' } });
      else res.destroy();
    });
  });

  const app: MusicGenServer = {
    server,
    service,
    ready,
    get musicgen() { return state.models?.peek(state.models.defaultName) ?? null; },
    get status() { return health(state); },
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
      await state.models?.dispose();
    },
  };
  return app;
}
