// File inputs and outputs of the Cog HTTP API.
//
// In: a file input arrives as a data: URI, or (only when the operator allows it, `--allow-url-inputs`) as an
// http(s) URL. A URL is fetched with every connection's resolved addresses checked: loopback, private,
// link-local, CGNAT, multicast, documentation and other special-purpose ranges are refused after DNS
// resolution (so a public name pointing at 127.0.0.1 is refused too), on every redirect. A path on the
// server's disk is never read.
//
// Out: a file output is a data: URI, or it is uploaded with a PUT, as Cog does: with the server's `--upload-url`
// (cog's current behaviour: raw bytes with their Content-Type to `{upload-url}/{name}`, the result being the
// response's Location, else the request URL, without its query) or with the request's `output_file_prefix`
// (cog's older behaviour: a multipart form with the file as `file` to `{prefix}{name}`, the result being that URL).
//
// The URLs a client names for the server to send to (`webhook`, `output_file_prefix`) get the URL inputs' address
// rule too (unless the operator passes --allow-private-webhooks): checked when the request arrives and again on
// connecting, and redirects are not followed. The operator's own `--upload-url` is trusted.

import * as http from 'node:http';
import * as https from 'node:https';
import * as dns from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export class FileInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileInputError';
  }
}

export interface FileInputOptions {
  /** Fetch http(s) URLs (off by default). */
  allowUrls: boolean;
  /** Tests only: let URL inputs reach loopback and private addresses. */
  allowPrivateAddresses?: boolean;
  /** Largest file accepted, bytes. */
  maxBytes: number;
  signal?: AbortSignal;
  /** Whole-download limit, ms (default 120 s). */
  timeoutMs?: number;
}

export interface FileData {
  bytes: Uint8Array;
  /** The media type the sender gave (data: URI or Content-Type), lower case, without parameters; '' if none. */
  mediaType: string;
}

/** `data:[<media type>][;base64],<data>` (RFC 2397). */
export function parseDataUri(uri: string, maxBytes = Infinity): FileData {
  const comma = uri.indexOf(',');
  if (!/^data:/i.test(uri) || comma < 0) throw new FileInputError('not a valid data: URI (expected data:[<media type>][;base64],<data>)');
  const meta = uri.slice(5, comma).split(';').map((s) => s.trim());
  const base64 = meta.length > 1 && meta[meta.length - 1].toLowerCase() === 'base64';
  const mediaType = (meta[0] ?? '').toLowerCase();
  const body = uri.slice(comma + 1);
  let bytes: Uint8Array;
  if (base64) {
    const clean = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new FileInputError('the data: URI is not valid base64');
    if (Math.floor((clean.length * 3) / 4) > maxBytes + 2) throw new FileInputError(`the file is larger than ${maxBytes} bytes`);
    const buf = Buffer.from(clean, clean.includes('-') || clean.includes('_') ? 'base64url' : 'base64');
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } else {
    try {
      bytes = new TextEncoder().encode(decodeURIComponent(body));
    } catch {
      throw new FileInputError('the data: URI has bad percent-encoding');
    }
  }
  if (bytes.byteLength > maxBytes) throw new FileInputError(`the file is larger than ${maxBytes} bytes`);
  return { bytes, mediaType };
}

