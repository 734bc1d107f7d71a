// Predictions and trainings as Cog runs them: one job object per id (status starting → processing → succeeded |
// failed | canceled, with logs, output, error, metrics and timestamps), the single GPU slot they share (a
// second job gets 409 Conflict, or waits in order in a bounded queue), cancellation through an AbortSignal,
// iterator outputs growing item by item (Cog's `Iterator[T]`, coglet's append_output), the server-sent event
// stream of a job (start, output, log, completed; replayed to late subscribers, as
// coglet keeps the most recent 1024 events), and webhooks (start, output, logs, completed; logs throttled to one
// every 500 ms; the terminal one retried on 429 and 5xx, as coglet's WebhookSender).

import { randomBytes } from 'node:crypto';
import type { ValidationIssue, InputValues } from './schema.js';
import { sendToClientUrl, FileInputError } from './files.js';

export type JobKind = 'prediction' | 'training';
export type Status = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';
export type WebhookEvent = 'start' | 'output' | 'logs' | 'completed';
export const WEBHOOK_EVENTS: readonly WebhookEvent[] = ['start', 'output', 'logs', 'completed'];

export interface SseEvent {
  event: 'start' | 'output' | 'log' | 'completed' | 'error';
  data: unknown;
}

/** Thrown by a runner when the job was canceled (its signal aborted). */
export class CanceledError extends Error {
  constructor() {
    super('canceled');
    this.name = 'CanceledError';
  }
}

/** Thrown by a runner for an input that turned out to be unusable (a 422 for a synchronous request). */
export class JobInputError extends Error {
  constructor(readonly field: string, message: string, readonly type = 'value_error') {
    super(message);
    this.name = 'JobInputError';
  }
}

export interface JobContext {
  signal: AbortSignal;
  /** Appends a line to the job's logs (and its event stream, and its webhook). */
  log(line: string): void;
  /** Marks progress in the log, rate-limited: `step done of total`. */
  progress(done: number, total: number, what?: string): void;
  /**
   * Appends an item to an iterator output (Cog's `Iterator[T]`): the output becomes an array that grows while the
   * job runs, with an `output` event and webhook per item.
   */
  append(item: unknown): void;
}

/** Runs a job; resolves with its output, or with undefined when the output was given item by item (`ctx.append`). */
export type JobRunner = (job: Job, ctx: JobContext) => Promise<unknown>;

/** Cog-style id: 26 lower-case base32 characters (a UUIDv4's worth of randomness). */
export function newId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = randomBytes(26);
  let s = '';
  for (const b of bytes) s += alphabet[b & 31];
  return s;
}

const HISTORY_CAPACITY = 1024;

export interface JobOptions {
  id: string;
  kind: JobKind;
  /** The input as given (unknown fields dropped), echoed in responses. */
  input: Record<string, unknown>;
  /** Validated values with defaults. */
  values: InputValues;
  webhook?: WebhookSender | null;
  outputFilePrefix?: string | null;
  /** Created by an event-stream request: canceled when its last stream reader goes away. */
  streamed?: boolean;
}

export class Job {
  readonly id: string;
  readonly kind: JobKind;
  readonly input: Record<string, unknown>;
  readonly values: InputValues;
  readonly outputFilePrefix: string | null;
  readonly streamed: boolean;
  readonly webhook: WebhookSender | null;
  status: Status = 'starting';
  output: unknown = null;
  error: string | null = null;
  logs = '';
  readonly createdAt = new Date();
  startedAt: Date | null = null;
  completedAt: Date | null = null;
  metrics: Record<string, number> = {};
  /** Input problems found while running (reported as 422 to a synchronous request). */
  issues: ValidationIssue[] | null = null;
  readonly controller = new AbortController();
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private history: SseEvent[] = [];
  private historySkipped = 0;
  private listeners = new Set<(e: SseEvent) => void>();
  private lastProgress = { at: 0, pct: -1 };

