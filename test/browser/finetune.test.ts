// Fine-tuning in the browser (issue 15 item 2): the page's Fine-tune panel, in headless Chromium (WebGPU on
// SwiftShader), takes dropped files (a .tar.gz with a clip and its .txt caption, a loose clip with its caption in
// a .json), fine-tunes the tiny model for a few steps with the library's `finetune` (LoRA; the loss goes down and
// is plotted), is canceled between steps, generates with the tuned model, and offers the adapter as a download.
// That downloaded file alone, loaded in Node with the tiny model, generates the page's codes for the same seed.
//
// The page is served by the real server (test/server/util.ts, the tiny model); the bundle is built as
// `npm run build:browser` does. Needs /usr/bin/chromium; skipped with a message when it is absent.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, buildBundle } from './chromium.js';
import { startServer, TINY, type Running } from '../server/util.js';
import { tones } from '../helpers.js';
import { encodeWav } from '../../src/audio/encode.js';
import { MusicGen, type GenerateRequest } from '../../src/pipeline.js';

const TMP = join(ROOT, 'tmp', `finetune-test-${process.pid}`);
const PROMPT = 'bright bell melody';
// what the page's form sends (app.js runInBrowser), seeded sampling as the server's defaults would draw it
const REQ: GenerateRequest = { prompt: PROMPT, duration: 0.5, seed: 11, topK: 50, topP: 0, temperature: 1, guidance: 3, normalization: 'loudness' };

interface PageResult { codes: number[]; numCodebooks: number; frames: number; seed: number; tuned: boolean }

/** Index of the first frame (column of the [K, frames] codes) where a and b differ, or -1. */
function firstDifferentFrame(a: ArrayLike<number>, b: ArrayLike<number>, K: number, frames: number): number {
  for (let t = 0; t < frames; t++) {
    for (let k = 0; k < K; k++) if (a[k * frames + t] !== b[k * frames + t]) return t;
  }
  return -1;
}

const losses = async (page: Page): Promise<number[]> =>
  [...((await page.textContent('#ft-log')) ?? '').matchAll(/^step \d+: loss ([\d.]+)/gm)].map((m) => Number(m[1]));

