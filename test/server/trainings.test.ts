// POST /trainings: the fine-tuner (src/train/loop.ts) on a dataset tarball sent as a data URI, answering Cog's
// TrainingOutput `{weights}` with the model folder as a tarball that loads and generates; bad datasets (422),
// cancel, idempotent PUT, and the served model left untouched.

import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { encodeWav } from '../../src/audio/encode.js';
import { MusicGen } from '../../src/pipeline.js';
import { startServer, request, pollUntil, tones, dataUriBytes, type Running } from './util.js';

async function datasetUri(files: Record<string, Uint8Array | string>, gzip = false): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'server-dataset-'));
  try {
    for (const [name, content] of Object.entries(files)) await fsp.writeFile(join(dir, name), content);
    const file = join(dir, gzip ? 'd.tar.gz' : 'd.tar');
    await tar.c({ cwd: dir, file, gzip }, Object.keys(files));
    return `data:${gzip ? 'application/gzip' : 'application/x-tar'};base64,${(await fsp.readFile(file)).toString('base64')}`;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

describe('server: trainings', function () {
  let s: Running;
  let dataset: string;
  before(async () => {
    s = await startServer({ maxDatasetBytes: 4 * 2 ** 20 }); // --max-dataset-mb 4
    dataset = await datasetUri({
      'piano.wav': encodeWav([tones(1.5, [60, 64, 67, 72])], 32000),
      'piano.txt': 'calm ambient piano\n',
      'bass.wav': encodeWav([tones(1.2, [36, 43])], 44100),
      'bass.txt': 'deep bass line',
    }, true);
  });
  after(async () => {
    await s?.app.close();
  });

  it('POST /trainings fine-tunes and answers {weights: data:application/x-tar;…}, a model folder that loads and generates', async () => {
    const before = await request(s.base, 'POST', '/predictions', { input: { prompt: 'calm ambient piano', duration: 0.5, seed: 3 } });
    const r = await request(s.base, 'POST', '/trainings', { input: { dataset_path: dataset, epochs: 2, lr: 1e-3, batch_size: 1, seed: 1, chunk_seconds: 1 } });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 400));
    assert.equal(r.body.status, 'succeeded', String(r.body.error));
    assert.match(String(r.body.logs), /dataset: 2 clip\(s\)/);
    assert.match(String(r.body.logs), /step \d+ of \d+: epoch 2, loss/);
    const out = r.body.output as { weights: string };
    const { mediaType, bytes } = dataUriBytes(out.weights);
    assert.equal(mediaType, 'application/x-tar');
    const dir = await fsp.mkdtemp(join(tmpdir(), 'server-weights-'));
    try {
      await fsp.writeFile(join(dir, 'w.tar'), bytes);
      const names: string[] = [];
      await tar.t({ file: join(dir, 'w.tar'), onReadEntry: (e) => { names.push(e.path); } });
      for (const n of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'train_log.jsonl', 'training_args.json']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
      assert.ok(!names.some((n) => n.startsWith('checkpoint-') || n.startsWith('cache')), 'no checkpoints or caches');
      const model = join(dir, 'model');
      await fsp.mkdir(model);
      await tar.x({ file: join(dir, 'w.tar'), cwd: model });
      const log = (await fsp.readFile(join(model, 'train_log.jsonl'), 'utf8')).trim().split('\n');
      assert.ok(log.length >= 2);
      const mg = await MusicGen.load(model);
      try {
        const g = await mg.generate({ prompt: 'calm ambient piano', duration: 0.3, seed: 1 });
        assert.equal(g.audio[0][0].length, 0.3 * 32000);
      } finally {
        mg.dispose();
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
    // the served model is untouched by the training
    const after = await request(s.base, 'POST', '/predictions', { input: { prompt: 'calm ambient piano', duration: 0.5, seed: 3 } });
    assert.equal(after.body.output, before.body.output);
  });

  it('LoRA training over an async request with PUT: adapters in the tarball; the same id is not trained twice while it runs', async () => {
    const a = await request(s.base, 'PUT', '/trainings/lora-1', { input: { dataset_path: dataset, epochs: 1, lora_rank: 2, chunk_seconds: 1 } }, { Prefer: 'respond-async' });
    assert.equal(a.status, 202);
    assert.equal(a.body.status, 'starting');
    const again = await request(s.base, 'PUT', '/trainings/lora-1', { input: { dataset_path: dataset, epochs: 1, lora_rank: 2, chunk_seconds: 1 } });
    assert.equal(again.status, 200, 'a synchronous retry waits for the same training');
    assert.equal(again.body.status, 'succeeded', String(again.body.error));
    assert.equal(again.body.created_at, a.body.created_at);
    const { bytes } = dataUriBytes((again.body.output as { weights: string }).weights);
    const dir = await fsp.mkdtemp(join(tmpdir(), 'server-lora-'));
    try {
      await fsp.writeFile(join(dir, 'w.tar'), bytes);
      const names: string[] = [];
      await tar.t({ file: join(dir, 'w.tar'), onReadEntry: (e) => { names.push(e.path); } });
      assert.ok(names.includes('adapter_model.safetensors') && names.includes('adapter_config.json') && names.includes('model.safetensors'), names.join(', '));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('bad datasets: 422 naming dataset_path', async () => {
    const missing = await request(s.base, 'POST', '/trainings', { input: { epochs: 1 } });
    assert.equal(missing.status, 422);
    assert.deepEqual((missing.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'dataset_path']);
    assert.match((missing.body.detail as { msg: string }[])[0].msg, /field required/);
    const badEpochs = await request(s.base, 'POST', '/trainings', { input: { dataset_path: dataset, epochs: 0 } });
    assert.deepEqual((badEpochs.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'epochs']);
    const noCaption = await datasetUri({ 'a.wav': encodeWav([tones(1, [60])], 32000) });
    const r1 = await request(s.base, 'POST', '/trainings', { input: { dataset_path: noCaption } });
    assert.equal(r1.status, 422);
    assert.equal(r1.body.status, 'failed');
    assert.deepEqual((r1.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'dataset_path']);
    assert.match(String(r1.body.error), /no caption/);
    const notTar = await request(s.base, 'POST', '/trainings', { input: { dataset_path: 'data:application/x-tar;base64,aGVsbG8gd29ybGQ=' } });
    assert.equal(notTar.status, 422);
    assert.match(String(notTar.body.error), /dataset_path/);
    const path = await request(s.base, 'POST', '/trainings', { input: { dataset_path: '/etc/passwd' } });
    assert.equal(path.status, 422);
    // a small .tar.gz inflating past --max-dataset-mb (8 MiB, mostly zeros, beside a clip)
    const junk = Buffer.alloc(8 * 2 ** 20);
    for (let i = 0; i < junk.length; i += 256) junk[i] = (i * 2654435761) >>> 24;
    const bomb = await datasetUri({ 'junk.bin': junk, 'a.wav': encodeWav([tones(0.5, [60])], 32000), 'a.txt': 'a tone' }, true);
    assert.ok(bomb.length < 2 ** 20);
    const r2 = await request(s.base, 'POST', '/trainings', { input: { dataset_path: bomb } });
    assert.equal(r2.status, 422);
    assert.deepEqual((r2.body.detail as { loc: string[] }[])[0].loc, ['body', 'input', 'dataset_path']);
    assert.match(String(r2.body.error), /more than 4 MiB of files once decompressed, the limit \(the server's --max-dataset-mb raises it\)/);
  });

  it('POST /trainings/{id}/cancel stops a run between steps', async () => {
    const r = await request(s.base, 'POST', '/trainings', { id: 'long-train', input: { dataset_path: dataset, epochs: 10000, chunk_seconds: 1 } }, { Prefer: 'respond-async' });
    assert.equal(r.status, 202);
    await pollUntil(s.base, '/trainings/long-train', (b) => /step 3 of/.test(String(b.logs)), 120_000);
    const c = await request(s.base, 'POST', '/trainings/long-train/cancel');
    assert.equal(c.status, 200);
    const done = await pollUntil(s.base, '/trainings/long-train', (b) => b.status !== 'processing', 60_000);
    assert.equal(done.status, 'canceled');
    assert.equal(done.output, null);
    const ok = await request(s.base, 'POST', '/predictions', { input: { prompt: 'x', duration: 0.2 } });
    assert.equal(ok.body.status, 'succeeded');
  });
});