  constructor(o: JobOptions) {
    this.id = o.id;
    this.kind = o.kind;
    this.input = o.input;
    this.values = o.values;
    this.webhook = o.webhook ?? null;
    this.outputFilePrefix = o.outputFilePrefix ?? null;
    this.streamed = o.streamed ?? false;
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  get terminal(): boolean {
    return this.status === 'succeeded' || this.status === 'failed' || this.status === 'canceled';
  }

  /** The prediction (or training) object of Cog's responses and webhooks. */
  toJSON(): Record<string, unknown> {
    const metrics = { ...this.metrics };
    if (this.terminal && this.startedAt && this.completedAt) metrics.predict_time = (this.completedAt.getTime() - this.startedAt.getTime()) / 1000;
    return {
      id: this.id,
      input: this.input,
      output: this.output,
      status: this.status,
      logs: this.logs,
      error: this.error,
      metrics,
      created_at: this.createdAt.toISOString(),
      started_at: this.startedAt?.toISOString() ?? null,
      completed_at: this.completedAt?.toISOString() ?? null,
    };
  }

  /** Rough size of what the job keeps (its output dominates), for the retention budget. */
  get retainedBytes(): number {
    const out = typeof this.output === 'string' ? this.output.length : this.output ? JSON.stringify(this.output).length : 0;
    const input = JSON.stringify(this.input).length;
    return out + input + this.logs.length + 1024;
  }

  // ---- event stream ----

  subscribe(fn: (e: SseEvent) => void): { replay: SseEvent[]; skipped: number; unsubscribe: () => void } {
    this.listeners.add(fn);
    return { replay: [...this.history], skipped: this.historySkipped, unsubscribe: () => { this.listeners.delete(fn); } };
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  emit(e: SseEvent): void {
    this.history.push(e);
    if (this.history.length > HISTORY_CAPACITY) {
      this.history.shift();
      this.historySkipped++;
    }
    for (const fn of [...this.listeners]) fn(e);
  }

  // ---- life cycle (called by the service) ----

  appendLog(line: string): void {
    const text = line.endsWith('\n') ? line : `${line}\n`;
    this.logs += text;
    this.emit({ event: 'log', data: { source: 'stdout', data: text } });
    this.webhook?.send('logs', this.toJSON());
  }

  progress(done: number, total: number, what = ''): void {
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const now = Date.now();
    // at most every whole percent and every 100 ms, and always the last step
    if (done < total && (pct === this.lastProgress.pct || now - this.lastProgress.at < 100)) return;
    this.lastProgress = { at: now, pct };
    this.appendLog(`${what ? `${what}: ` : ''}step ${Math.floor(done)} of ${total}`);
  }

  /** One more item of an iterator output, announced at once (SSE `output` {chunk, index}; the output webhook), as coglet. */
  appendOutput(item: unknown): void {
    if (this.terminal) return;
    const items = Array.isArray(this.output) ? (this.output as unknown[]) : (this.output = []) as unknown[];
    items.push(item);
    this.emit({ event: 'output', data: { chunk: item, index: items.length - 1 } });
    this.webhook?.send('output', this.toJSON());
  }

  /** The job got the slot: the start event and webhook carry status processing, as coglet's set_processing. */
  markProcessing(): void {
    this.status = 'processing';
    this.startedAt = new Date();
    this.emit({ event: 'start', data: { id: this.id, status: this.status } });
    this.webhook?.send('start', this.toJSON());
  }

  finish(status: 'succeeded' | 'failed' | 'canceled', fields: { output?: unknown; error?: string; issues?: ValidationIssue[] } = {}): void {
    if (this.terminal) return;
    if (fields.output !== undefined) {
      // the output event (and webhook) while still processing, then the terminal state, as Cog
      this.output = fields.output;
      this.emit({ event: 'output', data: { chunk: fields.output, index: 0 } });
      this.webhook?.send('output', this.toJSON());
    }
    this.status = status;
    this.completedAt = new Date();
    if (fields.error !== undefined) this.error = fields.error;
    if (fields.issues) this.issues = fields.issues;
    const snapshot = this.toJSON();
    this.emit({ event: 'completed', data: snapshot });
    this.webhook?.sendTerminal(snapshot);
    this.listeners.clear();
    this.resolveDone();
  }

  /** Drops what only a running job needs (the event history), keeping the final object. */
  compact(): void {
    this.history = [];
    this.historySkipped = 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// webhooks

export class WebhookSender {
  private chain: Promise<void> = Promise.resolve();
  private lastSent = 0;

  constructor(
    readonly url: string,
    private readonly filter: ReadonlySet<WebhookEvent>,
    private readonly signal: AbortSignal,
    private readonly log: (line: string) => void = () => undefined,
    private readonly opts: { intervalMs?: number; allowPrivateAddresses?: boolean } = {},
  ) {}

  /** A non-terminal event: start and output always, logs at most every 500 ms (later ones dropped, as coglet). */
  send(event: Exclude<WebhookEvent, 'completed'>, payload: unknown): void {
    if (!this.filter.has(event)) return;
    const now = Date.now();
    if (event === 'logs' && now - this.lastSent < (this.opts.intervalMs ?? 500)) return;
    this.lastSent = now;
    const body = JSON.stringify(payload);
    this.chain = this.chain.then(() => this.post(body, 1));
  }

  /** The terminal event, retried on 429/5xx and network errors with exponential backoff. */
  sendTerminal(payload: unknown): Promise<void> {
    if (!this.filter.has('completed')) return this.chain;
    const body = JSON.stringify(payload);
    this.chain = this.chain.then(() => this.post(body, 12));
    return this.chain;
  }

  /** Resolves when every webhook queued so far was delivered (or given up). */
  flushed(): Promise<void> {
    return this.chain;
  }

  private async post(body: string, attempts: number): Promise<void> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': 'musicgen-webgpu (cog-compatible)' };
    if (process.env.WEBHOOK_AUTH_TOKEN) headers.Authorization = `Bearer ${process.env.WEBHOOK_AUTH_TOKEN}`;
    for (let attempt = 1; attempt <= attempts && !this.signal.aborted; attempt++) {
      try {
        const res = await sendToClientUrl(this.url, {
          method: 'POST', headers, body, signal: AbortSignal.any([this.signal, AbortSignal.timeout(30_000)]),
          allowPrivateAddresses: this.opts.allowPrivateAddresses, who: 'webhooks',
        });
        if (res.status >= 200 && res.status < 300) return;
        if (![429, 500, 502, 503, 504].includes(res.status)) {
          this.log(`webhook ${this.url}: HTTP ${res.status}, not retried`);
          return;
        }
        this.log(`webhook ${this.url}: HTTP ${res.status}${attempt < attempts ? ', retrying' : ', giving up'}`);
      } catch (e) {
        if (this.signal.aborted) return;
        if (e instanceof FileInputError) {
          this.log(`webhook ${this.url}: ${e.message}; not sent`);
          return;
        }
        this.log(`webhook ${this.url}: ${(e as Error).message}${attempt < attempts ? ', retrying' : ', giving up'}`);
      }
      if (attempt < attempts) await sleep(100 * 2 ** Math.min(attempt, 10), this.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// the slot, the queue and the jobs kept

export interface ServiceOptions {
  runners: Partial<Record<JobKind, JobRunner>>;
  /** Jobs that may wait for the slot (0: a second job gets 409 at once). */
  maxQueue: number;
  /** Finished jobs kept for idempotent retries: at most this many … */
  retainCount?: number;
  /** … and about this many bytes (outputs are data URIs). */
  retainBytes?: number;
  log?: (line: string) => void;
}

export type SubmitResult = 'accepted' | 'at_capacity';

export class JobService {
  private running: Job | null = null;
  private queue: Job[] = [];
  private jobs = new Map<string, Job>();
  private finished: string[] = [];
  private finishedBytes = 0;
  private closed = false;
  /** Set when the device is gone: nothing more can run. */
  defunct = false;

  constructor(private readonly opts: ServiceOptions) {}

  /** Installs (or replaces) what runs jobs of a kind; jobs of a kind without one fail. */
  setRunner(kind: JobKind, runner: JobRunner): void {
    this.opts.runners[kind] = runner;
  }

  private key(kind: JobKind, id: string): string {
    return `${kind}:${id}`;
  }

  get(kind: JobKind, id: string): Job | undefined {
    return this.jobs.get(this.key(kind, id));
  }

  /** The queued or running job with this id (what Cog's idempotent PUT and cancel look at). */
  active(kind: JobKind, id: string): Job | undefined {
    const job = this.get(kind, id);
    return job && !job.terminal ? job : undefined;
  }

  /** Whether a new job would be refused (what /health-check calls BUSY). */
  get atCapacity(): boolean {
    return this.running !== null && this.queue.length >= this.opts.maxQueue;
  }

  get activeJob(): Job | null {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  submit(job: Job): SubmitResult {
    if (this.closed || this.defunct) throw new Error('the server is shutting down');
    if (this.atCapacity) return 'at_capacity';
    const key = this.key(job.kind, job.id);
    const old = this.jobs.get(key);
    if (old && !old.terminal) throw new Error(`${job.kind} ${job.id} is still running`);
    // a finished job's id used again: Cog runs the new request; the old result is forgotten
    if (old) this.forget(key, old);
    this.jobs.set(key, job);
    if (this.running) this.queue.push(job);
    else this.start(job);
    return 'accepted';
  }

  /** Cancels a queued or running job; false if there is none with that id still going (coglet: 404). */
  cancel(kind: JobKind, id: string): boolean {
    const job = this.active(kind, id);
    if (!job) return false;
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      this.queue.splice(i, 1);
      job.controller.abort();
      job.finish('canceled');
      this.retire(job);
      return true;
    }
    job.controller.abort();
    return true;
  }

  private start(job: Job): void {
    this.running = job;
    void this.run(job).finally(() => {
      this.running = null;
      this.retire(job);
      const next = this.queue.shift();
      if (next) this.start(next);
    });
  }

  private async run(job: Job): Promise<void> {
    const runner = this.opts.runners[job.kind];
    job.markProcessing();
    if (!runner) {
      job.finish('failed', { error: `this server does not run ${job.kind}s` });
      return;
    }
    const ctx: JobContext = {
      signal: job.controller.signal,
      log: (line) => job.appendLog(line),
      progress: (done, total, what) => job.progress(done, total, what),
      append: (item) => job.appendOutput(item),
    };
    try {
      if (job.controller.signal.aborted) throw new CanceledError();
      const output = await runner(job, ctx);
      if (job.controller.signal.aborted) throw new CanceledError();
      // an iterator's items were announced as they came (a canceled or failed one keeps those it had)
      job.finish('succeeded', output === undefined ? {} : { output });
    } catch (e) {
      if (job.controller.signal.aborted || e instanceof CanceledError) {
        job.finish('canceled');
      } else if (e instanceof JobInputError) {
        job.finish('failed', { error: `${e.field}: ${e.message}`, issues: [{ loc: ['body', 'input', e.field], msg: e.message, type: e.type }] });
      } else {
        const err = e as Error;
        this.opts.log?.(`${job.kind} ${job.id} failed: ${err.stack ?? err.message}`);
        job.finish('failed', { error: err.message || String(e) });
      }
    }
  }

  /** A finished job is kept (for idempotent retries and GET) within the retention budget, oldest dropped first. */
  private retire(job: Job): void {
    job.compact();
    const key = this.key(job.kind, job.id);
    if (this.jobs.get(key) !== job) return;
    this.finished.push(key);
    this.finishedBytes += job.retainedBytes;
    const maxCount = this.opts.retainCount ?? 100;
    const maxBytes = this.opts.retainBytes ?? 64 * 2 ** 20;
    while (this.finished.length > 0 && (this.finished.length > maxCount || this.finishedBytes > maxBytes)) {
      const old = this.finished.shift()!;
      const j = this.jobs.get(old);
      if (j) {
        this.finishedBytes -= j.retainedBytes;
        this.jobs.delete(old);
      }
    }
  }

  private forget(key: string, job: Job): void {
    const i = this.finished.indexOf(key);
    if (i >= 0) {
      this.finished.splice(i, 1);
      this.finishedBytes -= job.retainedBytes;
    }
    this.jobs.delete(key);
  }

  /** Stops taking jobs, cancels every queued and running one and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of [...this.queue]) this.cancel(job.kind, job.id);
    const running = this.running;
    if (running) {
      running.controller.abort();
      await running.done;
    }
  }
}
