// The Cog HTTP API of `npm run serve` (src/server/), in process with the tiny model: discovery, health, OpenAPI,
// synchronous / asynchronous / streamed / idempotent predictions, webhooks, uploads, cancellation, 409 and the
// queue, request caps and 422s, URL inputs and their address checks, the model folder with Range, and a
// server that keeps serving after failures.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { encodeWav } from '../../src/audio/encode.js';
import { isPublicAddress, parseDataUri, guardedLookup, sendToClientUrl, FileInputError } from '../../src/server/files.js';
import { WebhookSender } from '../../src/server/jobs.js';
import { safeJoin } from '../../src/server/static.js';
import { openApi30Problems } from './openapi-check.js';
import { join } from 'node:path';
import { FIXTURES } from '../helpers.js';
import {
  startServer, request, sse, recorder, pollUntil, sleep, tones, dataUriBytes, wavInfo, TINY, TINY_MELODY, type Running,
} from './util.js';

const wavDataUri = (seconds: number, sr = 32000): string => `data:audio/wav;base64,${Buffer.from(encodeWav([tones(seconds, [60, 64, 67], sr)], sr)).toString('base64')}`;

describe('server: the Cog HTTP API', function () {
  let s: Running;

  before(async () => {
    s = await startServer({ allowPrivateWebhooks: true }); // the webhooks and uploads below go to 127.0.0.1
  });
  after(async () => {
    await s?.app.close();
  });

  describe('discovery, health and schema', () => {
    it('GET / answers the discovery document as JSON (and the page to a browser)', async () => {
      const r = await request(s.base, 'GET', '/', undefined, { Accept: '*/*' });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      for (const k of ['cog_version', 'openapi_url', 'shutdown_url', 'healthcheck_url', 'predictions_url', 'predictions_idempotent_url', 'predictions_cancel_url', 'trainings_url', 'trainings_idempotent_url', 'trainings_cancel_url']) {
        assert.ok(k in r.body, `discovery has ${k}`);
      }
      assert.equal(r.body.predictions_idempotent_url, '/predictions/{prediction_id}');
      assert.equal(r.body.shutdown_url, '/shutdown');
      const html = await fetch(`${s.base}/`, { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
      assert.equal(html.status, 200);
      assert.match(html.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await html.text(), /<title>MusicGen<\/title>/);
    });

    it('GET /health-check reports READY with the setup details', async () => {
      const r = await request(s.base, 'GET', '/health-check');
      assert.equal(r.status, 200);
      assert.equal(r.body.status, 'READY');
      const setup = r.body.setup as Record<string, unknown>;
      assert.equal(setup.status, 'succeeded');
      assert.ok(Date.parse(String(setup.started_at)) <= Date.parse(String(setup.completed_at)));
      assert.match(String(setup.logs), /model ready/);
    });

    it('GET /openapi.json lists every input with type, default, range and choices, in Cog\'s document shape', async () => {
      const r = await request(s.base, 'GET', '/openapi.json');
      assert.equal(r.status, 200);
      assert.equal(r.body.openapi, '3.0.2');
      const schemas = (r.body.components as { schemas: Record<string, Record<string, unknown>> }).schemas;
      const props = schemas.Input.properties as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(props), [
        'prompt', 'input_audio', 'duration', 'continuation', 'continuation_start', 'continuation_end', 'multi_band_diffusion',
        'normalization_strategy', 'top_k', 'top_p', 'temperature', 'classifier_free_guidance', 'output_format', 'seed',
      ]);
      assert.deepEqual(Object.values(props).map((p) => p['x-order']), [...Array(14).keys()]);
      assert.equal(props.input_audio.type, 'string');
      assert.equal(props.input_audio.format, 'uri');
      assert.equal(props.duration.default, 8);
      assert.equal(props.duration.minimum, 0);
      assert.equal(props.duration.exclusiveMinimum, true, 'OpenAPI 3.0: a boolean beside minimum');
      assert.equal(props.duration.maximum, 300);
      assert.equal(props.top_k.type, 'integer');
      assert.equal(props.top_k.default, 250);
      assert.equal(props.top_p.maximum, 1);
      assert.equal(props.temperature.default, 1);
      assert.equal(props.classifier_free_guidance.default, 3);
      assert.equal(props.continuation.type, 'boolean');
      assert.equal(props.seed.nullable, true);
      assert.deepEqual(props.output_format.allOf, [{ $ref: '#/components/schemas/output_format' }]);
      assert.deepEqual(schemas.output_format.enum, ['wav', 'mp3']);
      assert.equal(props.output_format.default, 'wav');
      assert.deepEqual((schemas.normalization_strategy.enum as string[]).slice(0, 4), ['loudness', 'clip', 'peak', 'rms']);
      assert.deepEqual(schemas.Output, { title: 'Output', type: 'string', format: 'uri' });
      assert.deepEqual(schemas.Status.enum, ['starting', 'processing', 'succeeded', 'canceled', 'failed']);
      for (const k of ['PredictionRequest', 'PredictionResponse', 'HTTPValidationError', 'ValidationError', 'TrainingInput', 'TrainingOutput', 'TrainingRequest', 'TrainingResponse']) {
        assert.ok(schemas[k], `schema ${k}`);
      }
      const train = schemas.TrainingInput.properties as Record<string, Record<string, unknown>>;
      assert.deepEqual(schemas.TrainingInput.required, ['dataset_path']);
      assert.equal(train.dataset_path.format, 'uri');
      assert.equal(train.epochs.default, 5);
      assert.equal(train.lr.default, 1e-4);
      const paths = r.body.paths as Record<string, unknown>;
      assert.deepEqual(openApi30Problems(r.body), [], 'a valid OpenAPI 3.0 document');
      for (const p of ['/', '/health-check', '/shutdown', '/predictions', '/predictions/{prediction_id}', '/predictions/{prediction_id}/cancel', '/trainings', '/trainings/{training_id}/cancel']) {
        assert.ok(paths[p], `path ${p}`);
      }
    });

    it('GET /docs and /model-info', async () => {
      const docs = await fetch(`${s.base}/docs`);
      assert.equal(docs.status, 200);
      assert.match(await docs.text(), /classifier_free_guidance/);
      const info = await request(s.base, 'GET', '/model-info');
      assert.equal(info.body.sample_rate, 32000);
      assert.equal(info.body.is_melody, false);
      assert.equal(info.body.model_url, '/model/');
    });
  });

  describe('predictions', () => {
    it('POST /predictions answers the finished prediction with a WAV data URI of the requested length', async () => {
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'calm piano', duration: 1, seed: 5 } });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
      const b = r.body;
      assert.equal(b.status, 'succeeded');
      assert.equal(b.error, null);
      assert.match(String(b.id), /^[a-z2-7]{26}$/);
      for (const k of ['created_at', 'started_at', 'completed_at']) assert.ok(!Number.isNaN(Date.parse(String(b[k]))), k);
      assert.deepEqual(b.input, { prompt: 'calm piano', duration: 1, seed: 5 });
      assert.ok(typeof (b.metrics as Record<string, number>).predict_time === 'number');
      assert.match(String(b.logs), /step \d+ of \d+/);
      assert.match(String(b.logs), /seed: 5/);
      const { mediaType, bytes } = dataUriBytes(b.output);
      assert.equal(mediaType, 'audio/wav');
      const w = wavInfo(bytes);
      assert.deepEqual([w.sampleRate, w.channels, w.bits], [32000, 1, 16]);
      assert.ok(Math.abs(w.seconds - 1) < 1e-9, `${w.seconds} s`);
    });

    it('the same seed gives the same audio; output_format mp3 gives an MP3', async () => {
      const a = await request(s.base, 'POST', '/predictions', { input: { prompt: 'drums', duration: 0.3, seed: 11 } });
      const b = await request(s.base, 'POST', '/predictions', { input: { prompt: 'drums', duration: 0.3, seed: 11 } });
      assert.equal(a.body.output, b.body.output);
      const m = await request(s.base, 'POST', '/predictions', { input: { prompt: 'drums', duration: 0.5, output_format: 'mp3' } });
      assert.equal(m.body.status, 'succeeded');
      const { mediaType, bytes } = dataUriBytes(m.body.output);
      assert.equal(mediaType, 'audio/mpeg');
      const head = bytes.subarray(0, 3).toString('latin1');
      assert.ok(head === 'ID3' || (bytes[0] === 0xff && (bytes[1] & 0xe0) === 0xe0), 'an MP3 stream');
    });

    it('continues an input_audio clip sent as a data URI', async () => {
      const r = await request(s.base, 'POST', '/predictions', {
        input: { prompt: 'more', input_audio: wavDataUri(0.5, 44100), continuation: true, duration: 1, continuation_end: 0.4 },
      });
      assert.equal(r.body.status, 'succeeded', String(r.body.error));
      assert.ok(Math.abs(wavInfo(dataUriBytes(r.body.output).bytes).seconds - 1) < 1e-9);
      assert.match(String(r.body.logs), /input_audio: 1 channel\(s\), 0\.50 s at 44100 Hz/);
    });

    it('accepts `description`, the old name of `prompt`: same audio as the prompt', async () => {
      const old = await request(s.base, 'POST', '/predictions', { input: { description: 'drums', duration: 0.2, seed: 4 } });
      assert.equal(old.body.status, 'succeeded', String(old.body.error));
      assert.doesNotMatch(String(old.body.logs), /ignored unknown/);
      const now = await request(s.base, 'POST', '/predictions', { input: { prompt: 'drums', duration: 0.2, seed: 4 } });
      assert.equal(old.body.output, now.body.output);
    });

    it('drops unknown inputs (model_version, …) as coglet does, and says so in the logs', async () => {
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.1, model_version: 'stereo-melody-large', foo: 1 } });
      assert.equal(r.body.status, 'succeeded');
      assert.deepEqual(r.body.input, { prompt: 'x', duration: 0.1 });
      assert.match(String(r.body.logs), /ignored unknown input\(s\): model_version, foo/);
    });

    it('Accept: text/event-stream streams start, log (progress), output and completed', async () => {
      const r = await sse(s.base, 'POST', '/predictions', { input: { prompt: 'strings', duration: 0.5 } });
      assert.equal(r.status, 200);
      assert.match(r.contentType, /^text\/event-stream/);
      const names = r.events.map((e) => e.event);
      assert.equal(names[0], 'start');
      assert.deepEqual(r.events[0].data.status, 'processing');
      assert.equal(names[names.length - 1], 'completed');
      assert.equal(names[names.length - 2], 'output');
      const logs = r.events.filter((e) => e.event === 'log');
      assert.ok(logs.length >= 2);
      for (const l of logs) assert.equal(l.data.source, 'stdout');
      const steps = logs.map((l) => /step (\d+) of (\d+)/.exec(String(l.data.data))).filter((m) => m !== null);
      assert.ok(steps.length >= 2, 'progress lines');
      const last = steps[steps.length - 1]!;
      assert.equal(last[1], last[2], 'the last progress line is the last step');
      const done = r.events[r.events.length - 1].data;
      assert.equal(done.status, 'succeeded');
      assert.equal(done.output, r.events[names.length - 2].data.chunk);
      assert.equal(done.id, r.events[0].data.id);
      assert.ok(Math.abs(wavInfo(dataUriBytes(done.output).bytes).seconds - 0.5) < 1e-9);
    });

    it('PUT /predictions/{id} is idempotent while it runs; a finished id with new input runs anew, as Cog', async () => {
      const id = `idem-${Date.now()}`;
      const first = await request(s.base, 'PUT', `/predictions/${id}`, { input: { prompt: 'jazz', duration: 0.3, seed: 1 } });
      assert.equal(first.status, 200);
      assert.equal(first.body.id, id);
      assert.equal(first.body.status, 'succeeded');
      // finished: the same id with another input is a new prediction (Cog keeps only predictions in flight)
      const again = await request(s.base, 'PUT', `/predictions/${id}`, { input: { prompt: 'something else', duration: 0.2, seed: 1 } });
      assert.equal(again.status, 200);
      assert.equal(again.body.status, 'succeeded');
      assert.equal((again.body.input as Record<string, unknown>).prompt, 'something else');
      assert.notEqual(again.body.created_at, first.body.created_at, 'run again');
      assert.ok(Math.abs(wavInfo(dataUriBytes(again.body.output).bytes).seconds - 0.2) < 1e-9, 'the new input\'s output');
      assert.equal((await request(s.base, 'GET', `/predictions/${id}`)).body.created_at, again.body.created_at, 'GET answers the newest');
      // while running: the retry attaches to the running job
      const id2 = `idem2-${Date.now()}`;
      const a = await request(s.base, 'PUT', `/predictions/${id2}`, { input: { prompt: 'a', duration: 2 } }, { Prefer: 'respond-async' });
      assert.equal(a.status, 202);
      assert.equal(a.body.id, id2);
      const [b, c] = await Promise.all([
        request(s.base, 'PUT', `/predictions/${id2}`, { input: { prompt: 'a', duration: 2 } }),
        request(s.base, 'PUT', `/predictions/${id2}`, { input: { prompt: 'a', duration: 2 } }, { Prefer: 'respond-async' }),
      ]);
      assert.equal(c.status, 202);
      assert.equal(c.body.id, id2);
      assert.equal(b.status, 200);
      assert.equal(b.body.status, 'succeeded');
      assert.equal(b.body.created_at, a.body.created_at, 'one prediction');
      // an id in the body that differs from the URL's
      const bad = await request(s.base, 'PUT', '/predictions/one', { id: 'two', input: { prompt: 'a' } });
      assert.equal(bad.status, 422);
      assert.deepEqual((bad.body.detail as { loc: string[] }[])[0].loc, ['body', 'id']);
    });

    it('a POST reusing a finished prediction\'s id runs the new input and fires its webhook', async () => {
      const hook = await recorder();
      try {
        const first = await request(s.base, 'POST', '/predictions', { id: 'reused', input: { prompt: 'x', duration: 0.2 } });
        assert.equal(first.body.status, 'succeeded');
        const r = await request(s.base, 'POST', '/predictions', { id: 'reused', input: { prompt: 'y', duration: 0.3 }, webhook: hook.base, webhook_events_filter: ['completed'] });
        assert.equal(r.body.status, 'succeeded');
        assert.equal((r.body.input as Record<string, unknown>).prompt, 'y');
        await hook.waitFor((rs) => rs.length >= 1);
        const sent = JSON.parse(hook.received[0].body.toString()) as Record<string, unknown>;
        assert.equal(sent.id, 'reused');
        assert.equal(sent.status, 'succeeded');
        assert.equal(sent.output, r.body.output);
      } finally {
        await hook.close();
      }
    });

    it('Prefer: respond-async answers 202 at once and sends webhooks (start, output, logs, completed; filtered)', async () => {
      const hook = await recorder();
      try {
        const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'synth', duration: 4 }, webhook: `${hook.base}/hook` }, { Prefer: 'respond-async' });
        assert.equal(r.status, 202);
        assert.equal(r.body.status, 'starting');
        const id = r.body.id;
        await hook.waitFor((rs) => rs.some((x) => JSON.parse(x.body.toString()).status === 'succeeded'));
        const bodies = hook.received.map((x) => JSON.parse(x.body.toString()) as Record<string, unknown>);
        for (const x of hook.received) {
          assert.equal(x.method, 'POST');
          assert.equal(x.url, '/hook');
          assert.match(String(x.headers['content-type']), /application\/json/);
        }
        for (const b of bodies) assert.equal(b.id, id);
        assert.equal(bodies[0].status, 'processing', 'start webhook first, with status processing (coglet\'s set_processing)');
        const final = bodies[bodies.length - 1];
        assert.equal(final.status, 'succeeded', 'completed webhook last');
        assert.equal(wavInfo(dataUriBytes(final.output).bytes).seconds, 4);
        assert.ok(bodies.some((b) => b.status === 'processing' && !b.output && /step/.test(String(b.logs))), 'a logs webhook');
        assert.ok(bodies.some((b) => b.status === 'processing' && b.output === final.output), 'an output webhook');
        const times = hook.received.map((x) => x.at);
        assert.deepEqual(times, [...times].sort((a, b) => a - b));

        // only start and completed
        hook.received.length = 0;
        const f = await request(s.base, 'POST', '/predictions', {
          input: { prompt: 'synth', duration: 0.5 }, webhook: `${hook.base}/hook2`, webhook_events_filter: ['start', 'completed'],
        }, { Prefer: 'respond-async' });
        assert.equal(f.status, 202);
        await hook.waitFor((rs) => rs.some((x) => JSON.parse(x.body.toString()).status === 'succeeded'));
        await sleep(200);
        assert.deepEqual(hook.received.map((x) => JSON.parse(x.body.toString()).status), ['processing', 'succeeded']);
      } finally {
        await hook.close();
      }
    });

    it('the terminal webhook is retried on 5xx', async () => {
      let n = 0;
      const hook = await recorder((r, res) => {
        const b = JSON.parse(r.body.toString()) as { status: string };
        const fail = b.status === 'succeeded' && n++ < 2;
        res.writeHead(fail ? 503 : 200);
        res.end();
      });
      try {
        await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.2 }, webhook: hook.base, webhook_events_filter: ['completed'] }, { Prefer: 'respond-async' });
        await hook.waitFor((rs) => rs.length >= 3);
        assert.deepEqual(hook.received.map((x) => JSON.parse(x.body.toString()).status), ['succeeded', 'succeeded', 'succeeded']);
      } finally {
        await hook.close();
      }
    });

    it('with output_file_prefix the file is PUT there (multipart, as older Cog) and the output is its URL', async () => {
      const up = await recorder();
      try {
        const r = await request(s.base, 'POST', '/predictions', { id: 'upload-1', input: { prompt: 'x', duration: 0.4 }, output_file_prefix: `${up.base}/bucket/` });
        assert.equal(r.body.status, 'succeeded', String(r.body.error));
        assert.equal(r.body.output, `${up.base}/bucket/upload-1.wav`);
        assert.equal(up.received.length, 1);
        const put = up.received[0];
        assert.equal(put.method, 'PUT');
        assert.equal(put.url, '/bucket/upload-1.wav');
        assert.match(String(put.headers['content-type']), /^multipart\/form-data; boundary=/);
        const at = put.body.indexOf('RIFF');
        assert.ok(at > 0 && put.body.includes('name="file"'));
        assert.ok(Math.abs(wavInfo(put.body.subarray(at)).seconds - 0.4) < 1e-9);
      } finally {
        await up.close();
      }
    });

    it('a failing prediction reports failed with its error, and the server keeps serving', async () => {
      const up = await recorder((_r, res) => { res.writeHead(500); res.end(); });
      try {
        const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.2 }, output_file_prefix: `${up.base}/` });
        assert.equal(r.status, 200);
        assert.equal(r.body.status, 'failed');
        assert.match(String(r.body.error), /HTTP 500/);
        assert.equal(r.body.output, null);
      } finally {
        await up.close();
      }
      const ok = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.2 } });
      assert.equal(ok.body.status, 'succeeded');
      assert.equal((await request(s.base, 'GET', '/health-check')).body.status, 'READY');
    });
  });

  describe('bad input', () => {
    const detail = (r: { body: Record<string, unknown> }): { loc: (string | number)[]; msg: string; type: string }[] => r.body.detail as { loc: (string | number)[]; msg: string; type: string }[];

    it('422 with pydantic-style detail naming the field', async () => {
      const cases: [Record<string, unknown>, string, RegExp][] = [
        [{ prompt: 'x', duration: 'long' }, 'duration', /not a valid float/],
        [{ prompt: 'x', duration: -1 }, 'duration', /greater than 0/],
        [{ prompt: 'x', duration: 1e6 }, 'duration', /less than or equal to 300/],
        [{ prompt: 'x', top_k: 2.5 }, 'top_k', /valid integer/],
        [{ prompt: 'x', top_p: 1.5 }, 'top_p', /less than or equal to 1/],
        [{ prompt: 'x', temperature: -0.1 }, 'temperature', /greater than or equal to 0/],
        [{ prompt: 'x', output_format: 'flac' }, 'output_format', /permitted: 'wav', 'mp3'/],
        [{ prompt: 'x', normalization_strategy: 'loud' }, 'normalization_strategy', /enumeration/],
        [{ prompt: 'x', continuation: 'maybe' }, 'continuation', /boolean/],
        [{ prompt: 'x', seed: -5 }, 'seed', /greater than or equal to -1/],
        [{ prompt: 42 }, 'prompt', /str type expected/],
        [{}, 'prompt', /a prompt or input_audio is required/],
        [{ prompt: '   ' }, 'prompt', /required/],
        [{ prompt: 'x', continuation: true }, 'continuation', /needs input_audio/],
        [{ prompt: 'x', input_audio: wavDataUri(0.2) }, 'input_audio', /text-only model/],
        [{ prompt: 'x', input_audio: '/etc/passwd', continuation: true }, 'input_audio', /data: URI/],
        [{ prompt: 'x', input_audio: 'file:///etc/passwd', continuation: true }, 'input_audio', /data: URI/],
        [{ prompt: 'x', continuation_end: -3 }, 'continuation_end', /greater than or equal to -1/],
        [{ prompt: 'x', continuation_end: -0.5 }, 'continuation_end', /greater than or equal to 0 \(or -1 for none\)/],
        // tokens counted with the model's tokenizer, before anything runs
        [{ prompt: 'calm piano '.repeat(300) }, 'prompt', /is \d+ tokens long; the most is 512/],
        [{ description: 42 }, 'description', /str type expected/],
      ];
      for (const [input, field, msg] of cases) {
        const r = await request(s.base, 'POST', '/predictions', { input });
        assert.equal(r.status, 422, `${JSON.stringify(input).slice(0, 80)} → ${r.status}`);
        const d = detail(r);
        assert.ok(d.length >= 1);
        assert.deepEqual(d[0].loc, ['body', 'input', field], JSON.stringify(d));
        assert.match(d[0].msg, msg);
        assert.equal(typeof d[0].type, 'string');
      }
    });

    it('422 for a body that is not JSON or not an object, and for bad webhook fields', async () => {
      const notJson = await request(s.base, 'POST', '/predictions', '{"input": ');
      assert.equal(notJson.status, 422);
      assert.equal(detail(notJson)[0].type, 'value_error.jsondecode');
      const arr = await request(s.base, 'POST', '/predictions', '[1,2]');
      assert.equal(arr.status, 422);
      const inputNotObj = await request(s.base, 'POST', '/predictions', { input: 'calm piano' });
      assert.equal(inputNotObj.status, 422);
      assert.deepEqual(detail(inputNotObj)[0].loc, ['body', 'input']);
      const hook = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x' }, webhook: 'ftp://x' });
      assert.deepEqual(detail(hook)[0].loc, ['body', 'webhook']);
      const filter = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x' }, webhook: 'http://127.0.0.1:9/', webhook_events_filter: ['start', 'nope'] });
      assert.deepEqual(detail(filter)[0].loc, ['body', 'webhook_events_filter', 1]);
    });

    it('input problems found while running: 422 for a synchronous request, failed for an asynchronous one', async () => {
      const broken = `data:audio/wav;base64,${Buffer.from('RIFF1234WAVEjunkjunkjunk').toString('base64')}`;
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: broken, continuation: true, duration: 1 } });
      assert.equal(r.status, 422);
      assert.equal(r.body.status, 'failed');
      assert.deepEqual(detail(r)[0].loc, ['body', 'input', 'input_audio']);
      assert.match(String(r.body.error), /input_audio: Cannot decode audio/);
      const long = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: wavDataUri(1), continuation: true, duration: 0.5 } });
      assert.equal(long.status, 422);
      assert.deepEqual(detail(long)[0].loc, ['body', 'input', 'duration']);
      const notB64 = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: 'data:audio/wav;base64,@@@', continuation: true } });
      assert.deepEqual(detail(notB64)[0].loc, ['body', 'input', 'input_audio']);
      const a = await request(s.base, 'POST', '/predictions', { id: 'async-bad', input: { prompt: 'x', input_audio: broken, continuation: true } }, { Prefer: 'respond-async' });
      assert.equal(a.status, 202);
      const done = await pollUntil(s.base, '/predictions/async-bad', (b) => b.status !== 'starting' && b.status !== 'processing');
      assert.equal(done.status, 'failed');
      assert.match(String(done.error), /input_audio/);
    });

    it('http(s) URL inputs are off by default', async () => {
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: 'https://example.com/a.wav', continuation: true } });
      assert.equal(r.status, 422);
      assert.deepEqual(detail(r)[0].loc, ['body', 'input', 'input_audio']);
      assert.match(detail(r)[0].msg, /turned off/);
    });

    it('unknown routes 404, wrong methods 405, training streams 406', async () => {
      assert.equal((await request(s.base, 'GET', '/nope')).status, 404);
      assert.equal((await request(s.base, 'DELETE', '/predictions')).status, 405);
      assert.equal((await request(s.base, 'GET', '/predictions/never-seen')).status, 404);
      const t = await sse(s.base, 'POST', '/trainings', { input: { dataset_path: 'data:application/x-tar;base64,' } });
      assert.equal(t.status, 406);
    });
  });

  describe('one job at a time, cancel', () => {
    it('a second prediction while one runs gets 409 Conflict; health says BUSY; cancel stops the first', async () => {
      const first = request(s.base, 'POST', '/predictions', { id: 'long-1', input: { prompt: 'long', duration: 60 } });
      await pollUntil(s.base, '/predictions/long-1', (b) => b.status === 'processing' && /step/.test(String(b.logs)));
      const second = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.1 } });
      assert.equal(second.status, 409);
      assert.equal(second.body.status, 'failed');
      assert.match(String(second.body.error), /capacity/i);
      const train = await request(s.base, 'POST', '/trainings', { input: { dataset_path: 'data:application/x-tar;base64,' } });
      assert.equal(train.status, 409, 'trainings share the slot');
      assert.equal((await request(s.base, 'GET', '/health-check')).body.status, 'BUSY');
      const c = await request(s.base, 'POST', '/predictions/long-1/cancel');
      assert.equal(c.status, 200);
      assert.deepEqual(c.body, {});
      const r = await first;
      assert.equal(r.status, 200);
      assert.equal(r.body.status, 'canceled');
      assert.equal(r.body.output, null);
      assert.ok((r.body.metrics as Record<string, number>).predict_time < 30, 'stopped well before 60 s of tokens');
      assert.equal((await request(s.base, 'GET', '/health-check')).body.status, 'READY');
      assert.equal((await request(s.base, 'POST', '/predictions/no-such-id/cancel')).status, 404);
      const finished = await request(s.base, 'POST', '/predictions/long-1/cancel');
      assert.equal(finished.status, 404, 'a finished prediction cannot be canceled (coglet: 404)');
      assert.deepEqual(finished.body, {});
    });

    it('cancel of an async prediction: canceled, with its completed webhook', async () => {
      const hook = await recorder();
      try {
        const r = await request(s.base, 'POST', '/predictions', { id: 'async-cancel', input: { prompt: 'x', duration: 60 }, webhook: hook.base }, { Prefer: 'respond-async' });
        assert.equal(r.status, 202);
        await pollUntil(s.base, '/predictions/async-cancel', (b) => /step/.test(String(b.logs)));
        assert.equal((await request(s.base, 'POST', '/predictions/async-cancel/cancel')).status, 200);
        await hook.waitFor((rs) => rs.some((x) => JSON.parse(x.body.toString()).status === 'canceled'));
        const got = await request(s.base, 'GET', '/predictions/async-cancel');
        assert.equal(got.body.status, 'canceled');
      } finally {
        await hook.close();
      }
    });

    it('cancel of a streamed prediction ends the stream with completed: canceled', async () => {
      const events: string[] = [];
      const p = sse(s.base, 'POST', '/predictions', { id: 'sse-cancel', input: { prompt: 'x', duration: 60 } }, (e) => {
        events.push(e.event);
        if (e.event === 'log' && events.filter((x) => x === 'log').length === 3) void request(s.base, 'POST', '/predictions/sse-cancel/cancel');
      });
      const r = await p;
      const last = r.events[r.events.length - 1];
      assert.equal(last.event, 'completed');
      assert.equal(last.data.status, 'canceled');
      assert.ok(!r.events.some((e) => e.event === 'output'));
    });

    it('a streaming client that goes away cancels its prediction', async () => {
      const ac = new AbortController();
      const res = await fetch(`${s.base}/predictions`, {
        method: 'POST', signal: ac.signal,
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify({ id: 'sse-gone', input: { prompt: 'x', duration: 60 } }),
      });
      assert.equal(res.status, 200);
      await pollUntil(s.base, '/predictions/sse-gone', (b) => /step/.test(String(b.logs)));
      ac.abort();
      const b = await pollUntil(s.base, '/predictions/sse-gone', (x) => x.status === 'canceled', 20_000);
      assert.equal(b.status, 'canceled');
    });

    it('a synchronous client that hangs up cancels its prediction', async () => {
      const req = http.request(`${s.base}/predictions`, { method: 'POST', headers: { 'Content-Type': 'application/json' } });
      req.on('error', () => undefined);
      req.end(JSON.stringify({ id: 'hangup', input: { prompt: 'x', duration: 60 } }));
      await pollUntil(s.base, '/predictions/hangup', (b) => /step/.test(String(b.logs)));
      req.destroy();
      const b = await pollUntil(s.base, '/predictions/hangup', (x) => x.status === 'canceled', 20_000);
      assert.equal(b.status, 'canceled');
      const ok = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.1 } });
      assert.equal(ok.body.status, 'succeeded');
    });

    it('concurrent requests: exactly one runs, the others get 409, every answer is well-formed', async () => {
      const all = await Promise.all(Array.from({ length: 8 }, (_, i) => request(s.base, 'POST', '/predictions', { input: { prompt: `p${i}`, duration: 2 } })));
      const statuses = all.map((r) => r.status).sort();
      assert.equal(statuses.filter((x) => x === 200).length, 1, statuses.join(','));
      assert.equal(statuses.filter((x) => x === 409).length, 7);
      for (const r of all) assert.ok(r.status === 200 ? r.body.status === 'succeeded' : r.body.status === 'failed');
    });
  });

  describe('the model folder for the page (read-only, Range)', () => {
    it('HEAD, Range 206, 416, and no way out of the folder', async () => {
      const head = await fetch(`${s.base}/model/model.safetensors`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      const size = Number(head.headers.get('content-length'));
      assert.ok(size > 1000);
      assert.equal(head.headers.get('accept-ranges'), 'bytes');
      const part = await fetch(`${s.base}/model/model.safetensors`, { headers: { Range: 'bytes=0-7' } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes 0-7/${size}`);
      assert.equal((await part.arrayBuffer()).byteLength, 8);
      const suffix = await fetch(`${s.base}/model/config.json`, { headers: { Range: 'bytes=-5' } });
      assert.equal(suffix.status, 206);
      assert.equal((await suffix.text()).length, 5);
      const past = await fetch(`${s.base}/model/config.json`, { headers: { Range: 'bytes=99999999-' } });
      assert.equal(past.status, 416);
      for (const p of ['/model/../package.json', '/model/%2e%2e/package.json', '/model/..%2fpackage.json', '/model/.hidden', '/web/../src/server/app.ts', '/model/sub/x']) {
        const r = await fetch(s.base + p);
        assert.equal(r.status, 404, p);
        await r.text();
      }
      const cfg = await fetch(`${s.base}/model/config.json`);
      assert.equal(cfg.status, 200);
      assert.ok((await cfg.json()) as unknown);
    });
  });
});

describe('server: limits, queue, URL inputs, uploads', function () {
  it('--queue N: up to N wait in order, the next gets 409; the body size is capped (413)', async () => {
    const s = await startServer({ maxQueue: 2, maxBodyBytes: 256 * 1024 });
    try {
      // the first runs, two wait, the fourth is refused; each request is sent once the previous one is in
      const pending: Promise<Awaited<ReturnType<typeof request>>>[] = [];
      for (let i = 0; i < 4; i++) {
        pending.push(request(s.base, 'POST', '/predictions', { id: `q${i}`, input: { prompt: `q${i}`, duration: 4 } }));
        if (i < 3) await pollUntil(s.base, `/predictions/q${i}`, () => true);
      }
      assert.equal((await request(s.base, 'GET', '/health-check')).body.status, 'BUSY');
      const jobs = await Promise.all(pending);
      assert.deepEqual(jobs.map((r) => r.status), [200, 200, 200, 409]);
      const ok = jobs.slice(0, 3);
      for (const r of ok) assert.equal(r.body.status, 'succeeded');
      for (let i = 1; i < ok.length; i++) {
        assert.ok(Date.parse(String(ok[i].body.started_at)) >= Date.parse(String(ok[i - 1].body.completed_at)), 'one after another, in order of arrival');
      }
      // a queued job can be canceled before it starts
      const a = await request(s.base, 'POST', '/predictions', { id: 'qa', input: { prompt: 'a', duration: 4 } }, { Prefer: 'respond-async' });
      const b = await request(s.base, 'POST', '/predictions', { id: 'qb', input: { prompt: 'b', duration: 4 } }, { Prefer: 'respond-async' });
      assert.deepEqual([a.status, b.status], [202, 202]);
      assert.equal((await request(s.base, 'POST', '/predictions/qb/cancel')).status, 200);
      const qb = await request(s.base, 'GET', '/predictions/qb');
      assert.equal(qb.body.status, 'canceled');
      assert.equal(qb.body.started_at, null, 'it never started');
      await pollUntil(s.base, '/predictions/qa', (x) => x.status === 'succeeded');
      const big = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x'.repeat(300 * 1024) } });
      assert.equal(big.status, 413);
      // a chunked body without Content-Length is capped too
      const res = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${s.base}/predictions`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }, (r) => { r.resume(); resolve(r.statusCode ?? 0); });
        req.on('error', reject);
        for (let i = 0; i < 40; i++) req.write('x'.repeat(10_000));
        req.end();
      });
      assert.equal(res, 413);
      const after = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.1 } });
      assert.equal(after.body.status, 'succeeded');
    } finally {
      await s.app.close();
    }
  });

  it('--allow-url-inputs: fetched, but loopback and private addresses are refused after DNS resolution', async () => {
    const files = await recorder((_r, res) => {
      res.writeHead(200, { 'Content-Type': 'audio/wav' });
      res.end(Buffer.from(encodeWav([tones(0.3, [60])], 32000)));
    });
    const strict = await startServer({ allowUrlInputs: true });
    const lax = await startServer({ allowUrlInputs: true, allowPrivateAddresses: true });
    try {
      const port = new URL(files.base).port;
      for (const url of [`${files.base}/a.wav`, `http://localhost:${port}/a.wav`, `http://[::1]:${port}/a.wav`, 'http://10.1.2.3/a.wav', 'http://169.254.169.254/latest/meta-data', `http://0x7f000001:${port}/a.wav`]) {
        const r = await request(strict.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: url, continuation: true, duration: 0.6 } });
        assert.equal(r.status, 422, url);
        assert.deepEqual((r.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'input_audio']);
        assert.match(String(r.body.error), /loopback|private|special-purpose|may not reach/, `${url}: ${String(r.body.error)}`);
      }
      assert.equal(files.received.length, 0, 'nothing reached the private server');
      const ok = await request(lax.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: `${files.base}/a.wav`, continuation: true, duration: 0.6 } });
      assert.equal(ok.body.status, 'succeeded', String(ok.body.error));
      assert.equal(files.received.length, 1);
    } finally {
      await strict.app.close();
      await lax.app.close();
      await files.close();
    }
  });

  it('webhook and output_file_prefix reach public addresses only, unless --allow-private-webhooks', async () => {
    const hook = await recorder();
    const strict = await startServer();
    try {
      const port = new URL(hook.base).port;
      for (const [field, url] of [
        ['webhook', `http://127.0.0.1:${port}/hook`], ['webhook', `http://localhost:${port}/hook`], ['webhook', `http://[::1]:${port}/`],
        ['webhook', 'http://169.254.169.254/latest/meta-data/'], ['output_file_prefix', `http://127.0.0.1:${port}/up/`], ['output_file_prefix', `http://localhost:${port}/up/`],
      ]) {
        const r = await request(strict.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.1 }, [field]: url }, { Prefer: 'respond-async' });
        assert.equal(r.status, 422, `${field} ${url}`);
        const d = (r.body.detail as { loc: string[]; msg: string }[])[0];
        assert.deepEqual(d.loc, ['body', field]);
        assert.match(d.msg, /--allow-private-webhooks/);
      }
      await sleep(100);
      assert.equal(hook.received.length, 0, 'nothing was sent to the private address');
    } finally {
      await strict.app.close();
      await hook.close();
    }
  });

  it('--upload-url: raw PUT with the Content-Type; the output is the Location without its query', async () => {
    const up = await recorder((r, res) => {
      res.writeHead(201, { Location: `https://cdn.example.com/files${r.url}?signature=abc` });
      res.end();
    });
    const s = await startServer({ uploadUrl: `${up.base}/uploads` });
    try {
      const r = await request(s.base, 'POST', '/predictions', { id: 'up2', input: { prompt: 'x', duration: 0.3, output_format: 'mp3' } });
      assert.equal(r.body.status, 'succeeded', String(r.body.error));
      assert.equal(r.body.output, 'https://cdn.example.com/files/uploads/up2.mp3');
      assert.equal(up.received[0].method, 'PUT');
      assert.equal(up.received[0].url, '/uploads/up2.mp3');
      assert.equal(up.received[0].headers['content-type'], 'audio/mpeg');
      assert.equal(up.received[0].headers['x-prediction-id'], 'up2');
      // ids in the URL path follow the body's rule: no way out of the upload folder, into the query, or into the log
      up.received.length = 0;
      for (const [id, what] of [['..%2F..%2Fx', 'a path'], ['a%3Fsig%3D1', 'a query'], ['a%0AGET%20%2Fforged%20200', 'a log line'], ['.hidden', 'a dot file']]) {
        for (const kind of ['predictions', 'trainings']) {
          const bad = await request(s.base, 'PUT', `/${kind}/${id}`, { input: { prompt: 'x', duration: 0.1 } });
          assert.equal(bad.status, 422, `${kind} id with ${what}`);
          assert.deepEqual((bad.body.detail as { loc: string[] }[])[0].loc, ['path', `${kind.slice(0, -1)}_id`]);
          assert.equal((await request(s.base, 'GET', `/${kind}/${id}`)).status, 404);
          assert.equal((await request(s.base, 'POST', `/${kind}/${id}/cancel`)).status, 404);
        }
      }
      assert.equal(up.received.length, 0, 'nothing uploaded');
      assert.ok(!s.logs.some((l) => /^GET \/forged/.test(l)), 'no forged log line');
    } finally {
      await s.app.close();
      await up.close();
    }
  });

  it('a melody model follows the melody of input_audio (no continuation needed), its stems by default', async () => {
    // melody stems are on in the server as in Cog: the small random Demucs of test/fixtures/demucs stands in for htdemucs
    const s = await startServer({ model: TINY_MELODY, demucs: join(FIXTURES, 'demucs', 'melody44k.th') });
    try {
      const schema = await request(s.base, 'GET', '/openapi.json');
      const props = ((schema.body.components as { schemas: Record<string, { properties: Record<string, { description: string }> }> }).schemas.Input.properties);
      assert.match(props.input_audio.description, /mimic the audio file's melody/);
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', input_audio: wavDataUri(0.4), duration: 1 } });
      assert.equal(r.body.status, 'succeeded', String(r.body.error));
      assert.match(String(r.body.logs), /separating the melody \(Demucs: vocals \+ other\)/);
      assert.equal(wavInfo(dataUriBytes(r.body.output).bytes).seconds, 1);
      const melodyOnly = await request(s.base, 'POST', '/predictions', { input: { input_audio: wavDataUri(0.3), duration: 0.5 } });
      assert.equal(melodyOnly.body.status, 'succeeded', 'input_audio alone is enough');
    } finally {
      await s.app.close();
    }
  });

  it('POST /shutdown answers 200 {} and stops the server (running jobs canceled), as Cog', async () => {
    let shutDown!: () => void;
    const stopped = new Promise<void>((r) => { shutDown = r; });
    const t = await startServer({ onShutdown: () => shutDown() });
    const running = request(t.base, 'POST', '/predictions', { id: 'before-shutdown', input: { prompt: 'x', duration: 60 } });
    await pollUntil(t.base, '/predictions/before-shutdown', (b) => /step/.test(String(b.logs)));
    assert.equal((await request(t.base, 'GET', '/shutdown')).status, 405);
    const r = await request(t.base, 'POST', '/shutdown');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {});
    await stopped;
    assert.equal(t.app.musicgen, null, 'the model was released');
    const out = await running.catch((e: Error) => e);
    assert.ok(out instanceof Error || out.body.status === 'canceled', 'the running prediction did not finish');
    await assert.rejects(fetch(`${t.base}/health-check`), 'no longer listening');
  });

  it('slow clients are cut off: a stalled body, a trickled request and slow headers get 408 and the connection closes', async () => {
    // no model needed: bodies are read before the model is asked for
    const { createMusicGenServer } = await import('../../src/server/app.js');
    const app = createMusicGenServer({ model: '/nonexistent/model/folder', log: () => undefined, bodyIdleTimeoutMs: 200, requestTimeoutMs: 1500, headersTimeoutMs: 600 });
    const { port } = await app.listen(0);
    /** Writes `parts` (one every `everyMs`) on a raw connection; resolves with what came back when it closed. */
    const raw = (parts: string[], everyMs: number): Promise<string> => new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      let i = 0;
      const next = (): void => {
        if (i < parts.length && !sock.destroyed) sock.write(parts[i++], () => setTimeout(next, everyMs));
      };
      sock.on('connect', next);
      sock.on('data', (d) => { got += d.toString(); });
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(got));
    });
    try {
      await app.ready;
      const head = 'POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n';
      const stalled = await raw([head, '{"input":'], 0);
      assert.match(stalled, /^HTTP\/1\.1 408 /, 'a body that stops');
      assert.match(stalled, /timed out/);
      const trickle = await raw([head, ...'{"input": {"prompt": "a slow client sending one byte at a time"}}'.split('')], 100);
      assert.match(trickle, /^HTTP\/1\.1 408 /, 'a body that never stops arriving, slowly');
      const slowHeaders = await raw(['GET /health-check HTTP/1.1\r\n', ...'Host: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.split('')], 100);
      assert.match(slowHeaders, /^HTTP\/1\.1 408 /, 'headers that never end');
      // a prompt body is still read
      const ok = await request(`http://127.0.0.1:${port}`, 'POST', '/predictions', { input: { prompt: 'x' } });
      assert.equal(ok.status, 503, 'read, then refused for the failed setup');
    } finally {
      await app.close();
    }
  });

  it('before setup finishes: STARTING and 503; a model that cannot load: SETUP_FAILED, still serving', async () => {
    const bad = await startServer({ model: '/nonexistent/model/folder' }).catch((e: Error) => e);
    assert.ok(bad instanceof Error && /setup failed/.test(bad.message));
    const { createMusicGenServer } = await import('../../src/server/app.js');
    const app = createMusicGenServer({ model: '/nonexistent/model/folder', log: () => undefined });
    const addr = await app.listen(0);
    const base = `http://127.0.0.1:${addr.port}`;
    try {
      await app.ready;
      const h = await request(base, 'GET', '/health-check');
      assert.equal(h.body.status, 'SETUP_FAILED');
      assert.equal((h.body.setup as Record<string, unknown>).status, 'failed');
      const p = await request(base, 'POST', '/predictions', { input: { prompt: 'x' } });
      assert.equal(p.status, 503);
      assert.equal(p.body.status, 'failed');
    } finally {
      await app.close();
    }
    const slow = createMusicGenServer({ model: TINY, log: () => undefined });
    const a2 = await slow.listen(0);
    try {
      const h = await request(`http://127.0.0.1:${a2.port}`, 'GET', '/health-check');
      assert.ok(['STARTING', 'READY'].includes(String(h.body.status)));
      await slow.ready;
    } finally {
      await slow.close();
    }
  });
});

