// The page hearing a generation while it is made (issue 14 item 4), in headless Chromium: with `serve --stream`
// the page plays the streamed chunks with Web Audio as they arrive and grows the waveform, then offers the
// normalised file; in the browser (WebGPU) it does the same with the library's onAudio. Every
// AudioBufferSourceNode.start is recorded (an init script wraps it): the chunks scheduled add up to the clip,
// each starts where the one before ends (a later start only where that one had already finished playing: the
// generation fell behind real time), all while the generation runs and the waveform grows, and every one is
// played to its end.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startServer, REPO, type Running } from './util.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=native'];

interface Start {
  when: number;
  length: number;
  rate: number;
  /** The context's clock when start() was called. */
  now: number;
  ctxState: string;
  pageState: string;
  /** Columns of the waveform drawn when start() was called (the chunks before this one). */
  wave: number;
}

// a string, not a function: the transpiler running the test must not inject helpers into the page
const RECORD_STARTS = `
  window.__starts = [];
  window.__ended = 0;
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (when = 0, ...rest) {
    const b = this.buffer;
    // the waveform drawn so far: columns whose middle pixel has the waveform's colour
    const c = document.getElementById('picture');
    const row = c.getContext('2d').getImageData(0, Math.floor(c.height / 2), c.width, 1).data;
    let wave = 0;
    for (let i = 0; i < row.length; i += 4) if (row[i] === 0x8b && row[i + 1] === 0x93 && row[i + 2] === 0xff) wave++;
    window.__starts.push({ when, length: b ? b.length : 0, rate: b ? b.sampleRate : 0, now: this.context.currentTime, ctxState: this.context.state, pageState: document.body.dataset.state, wave });
    this.addEventListener('ended', () => { window.__ended++; });
    return start.call(this, when, ...rest);
  };
`;

async function openPage(browser: Browser, base: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1250 } });
  await page.addInitScript(RECORD_STARTS);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // the in-browser loader probes for a sharded checkpoint's index first
    if (m.type() === 'error' && !/status of 404/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-state=ready]', { timeout: 30_000 });
  return { page, errors };
}

/** The checks on what was scheduled for a clip of `samples` at `rate`. */
async function checkPlayback(page: Page, samples: number, rate: number): Promise<Start[]> {
  const starts = (await page.evaluate('window.__starts')) as Start[];
  assert.ok(starts.length >= 2, `${starts.length} chunk(s) scheduled`);
  assert.equal(starts.reduce((n, s) => n + s.length, 0), samples, 'the chunks scheduled add up to the clip');
  for (const s of starts) {
    assert.equal(s.rate, rate);
    assert.equal(s.ctxState, 'running', 'the AudioContext runs (made within the click)');
    assert.equal(s.pageState, 'running', 'scheduled while the generation runs');
  }
  let stalls = 0;
  for (let i = 1; i < starts.length; i++) {
    const prevEnd = starts[i - 1].when + starts[i - 1].length / rate;
    const gap = starts[i].when - prevEnd;
    if (Math.abs(gap) < 1e-6) continue; // gapless: sample-exact
    stalls++;
    assert.ok(gap > 0, `chunk ${i} overlaps the one before by ${-gap} s`);
    assert.ok(starts[i].now > prevEnd - 0.011, `chunk ${i} left a ${gap.toFixed(3)} s gap though it came ${(prevEnd - starts[i].now).toFixed(3)} s before the audio ran out`);
  }
  assert.ok(starts[0].when >= starts[0].now, 'scheduled ahead of the clock');
  // the waveform grows chunk by chunk (each start sees the columns of the chunks before it)
  const wave = starts.map((x) => x.wave);
  for (let i = 1; i < wave.length; i++) assert.ok(wave[i] > wave[i - 1], `the waveform grows: ${wave.join(', ')} columns`);
  // every chunk is played through: the context renders (headless Chromium has a fake audio sink)
  const last = starts[starts.length - 1];
  await page.waitForFunction((n) => (window as unknown as { __ended: number }).__ended === n, starts.length, { timeout: Math.ceil((last.when + last.length / rate - last.now) * 1000) + 10_000 });
  console.log(`      ${starts.length} chunks scheduled, ${stalls} stall(s)`);
  return starts;
}

async function playerDuration(page: Page): Promise<number> {
  return page.evaluate(() => new Promise<number>((resolve) => {
    const a = document.getElementById('player') as HTMLAudioElement;
    if (a.readyState >= 1 && Number.isFinite(a.duration)) resolve(a.duration);
    else a.addEventListener('loadedmetadata', () => resolve(a.duration), { once: true });
  }));
}

describe('server --stream: the page plays the audio as it is made (headless Chromium)', function () {
  let s: Running;
  let browser: Browser;

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    s = await startServer({ stream: true, streamChunkSeconds: 0.25, trainings: false });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  });
  after(async () => {
    await browser?.close();
    await s?.app.close();
  });

  it('through the server: the chunks are played gaplessly as they arrive, the waveform grows, the normalised file at the end', async () => {
    const { page, errors } = await openPage(browser, s.base);
    await page.fill('#prompt', 'calm piano with soft strings');
    await page.fill('#duration', '1.5');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    assert.match(await page.textContent('#logs') ?? '', /playing the audio as it is made/);
    await checkPlayback(page, 1.5 * 32000, 32000);
    const d = await playerDuration(page);
    assert.ok(Math.abs(d - 1.5) < 0.01, `the player holds the whole clip (${d} s)`);
    assert.match(await page.getAttribute('#download', 'href') ?? '', /^data:audio\/wav;base64,/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('in the browser on WebGPU: the library\'s onAudio chunks are played the same way', async function () {
    if (!existsSync(join(REPO, 'dist', 'browser', 'musicgen.js'))) this.skip();
    const gpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...WEBGPU_ARGS], headless: true });
    try {
      const { page, errors } = await openPage(gpuBrowser, s.base);
      const hasAdapter = await page.evaluate(async () => {
        const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        return !!gpu && !!(await gpu.requestAdapter());
      });
      if (!hasAdapter) this.skip();
      await page.check('input[name=where][value=browser]');
      await page.fill('#prompt', 'calm piano');
      await page.fill('#duration', '0.6');
      await page.click('#generate');
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 240_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', `${await page.textContent('#status')}\n${await page.textContent('#logs')}`);
      await checkPlayback(page, 0.6 * 32000, 32000);
      const d = await playerDuration(page);
      assert.ok(Math.abs(d - 0.6) < 0.01, `the player holds the whole clip (${d} s)`);
      assert.match(await page.getAttribute('#download', 'href') ?? '', /^blob:/);
      assert.deepEqual(errors, []);
    } finally {
      await gpuBrowser.close();
    }
  });
});
