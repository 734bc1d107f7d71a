// The page hearing a generation while it is made (issue 14 item 4), in headless Chromium: with `serve --stream`
// the page plays the streamed chunks with Web Audio as they arrive (scheduled by start sample, without gaps),
// grows the waveform, then offers the normalised file (checks in live-audio.ts). The same in-browser, with the
// library's onAudio: page.test.ts's WebGPU test.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { startServer, type Running } from './util.js';
import { RECORD_STARTS, checkPlayback } from './live-audio.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

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

  it('plays the streamed chunks gaplessly, grows the waveform, and puts the normalised file in the player', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1250 } });
    await page.addInitScript(RECORD_STARTS);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    await page.goto(`${s.base}/`);
    await page.waitForSelector('body[data-state=ready]', { timeout: 30_000 });
    await page.fill('#prompt', 'calm piano with soft strings');
    await page.fill('#duration', '1.5');
    await page.click('#generate');
    await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
    const logs = await page.textContent('#logs') ?? '';
    assert.match(logs, /the first audio is here/);
    assert.match(logs, /playing the audio as it is made/);
    await checkPlayback(page, 1.5 * 32000, 32000);
    const d = await page.evaluate(() => new Promise<number>((resolve) => {
      const a = document.getElementById('player') as HTMLAudioElement;
      if (a.readyState >= 1 && Number.isFinite(a.duration)) resolve(a.duration);
      else a.addEventListener('loadedmetadata', () => resolve(a.duration), { once: true });
    }));
    assert.ok(Math.abs(d - 1.5) < 0.01, `the player holds the whole clip (${d} s)`);
    assert.match(await page.getAttribute('#download', 'href') ?? '', /^data:audio\/wav;base64,/);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