export function toDataUri(bytes: Uint8Array, mediaType: string): string {
  return `data:${mediaType};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// addresses a URL input may not reach

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32],
  ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6');

/** Whether a URL input may connect to `address` (IPv4-mapped IPv6 is judged by its IPv4 address). */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return !BLOCKED.check(mapped[1], 'ipv4');
    if (/^::ffff:/i.test(address)) return false; // hex-written mapped form: refuse rather than parse
    return !BLOCKED.check(address, 'ipv6');
  }
  return false;
}

/** A dns lookup for http.request that refuses names resolving to any non-public address; `who` names the refused. */
export function guardedLookupFor(who: string): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints }, (err, addresses) => {
      if (err) return (callback as (e: Error | null, a: string, f?: number) => void)(err, '', 0);
      const bad = addresses.find((a) => !isPublicAddress(a.address));
      if (bad || addresses.length === 0) {
        const e = new FileInputError(`${hostname} resolves to ${bad ? bad.address : 'no address'}, which ${who} may not reach (loopback, private and special-purpose addresses are refused)`);
        return (callback as (e: Error | null, a: string, f?: number) => void)(e, '', 0);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

export const guardedLookup = guardedLookupFor('URL inputs');

const hostOf = (u: URL): string => u.hostname.replace(/^\[|\]$/g, '');

/**
 * The non-public address a client-named URL leads to (an IP literal, or the first bad address its name resolves
 * to), or null. A name that does not resolve is not refused here: sending to it fails (and is checked) later.
 */
export async function privateAddressOf(url: string): Promise<string | null> {
  const host = hostOf(new URL(url));
  if (isIP(host)) return isPublicAddress(host) ? null : host;
  try {
    const all = await dns.promises.lookup(host, { all: true });
    return all.find((a) => !isPublicAddress(a.address))?.address ?? null;
  } catch {
    return null;
  }
}

export interface OutboundRequest {
  method: 'POST' | 'PUT';
  headers: Record<string, string>;
  body: Uint8Array | string;
  signal?: AbortSignal;
  /** Let the request reach loopback and private addresses (--allow-private-webhooks). */
  allowPrivateAddresses?: boolean;
  /** What is sending, for error messages ('webhooks', 'output_file_prefix uploads'). */
  who: string;
}

/**
 * Sends one request to a URL a client named: the address rule on the connection (IP literals checked before,
 * names on resolution), redirects not followed (a 3xx is the answer). Resolves with the status and headers.
 */
export async function sendToClientUrl(url: string, r: OutboundRequest): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FileInputError(`only http and https URLs are used, not ${u.protocol}`);
  const host = hostOf(u);
  if (!r.allowPrivateAddresses && isIP(host) && !isPublicAddress(host)) {
    throw new FileInputError(`${host} is a loopback, private or special-purpose address, which ${r.who} may not reach`);
  }
  const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body;
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? https : http).request(u, {
      method: r.method,
      headers: { ...r.headers, 'Content-Length': String(body.byteLength) },
      lookup: r.allowPrivateAddresses ? undefined : guardedLookupFor(r.who),
      signal: r.signal,
    }, (res) => {
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.resume();
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Fetches an http(s) URL input: address checks on every hop, at most 5 redirects, a size cap, a timeout. */
export async function fetchUrlInput(url: string, opts: FileInputOptions): Promise<FileData> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 120_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  let current = url;
  for (let hop = 0; hop <= 5; hop++) {
    let u: URL;
    try {
      u = new URL(current);
    } catch {
      throw new FileInputError(`not a valid URL: ${current}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FileInputError(`only http and https URLs are fetched, not ${u.protocol}`);
    if (u.username || u.password) throw new FileInputError('URLs with credentials are not fetched');
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (!opts.allowPrivateAddresses && isIP(host) && !isPublicAddress(host)) {
      throw new FileInputError(`${host} is a loopback, private or special-purpose address, which URL inputs may not reach`);
    }
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const mod = u.protocol === 'https:' ? https : http;
      const req = mod.request(u, {
        method: 'GET',
        headers: { 'User-Agent': 'musicgen-webgpu-server', Accept: '*/*' },
        lookup: opts.allowPrivateAddresses ? undefined : guardedLookup,
        signal,
      }, resolve);
      req.on('error', reject);
      req.end();
    }).catch((e: unknown) => {
      if (e instanceof FileInputError) throw e;
      if (signal.aborted && opts.signal?.aborted) throw e;
      throw new FileInputError(`could not fetch ${u.origin}${u.pathname}: ${(e as Error).message}`);
    });
    if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, u).toString();
      continue;
    }
    if (res.statusCode !== 200) {
      res.resume();
      throw new FileInputError(`fetching ${u.origin}${u.pathname} answered HTTP ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > opts.maxBytes) {
      res.destroy();
      throw new FileInputError(`${u.origin}${u.pathname} is ${declared} bytes, more than the ${opts.maxBytes} allowed`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res) {
        total += (chunk as Buffer).length;
        if (total > opts.maxBytes) {
          res.destroy();
          throw new FileInputError(`${u.origin}${u.pathname} is more than the ${opts.maxBytes} bytes allowed`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (e) {
      if (e instanceof FileInputError) throw e;
      if (opts.signal?.aborted) throw e;
      throw new FileInputError(`reading ${u.origin}${u.pathname} failed: ${(e as Error).message}`);
    }
    const buf = Buffer.concat(chunks);
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    return { bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), mediaType };
  }
  throw new FileInputError('too many redirects');
}

/** A file input's bytes: a data: URI, or an http(s) URL where allowed. Anything else (a path, file:) is refused. */
export async function resolveFileInput(value: string, opts: FileInputOptions): Promise<FileData> {
  if (/^data:/i.test(value)) return parseDataUri(value, opts.maxBytes);
  if (/^https?:\/\//i.test(value)) {
    if (!opts.allowUrls) {
      throw new FileInputError('http(s) URL inputs are turned off on this server (the operator can allow them with --allow-url-inputs); send the file as a data: URI');
    }
    return fetchUrlInput(value, opts);
  }
  throw new FileInputError('must be a data: URI (or an http(s) URL where the server allows URL inputs)');
}

// ---------------------------------------------------------------------------------------------------------------
// uploads

export interface UploadTarget {
  /** `upload-url`: raw PUT to `{url}/{name}` (cog ≥ 0.9); `prefix`: multipart PUT to `{prefix}{name}` (older cog). */
  kind: 'upload-url' | 'prefix';
  url: string;
  /** A `prefix` comes from the client: whether it may reach private addresses (--allow-private-webhooks). */
  allowPrivateAddresses?: boolean;
}

/** Uploads a file output; returns the URL that becomes the output. */
export async function uploadFile(target: UploadTarget, name: string, bytes: Uint8Array, contentType: string, signal?: AbortSignal, predictionId?: string): Promise<string> {
  // names come from job ids (request.ts's rule); never let one leave the target folder or add a query
  if (!/^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$/.test(name)) throw new Error(`refusing to upload under the name ${JSON.stringify(name)}`);
  const timeout = AbortSignal.timeout(300_000);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const blob = new Blob([bytes as Uint8Array<ArrayBuffer>], { type: contentType });
  if (target.kind === 'prefix') {
    const url = target.url + name;
    const form = new FormData();
    form.append('file', blob, name);
    const multipart = new Request(url, { method: 'PUT', body: form }); // encodes the form and its boundary
    const res = await sendToClientUrl(url, {
      method: 'PUT', headers: { 'Content-Type': multipart.headers.get('content-type') ?? 'multipart/form-data' },
      body: new Uint8Array(await multipart.arrayBuffer()), signal: sig, allowPrivateAddresses: target.allowPrivateAddresses,
      who: 'output_file_prefix uploads',
    });
    if (res.status < 200 || res.status >= 300) throw new Error(`uploading the output to ${url} failed: HTTP ${res.status}`);
    return url;
  }
  const url = (target.url.endsWith('/') ? target.url : `${target.url}/`) + name;
  const headers: Record<string, string> = { 'Content-Type': contentType };
  if (predictionId) headers['X-Prediction-ID'] = predictionId;
  const res = await fetch(url, { method: 'PUT', body: blob, headers, signal: sig });
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`uploading the output to ${url} failed: HTTP ${res.status}`);
  const final = new URL(res.headers.get('location') ?? res.url ?? url, url);
  final.search = '';
  return final.toString();
}
