// Fetches a MusicGen model from the Hugging Face hub by id ("facebook/musicgen-small")
// into the local hub cache, so `--model HUB_ID` works like `--model DIR` (Node only).
//
// Follows huggingface_hub's conventions (file_download.py / constants.py) so an existing
// Python cache is reused and ours is readable by Python:
//   - endpoint https://huggingface.co, or $HF_ENDPOINT (mirrors);
//   - cache $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
//     ~/.cache/huggingface/hub, laid out as models--{owner}--{name}/snapshots/{commit}/{file}
//     with refs/{revision} holding the commit a branch pointed to;
//   - $HF_HUB_OFFLINE=1 forbids the network; $HF_TOKEN goes out as "Authorization: Bearer";
//   - file list from GET {endpoint}/api/models/{repo}/revision/{rev} (JSON: sha, siblings);
//   - files from {endpoint}/{repo}/resolve/{commit}/{file}; large (LFS) files answer HEAD with
//     a 302 to a CDN plus X-Linked-Size / X-Linked-Etag, which describe the CDN's bytes.
// Differences from Python: files are written as plain files inside the snapshot folder (what
// huggingface_hub does where symlinks are unavailable) instead of blobs/ + symlinks, and a
// snapshot that already holds every needed file is used without asking the hub whether the
// branch moved (no network at all, as asked for offline use after the first download).

import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { writeFileAtomic } from './atomic.js';
import { INDEX_FILE, SINGLE_FILE } from './safetensors.js';
import { TORCH_INDEX_FILE, TORCH_SINGLE_FILE } from './checkpoint.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** One progress report while downloading; `total` is 0 while the size is unknown. */
export interface HubProgress {
  /** File name inside the repo. */
  file: string;
  /** Bytes of this file on disk so far (a resumed download starts above 0). */
  received: number;
  total: number;
  /** 0-based position of this file among the `files` files this call downloads. */
  fileIndex: number;
  files: number;
}

export type HubProgressFn = (p: HubProgress) => void;

export interface ResolveModelOptions {
  /** Hub cache folder (default: defaultCacheDir()). */
  cacheDir?: string;
  /** Hub URL (default: $HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Access token for gated/private repos (default: `defaultToken()`: $HF_TOKEN, or the saved login). */
  token?: string;
  /** Never touch the network (default: $HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
  onProgress?: HubProgressFn;
  /** fetch to use (default: globalThis.fetch); tests pass one that counts or throws. */
  fetch?: typeof fetch;
  /** Extra attempts after a network failure during a download, each resuming (default 3). */
  retries?: number;
  /** Give up when a request or a download stalls this long (default 30 s). */
  timeoutMs?: number;
}

export type HubErrorKind =
  | 'unreachable' | 'offline' | 'auth' | 'not-found' | 'unsupported' | 'size-mismatch' | 'interrupted' | 'http';

/** A hub failure with a message meant for the end user; `kind` lets callers branch. */
export class HubError extends Error {
  constructor(message: string, readonly kind: HubErrorKind, readonly status?: number) {
    super(message);
    this.name = 'HubError';
  }
}

/** Small files a MusicGen folder uses, fetched before the weights (see `missingFiles` for why the order matters). */
const REQUIRED_FILES = ['config.json', 'tokenizer.json'] as const;
const OPTIONAL_FILES = [
  'generation_config.json',
  'preprocessor_config.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'spiece.model',
] as const;

// huggingface_hub's repo-id rule: word characters, '-' and '.', not starting/ending with '-'/'.', no '--' or '..'.
const ID_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

/** True for "owner/name" that is not an existing local path (a local folder always wins). */
export function isHubId(s: string): boolean {
  const parts = s.split('/');
  if (parts.length !== 2) return false;
  const [owner, name] = parts as [string, string];
  if (name.length > 96) return false;
  for (const p of parts) {
    if (!ID_PART.test(p) || p.includes('--') || p.includes('..')) return false;
  }
  return !existsSync(s) && owner.length > 0;
}

/** The hub cache folder huggingface_hub would use with this environment. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const expand = (p: string) => (p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p);
  const hubCache = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  if (hubCache) return expand(hubCache);
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.join(expand(home), 'hub');
}

/**
 * The access token: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` saves
 * ($HF_TOKEN_PATH, or $HF_HOME/token with HF_HOME defaulting to ~/.cache/huggingface).
 */
