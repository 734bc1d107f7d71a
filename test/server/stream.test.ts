// `serve --stream` (issue 14 item 3): the output is Cog's iterator of files (OpenAPI `Output` an array of uris with
// `x-cog-array-type: iterator`), growing while the prediction runs: short WAVs of the raw decoder output in order,
// joining up to the whole clip, then the whole clip normalised as asked. Each item is an SSE `output` event
// {chunk, index} and an `output` webhook (when the filter asks for it) carrying the array so far; uploads name
// the items {id}-{n}.wav and {id}.{format}.

import assert from 'node:assert/strict';
import { openApi30Problems } from './openapi-check.js';
import { encodeWav } from '../../src/audio/encode.js';
import { startServer, request, sse, recorder, dataUriBytes, wavInfo, tones, type Running } from './util.js';

/** The samples of a 16-bit PCM WAV, per channel, as integers. */
function wavSamples(bytes: Buffer): Int16Array[] {
  const info = wavInfo(bytes);
  const at = bytes.indexOf('data', 12) + 8;
  const n = Math.round(info.seconds * info.sampleRate);
  const out = Array.from({ length: info.channels }, () => new Int16Array(n));
  for (let i = 0; i < n; i++) for (let c = 0; c < info.channels; c++) out[c][i] = bytes.readInt16LE(at + 2 * (i * info.channels + c));
  return out;
}

