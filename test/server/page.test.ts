// The web page, driven in headless Chromium (Debian's /usr/bin/chromium through playwright-core): generate with
// the tiny model through the server (progress from the event stream, a player holding audio of the requested
// length, the picture drawn), continue an uploaded clip, cancel; and, where the browser has WebGPU and the
// browser bundle is built, generate in the page itself, hearing it while it is made (live-audio.ts).
// Screenshots go to test-artifacts/ (gitignored).

import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { encodeWav } from '../../src/audio/encode.js';
import { startServer, tones, REPO, type Running } from './util.js';
import { RECORD_STARTS, checkPlayback } from './live-audio.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=native'];
const ARTIFACTS = join(REPO, 'test-artifacts');

async function playerDuration(page: Page): Promise<number> {
  return page.evaluate(() => new Promise<number>((resolve) => {
    const a = document.getElementById('player') as HTMLAudioElement;
    if (a.readyState >= 1 && Number.isFinite(a.duration)) resolve(a.duration);
    else a.addEventListener('loadedmetadata', () => resolve(a.duration), { once: true });
  }));
}

/** How many distinct colours the canvas shows (a drawn waveform + spectrogram has many, the placeholder few). */
async function canvasColours(page: Page): Promise<number> {
  return page.evaluate(() => {
    const c = document.getElementById('picture') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set<number>();
    for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return seen.size;
  });
}

async function openPage(browser: Browser, base: string, viewport = { width: 1100, height: 1250 }, initScript?: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport });
  if (initScript) await page.addInitScript(initScript);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // a 404 is expected for the sharded-checkpoint index the in-browser loader probes first
  const missing: string[] = [];
  page.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/status of 404/.test(m.text()) && missing.length > 0 && missing.every((u) => u.endsWith('/model/model.safetensors.index.json'))) return;
    errors.push(`console: ${m.text()}`);
  });
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-state=ready]', { timeout: 30_000 });
  return { page, errors };
}