export async function defaultToken(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv;
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  const file = env.HF_TOKEN_PATH ?? path.join(home, 'token');
  const saved = await fsp.readFile(file, 'utf8').catch(() => '');
  return saved.trim() || undefined;
}

/** The cache folder of one repo: {cacheDir}/models--{owner}--{name}. */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return path.join(cacheDir, `models--${repoId.replace('/', '--')}`);
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

interface Ctx {
  repoId: string;
  endpoint: string;
  revision: string;
  token: string | undefined;
  fetch: typeof fetch;
  retries: number;
  timeoutMs: number;
}

/**
 * A local folder holding a MusicGen model: `idOrPath` itself when it is a local path,
 * else the cache snapshot of that hub repo, downloading what is missing.
 */
export async function resolveModel(idOrPath: string, opts: ResolveModelOptions = {}): Promise<string> {
  if (!isHubId(idOrPath)) {
    const st = await fsp.stat(idOrPath).catch(() => null);
    if (st === null) {
      throw new Error(`Model folder not found: ${idOrPath} (give an existing folder, or a hub id such as facebook/musicgen-small)`);
    }
    if (!st.isDirectory()) throw new Error(`--model must be a folder (config.json, tokenizer.json, model.safetensors), not a file: ${idOrPath}`);
    return path.resolve(idOrPath);
  }
  const repoId = idOrPath;
  const revision = opts.revision ?? 'main';
  if (revision.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`Invalid revision "${revision}"`);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const repoDir = repoCacheDir(cacheDir, repoId);
  const offline = opts.offline ?? envFlag(process.env.HF_HUB_OFFLINE);

  // Cache first: a complete snapshot needs no network, which is what makes offline use work.
  const cached = await cachedSnapshot(repoDir, revision);
  const missing = cached === null ? null : await missingFiles(cached);
  if (cached !== null && missing !== null && missing.length === 0) return cached;
  if (offline) {
    const what = cached === null
      ? `has no snapshot of ${repoId} at revision "${revision}" in ${repoDir}`
      : `lacks ${missing!.join(', ')} in ${cached}`;
    throw new HubError(
      `Offline mode is on (HF_HUB_OFFLINE) and the hub cache ${what}.\n` +
      localFolderHint(repoId),
      'offline',
    );
  }

  const ctx = await hubContext(repoId, revision, opts);

  const info = await repoInfo(ctx);
  // Files live under the commit, so every file comes from the same commit even if the branch moves meanwhile.
  const commit = info.sha ?? revision;
  const snapshot = path.join(repoDir, 'snapshots', commit);
  // The loader prefers an index when the folder has one, so keep using one a Python cache already holds.
  const plan = planFiles(ctx, info.siblings, (await isFile(path.join(snapshot, INDEX_FILE))) || (await isFile(path.join(snapshot, TORCH_INDEX_FILE))));
  await fsp.mkdir(snapshot, { recursive: true });
  await recordRef(repoDir, revision, info.sha);

  // The shard list is inside the index: read it first (from the cache, or fetched into memory
  // and written out with the others) so the progress count is right from the start.
  const prefetched = new Map<string, Uint8Array>();
  if (plan.index) {
    const indexFile = plan.index;
    const local = path.join(snapshot, indexFile);
    const cachedText = await fsp.readFile(local, 'utf8').catch(() => null);
    let shards: string[] | null = null;
    if (cachedText !== null) {
      try {
        shards = parseIndexShards(cachedText, local);
      } catch {
        await fsp.unlink(local); // damaged: fetch it again below
      }
    }
    if (shards === null) {
      const bytes = await fetchSmall(ctx, resolveUrl(ctx, commit, indexFile), indexFile);
      shards = parseIndexShards(new TextDecoder().decode(bytes), `${repoId}/${indexFile}`);
      prefetched.set(indexFile, bytes);
    }
    const have = new Set(info.siblings);
    const absent = shards.filter((s) => !have.has(s));
    if (absent.length > 0) {
      throw new HubError(`${repoId}: ${indexFile} names shards the repo does not have: ${absent.join(', ')}`, 'unsupported');
    }
    plan.files.push(...shards);
  }

  const todo: string[] = [];
  for (const f of plan.files) if (!(await isFile(path.join(snapshot, f)))) todo.push(f);
  for (const [i, file] of todo.entries()) {
    const dest = path.join(snapshot, file);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    const report = (received: number, total: number) =>
      opts.onProgress?.({ file, received, total, fileIndex: i, files: todo.length });
    const bytes = prefetched.get(file);
    if (bytes !== undefined) {
      await writeFileAtomic(dest, bytes);
      report(bytes.length, bytes.length);
    } else {
      await downloadFile(ctx, resolveUrl(ctx, commit, file), file, dest, report);
    }
  }
  return snapshot;
}

