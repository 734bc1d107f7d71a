// Checks of the page's live playback (issue 14 item 4), for the headless-Chromium tests: an init script records
// every AudioBufferSourceNode.start and each step of the growing waveform; `checkPlayback` asserts that the chunks
// scheduled add up to the clip, each starts where the one before ends (a later start only where that one had
// already finished playing: the generation fell behind the rate it was measured at), all while the generation
// runs, that the waveform grew chunk by chunk to the whole width, and that every chunk was played to its end.

import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

interface Start {
  when: number;
  length: number;
  rate: number;
  /** The context's clock when start() was called. */
  now: number;
  ctxState: string;
  pageState: string;
}

interface WaveStep {
  text: string;
  columns: number;
  width: number;
  pageState: string;
}

// a string, not a function: the transpiler running the test must not inject helpers into the page
export const RECORD_STARTS = `
  window.__starts = [];
  window.__ended = 0;
  window.__wave = [];
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (when = 0, ...rest) {
    const b = this.buffer;
    window.__starts.push({ when, length: b ? b.length : 0, rate: b ? b.sampleRate : 0, now: this.context.currentTime, ctxState: this.context.state, pageState: document.body.dataset.state });
    this.addEventListener('ended', () => { window.__ended++; });
    return start.call(this, when, ...rest);
  };
  // the growing waveform labels itself after drawing each chunk: count the columns drawn then (the middle row's
  // pixels that are not the background)
  const fillText = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    if (/as it is made/.test(text)) {
      const c = this.canvas;
      const row = this.getImageData(0, Math.floor(c.height / 2), c.width, 1).data;
      let columns = 0;
      for (let i = 0; i < row.length; i += 4) if (row[i] !== 0x0d || row[i + 1] !== 0x10 || row[i + 2] !== 0x21) columns++;
      window.__wave.push({ text, columns, width: c.width, pageState: document.body.dataset.state });
    }
    return fillText.call(this, text, ...rest);
  };
`;

/** The checks on what was scheduled for a clip of `samples` at `rate`. */
export async function checkPlayback(page: Page, samples: number, rate: number): Promise<Start[]> {
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
  assert.ok(stalls < starts.length - 1, 'chunks join without gaps');
  assert.ok(starts[0].when >= starts[0].now, 'scheduled ahead of the clock');
  // the waveform grows chunk by chunk while the generation runs, to the whole width
  const wave = (await page.evaluate('window.__wave')) as WaveStep[];
  const columns = wave.map((x) => x.columns);
  assert.ok(wave.length >= 2, `${wave.length} waveform step(s)`);
  for (let i = 1; i < wave.length; i++) assert.ok(columns[i] > columns[i - 1], `the waveform grows: ${columns.join(', ')} columns`);
  assert.ok(columns[columns.length - 1] >= 0.98 * wave[0].width, `the waveform ends full width: ${columns.join(', ')} of ${wave[0].width} columns`);
  assert.match(wave[wave.length - 1].text, new RegExp(`: ${(samples / rate).toFixed(2)} of ${(samples / rate).toFixed(2)} s$`));
  for (const x of wave) assert.equal(x.pageState, 'running');
  // every chunk is played through: the context renders (headless Chromium has a fake audio sink)
  const last = starts[starts.length - 1];
  await page.waitForFunction((n) => (window as unknown as { __ended: number }).__ended === n, starts.length, { timeout: Math.ceil((last.when + last.length / rate - last.now) * 1000) + 10_000 });
  console.log(`      ${starts.length} chunks scheduled, ${stalls} stall(s)`);
  return starts;
}