describe('server: the web page in headless Chromium', function () {
  let s: Running;
  let browser: Browser;

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    s = await startServer();
    // a fake microphone (a beep) for the recording test, granted without a prompt
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'], headless: true });
    await fsp.mkdir(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await s?.app.close();
  });

  it('generates through the server: progress, a player with audio of the right length, the picture', async () => {
    const { page, errors } = await openPage(browser, s.base);
    assert.match(await page.textContent('#model-line') ?? '', /^tiny-musicgen · text model · mono · 32 kHz$/);
    const before = await canvasColours(page);
    assert.ok(before < 300, `placeholder before (${before} colours)`);
    await page.fill('#prompt', 'calm piano with soft strings');
    await page.fill('#duration', '1.5');
    await page.click('#sampling summary');
    await page.fill('#seed', '42');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    const d = await playerDuration(page);
    assert.ok(Math.abs(d - 1.5) < 0.01, `player duration ${d}`);
    assert.equal(await page.evaluate(() => (document.getElementById('progress') as HTMLProgressElement).value), 1);
    assert.match(await page.textContent('#logs') ?? '', /step \d+ of \d+/);
    assert.match(await page.textContent('#result-info') ?? '', /1\.50 s · seed 42/);
    assert.match(await page.getAttribute('#download', 'href') ?? '', /^data:audio\/wav;base64,/);
    await page.screenshot({ path: join(ARTIFACTS, 'page.png'), fullPage: true });
    const after = await canvasColours(page);
    assert.ok(after > 4 * before && after > 300, `waveform and spectrogram drawn (${before} colours before, ${after} after)`);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('continues an uploaded clip, as mp3', async () => {
    const { page, errors } = await openPage(browser, s.base);
    await page.fill('#prompt', 'go on');
    await page.setInputFiles('#audio-file', { name: 'clip.wav', mimeType: 'audio/wav', buffer: Buffer.from(encodeWav([tones(0.6, [60, 67], 44100)], 44100)) });
    await page.waitForSelector('#input-player:not([hidden])');
    assert.equal(await page.isChecked('#continuation'), true, 'a text-only model continues the clip');
    await page.fill('#duration', '1');
    await page.click('#sampling summary');
    await page.selectOption('#output_format', 'mp3');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    const d = await playerDuration(page);
    // MP3 carries the encoder's delay and padding (~0.03–0.07 s at 32 kHz)
    assert.ok(d >= 1 && d < 1.15, `player duration ${d}`);
    assert.match(await page.getAttribute('#download', 'href') ?? '', /^data:audio\/mpeg;base64,/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('records a clip with the microphone (MediaRecorder) and continues it', async () => {
    const { page, errors } = await openPage(browser, s.base);
    assert.equal(await page.isDisabled('#record'), false);
    await page.click('#record');
    await page.waitForSelector('#record.recording');
    await page.waitForTimeout(1200);
    await page.click('#record');
    await page.waitForSelector('#input-player:not([hidden])');
    assert.equal(await page.isChecked('#continuation'), true);
    await page.fill('#prompt', 'continue the beep');
    await page.fill('#duration', '2');
    await page.click('#generate');
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', `${await page.textContent('#status')}\n${await page.textContent('#logs')}`);
    const d = await playerDuration(page);
    assert.ok(Math.abs(d - 2) < 0.01, `player duration ${d}`);
    assert.match(await page.textContent('#logs') ?? '', /input_audio: 1 channel\(s\), 1\.\d\d s at 48000 Hz/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('cancel from the page stops the generation', async () => {
    const { page } = await openPage(browser, s.base);
    await page.fill('#prompt', 'a long piece');
    await page.fill('#duration', '120');
    await page.click('#generate');
    await page.waitForFunction(() => (document.getElementById('progress') as HTMLProgressElement).value > 0, undefined, { timeout: 60_000 });
    await page.click('#cancel');
    await page.waitForSelector('body[data-state=canceled]', { timeout: 60_000 });
    assert.equal(await page.textContent('#status'), 'canceled');
    await page.close();
  });

  it('shows the server\'s 422 message under the input\'s label, and clears it when the input changes', async () => {
    const { page } = await openPage(browser, s.base);
    await page.fill('#prompt', '');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=error]');
    assert.match(await page.textContent('#status') ?? '', /Prompt: a prompt or input_audio is required/);
    await page.fill('#prompt', 'calm piano');
    await page.waitForSelector('body[data-state=ready]');
    assert.equal(await page.textContent('#status'), 'idle');
    await page.close();
  });

  it('labels the inputs for people, with tooltips in words rather than Cog\'s', async () => {
    const { page } = await openPage(browser, s.base);
    await page.click('#sampling summary');
    const label = (id: string) => page.textContent(`label[for=${id}]`);
    assert.equal(await label('top_k'), 'Top-k');
    assert.equal(await label('top_p'), 'Top-p');
    assert.equal(await label('classifier_free_guidance'), 'Guidance');
    const labels = await page.$$eval('#form label', (ls) => ls.map((l) => l.textContent ?? ''));
    assert.deepEqual(labels.filter((t) => t.includes('_')), [], 'no raw input names');
    const openapi = await (await fetch(`${s.base}/openapi.json`)).json() as { components: { schemas: { Input: { properties: Record<string, { description?: string }> } } } };
    for (const [name, p] of Object.entries(openapi.components.schemas.Input.properties)) {
      const title = await page.$eval(`#form`, (f, n) => (document.getElementById(n) as HTMLElement | null)?.title ?? null, name);
      if (title === null) continue;
      assert.ok(title.length > 0 && title !== p.description && !title.includes('`'), `${name}: tooltip "${title}"`);
    }
    await page.close();
  });

  it('waits and retries while the server is busy (409), then keeps every take until cleared', async () => {
    const { page, errors } = await openPage(browser, s.base);
    await page.fill('#prompt', 'first take');
    await page.fill('#duration', '0.3');
    await page.click('#sampling summary');
    await page.fill('#seed', '1');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    assert.equal(await page.locator('#takes li').count(), 1);
    // someone else's long generation holds the server (no queue: 409 to everyone else)
    const busy = await fetch(`${s.base}/predictions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Prefer: 'respond-async' },
      body: JSON.stringify({ id: 'someone-else', input: { prompt: 'a long piece', duration: 60 } }),
    });
    assert.equal(busy.status, 202);
    await page.fill('#prompt', 'second take');
    await page.fill('#seed', '2');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=waiting]', { timeout: 60_000 });
    await page.waitForFunction(() => /asked [2-9]\d* times/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    assert.match(await page.textContent('#status') ?? '', /waiting for the server: it is busy with another generation/);
    await fetch(`${s.base}/predictions/someone-else/cancel`, { method: 'POST' });
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    const takes = await page.$$eval('#takes li', (ls) => ls.map((l) => l.textContent ?? ''));
    assert.equal(takes.length, 2);
    assert.match(takes[0], /second take.*seed 2/s);
    assert.match(takes[1], /first take.*seed 1/s);
    assert.equal(await page.locator('#takes audio').count(), 2);
    await page.click('#clear-takes');
    assert.equal(await page.locator('#takes li').count(), 0);
    assert.equal(await page.isHidden('#takes-card'), true);
    assert.deepEqual(errors.filter((e) => !/status of 409/.test(e)), []);
    await page.close();
  });

  it('fits a 375 px wide phone screen', async () => {
    const { page } = await openPage(browser, s.base, { width: 375, height: 812 });
    await page.click('#sampling summary');
    const overflow = await page.evaluate(() => {
      const wide = Array.from(document.querySelectorAll<HTMLElement>('input, select, textarea, button, label, canvas, audio, progress'))
        .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map((e) => `${e.tagName.toLowerCase()}#${e.id} right ${e.getBoundingClientRect().right.toFixed(0)}`);
      return { scrollWidth: document.documentElement.scrollWidth, wide };
    });
    assert.deepEqual(overflow, { scrollWidth: 375, wide: [] });
    await page.screenshot({ path: join(ARTIFACTS, 'page-375.png'), fullPage: true });
    await page.close();
  });

  it('generates in the browser on WebGPU, heard while it is made (where the bundle is built and the browser has an adapter)', async function () {
    if (!existsSync(join(REPO, 'dist', 'browser', 'musicgen.js'))) this.skip();
    const gpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...WEBGPU_ARGS], headless: true });
    try {
      const { page, errors } = await openPage(gpuBrowser, s.base, undefined, RECORD_STARTS);
      const hasAdapter = await page.evaluate(async () => {
        const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        return !!gpu && !!(await gpu.requestAdapter());
      });
      if (!hasAdapter) this.skip();
      await page.check('input[name=where][value=browser]');
      await page.fill('#prompt', 'calm piano');
      await page.fill('#duration', '0.8'); // two chunks of the library's 0.5 s
      await page.click('#generate');
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 240_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', `${await page.textContent('#status')}\n${await page.textContent('#logs')}`);
      // heard while it was made (the library's onAudio), then the normalised file in the player
      await checkPlayback(page, 0.8 * 32000, 32000);
      const d = await playerDuration(page);
      assert.ok(Math.abs(d - 0.8) < 0.01, `player duration ${d}`);
      assert.match(await page.getAttribute('#download', 'href') ?? '', /^blob:/);
      assert.match(await page.textContent('#logs') ?? '', /generated in this browser/);
      // the weights are kept in the browser: the "Stored models" card lists them and clears them
      await page.waitForFunction(() => !(document.getElementById('stored-card') as HTMLElement).hidden);
      assert.match(await page.textContent('#stored') ?? '', /\/model\/model\.safetensors: \d+\.\d MB/);
      assert.match(await page.textContent('#stored-usage') ?? '', /this site uses .* MB of the .* MB/);
      await page.click('#clear-stored');
      await page.waitForFunction(() => document.getElementById('stored')!.textContent === 'nothing stored');
      await page.screenshot({ path: join(ARTIFACTS, 'page-webgpu.png'), fullPage: true });
      const colours = await canvasColours(page);
      assert.ok(colours > 300, `picture drawn (${colours} colours)`);
      assert.deepEqual(errors, []);
    } finally {
      await gpuBrowser.close();
    }
  });
});