/**
 * One file of a hub repo (a model's extra weights, such as multi-band diffusion's `.th`), in the cache layout
 * `huggingface_hub` uses: the cached copy when the snapshot has it, else downloaded once (resumable, size
 * checked) into the snapshot of the revision's commit. Returns its path.
 */
export async function resolveHubFile(repoId: string, file: string, opts: ResolveModelOptions = {}): Promise<string> {
  if (!safeRelPath(file)) throw new Error(`Invalid file name "${file}"`);
  const revision = opts.revision ?? 'main';
  if (revision.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`Invalid revision "${revision}"`);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const repoDir = repoCacheDir(cacheDir, repoId);
  const cached = await cachedSnapshot(repoDir, revision);
  if (cached !== null && (await isFile(path.join(cached, file)))) return path.join(cached, file);
  if (opts.offline ?? envFlag(process.env.HF_HUB_OFFLINE)) {
    throw new HubError(`Offline mode is on (HF_HUB_OFFLINE) and the hub cache has no ${repoId}/${file} (looked in ${repoDir}); ` +
      'download it once online, or give its path.', 'offline');
  }
  const ctx = await hubContext(repoId, revision, opts);
  const info = await repoInfo(ctx);
  if (!info.siblings.includes(file)) throw new HubError(`${repoId} has no file ${file} at revision "${revision}"`, 'not-found');
  const commit = info.sha ?? revision;
  const dest = path.join(repoDir, 'snapshots', commit, file);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  await recordRef(repoDir, revision, info.sha);
  if (!(await isFile(dest))) {
    await downloadFile(ctx, resolveUrl(ctx, commit, file), file, dest, (received, total) =>
      opts.onProgress?.({ file, received, total, fileIndex: 0, files: 1 }));
  }
  return dest;
}

async function hubContext(repoId: string, revision: string, opts: ResolveModelOptions): Promise<Ctx> {
  return {
    repoId,
    endpoint: (opts.endpoint || process.env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    revision,
    token: opts.token ?? (await defaultToken()),
    fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
    retries: opts.retries ?? 3,
    timeoutMs: opts.timeoutMs ?? 30_000,
  };
}

/** refs/<revision> → the commit the hub named, so the next offline run finds the snapshot. */
async function recordRef(repoDir: string, revision: string, sha: string | undefined): Promise<void> {
  if (sha === undefined || sha === revision) return;
  const ref = path.join(repoDir, 'refs', revision);
  await fsp.mkdir(path.dirname(ref), { recursive: true });
  const old = await fsp.readFile(ref, 'utf8').catch(() => null);
  if (old?.trim() !== sha) await writeFileAtomic(ref, sha);
}

/** The snapshot folder for `revision` if the cache has one (via refs/ for branch and tag names). */
async function cachedSnapshot(repoDir: string, revision: string): Promise<string | null> {
  const candidates: string[] = [];
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    const sha = (await fsp.readFile(path.join(repoDir, 'refs', revision), 'utf8').catch(() => '')).trim();
    if (/^[0-9a-f]{40}$/.test(sha)) candidates.push(sha);
  }
  // Also the revision name itself: a commit id, or a snapshot saved under the name when the hub gave no sha.
  candidates.push(revision);
  for (const c of candidates) {
    const dir = path.join(repoDir, 'snapshots', c);
    if ((await fsp.stat(dir).catch(() => null))?.isDirectory()) return dir;
  }
  return null;
}

/**
 * Needed files the snapshot lacks. Optional files cannot be checked without the repo listing,
 * but downloads go small files first and weights last, each renamed into place only once
 * complete, so weights on disk mean an earlier run got everything before them.
 */
