// Weights stay in the browser (issue 15 item 3): MusicGen.load(url) keeps what it reads in Cache Storage, keyed by
// each file's ETag and size. In headless Chromium (one browser context = one profile, pages in it = visits):
// a second visit reads no weight bytes over the network, also offline, and what is kept is the file's bytes
// (SHA-256 of each kept range against the file); a changed file (new ETag) is fetched again;
// `cache: false` reads over the network; the storage quota is checked first; stored models are listed and cleared.
//
// The tiny model is served from a copy under tmp/ so its modification time (the test server's ETag) can change.
// Needs /usr/bin/chromium; skipped with a message when it is absent.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, buildBundle } from './chromium.js';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createStaticServer, type RequestRecord } from '../../examples/browser/serve.mjs';

const BUNDLE = '/dist/browser/musicgen.js';
const COPY_DIR = join(ROOT, 'tmp', `cache-test-${process.pid}`);
const MODEL_PATH = `/tmp/cache-test-${process.pid}/tiny-musicgen/`;
const WEIGHTS = `${MODEL_PATH}model.safetensors`;

interface Stored { url: string; size: number; stored: number; etag: string }
interface LoadResult {
  ok: boolean;
  name?: string;
  message?: string;
  downloads?: number;
  last?: { file: string; received: number; total: number; fromCache: number } | null;
  stored: Stored[];
}

