// Reading Cog HTTP API requests: the negotiation headers (event stream, HTML, `Prefer: respond-async`), the JSON
// body (capped), and the prediction / training request object (id, input, webhook, webhook_events_filter,
// output_file_prefix) with pydantic-style 422 details.

import type * as http from 'node:http';
import type { ValidationIssue } from './schema.js';
import { WEBHOOK_EVENTS, type WebhookEvent } from './jobs.js';

/** A JSON answer: status, body, extra headers. */
export interface HttpResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Thrown while handling a request to answer it with `result` (caught by the server's request handler). */
export class HttpFailure extends Error {
  constructor(readonly result: HttpResult) {
    super(`HTTP ${result.status}`);
  }
}

export const validationError = (issues: ValidationIssue[]): HttpResult => ({ status: 422, body: { detail: issues } });

function accepts(req: http.IncomingMessage, mediaType: string): boolean {
  const accept = req.headers.accept ?? '';
  return accept.split(',').some((part) => part.trim().split(';')[0].trim().toLowerCase() === mediaType);
}

export const wantsSse = (req: http.IncomingMessage): boolean => accepts(req, 'text/event-stream');
export const wantsHtml = (req: http.IncomingMessage): boolean => accepts(req, 'text/html');

export function prefersAsync(req: http.IncomingMessage): boolean {
  const prefer = req.headers.prefer;
  return (Array.isArray(prefer) ? prefer.join(',') : prefer ?? '').split(',').some((p) => p.trim().toLowerCase() === 'respond-async');
}

/**
 * The one rule for prediction and training ids, in a URL path or a body: they name uploaded files
 * (`{upload-url}/{id}.wav`) and appear in logs, so no slashes, query or fragment marks, spaces or control
 * characters, and no leading dot.
 */
const ID_RULE = /^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$/;
export const ID_RULE_TEXT = 'must be 1-128 letters, digits, _ . : - (not starting with .)';
export const isValidId = (id: unknown): id is string => typeof id === 'string' && ID_RULE.test(id);

const isHttpUrl = (s: unknown): s is string => typeof s === 'string' && /^https?:\/\/[^\s]+$/i.test(s) && URL.canParse(s);

export interface BodyLimits {
  /** Largest body, bytes (413 beyond). */
  maxBytes: number;
  /** Longest wait for the next piece of the body, ms (408 after; the whole request's limit is node's requestTimeout). */
  idleMs: number;
}

/**
 * The JSON body (an empty one is `{}`). Too large: 413; stalled: 408; either way the connection is closed after the
 * answer, so a client cannot keep the server reading.
 */
export function readBody(req: http.IncomingMessage, res: http.ServerResponse, limits: BodyLimits): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const fail = (r: HttpResult): void => {
      cleanup();
      req.resume();
      res.on('finish', () => req.destroy());
      reject(new HttpFailure({ ...r, headers: { ...r.headers, Connection: 'close' } }));
    };
    const tooLarge = (): void => fail({ status: 413, body: { detail: `request body too large (the limit is ${limits.maxBytes} bytes)` } });
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail({ status: 408, body: { detail: `request body timed out (nothing received for ${limits.idleMs / 1000} s)` } }), limits.idleMs);
    };
    function onData(chunk: Buffer): void {
      total += chunk.length;
      if (total > limits.maxBytes) return tooLarge();
      chunks.push(chunk);
      arm();
    }
    function onEnd(): void {
      cleanup();
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text) as unknown);
      } catch (e) {
        reject(new HttpFailure(validationError([{ loc: ['body', 0], msg: `invalid JSON: ${(e as Error).message}`, type: 'value_error.jsondecode' }])));
      }
    }
    // the connection went away (or node's requestTimeout answered 408 itself): nobody to answer
    function onError(): void {
      cleanup();
      reject(new HttpFailure({ status: 400, body: { detail: 'the request was aborted' } }));
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxBytes) return tooLarge();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    arm();
  });
}

export interface CreateRequest {
  id?: string;
  input: unknown;
  webhook?: string;
  filter: Set<WebhookEvent>;
  outputFilePrefix?: string;
}

/** The fields of a prediction or training request around its input; 422 naming each bad one. */
export function parseRequest(body: unknown, pathId?: string): CreateRequest {
  const issues: ValidationIssue[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpFailure(validationError([{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }]));
  }
  const b = body as Record<string, unknown>;
  if (b.id !== undefined && b.id !== null && !isValidId(b.id)) {
    issues.push({ loc: ['body', 'id'], msg: ID_RULE_TEXT, type: 'value_error' });
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