async function missingFiles(snapshot: string): Promise<string[]> {
  const missing: string[] = [];
  for (const f of REQUIRED_FILES) if (!(await isFile(path.join(snapshot, f)))) missing.push(f);
  // The weights the loader would open: the first of the safetensors index, model.safetensors, the PyTorch index,
  // pytorch_model.bin that the snapshot has (a PyTorch-only repo is fetched as such).
  const torchOnly = !(await isFile(path.join(snapshot, INDEX_FILE))) && !(await isFile(path.join(snapshot, SINGLE_FILE))) &&
    ((await isFile(path.join(snapshot, TORCH_INDEX_FILE))) || (await isFile(path.join(snapshot, TORCH_SINGLE_FILE))));
  const [indexFile, singleFile] = torchOnly ? [TORCH_INDEX_FILE, TORCH_SINGLE_FILE] : [INDEX_FILE, SINGLE_FILE];
  const indexText = await fsp.readFile(path.join(snapshot, indexFile), 'utf8').catch(() => null);
  let weights: string[];
  if (indexText === null) {
    weights = [singleFile];
  } else {
    try {
      weights = parseIndexShards(indexText, path.join(snapshot, indexFile));
    } catch {
      return [...missing, indexFile]; // unreadable index: fetch it again
    }
  }
  for (const f of weights) if (!(await isFile(path.join(snapshot, f)))) missing.push(f);
  return missing;
}

/** stat follows symlinks, so a Python cache's snapshot links count and a dangling one does not. */
async function isFile(p: string): Promise<boolean> {
  return (await fsp.stat(p).catch(() => null))?.isFile() ?? false;
}

/** Shard file names of a safetensors or PyTorch index, checked so a hostile index cannot write outside the snapshot. */
function parseIndexShards(text: string, where: string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new HubError(`${where}: not valid JSON (${(e as Error).message})`, 'unsupported');
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null) throw new HubError(`${where}: no "weight_map" object`, 'unsupported');
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string' || !safeRelPath(s) || !(s.endsWith('.safetensors') || s.endsWith('.bin'))) {
      throw new HubError(`${where}: bad shard file name ${JSON.stringify(s)}`, 'unsupported');
    }
  }
  return (shards as string[]).sort();
}

function safeRelPath(p: string): boolean {
  return p.length > 0 && !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '' || s === '.' || s === '..');
}

/** Which files to fetch, or a clear refusal when the repo is not a usable MusicGen checkpoint. */
function planFiles(ctx: Ctx, siblings: readonly string[], preferIndex: boolean): { files: string[]; index: string | null } {
  const have = new Set(siblings);
  const id = ctx.repoId;
  if (!have.has('config.json')) {
    throw new HubError(
      `${id} has no config.json, so it is not a transformers MusicGen repo. ` +
      `Original audiocraft checkpoints (state_dict.bin) are not supported as models; use e.g. facebook/musicgen-small ` +
      `(an audiocraft LM state dict, such as a fine-tune's lm_final.pt, applies on top of it with --lm-weights).`,
      'unsupported',
    );
  }
  // Safetensors first, as transformers prefers; a repo with only PyTorch weights gets those (read without running
  // their pickle: io/pytorch.ts).
  const torchOnly = !have.has(SINGLE_FILE) && !have.has(INDEX_FILE);
  const [single, index] = torchOnly ? [TORCH_SINGLE_FILE, TORCH_INDEX_FILE] : [SINGLE_FILE, INDEX_FILE];
  const hasSingle = have.has(single);
  const hasIndex = have.has(index);
  if (!hasSingle && !hasIndex) {
    throw new HubError(`${id} has no ${SINGLE_FILE}, ${INDEX_FILE}, ${TORCH_SINGLE_FILE} or ${TORCH_INDEX_FILE}: no weights to load`, 'unsupported');
  }
  if (!have.has('tokenizer.json')) {
    throw new HubError(`${id} has no tokenizer.json (the text tokenizer MusicGen needs)`, 'unsupported');
  }
  const files: string[] = ['config.json', ...OPTIONAL_FILES.filter((f) => have.has(f)), 'tokenizer.json'];
  // transformers prefers the single file when both exist; so do we (fewer requests).
  if (hasSingle && !(hasIndex && preferIndex)) return { files: [...files, single], index: null };
  return { files: [...files, index], index };
}

