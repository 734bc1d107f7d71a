// LoRA adapters applied at load (src/model/adapter.ts): a few LoRA steps of finetune on the tiny model, then
// `MusicGen.load(base, { adapter })` and `musicgen generate --adapter` must give the codes of the trainer's own
// adapted model (its Linears running W + s·B·A) for the same seed, and of the merged folder finetune wrote, while
// the base alone gives others; adapters that do not fit the base are refused naming the tensor.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu, tones } from '../helpers.js';
import { Tensor } from '../../src/tensor.js';
import { encodeWav } from '../../src/audio/encode.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { dirFolder, openSafetensorsFile } from '../../src/io/file-source.js';
import { MusicGen, type GenerateRequest } from '../../src/pipeline.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { readDataset, prepareTrainingData } from '../../src/train/dataset.js';
import { finetuneFolder as finetune } from '../../src/train/folder.js';
import { Lora, LoraAdapter, LORA_TARGETS } from '../../src/train/lora.js';
import { serveFile } from '../../src/server/static.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEXT_MODEL = join(REPO, 'weights', 'tiny-musicgen');
const MELODY_MODEL = join(REPO, 'weights', 'tiny-musicgen-melody');
const REQ: GenerateRequest = { prompt: 'calm ambient piano', duration: 0.4, seed: 21, topK: 50, normalization: 'none' };

/** `musicgen generate` run from the sources; resolves with the exit code, the output and the codes it wrote. */
function cli(args: string[], codesOut: string): Promise<{ code: number | null; output: string; codes: number[][] | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'generate', ...args, '--codes-out', codesOut],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      void fsp.readFile(codesOut, 'utf8').then((t) => (JSON.parse(t) as { codes: number[][] }).codes, () => null)
        .then((codes) => resolve({ code, output, codes }));
    });
  });
}