describe('weights kept in the browser (Cache Storage, headless Chromium)', function () {
  this.timeout(300_000);
  let server: Server | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let base = '';
  let size = 0;
  const requests: RequestRecord[] = [];
  const pageLog: string[] = [];

  const visit = async (ctx = context): Promise<Page> => {
    const page = await ctx.newPage();
    page.on('console', (m) => pageLog.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => pageLog.push(`[pageerror] ${e.message}`));
    await page.goto(`${base}/test/browser/page.html`);
    await page.waitForFunction('window.pageReady === true', undefined, { timeout: 30_000 });
    await page.evaluate(`window.importBundle(${JSON.stringify(BUNDLE)})`);
    return page;
  };
  const load = async (page: Page, options: Record<string, unknown> = {}): Promise<LoadResult> =>
    (await page.evaluate(`window.loadModel(${JSON.stringify({ bundle: BUNDLE, model: MODEL_PATH, options })})`)) as LoadResult;
  /** The kept ranges are the file's bytes, and together they cover `bytes` bytes. */
  const checkKept = async (page: Page, bytes: number) => {
    const file = readFileSync(join(COPY_DIR, 'tiny-musicgen', 'model.safetensors'));
    const ranges = (await page.evaluate('window.storedRanges()')) as Array<{ offset: number; length: number; sha256: string }>;
    assert.ok(ranges.length > 1);
    for (const r of ranges) {
      const want = createHash('sha256').update(file.subarray(r.offset, r.offset + r.length)).digest('hex');
      assert.equal(r.sha256, want, `kept bytes ${r.offset}+${r.length} differ from the file`);
    }
    assert.equal(ranges.reduce((s, r) => s + r.length, 0), bytes);
  };
  const weightGets = () => requests.filter((q) => q.path === WEIGHTS && q.method === 'GET');
  const weightBytes = () => weightGets().reduce((s, q) => s + q.bytes, 0);

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      (skipped: ${CHROMIUM} is absent; install it with tools/install-chromium.sh)`);
      this.skip();
    }
    buildBundle();
    mkdirSync(COPY_DIR, { recursive: true });
    cpSync(join(ROOT, 'weights', 'tiny-musicgen'), join(COPY_DIR, 'tiny-musicgen'), { recursive: true });
    size = statSync(join(ROOT, WEIGHTS)).size;

    server = createStaticServer({ root: ROOT, onRequest: (r) => requests.push(r) });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    context = await browser.newContext();
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    rmSync(COPY_DIR, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && pageLog.length) {
      console.log(`      browser console:\n        ${pageLog.slice(-30).join('\n        ')}`);
    }
  });

  let firstBytes = 0;

  it('first visit: downloads with progress and keeps the file; second visit: no weight request', async () => {
    requests.length = 0;
    const page1 = await visit();
    const r1 = await load(page1);
    await page1.close();
    assert.ok(r1.ok, `first load failed: ${r1.message}`);
    firstBytes = weightBytes();
    assert.ok(weightGets().length > 1 && firstBytes > size / 2, `first load read ${firstBytes} bytes in ${weightGets().length} requests`);
    assert.ok(r1.downloads! > 1, 'download progress reported as the bytes came');
    assert.equal(r1.last!.total, size);
    assert.equal(r1.last!.fromCache, 0);
    assert.equal(r1.last!.received, firstBytes, 'progress counts the bytes fetched');
    assert.equal(r1.stored.length, 1, JSON.stringify(r1.stored));
    assert.ok(r1.stored[0].url.endsWith(WEIGHTS));
    assert.equal(r1.stored[0].size, size);
    assert.equal(r1.stored[0].stored, firstBytes);
    assert.match(r1.stored[0].etag, /^W\/"/);

    requests.length = 0;
    const page2 = await visit();
    const r2 = await load(page2);
    await checkKept(page2, firstBytes);
    await page2.close();
    assert.ok(r2.ok, `second load failed: ${r2.message}`);
    // only a HEAD (no bytes) asks whether the file changed
    assert.deepEqual(weightGets(), [], 'the second visit made no GET for the weights');
    assert.ok(requests.filter((q) => q.path === WEIGHTS).every((q) => q.method === 'HEAD'));
    assert.equal(r2.last!.fromCache, firstBytes, 'every byte came from the cache');
    assert.equal(r2.last!.received, firstBytes);
  });

  it('loads offline from what is kept', async () => {
    const page = await visit();
    requests.length = 0;
    await context.setOffline(true);
    try {
      const r = await load(page);
      assert.ok(r.ok, `offline load failed: ${r.message}`);
      assert.deepEqual(requests, [], 'nothing reached the server');
      assert.equal(r.last!.fromCache, firstBytes);
    } finally {
      await context.setOffline(false);
      await page.close();
    }
  });

  it('{ cache: false } reads over the network', async () => {
    const page = await visit();
    requests.length = 0;
    const r = await load(page, { cache: false });
    await page.close();
    assert.ok(r.ok, r.message);
    assert.equal(weightBytes(), firstBytes);
    assert.equal(r.last!.fromCache, 0);
  });

  it('fetches a changed file again (new ETag) and drops the old copy', async () => {
    const file = join(COPY_DIR, 'tiny-musicgen', 'model.safetensors');
    const later = new Date(statSync(file).mtimeMs + 60_000);
    utimesSync(file, later, later); // same bytes, new modification time: the server's ETag changes
    const page = await visit();
    const before = (await page.evaluate(`window.storedModels(${JSON.stringify(BUNDLE)})`)) as Stored[];
    requests.length = 0;
    const r = await load(page);
    await page.close();
    assert.ok(r.ok, r.message);
    assert.equal(weightBytes(), firstBytes, 'the whole model was read again');
    assert.equal(r.last!.fromCache, 0);
    assert.equal(r.stored.length, 1, `one version kept: ${JSON.stringify(r.stored)}`);
    assert.notEqual(r.stored[0].etag, before[0].etag);
    assert.equal(r.stored[0].stored, firstBytes);
  });

  it('clears what is kept', async () => {
    const page = await visit();
    const n = (await page.evaluate(`window.clearStoredModels(${JSON.stringify(BUNDLE)}, ${JSON.stringify(MODEL_PATH)})`)) as number;
    assert.ok(n > 1, `${n} entries deleted`);
    assert.deepEqual(await page.evaluate(`window.storedModels(${JSON.stringify(BUNDLE)})`), []);
    requests.length = 0;
    const r = await load(page);
    await page.close();
    assert.ok(r.ok, r.message);
    assert.equal(weightBytes(), firstBytes, 'read over the network again');
  });

  it('fails clearly, before downloading, when the model does not fit the storage quota', async () => {
    const ctx = await browser!.newContext();
    try {
      // a browser that grants this site 1 MB, less than the 1.6 MB file
      await ctx.addInitScript('navigator.storage.estimate = async () => ({ quota: 1000000, usage: 0 });');
      const page = await visit(ctx);
      requests.length = 0;
      const r = await load(page);
      assert.equal(r.ok, false);
      assert.equal(r.name, 'StorageQuotaError');
      assert.match(r.message!, /does not fit .* needs 1\.6 MB more but only 1\.0 MB of 1\.0 MB are free.*cache: false/);
      assert.deepEqual(weightGets(), [], 'no weight bytes were fetched');
      assert.deepEqual(r.stored, []);
      // and { cache: false } loads it
      const ok = await load(page, { cache: false });
      assert.ok(ok.ok, ok.message);
    } finally {
      await ctx.close();
    }
  });
});