function resolveUrl(ctx: Ctx, commit: string, file: string): string {
  const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');
  return `${ctx.endpoint}/${ctx.repoId}/resolve/${encodeURIComponent(commit)}/${enc(file)}`;
}

/** Request headers; the token only ever goes to the hub itself, never to the CDN it redirects to. */
function headersFor(ctx: Ctx, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'User-Agent': 'musicgen-webgpu (node)', ...extra };
  if (ctx.token && sameOrigin(url, ctx.endpoint)) h.Authorization = `Bearer ${ctx.token}`;
  return h;
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** fetch with a timeout, turning network failures into the "cannot reach the hub" message. */
async function request(ctx: Ctx, url: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
  try {
    return await ctx.fetch(url, { ...init, signal: signal ?? AbortSignal.timeout(ctx.timeoutMs) });
  } catch (e) {
    throw unreachable(ctx, url, e);
  }
}

function unreachable(ctx: Ctx, url: string, e: unknown): HubError {
  const err = new HubError(
    `Cannot reach the Hugging Face hub at ${ctx.endpoint} to fetch ${ctx.repoId} (${networkReason(e, url)}).\n` +
    localFolderHint(ctx.repoId),
    'unreachable',
  );
  err.cause = e;
  return err;
}

function localFolderHint(repoId: string): string {
  return (
    `Without internet access, pass a local model folder instead: --model DIR\n` +
    `(to make one, on a machine with internet: huggingface-cli download ${repoId} --local-dir DIR, then copy DIR here).`
  );
}

/** A short human reason for a fetch failure, from undici's error.cause codes. */
function networkReason(e: unknown, url: string): string {
  const host = (() => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  })();
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string; name?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return `no answer from ${host}: timed out`;
  const code = err?.cause?.code ?? '';
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `DNS lookup of ${host} failed`;
    case 'ECONNREFUSED':
      return `connection to ${host} refused`;
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `connection to ${host} timed out`;
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return `network unreachable for ${host}`;
    case 'ECONNRESET':
      return `connection to ${host} reset`;
  }
  const detail = err?.cause?.message ?? err?.message ?? String(e);
  return `${detail}${code ? ` [${code}]` : ''} for ${host}`;
}

/** A user-facing error for an HTTP status, using the hub's X-Error-Code when it sends one. */
async function httpError(ctx: Ctx, res: Response, what: string): Promise<HubError> {
  const code = res.headers.get('x-error-code') ?? '';
  const hubMsg = res.headers.get('x-error-message');
  const s = res.status;
  const page = `${ctx.endpoint}/${ctx.repoId}`;
  const tail = hubMsg ? ` (hub says: ${hubMsg})` : '';
  await res.body?.cancel().catch(() => undefined);
  if (s === 401 || s === 403 || code === 'GatedRepo') {
    const why = s === 403 || code === 'GatedRepo'
      ? `${ctx.repoId} is gated and ${ctx.token ? 'the account of your token has not been granted access' : 'needs a token'}`
      : `${ctx.repoId} does not exist, is private, or is gated`;
    const fix = ctx.token
      ? `Check that the token in HF_TOKEN is valid, has read access, and that its account accepted the terms at ${page}.`
      : `If it is gated or private: accept its terms at ${page}, create a read token at https://huggingface.co/settings/tokens ` +
        `and run with HF_TOKEN=hf_... in the environment.`;
    return new HubError(`${what}: HTTP ${s}: ${why}${tail}. ${fix}`, 'auth', s);
  }
  if (s === 404 || s === 410) {
    const msg = code === 'RevisionNotFound'
      ? `revision "${ctx.revision}" of ${ctx.repoId} not found`
      : code === 'EntryNotFound'
        ? `file not found in ${ctx.repoId}`
        : `${ctx.repoId} not found on ${ctx.endpoint}: check the id (owner/name)` +
          `${ctx.revision !== 'main' ? ` and revision "${ctx.revision}"` : ''}; no local folder by that name exists either`;
    return new HubError(`${what}: HTTP ${s}: ${msg}${tail}`, 'not-found', s);
  }
  if (s === 429) return new HubError(`${what}: HTTP 429: rate limited by the hub; wait and retry (a token in HF_TOKEN raises the limit)${tail}`, 'http', s);
  return new HubError(`${what}: HTTP ${s} from ${ctx.endpoint}${s >= 500 ? ' (hub-side problem; try again later)' : ''}${tail}`, 'http', s);
}