describe('LoRA adapters at load', function () {
  this.timeout(300_000);
  let tmp: string;
  let out: string;
  /** The codes of the trainer's adapted model (first test). */
  let trainedCodes: Int32Array[] | null = null;

  before(async () => {
    await gpu();
    tmp = await fsp.mkdtemp(join(tmpdir(), 'musicgen-adapter-'));
    const data = join(tmp, 'data');
    await fsp.mkdir(data);
    await fsp.writeFile(join(data, 'piano.wav'), encodeWav([tones(1, [60, 64, 67, 72])], 32000));
    await fsp.writeFile(join(data, 'piano.txt'), 'calm ambient piano\n');
    // a few LoRA steps with a large rate, so that B moves well away from 0
    out = join(tmp, 'out');
    const model = await MusicgenModel.load(dirFolder(TEXT_MODEL));
    try {
      const td = await prepareTrainingData(model, await readDataset(data), { modelFolder: dirFolder(TEXT_MODEL) });
      await finetune({
        model, source: { folder: dirFolder(TEXT_MODEL), dir: TEXT_MODEL }, modelName: TEXT_MODEL, data: td, outputDir: out,
        options: { epochs: 3, lr: 3e-2, batchSize: 1, gradAccum: 1, warmup: 0, schedule: 'constant', saveSteps: 0, condDropout: 0, loraRank: 4, loraAlpha: 8, seed: 3 },
      });
    } finally {
      model.dispose();
    }
  });
  after(async () => {
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('generates the codes of the trainer\'s adapted model and of the merged folder; the base alone differs', async () => {
    // the trainer's model: the base with its Linears wrapped by the trained adapters (W + s·B·A on every use)
    const base = await MusicGen.load(TEXT_MODEL);
    const file = await openSafetensorsFile(join(out, 'adapter_model.safetensors'));
    const adapters: LoraAdapter[] = [];
    let plain, trained;
    try {
      const targets = new Set<string>(LORA_TARGETS);
      for (const linear of base.model.lm.layers.flatMap((l) => l.linears()).filter((l) => targets.has(l.path.split('.').pop()!))) {
        const key = (x: 'A' | 'B'): string => `base_model.model.${linear.path}.lora_${x}.weight`;
        const t = async (x: 'A' | 'B'): Promise<Tensor> => Tensor.from(await file.readF32(key(x)), [...file.info(key(x)).shape], 'f32');
        adapters.push(new LoraAdapter(linear, await t('A'), await t('B'), 8 / 4));
      }
      assert.equal(adapters.length, 2 * 10, 'every adapted matrix of the 2 layers');
      assert.equal(file.names().length, 2 * adapters.length, 'the file holds exactly those pairs');
      plain = await base.generate(REQ);
      for (const a of adapters) a.linear.adapter = a;
      trained = await base.generate(REQ);
    } finally {
      for (const a of adapters) a.linear.adapter = null;
      new Lora(adapters, 4, 8).dispose();
      await file.close();
      base.dispose();
    }
    assert.notDeepEqual(trained.codes, plain.codes, 'the adapters change what the model generates');
    trainedCodes = trained.codes;

    const withAdapter = await MusicGen.load(TEXT_MODEL, { adapter: join(out, 'adapter_model.safetensors') });
    try {
      assert.deepEqual((await withAdapter.generate(REQ)).codes, trained.codes, 'loaded with the adapter = the trainer\'s adapted model');
    } finally {
      withAdapter.dispose();
    }
    const merged = await MusicGen.load(out);
    try {
      assert.deepEqual((await merged.generate(REQ)).codes, trained.codes, 'the merged folder finetune wrote generates the same');
    } finally {
      merged.dispose();
    }

    // the CLI, with the adapter named by its folder
    const args = ['--model', TEXT_MODEL, '--prompt', String(REQ.prompt), '--duration', String(REQ.duration), '--seed', String(REQ.seed),
      '--top-k', String(REQ.topK), '--normalization', 'none', '--output', join(tmp, 'cli.wav')];
    const r = await cli([...args, '--adapter', out], join(tmp, 'cli.json'));
    assert.equal(r.code, 0, r.output);
    const K = 4;
    const rows = (c: Int32Array): number[][] => Array.from({ length: K }, (_, k) => Array.from(c.subarray((k * c.length) / K, ((k + 1) * c.length) / K)));
    assert.deepEqual(r.codes, rows(trained.codes[0]), 'musicgen generate --adapter');
  });

  it('an adapter by URL, as a page loads it: the same codes', async () => {
    assert.ok(trainedCodes, 'the first test ran');
    const server = http.createServer((req, res) => {
      void serveFile(req, res, join(out, new URL(req.url ?? '/', 'http://x').pathname)).then((found) => {
        if (!found) res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const mg = await MusicGen.load(TEXT_MODEL, { adapter: `${base}/adapter_model.safetensors` });
      try {
        assert.deepEqual((await mg.generate(REQ)).codes, trainedCodes);
      } finally {
        mg.dispose();
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses an adapter that does not fit the base, naming the tensor and shapes', async () => {
    // the text model's adapter on the melody model, which has no cross-attention
    await assert.rejects(MusicGen.load(MELODY_MODEL, { adapter: out }), /adapts decoder\.model\.decoder\.layers\.\d\.encoder_attn\.\w+_proj, which the model lacks/);
    const cfg = JSON.parse(await fsp.readFile(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const W = 'base_model.model.decoder.model.decoder.layers.0.fc1';
    const write = (shapes: [number[], number[]], extra: Record<string, number[]> = {}): Uint8Array => encodeSafetensors(Object.fromEntries(
      [[`${W}.lora_A.weight`, shapes[0]], [`${W}.lora_B.weight`, shapes[1]], ...Object.entries(extra)].map(([n, s]) => [n, { dtype: 'F32' as const, shape: s as number[], data: new Float32Array((s as number[]).reduce((a, b) => a * b, 1)) }]),
    ));
    const bytes = (b: Uint8Array) => ({ size: async () => b.length, read: async (o: number, n: number) => b.slice(o, o + n) as Uint8Array<ArrayBuffer>, label: 'crafted.safetensors' });
    // fc1's shape read from the base, so that the test states the rule rather than numbers
    const ffn = (await openSafetensorsFile(join(TEXT_MODEL, 'model.safetensors')).then(async (f) => {
      try { return f.info('decoder.model.decoder.layers.0.fc1.weight').shape; } finally { await f.close(); }
    }));
    const [o, i] = ffn;
    await assert.rejects(MusicGen.load(TEXT_MODEL, { adapter: { weights: bytes(write([[4, i + 1], [o, 4]])), config: cfg } }),
      new RegExp(`lora_A \\[4, ${i + 1}\\] and lora_B \\[${o}, 4\\] for decoder\\.model\\.decoder\\.layers\\.0\\.fc1\\.weight \\[${o}, ${i}\\]`));
    await assert.rejects(MusicGen.load(TEXT_MODEL, { adapter: { weights: bytes(write([[2, i], [o, 2]])), config: cfg } }), /rank 2, but adapter_config\.json says r = 4/);
    await assert.rejects(MusicGen.load(TEXT_MODEL, { adapter: { weights: bytes(write([[4, i], [o, 4]], { [`${W}.bias`]: [o] })), config: cfg } }), /1 tensors are not LoRA pairs .*layers\.0\.fc1\.bias/);
    await assert.rejects(MusicGen.load(TEXT_MODEL, { adapter: { weights: bytes(write([[4, i], [o, 4]])), config: { ...cfg, peft_type: 'IA3' } } }), /only LORA adapters/);
    // no adapter_config.json beside the file: finetune's file keeps it in its metadata, a file without it is refused
    const lone = join(tmp, 'lone');
    await fsp.mkdir(lone);
    await fsp.copyFile(join(out, 'adapter_model.safetensors'), join(lone, 'adapter_model.safetensors'));
    const alone = await MusicGen.load(TEXT_MODEL, { adapter: join(lone, 'adapter_model.safetensors') });
    alone.dispose();
    await fsp.writeFile(join(lone, 'adapter_model.safetensors'), write([[4, i], [o, 4]]));
    await assert.rejects(MusicGen.load(TEXT_MODEL, { adapter: join(lone, 'adapter_model.safetensors') }), /no adapter_config\.json beside it and none in its metadata/);
  });
});