describe('fine-tuning in the browser: the Fine-tune panel (headless Chromium)', function () {
  this.timeout(600_000);
  let s: Running | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const log: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      (skipped: ${CHROMIUM} is absent; install it with tools/install-chromium.sh)`);
      this.skip();
    }
    buildBundle();
    // the dataset: a.wav + a.txt in a .tar.gz; b.wav loose with its caption in captions.json
    mkdirSync(join(TMP, 'tar'), { recursive: true });
    writeFileSync(join(TMP, 'tar', 'a.wav'), encodeWav([tones(0.6, [72, 76, 79], 32000)], 32000));
    writeFileSync(join(TMP, 'tar', 'a.txt'), `${PROMPT}\n`);
    await tar.c({ gzip: true, cwd: join(TMP, 'tar'), file: join(TMP, 'a.tar.gz'), portable: true }, ['a.wav', 'a.txt']);
    s = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1100, height: 1400 }, acceptDownloads: true });
    page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
    await page.goto(`${s.base}/`);
    await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    await s?.app.close();
    rmSync(TMP, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      console.log(`      browser console:\n        ${log.slice(-30).join('\n        ')}\n      server:\n        ${s?.logs.slice(-10).join('\n        ')}`);
    }
  });

  it('reads dropped clips with their captions (a .tar.gz, a .json), trains (loss plotted, down), cancels, generates, downloads an adapter Node loads to the same codes', async () => {
    assert.equal(await page.isVisible('#finetune-card'), true, 'the panel shows where the browser has WebGPU');
    // it fits a 375 px phone screen too
    await page.setViewportSize({ width: 375, height: 812 });
    const wide = await page.evaluate(() => Array.from(document.querySelectorAll('#finetune-card *'))
      .filter((e) => e.getBoundingClientRect().right > 375.5).map((e) => e.id || e.tagName));
    assert.deepEqual([wide, await page.evaluate(() => document.documentElement.scrollWidth)], [[], 375]);
    await page.setViewportSize({ width: 1100, height: 1400 });
    await page.setInputFiles('#ft-files', [
      { name: 'a.tar.gz', mimeType: 'application/gzip', buffer: readFileSync(join(TMP, 'a.tar.gz')) },
      { name: 'b.wav', mimeType: 'audio/wav', buffer: Buffer.from(encodeWav([tones(0.5, [67, 71], 32000)], 32000)) },
      { name: 'captions.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ 'b.wav': 'soft bells' })) },
    ]);
    await page.waitForFunction(() => document.querySelectorAll('#ft-clips li').length === 2);
    const captions = await page.$$eval('#ft-clips li', (lis) => lis.map((li) => [li.querySelector('.ft-name')!.textContent, (li.querySelector('input') as HTMLInputElement).value]));
    assert.deepEqual(captions.sort(), [['a.wav', PROMPT], ['b.wav', 'soft bells']]);

    // cancel: a long run stopped after its first step
    await page.fill('#ft-steps', '50');
    await page.fill('#ft-lr', '0.02');
    await page.fill('#ft-seed', '3');
    await page.click('#ft-train');
    await page.waitForFunction(() => /^step 1:/m.test(document.getElementById('ft-log')!.textContent ?? '') || /^error/.test(document.getElementById('ft-status')!.textContent ?? ''), undefined, { timeout: 300_000 });
    assert.doesNotMatch((await page.textContent('#ft-status')) ?? '', /^error/);
    await page.click('#ft-cancel');
    await page.waitForFunction(() => /^canceled after \d+ step/.test(document.getElementById('ft-status')!.textContent ?? ''), undefined, { timeout: 120_000 });
    assert.equal(await page.isDisabled('#ft-generate'), true, 'nothing to generate with after a canceled run');
    assert.equal(await page.isHidden('#ft-download'), true);

    // four steps: each clip twice; the second pass is lower for both
    await page.fill('#ft-steps', '4');
    await page.click('#ft-train');
    await page.waitForFunction(() => /^(trained|error)/.test(document.getElementById('ft-status')!.textContent ?? ''), undefined, { timeout: 300_000 });
    const status = (await page.textContent('#ft-status')) ?? '';
    assert.match(status, /^trained 4 steps .*seed 3/, status);
    const l = await losses(page);
    assert.equal(l.length, 4);
    assert.ok(l[2] < l[0] && l[3] < l[1], `losses ${l.join(', ')} did not go down`);
    const plotted = await page.$eval('#ft-loss', (c) => {
      const cv = c as HTMLCanvasElement;
      const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 150) lit++; // the plot's blue
      return lit;
    });
    assert.ok(plotted > 100, `the loss plot has ${plotted} line pixels`);

    // generate with the tuned model, from the form's inputs
    await page.fill('#prompt', PROMPT);
    await page.fill('#duration', String(REQ.duration));
    await page.click('#sampling summary');
    await page.fill('#top_k', String(REQ.topK));
    await page.fill('#top_p', String(REQ.topP));
    await page.fill('#temperature', String(REQ.temperature));
    await page.fill('#classifier_free_guidance', String(REQ.guidance));
    await page.fill('#seed', String(REQ.seed));
    await page.click('#ft-generate');
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 300_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', (await page.textContent('#status')) ?? '');
    const r = await page.evaluate(() => (window as unknown as { musicgenPage: { lastBrowserResult: PageResult } }).musicgenPage.lastBrowserResult);
    assert.equal(r.tuned, true);
    assert.equal(r.seed, REQ.seed);
    assert.equal(r.frames, 25);

    // the download: the adapter file alone (its config in its metadata)
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#ft-download')]);
    assert.equal(download.suggestedFilename(), 'adapter_model.safetensors');
    const file = join(TMP, 'download', 'adapter_model.safetensors');
    mkdirSync(join(TMP, 'download'), { recursive: true });
    await download.saveAs(file);

    // Node: the tiny model with that file, the same request
    const tuned = await MusicGen.load(TINY, { adapter: file });
    const plain = await MusicGen.load(TINY);
    try {
      const node = await tuned.generate(REQ);
      const baseline = await plain.generate(REQ);
      const diff = firstDifferentFrame(r.codes, node.codes[0], r.numCodebooks, r.frames);
      const fromBase = firstDifferentFrame(baseline.codes[0], node.codes[0], r.numCodebooks, r.frames);
      console.log(`      losses ${l.map((v) => v.toFixed(4)).join(' ')}; page vs Node codes: ${diff < 0 ? 'identical' : `differ from frame ${diff}`}; tuned vs base: ${fromBase < 0 ? 'identical' : `differ from frame ${fromBase}`}`);
      // as test/browser/generate.test.ts: SwiftShader and lavapipe round differently, which could flip a near-tie
      // late in a sampled run; the first frames must agree
      assert.ok(diff < 0 || diff >= 10, `browser and Node codes differ already at frame ${diff}`);
      assert.ok(fromBase >= 0, 'the adapter changes what the model generates');
    } finally {
      tuned.dispose();
      plain.dispose();
    }
  });
});