/** Repo file list and resolved commit: GET /api/models/{repo}/revision/{rev}. */
async function repoInfo(ctx: Ctx): Promise<{ sha?: string; siblings: string[] }> {
  const url = `${ctx.endpoint}/api/models/${ctx.repoId}/revision/${encodeURIComponent(ctx.revision)}`;
  const res = await request(ctx, url, { headers: headersFor(ctx, url, { Accept: 'application/json' }) });
  if (!res.ok) throw await httpError(ctx, res, `Listing ${ctx.repoId}`);
  let json: { sha?: unknown; siblings?: unknown };
  try {
    json = (await res.json()) as typeof json;
  } catch (e) {
    throw new HubError(`Listing ${ctx.repoId}: the hub's answer is not JSON (${(e as Error).message}); is ${ctx.endpoint} a hub?`, 'http');
  }
  if (!Array.isArray(json.siblings)) throw new HubError(`Listing ${ctx.repoId}: no "siblings" file list in the hub's answer`, 'http');
  const siblings = json.siblings
    .map((s: unknown) => (s as { rfilename?: unknown } | null)?.rfilename)
    .filter((f): f is string => typeof f === 'string' && safeRelPath(f));
  const sha = typeof json.sha === 'string' && /^[0-9a-f]{40}$/.test(json.sha) ? json.sha : undefined;
  return { sha, siblings };
}

/** A small file read whole into memory (the shard index). */
async function fetchSmall(ctx: Ctx, url: string, file: string): Promise<Uint8Array> {
  const res = await request(ctx, url, { headers: headersFor(ctx, url) });
  if (!res.ok) throw await httpError(ctx, res, `Downloading ${ctx.repoId}/${file}`);
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw unreachable(ctx, url, e);
  }
}

/**
 * Where to GET a file and how big it is. HEAD without following redirects, as huggingface_hub
 * does: an LFS file answers 302 with X-Linked-Size (the CDN's Content-Length would do too, but
 * the hub's own figure is what the CDN's bytes are checked against); a plain file answers 200.
 */
async function headFile(ctx: Ctx, url: string, file: string): Promise<{ url: string; size: number | undefined }> {
  let size: number | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const res = await request(ctx, url, {
      method: 'HEAD',
      redirect: 'manual',
      headers: headersFor(ctx, url, { 'Accept-Encoding': 'identity' }),
    });
    const linked = parseSize(res.headers.get('x-linked-size'));
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      if (!loc) throw new HubError(`Downloading ${ctx.repoId}/${file}: HTTP ${res.status} without a Location`, 'http', res.status);
      url = new URL(loc, url).href;
      size ??= linked;
      // Size known: GET the CDN address directly (signed URLs need no token, and must not get it).
      if (size !== undefined) return { url, size };
      continue; // e.g. a renamed repo: follow to the new name
    }
    if (!res.ok) throw await httpError(ctx, res, `Downloading ${ctx.repoId}/${file}`);
    const enc = res.headers.get('content-encoding');
    size ??= linked ?? (!enc || enc === 'identity' ? parseSize(res.headers.get('content-length')) : undefined);
    return { url, size };
  }
  throw new HubError(`Downloading ${ctx.repoId}/${file}: too many redirects`, 'http');
}

function parseSize(v: string | null): number | undefined {
  return v !== null && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
}

/** A network failure in the middle of a transfer: worth another (resumed) attempt. */
class Interrupted extends Error {}

/**
 * Downloads into `{dest}.incomplete`, resuming it with a Range request when it exists, checks
 * the size and only then renames it to `dest`, so `dest` is never a partial file.
 */
async function downloadFile(
  ctx: Ctx,
  resolve: string,
  file: string,
  dest: string,
  report: (received: number, total: number) => void,
): Promise<void> {
  const part = `${dest}.incomplete`;
  const { url, size } = await headFile(ctx, resolve, file);
  for (let attempt = 0; ; attempt++) {
    try {
      await fetchInto(ctx, url, file, part, size, report);
      break;
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      const have = (await fsp.stat(part).catch(() => null))?.size ?? 0;
      if (attempt >= ctx.retries) {
        const err = new HubError(
          `Downloading ${ctx.repoId}/${file} was interrupted after ${have}${size !== undefined ? ` of ${size}` : ''} bytes ` +
          `(${e.message}). Run again to resume where it stopped.\n${localFolderHint(ctx.repoId)}`,
          'interrupted',
        );
        err.cause = e.cause;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt)); // brief backoff for a flaky link
    }
  }
  await fsp.rename(part, dest);
}