describe('server: pieces', () => {
  it('isPublicAddress', () => {
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fe80::1', 'fc00::1', 'fd12::1', '::ffff:127.0.0.1', '::ffff:7f00:1', 'ff02::1', 'not an ip']) {
      assert.equal(isPublicAddress(a), false, a);
    }
    for (const a of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(isPublicAddress(a), true, a);
  });

  it('the guarded DNS lookup refuses names of private addresses and answers both callback shapes', async () => {
    const look = (host: string, all: boolean): Promise<unknown> => new Promise((resolve, reject) => {
      guardedLookup(host, { all } as Parameters<typeof guardedLookup>[1], (err: Error | null, a: unknown) => (err ? reject(err) : resolve(a)));
    });
    await assert.rejects(look('localhost', true), /may not reach/);
    await assert.rejects(look('localhost', false), /may not reach/);
    await assert.rejects(look('127.0.0.1', false), /may not reach/);
    assert.deepEqual(await look('8.8.8.8', true), [{ address: '8.8.8.8', family: 4 }]);
    assert.equal(await look('8.8.8.8', false), '8.8.8.8');
  });

  it('the OpenAPI 3.0 check finds what 3.0 does not allow', () => {
    const doc = (schema: Record<string, unknown>): unknown => ({
      openapi: '3.0.2', info: { title: 'Cog', version: '1' },
      paths: { '/p/{id}': { put: { parameters: [{ name: 'id', in: 'path', schema: { type: 'string' } }], responses: { 200: { description: 'ok' } } } } },
      components: { schemas: { Input: { type: 'object', properties: { d: schema } } } },
    });
    const found = (schema: Record<string, unknown>): string => openApi30Problems(doc(schema)).join('\n');
    assert.match(found({ type: 'number' }), /parameters\[0\]\.required: must be true/);
    assert.match(found({ type: 'number', exclusiveMinimum: 0 }), /d\.exclusiveMinimum: must be a boolean/);
    assert.match(found({ type: ['number', 'null'] }), /d\.type: must be one of/);
    assert.match(found({ type: 'integer', default: 0.5 }), /d\.default: 0\.5 is not of type integer/);
    assert.match(found({ allOf: [{ $ref: '#/components/schemas/Missing' }] }), /does not resolve/);
    assert.match(found({ type: 'string', const: 'x' }), /d\.const: not a field/);
  });

  it('sending to a client\'s URL: the address rule on connecting (a name checked when it resolves), no redirects followed', async () => {
    const target = await recorder();
    const redirector = await recorder((_r, res) => {
      res.writeHead(307, { Location: `${target.base}/elsewhere` });
      res.end();
    });
    try {
      const port = new URL(target.base).port;
      const body = '{}';
      // a name that resolves to loopback when the request is sent (as after a DNS rebinding)
      await assert.rejects(sendToClientUrl(`http://localhost:${port}/x`, { method: 'POST', headers: {}, body, who: 'webhooks' }),
        (e: Error) => e instanceof FileInputError && /localhost resolves to .*which webhooks may not reach/.test(e.message));
      await assert.rejects(sendToClientUrl(`http://127.0.0.1:${port}/x`, { method: 'PUT', headers: {}, body, who: 'output_file_prefix uploads' }), /output_file_prefix uploads may not reach/);
      const lines: string[] = [];
      const sender = new WebhookSender(`http://localhost:${port}/hook`, new Set(['completed']), new AbortController().signal, (l) => lines.push(l));
      await sender.sendTerminal({ status: 'succeeded' });
      assert.equal(target.received.length, 0);
      assert.match(lines.join('\n'), /may not reach.*not sent/);
      // allowed private addresses: sent, but a redirect is the answer, not followed
      const r = await sendToClientUrl(`${redirector.base}/hook`, { method: 'POST', headers: {}, body, who: 'webhooks', allowPrivateAddresses: true });
      assert.equal(r.status, 307);
      assert.equal(redirector.received.length, 1);
      assert.equal(target.received.length, 0, 'the redirect was not followed');
    } finally {
      await target.close();
      await redirector.close();
    }
  });

  it('parseDataUri', () => {
    assert.deepEqual(Array.from(parseDataUri('data:audio/wav;base64,AAEC').bytes), [0, 1, 2]);
    assert.equal(parseDataUri('data:Audio/WAV;base64,AAEC').mediaType, 'audio/wav');
    assert.equal(new TextDecoder().decode(parseDataUri('data:,hello%20world').bytes), 'hello world');
    assert.throws(() => parseDataUri('data:audio/wav;base64,AAEC', 2), /larger than 2 bytes/);
    assert.throws(() => parseDataUri('nope'), /data: URI/);
  });

  it('safeJoin', () => {
    assert.equal(safeJoin('/m', 'config.json', true), '/m/config.json');
    for (const bad of ['../x', '%2e%2e/x', '.env', 'a/b', 'a%2Fb', '%00', '']) assert.equal(safeJoin('/m', bad, true), null, bad);
    assert.equal(safeJoin('/w', 'chunks/a.js'), '/w/chunks/a.js');
  });
});