const concat = (parts: Int16Array[]): Int16Array => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe('server --stream: an iterator of files', function () {
  let s: Running;

  before(async () => {
    s = await startServer({ stream: true, streamChunkSeconds: 0.2, allowPrivateWebhooks: true, trainings: false });
  });
  after(async () => {
    await s?.app.close();
  });

  it('declares the output as Cog\'s Iterator[Path] in /openapi.json, and says so in /model-info', async () => {
    const r = await request(s.base, 'GET', '/openapi.json');
    const schemas = (r.body.components as { schemas: Record<string, unknown> }).schemas;
    assert.deepEqual(schemas.Output, { title: 'Output', type: 'array', items: { type: 'string', format: 'uri' }, 'x-cog-array-type': 'iterator' });
    assert.deepEqual(openApi30Problems(r.body), []);
    assert.equal((await request(s.base, 'GET', '/model-info')).body.stream, true);
  });

  it('streams the audio as SSE output events while it is made, then the whole normalised clip', async () => {
    const r = await sse(s.base, 'POST', '/predictions', { input: { prompt: 'warm synth pads', duration: 1.5, seed: 3, normalization_strategy: 'peak' } });
    assert.equal(r.status, 200);
    const names = r.events.map((e) => e.event);
    assert.equal(names[0], 'start');
    assert.equal(names[names.length - 1], 'completed');
    const outputs = r.events.filter((e) => e.event === 'output');
    assert.ok(outputs.length >= 3, `${outputs.length} output events`);
    assert.deepEqual(outputs.map((e) => e.data.index), [...outputs.keys()]);
    const done = r.events[r.events.length - 1].data;
    assert.equal(done.status, 'succeeded', String(done.error));
    assert.deepEqual(done.output, outputs.map((e) => e.data.chunk), 'the output is every item, in order');

    // the items: raw chunks joining up to the clip, then the clip
    const files = outputs.map((e) => dataUriBytes(e.data.chunk));
    for (const f of files) assert.equal(f.mediaType, 'audio/wav');
    const chunks = files.slice(0, -1).map((f) => wavSamples(f.bytes)[0]);
    const whole = wavSamples(files[files.length - 1].bytes)[0];
    assert.equal(whole.length, 1.5 * 32000);
    for (const c of chunks.slice(0, -1)) assert.ok(c.length >= 0.2 * 32000, `a chunk of ${c.length} samples (at least 0.2 s but the last)`);
    const joined = concat(chunks);
    assert.equal(joined.length, whole.length, 'the chunks join up to the whole clip');
    // peak normalisation scales the raw audio: the chunks are the raw decoder output, the last item normalised
    let peakRaw = 0;
    let peakWhole = 0;
    for (let i = 0; i < whole.length; i++) {
      peakRaw = Math.max(peakRaw, Math.abs(joined[i]));
      peakWhole = Math.max(peakWhole, Math.abs(whole[i]));
    }
    // audiocraft's peak strategy: 1 dB of headroom, 10^(-1/20) of full scale
    assert.ok(Math.abs(peakWhole - 10 ** (-1 / 20) * 32767) <= 2, `the whole clip is peak-normalised (peak ${peakWhole})`);
    const scale = peakWhole / peakRaw;
    let err = 0;
    for (let i = 0; i < whole.length; i++) err = Math.max(err, Math.abs(joined[i] * scale - whole[i]));
    assert.ok(err <= 2 * scale + 2, `chunks × ${scale.toFixed(3)} match the normalised clip within rounding (max error ${err})`);

    // growing during the prediction: the first audio comes before the last generation step
    const firstOutput = names.indexOf('output');
    const lastStep = r.events.map((e) => e.event === 'log' && /step (\d+) of \1\b/.test(String(e.data.data))).lastIndexOf(true);
    assert.ok(lastStep > 0, 'a last-step progress line');
    assert.ok(firstOutput < lastStep, `the first output event (#${firstOutput}) comes before the last step (#${lastStep})`);
    assert.match(String(done.logs), /streaming: the first 0\.\d\d s of audio after/);
  });

  it('continuing a clip, normalization none: the chunks are the whole output (the clip\'s part too), sample for sample', async () => {
    const clip = `data:audio/wav;base64,${Buffer.from(encodeWav([tones(0.4, [60, 67], 32000)], 32000)).toString('base64')}`;
    // the library's chunks made small (0.1 s): the server joins them into items of at least 0.2 s
    const mg = s.app.musicgen!;
    const chunkFrames = mg.streamChunkFrames;
    mg.streamChunkFrames = 5;
    let r;
    try {
      r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'drums', duration: 1, seed: 9, normalization_strategy: 'none', input_audio: clip, continuation: true } });
    } finally {
      mg.streamChunkFrames = chunkFrames;
    }
    assert.equal(r.body.status, 'succeeded', String(r.body.error));
    const items = (r.body.output as string[]).map((u) => wavSamples(dataUriBytes(u).bytes)[0]);
    assert.equal(items[items.length - 1].length, 32000);
    for (const c of items.slice(0, -2)) assert.ok(c.length >= 0.2 * 32000 && c.length < 0.35 * 32000, `an item of ${c.length} samples`);
    assert.deepEqual(concat(items.slice(0, -1)), items[items.length - 1]);
  });

  it('sends an output webhook per item, the array growing by one each time; none when the filter leaves output out', async () => {
    const hook = await recorder();
    try {
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'bells', duration: 1, output_format: 'mp3' }, webhook: `${hook.base}/h` }, { Prefer: 'respond-async' });
      assert.equal(r.status, 202);
      await hook.waitFor((rs) => rs.some((x) => JSON.parse(x.body.toString()).status === 'succeeded'));
      const bodies = hook.received.map((x) => JSON.parse(x.body.toString()) as { status: string; output: string[] | null; logs: string });
      const final = bodies[bodies.length - 1];
      assert.equal(final.status, 'succeeded');
      const items = final.output!;
      assert.ok(items.length >= 3);
      assert.match(items[items.length - 1], /^data:audio\/mpeg;base64,/, 'the whole clip in the requested format');
      for (const item of items.slice(0, -1)) assert.match(item, /^data:audio\/wav;base64,/, 'streamed chunks are WAVs');
      // output webhooks: the array so far, one more item each, in order (logs webhooks may come between)
      const grown = bodies.filter((b) => b.status === 'processing' && Array.isArray(b.output));
      const lengths = [...new Set(grown.map((b) => b.output!.length))];
      assert.deepEqual(lengths, items.map((_, i) => i + 1), 'a webhook for every item');
      for (const b of grown) assert.deepEqual(b.output, items.slice(0, b.output!.length));

      hook.received.length = 0;
      await request(s.base, 'POST', '/predictions', {
        input: { prompt: 'bells', duration: 0.6 }, webhook: `${hook.base}/h2`, webhook_events_filter: ['start', 'completed'],
      }, { Prefer: 'respond-async' });
      await hook.waitFor((rs) => rs.some((x) => JSON.parse(x.body.toString()).status === 'succeeded'));
      const statuses = hook.received.map((x) => JSON.parse(x.body.toString()) as { status: string; output: string[] | null });
      assert.deepEqual(statuses.map((b) => b.status), ['processing', 'succeeded']);
      assert.ok(statuses[1].output!.length >= 2);
    } finally {
      await hook.close();
    }
  });

  it('with output_file_prefix every item is uploaded, in order: {id}-{n}.wav, then {id}.wav', async () => {
    const up = await recorder();
    try {
      const r = await request(s.base, 'POST', '/predictions', { id: 'streamed-up', input: { prompt: 'x', duration: 0.7 }, output_file_prefix: `${up.base}/b/` });
      assert.equal(r.body.status, 'succeeded', String(r.body.error));
      const items = r.body.output as string[];
      const n = items.length - 1;
      assert.ok(n >= 2, `${n} chunks`);
      const names = [...Array(n).keys()].map((i) => `/b/streamed-up-${i}.wav`).concat('/b/streamed-up.wav');
      assert.deepEqual(items, names.map((p) => up.base + p));
      assert.deepEqual(up.received.map((x) => x.url), names);
      const seconds = up.received.map((x) => wavInfo(x.body.subarray(x.body.indexOf('RIFF'))).seconds);
      const sum = seconds.slice(0, -1).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 0.7) < 1e-9 && Math.abs(seconds[n] - 0.7) < 1e-9, `chunks ${seconds.join(', ')}`);
    } finally {
      await up.close();
    }
  });

  it('a canceled prediction keeps the items it had', async () => {
    const got: number[] = [];
    let id = '';
    const r = await sse(s.base, 'POST', '/predictions', { input: { prompt: 'a long piece', duration: 30 } }, (e) => {
      if (e.event === 'start') id = String(e.data.id);
      if (e.event === 'output') {
        got.push(Number(e.data.index));
        if (got.length === 1) void request(s.base, 'POST', `/predictions/${id}/cancel`);
      }
    });
    const done = r.events[r.events.length - 1].data;
    assert.equal(done.status, 'canceled');
    assert.ok(Array.isArray(done.output) && done.output.length >= 1 && done.output.length === got.length, `${got.length} items before the cancel`);
  });
});