async function fetchInto(
  ctx: Ctx,
  url: string,
  file: string,
  part: string,
  expected: number | undefined,
  report: (received: number, total: number) => void,
): Promise<void> {
  const what = `Downloading ${ctx.repoId}/${file}`;
  const mismatch = async (want: number, got: string) => {
    await fsp.unlink(part).catch(() => undefined); // wrong bytes must not be resumed next time
    return new HubError(
      `${what}: size mismatch: expected ${want} bytes but ${got}. The file was discarded; run again, ` +
      `and if it persists the hub or a proxy in between serves a different file.`,
      'size-mismatch',
    );
  };
  let offset = (await fsp.stat(part).catch(() => null))?.size ?? 0;
  if (expected !== undefined && offset > expected) {
    await fsp.unlink(part);
    offset = 0;
  }
  if (expected !== undefined && offset === expected) {
    // A previous run got every byte but stopped before the rename.
    if (offset === 0) await fsp.writeFile(part, new Uint8Array(0));
    report(offset, expected);
    return;
  }

  // Stall timer rather than a total timeout: a multi-gigabyte file may take long, but not silently.
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const poke = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ac.abort(new DOMException('download stalled', 'TimeoutError')), ctx.timeoutMs);
  };
  poke();
  try {
    let res: Response;
    try {
      res = await ctx.fetch(url, {
        headers: headersFor(ctx, url, { 'Accept-Encoding': 'identity', ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) }),
        signal: ac.signal,
      });
    } catch (e) {
      throw new Interrupted(networkReason(e, url), { cause: e });
    }
    if (res.status === 416 && offset > 0) {
      // The partial file no longer fits what the server has: start over.
      await res.body?.cancel().catch(() => undefined);
      await fsp.unlink(part).catch(() => undefined);
      throw new Interrupted('server refused to resume (HTTP 416)');
    }
    if (!res.ok) {
      if (res.status >= 500 || res.status === 429) {
        await res.body?.cancel().catch(() => undefined);
        throw new Interrupted(`HTTP ${res.status}`);
      }
      throw await httpError(ctx, res, what);
    }
    let total: number | undefined;
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range')?.trim() ?? '');
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel().catch(() => undefined);
        await fsp.unlink(part).catch(() => undefined);
        throw new Interrupted(`server resumed at the wrong place (Content-Range: ${res.headers.get('content-range')})`);
      }
      total = m[3] === '*' ? undefined : Number(m[3]);
    } else {
      offset = 0; // 200: the server ignored Range (or there was none) and sends everything
      const enc = res.headers.get('content-encoding');
      total = !enc || enc === 'identity' ? parseSize(res.headers.get('content-length')) : undefined;
    }
    if (expected !== undefined && total !== undefined && total !== expected) {
      await res.body?.cancel().catch(() => undefined);
      throw await mismatch(expected, `the server sends ${total} (Content-Length)`);
    }
    const want = expected ?? total;
    const fh = await fsp.open(part, offset > 0 ? 'a' : 'w');
    let received = offset;
    let tooLong = false;
    try {
      report(received, want ?? 0);
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch (e) {
            throw new Interrupted(networkReason(e, url), { cause: e });
          }
          if (chunk.done) break;
          poke();
          if (want !== undefined && received + chunk.value.length > want) {
            await reader.cancel().catch(() => undefined);
            tooLong = true;
            break;
          }
          await fh.write(chunk.value);
          received += chunk.value.length;
          report(received, want ?? 0);
        }
      }
      await fh.sync(); // the rename must not publish bytes still in the page cache only
    } finally {
      await fh.close();
    }
    if (tooLong && want !== undefined) throw await mismatch(want, 'the server sent more');
    if (want !== undefined && received !== want) throw await mismatch(want, `the server sent ${received}`);
    if (want === undefined) report(received, received);
  } finally {
    clearTimeout(timer);
  }
}
