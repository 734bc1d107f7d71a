// A transformers model folder with PyTorch weights (`pytorch_model.bin`, sharded by `pytorch_model.bin.index.json`)
// loads like a safetensors one: test/fixtures/models/text-mono-bin holds text-mono's weights in f16, shard 1 in
// torch.save's zip format and shard 2 in its legacy format (tools/fixtures/pytorch_reader.py). Its probe outputs
// must equal, bit for bit, those of the same f16 weights stored as model.safetensors.

import assert from 'node:assert/strict';
import { copyFile, cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, Fixture, gpu } from '../helpers.js';
import { probe } from '../../src/cli/probe.js';
import { dirFolder } from '../../src/io/file-source.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { urlFolder } from '../../src/io/url-source.js';
import { SafetensorsCheckpoint, encodeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { f32ToF16Bits } from '../../src/dtype.js';

const MODELS = join(FIXTURES, 'models');

/** text-mono's small files beside `weights` (file name → source path) in a fresh folder. */
async function folderWith(weights: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mg-torch-'));
  for (const f of await readdir(join(MODELS, 'text-mono'))) {
    if (!f.endsWith('.safetensors')) await copyFile(join(MODELS, 'text-mono', f), join(dir, f));
  }
  for (const [name, src] of Object.entries(weights)) {
    if (typeof src === 'string') await copyFile(src, join(dir, name));
    else await writeFile(join(dir, name), src);
  }
  return dir;
}

describe('model folders with pytorch_model.bin', function () {
  this.timeout(300_000);
  let binDir: string;
  let f16Dir: string;
  before(async () => {
    await gpu();
    binDir = await folderWith({});
    await cp(join(MODELS, 'text-mono-bin'), binDir, { recursive: true });
    // The same weights rounded to f16 as safetensors, the format whose loading is already proven.
    const st = await SafetensorsCheckpoint.open(dirFolder(join(MODELS, 'text-mono')));
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of st.names()) {
      const v = await st.readF32(name);
      tensors[name] = { dtype: 'F16', shape: [...st.info(name).shape], data: Uint16Array.from(v, f32ToF16Bits) };
    }
    await st.close();
    f16Dir = await folderWith({ 'model.safetensors': encodeSafetensors(tensors) });
  });
  after(async () => {
    await rm(binDir, { recursive: true, force: true });
    await rm(f16Dir, { recursive: true, force: true });
  });

  it('opens the sharded PyTorch checkpoint with the same tensors and bytes as the safetensors one', async () => {
    const bin = await openCheckpoint(dirFolder(binDir));
    const st = await openCheckpoint(dirFolder(f16Dir));
    assert.match(bin.label, /pytorch_model\.bin\.index\.json$/);
    assert.deepEqual(bin.names().sort(), st.names().sort());
    for (const name of st.names()) {
      assert.deepEqual(bin.info(name), st.info(name), name);
      assert.deepEqual(await bin.readRaw(name), await st.readRaw(name), name);
    }
    await bin.close();
    await st.close();
  });

  it('gives the same probe outputs as the safetensors folder, exactly', async () => {
    const inputs = await Fixture.open('probe/text-mono.inputs.safetensors');
    const a = await probe(binDir, inputs.file);
    const b = await probe(f16Dir, inputs.file);
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
    for (const name of ['text.hidden', 'encodec.codes', 'encodec.decoded', 'lm.logits', 'train.loss']) assert.ok(a[name], name);
    for (const name of Object.keys(b)) assert.deepEqual(a[name]!.data, b[name]!.data, name);
    await inputs.file.close();
  });

  it('opens the same checkpoint over HTTP range requests (no model.safetensors there: a 404, then the PyTorch index)', async () => {
    const files = new Map<string, Uint8Array<ArrayBuffer>>();
    for (const f of await readdir(binDir)) files.set(f, new Uint8Array(await readFile(join(binDir, f))));
    const requests: string[] = [];
    // An in-memory server: HEAD gives the size, GET honours one Range, a missing file is a 404.
    const fetchFn = (async (url: string | URL | Request, init?: RequestInit) => {
      const name = new URL(String(url)).pathname.split('/').pop()!;
      const body = files.get(name);
      const range = new Headers(init?.headers).get('range');
      requests.push(`${init?.method ?? 'GET'} ${name}${range ? ` ${range}` : ''}`);
      if (!body) return new Response(null, { status: 404 });
      if (init?.method === 'HEAD') return new Response(null, { status: 200, headers: { 'content-length': String(body.length) } });
      const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
      if (!m) return new Response(body, { status: 200 });
      const [first, last] = [Number(m[1]), Number(m[2])];
      return new Response(body.subarray(first, last + 1), { status: 206, headers: { 'content-range': `bytes ${first}-${last}/${body.length}` } });
    }) as typeof fetch;
    const http = await openCheckpoint(urlFolder('http://models.test/text-mono-bin/', { fetch: fetchFn }));
    const disk = await openCheckpoint(dirFolder(binDir));
    assert.deepEqual(http.names().sort(), disk.names().sort());
    for (const name of ['decoder.model.decoder.layers.1.fc2.weight', 'audio_encoder.quantizer.layers.0.codebook.embed']) {
      assert.deepEqual(await http.readRaw(name), await disk.readRaw(name), name);
    }
    assert.ok(requests.includes('HEAD model.safetensors') && requests.some((r) => r.startsWith('GET pytorch_model-00002-of-00002.bin bytes=')));
    await http.close();
    await disk.close();
  });

  it('finds a single pytorch_model.bin, and prefers safetensors when both are there', async () => {
    const dir = await folderWith({ 'pytorch_model.bin': join(FIXTURES, 'io', 'torch', 'tensors.legacy.pt') });
    const single = await openCheckpoint(dirFolder(dir));
    assert.match(single.label, /pytorch_model\.bin$/);
    assert.ok(single.has('shared.t') && single.info('bf16').dtype === 'BF16');
    await single.close();
    await copyFile(join(MODELS, 'text-mono', 'model.safetensors'), join(dir, 'model.safetensors'));
    const both = await openCheckpoint(dirFolder(dir));
    assert.match(both.label, /model\.safetensors$/);
    await both.close();
    await rm(join(dir, 'model.safetensors'));
    await rm(join(dir, 'pytorch_model.bin'));
    await assert.rejects(openCheckpoint(dirFolder(dir)), /no weights \(looked for model\.safetensors\.index\.json, model\.safetensors, pytorch_model\.bin\.index\.json, pytorch_model\.bin\)/);
    await rm(dir, { recursive: true });
  });
});
