// Fine-tuning end to end on tiny clips with the tiny models (weights/tiny-musicgen, tiny-musicgen-melody): the
// dataset readers and their errors, the loss going down, an output folder that loads and generates with every
// frozen tensor copied byte for byte, LoRA (gradients, merge, PEFT files), a divergence stop, and `npm run
// finetune` killed after a checkpoint and resumed, which must give the uninterrupted run's log and model exactly.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { assertClose, gpu, tones } from '../helpers.js';
import { Tensor, tidy } from '../../src/tensor.js';
import * as ops from '../../src/ops.js';
import { encodeWav } from '../../src/audio/encode.js';
import { dirFolder, openSafetensorsFile } from '../../src/io/file-source.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import { generateCodes } from '../../src/model/generate.js';
import { Rng, type TrainingData } from '../../src/train/data.js';
import { readDataset, prepareTrainingData } from '../../src/train/dataset.js';
import { lmLoss, trainingConditioning, TrainingDiverged, type TrainOptions } from '../../src/train/loop.js';
import { finetuneFolder as finetune } from '../../src/train/folder.js';
import { delayedLabels, shiftRight, labelsByCodebook } from '../../src/model/pattern.js';
import { trainingProbe } from '../../src/cli/probe.js';
import { Lora } from '../../src/train/lora.js';
import { InputError } from '../../src/inputs.js';
import { backward, noGrad } from '../../src/autograd.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEXT_MODEL = join(REPO, 'weights', 'tiny-musicgen');
const MELODY_MODEL = join(REPO, 'weights', 'tiny-musicgen-melody');
const SR = 32000;


const BASE: TrainOptions = {
  epochs: 6, lr: 1e-3, batchSize: 1, gradAccum: 1, warmup: 0, schedule: 'constant', saveSteps: 0,
  condDropout: 0.2, loraRank: 0, seed: 7,
};

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

async function readLog(dir: string): Promise<{ step: number; epoch: number; loss: number; lr: number }[]> {
  const text = await fsp.readFile(join(dir, 'train_log.jsonl'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l) as { step: number; epoch: number; loss: number; lr: number });
}

/** Every tensor of `src` is in `out` with its dtype and shape; those not in `changed` have identical bytes. */
async function checkCopied(src: string, out: string, changed: (name: string) => boolean): Promise<{ same: number; replaced: string[] }> {
  const a = await openSafetensorsFile(join(src, 'model.safetensors'));
  const b = await openSafetensorsFile(join(out, 'model.safetensors'));
  try {
    assert.deepEqual(b.names().sort(), a.names().sort(), 'the output has exactly the source tensors');
    let same = 0;
    const replaced: string[] = [];
    for (const name of a.names()) {
      assert.deepEqual(b.info(name), a.info(name), `${name}: dtype/shape`);
      const equal = Buffer.from(await a.readRaw(name)).equals(Buffer.from(await b.readRaw(name)));
      if (changed(name)) {
        if (!equal) replaced.push(name);
      } else {
        assert.ok(equal, `${name} must be copied byte for byte`);
        same++;
      }
    }
    return { same, replaced };
  } finally {
    await a.close();
    await b.close();
  }
}

/** A few sampled tokens from a loaded output folder, with guidance (the unconditional branch too). */
async function generates(dir: string, chroma?: Float32Array): Promise<void> {
  const model = await MusicgenModel.load(dirFolder(dir));
  try {
    const tok = model.tokenizer.encodeBatch(['calm ambient piano']);
    const ids = Tensor.from(tok.inputIds, [1, tok.length], 'i32');
    const mask = Tensor.from(tok.attentionMask, [1, tok.length], 'i32');
    const maskF = ops.castToF32(mask);
    const states = tidy(() => model.projectText(model.textHidden(ids, mask), maskF));
    const c = chroma ? Tensor.from(chroma, [1, chroma.length / 12, 12]) : undefined;
    const { codes, frames } = await generateCodes(model, { textStates: states, textMask: maskF, chroma: c, newTokens: 12 },
      { guidanceScale: 3, temperature: 1, topK: 50, topP: 0, seed: 3 });
    assert.equal(codes.length, 1);
    assert.equal(codes[0].length, model.lm.numCodebooks * frames);
    assert.ok(frames > 0 && codes[0].every((x) => x >= 0 && x < model.lm.cfg.vocab_size), 'codes in range');
    for (const t of [ids, mask, maskF, states, ...(c ? [c] : [])]) t.dispose();
  } finally {
    model.dispose();
  }
}

describe('fine-tuning', function () {
  this.timeout(300_000);
  let tmp: string;
  let dataset: string;
  let text: MusicgenModel;
  let textData: TrainingData;

  before(async () => {
    await gpu();
    tmp = await fsp.mkdtemp(join(tmpdir(), 'musicgen-train-'));
    dataset = join(tmp, 'data');
    await fsp.mkdir(join(dataset, 'sub'), { recursive: true });
    // two clips: one at 32 kHz, one at 44.1 kHz stereo in a subfolder (resampled and downmixed)
    await fsp.writeFile(join(dataset, 'piano.wav'), encodeWav([tones(1.5, [60, 64, 67, 72])], SR));
    await fsp.writeFile(join(dataset, 'piano.txt'), 'calm ambient piano\n');
    const b = tones(1.2, [50, 53, 57], 44100);
    await fsp.writeFile(join(dataset, 'sub', 'bass.wav'), encodeWav([b, b], 44100));
    await fsp.writeFile(join(dataset, 'sub', 'bass.txt'), '80s pop track with bassy drums and synth');
    text = await MusicgenModel.load(dirFolder(TEXT_MODEL));
    textData = await prepareTrainingData(text, await readDataset(dataset), { modelFolder: dirFolder(TEXT_MODEL) });
  });
  after(async () => {
    text?.dispose();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  describe('data', () => {
    it('reads a folder: every audio file with its caption', async () => {
      const items = await readDataset(dataset);
      assert.deepEqual(items.map((i) => [i.name, i.caption]), [
        ['piano.wav', 'calm ambient piano'], ['sub/bass.wav', '80s pop track with bassy drums and synth']]);
      assert.equal(textData.chunks.length, 2);
      assert.equal(textData.chunks[0].codes.length, 4 * textData.chunks[0].frames);
      assert.equal(textData.chunks[0].frames, 75); // 1.5 s at 50 frames/s
    });

    it('reads a .tar.gz the same way', async () => {
      const file = join(tmp, 'data.tar.gz');
      await tar.c({ gzip: true, file, cwd: dataset }, ['piano.wav', 'piano.txt', 'sub']);
      const fromTar = await readDataset(file);
      const fromDir = await readDataset(dataset);
      assert.deepEqual(fromTar.map((i) => [i.name, i.caption]), fromDir.map((i) => [i.name, i.caption]));
      fromTar.forEach((it, i) => assert.ok(Buffer.from(it.audio).equals(Buffer.from(fromDir[i].audio)), it.name));
    });

    it('cuts long clips into chunks of at most the chunk length', async () => {
      const data = await prepareTrainingData(text, await readDataset(dataset), { modelFolder: dirFolder(TEXT_MODEL), chunkSeconds: 0.6, minChunkSeconds: 0.25 });
      // 1.5 s → 0.6 + 0.6 + 0.3; 1.2 s → 0.6 + 0.6 (+ nothing)
      assert.deepEqual(data.chunks.map((c) => [c.id, c.frames]), [
        ['piano.wav#0', 30], ['piano.wav#1', 30], ['piano.wav#2', 15], ['sub/bass.wav#0', 30], ['sub/bass.wav#1', 30]]);
    });

    it('caches the codes and reuses them', async () => {
      const cacheFile = join(tmp, 'cache', 'dataset.safetensors');
      const first = await prepareTrainingData(text, await readDataset(dataset), { modelFolder: dirFolder(TEXT_MODEL), cacheFile });
      const second = await prepareTrainingData(text, await readDataset(dataset), { modelFolder: dirFolder(TEXT_MODEL), cacheFile });
      assert.equal(first.fromCache, false);
      assert.equal(second.fromCache, true);
      assert.equal(second.fingerprint, first.fingerprint);
      assert.deepEqual(second.chunks.map((c) => Array.from(c.codes)), first.chunks.map((c) => Array.from(c.codes)));
    });

    it('stops on a clip without caption, an unreadable file, or no clips, naming the files', async () => {
      const bad = join(tmp, 'bad');
      await fsp.mkdir(bad);
      await assert.rejects(readDataset(bad), /no audio files/);
      await fsp.writeFile(join(bad, 'a.wav'), encodeWav([tones(0.5, [60])], SR));
      await fsp.writeFile(join(bad, 'b.flac'), new Uint8Array(10));
      await fsp.writeFile(join(bad, 'b.txt'), 'x');
      await assert.rejects(readDataset(bad), /no caption.*a\.wav/);
      await fsp.writeFile(join(bad, 'a.txt'), 'a caption');
      const items = await readDataset(bad);
      await assert.rejects(prepareTrainingData(text, items, { modelFolder: dirFolder(TEXT_MODEL) }), /could not be read: b\.flac/);
      await assert.rejects(readDataset(join(tmp, 'nothing-here')), /no such file or folder/);
      // a corrupt archive is said to be one, not "empty"
      await fsp.writeFile(join(tmp, 'junk.tar'), new Uint8Array(3000).map((_, i) => (i * 7919) % 251));
      await assert.rejects(readDataset(join(tmp, 'junk.tar')), /cannot read the archive: it is corrupt or not a tar file/);
      const whole = join(tmp, 'whole.tar.gz');
      await tar.c({ gzip: true, file: whole, cwd: dataset }, ['piano.wav', 'piano.txt']);
      await fsp.writeFile(join(tmp, 'cut.tar.gz'), (await fsp.readFile(whole)).subarray(0, 200));
      await assert.rejects(readDataset(join(tmp, 'cut.tar.gz')), /cannot read the archive/);
    });
  });

  it('full fine-tuning of a text model: the loss goes down; the output loads and generates; T5 and EnCodec are copied byte for byte', async () => {
    const out = join(tmp, 'out-text');
    await finetune({ model: text, source: { folder: dirFolder(TEXT_MODEL), dir: TEXT_MODEL }, modelName: TEXT_MODEL, data: textData, outputDir: out, options: { ...BASE, epochs: 8 } });
    const log = await readLog(out);
    assert.equal(log.length, 16);
    assert.deepEqual(log.map((r) => r.step), Array.from({ length: 16 }, (_, i) => i + 1));
    assert.deepEqual(log.map((r) => r.epoch), Array.from({ length: 16 }, (_, i) => 1 + Math.floor(i / 2)));
    const first = mean(log.slice(0, 2).map((r) => r.loss));
    const last = mean(log.slice(-2).map((r) => r.loss));
    assert.ok(last < first - 0.5, `loss ${first} → ${last}`);
    const trained = (n: string): boolean => n.startsWith('decoder.') || n.startsWith('enc_to_dec_proj.');
    const { same, replaced } = await checkCopied(TEXT_MODEL, out, trained);
    assert.ok(same > 100, `${same} frozen tensors`);
    assert.ok(replaced.length >= 40, `${replaced.length} tensors trained`);
    for (const f of ['config.json', 'tokenizer.json', 'generation_config.json']) assert.ok(existsSync(join(out, f)), f);
    assert.ok(existsSync(join(out, 'checkpoint-16', 'trainer_state.safetensors')), 'the last checkpoint');
    assert.ok(!existsSync(join(out, 'checkpoint-14')), 'older checkpoints are removed');
    await generates(out);
    // the model's parameters are left as trained, without gradients
    assert.ok(text.parameters().every((p) => !p.requiresGrad && !p.grad));
  });

  it('a melody model trains on each chunk\'s chroma; the output loads and generates with a melody', async () => {
    const model = await MusicgenModel.load(dirFolder(MELODY_MODEL));
    try {
      const data = await prepareTrainingData(model, await readDataset(dataset), { modelFolder: dirFolder(MELODY_MODEL) });
      const chroma = data.chunks[0].chroma!;
      assert.equal(chroma.length, 235 * 12);
      // the piano clip's chroma follows its notes (C E G C: bins 0, 4, 7)
      const bins = new Set(Array.from({ length: 235 }, (_, r) => chroma.subarray(r * 12, r * 12 + 12).indexOf(1)));
      assert.ok([...bins].every((b) => [0, 4, 7].includes(b)), `chroma bins ${[...bins]}`);
      const out = join(tmp, 'out-melody');
      await finetune({ model, source: { folder: dirFolder(MELODY_MODEL), dir: MELODY_MODEL }, modelName: MELODY_MODEL, data, outputDir: out, options: { ...BASE, epochs: 6 } });
      const log = await readLog(out);
      assert.ok(mean(log.slice(-2).map((r) => r.loss)) < mean(log.slice(0, 2).map((r) => r.loss)) - 0.4, 'loss goes down');
      const { replaced } = await checkCopied(MELODY_MODEL, out, (n) => n.startsWith('decoder.') || n.includes('enc_to_dec_proj.'));
      assert.ok(replaced.includes('audio_enc_to_dec_proj.weight'), 'the chroma projection trains');
      await generates(out, chroma.subarray(0, 12 * 12));
    } finally {
      model.dispose();
    }
  });

  it('LoRA: adapter gradients are the chain rule of the full ones; only the adapted matrices change; PEFT files', async () => {
    // a fresh model: the full fine-tuning above changed `text` in place
    const text = await MusicgenModel.load(dirFolder(TEXT_MODEL));
    try {
      await loraChecks(text);
    } finally {
      text.dispose();
    }
  });

  async function loraChecks(text: MusicgenModel): Promise<void> {
    // gradients: with W' = W + s·B·A, dL/dB = s·dW·Aᵀ (B = 0 at init, so dL/dA = 0)
    const chunks = textData.chunks;
    const { labels, T } = delayedLabels(chunks, 4, 1, text.lm.padId);
    const tok = text.tokenizer.encodeBatch(chunks.map((c) => c.caption));
    const ids = Tensor.from(tok.inputIds, [2, tok.length], 'i32');
    const mask = Tensor.from(tok.attentionMask, [2, tok.length], 'i32');
    const full = await trainingProbe(text, labels, [2, T, 4], ids, mask);
    const lora = Lora.create(text, 3, Rng.from(5, 1), 6);
    try {
      tidy(() => {
        const maskF = ops.castToF32(mask);
        const hidden = noGrad(() => text.textHidden(ids, mask));
        const dec = Tensor.from(shiftRight(labels, 2, T, 4, text.lm.padId), [2, 4, T], 'i32');
        const rows = labelsByCodebook(labels, 2, T, 4).map((r) => Tensor.from(r, [2 * T], 'i32'));
        const loss = lora.withAdapters(() => lmLoss(text, dec, rows, trainingConditioning(text, hidden, maskF)));
        backward(loss);
      });
      assert.ok(lora.adapters.every((a) => a.linear.adapter === null), 'the adapters are detached afterwards');
      for (const a of [lora.adapters[0], lora.adapters[5]]) {
        const dW = full.grads.get(a.name)!.data;
        const [out, inp] = a.base.shape;
        const A = (await a.A.read()) as Float32Array;
        const want = new Float32Array(out * 3);
        for (let o = 0; o < out; o++) for (let r = 0; r < 3; r++) {
          let s = 0;
          for (let i = 0; i < inp; i++) s += dW[o * inp + i] * A[r * inp + i];
          want[o * 3 + r] = 2 * s;
        }
        assertClose((await a.B.grad!.read()) as Float32Array, want, `${a.name} lora_B grad`, { rtol: 1e-3, atol: 1e-6 });
        assert.ok(((await a.A.grad!.read()) as Float32Array).every((x) => x === 0), 'lora_A grad is 0 while B is 0');
      }
    } finally {
      lora.dispose();
      for (const t of [ids, mask]) t.dispose();
    }

    const out = join(tmp, 'out-lora');
    await finetune({ model: text, source: { folder: dirFolder(TEXT_MODEL), dir: TEXT_MODEL }, modelName: TEXT_MODEL, data: textData, outputDir: out, options: { ...BASE, lr: 1e-2, loraRank: 4, epochs: 6 } });
    const log = await readLog(out);
    assert.ok(mean(log.slice(-2).map((r) => r.loss)) < mean(log.slice(0, 2).map((r) => r.loss)) - 0.3, 'loss goes down');
    const adapted = (n: string): boolean => /\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)\.weight$/.test(n) && n.startsWith('decoder.');
    const { replaced } = await checkCopied(TEXT_MODEL, out, adapted);
    assert.equal(replaced.length, 2 * (8 + 2), 'every adapted matrix changes (2 layers × (self 4 + cross 4 + fc 2))');
    const cfg = JSON.parse(await fsp.readFile(join(out, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number; peft_type: string };
    assert.deepEqual([cfg.peft_type, cfg.r, cfg.lora_alpha], ['LORA', 4, 4]);
    // the merged weight is W + (alpha/r)·B·A from the adapter file
    const ad = await openSafetensorsFile(join(out, 'adapter_model.safetensors'));
    const src = await openSafetensorsFile(join(TEXT_MODEL, 'model.safetensors'));
    const dst = await openSafetensorsFile(join(out, 'model.safetensors'));
    try {
      assert.equal(ad.names().length, 2 * 20);
      const name = 'decoder.model.decoder.layers.1.fc2.weight';
      const A = await ad.readF32('base_model.model.decoder.model.decoder.layers.1.fc2.lora_A.weight');
      const B = await ad.readF32('base_model.model.decoder.model.decoder.layers.1.fc2.lora_B.weight');
      const W = await src.readF32(name);
      const [o, i] = src.info(name).shape;
      const want = new Float32Array(W.length);
      for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += B[r * 4 + k] * A[k * i + c];
        want[r * i + c] = W[r * i + c] + s;
      }
      assertClose(await dst.readF32(name), want, 'merged fc2', { rtol: 1e-5, atol: 1e-6 });
    } finally {
      await Promise.all([ad.close(), src.close(), dst.close()]);
    }
    await generates(out);
  }

  it('refuses unknown or out-of-range options, naming the option (library names, not flags)', async () => {
    const run = (options: object, extra: object = {}) => finetune({
      model: text, source: { folder: dirFolder(TEXT_MODEL), dir: TEXT_MODEL }, modelName: TEXT_MODEL, data: textData, outputDir: join(tmp, 'out-bad'),
      options: { ...BASE, ...options } as TrainOptions, ...extra,
    });
    const inputError = (field: string, msg: RegExp) => (e: unknown) => e instanceof InputError && e.field === field && msg.test(e.message);
    await assert.rejects(run({ batch_size: 2 }), inputError('batch_size', /did you mean `batchSize`\?/));
    await assert.rejects(run({ lr: 0 }), inputError('lr', /must be > 0/));
    await assert.rejects(run({ gradAccum: 1.5 }), inputError('gradAccum', /whole number/));
    await assert.rejects(run({ schedule: 'linear' }), inputError('schedule', /one of constant, cosine/));
    await assert.rejects(run({}, { resume: join(tmp, 'no-such-run') }), inputError('resume', /no-such-run/));
  });

  it('a NaN loss stops the run and keeps the last good checkpoint', async () => {
    const model = await MusicgenModel.load(dirFolder(TEXT_MODEL));
    const out = join(tmp, 'out-nan');
    try {
      await assert.rejects(
        finetune({ model, source: { folder: dirFolder(TEXT_MODEL), dir: TEXT_MODEL }, modelName: TEXT_MODEL, data: textData, outputDir: out, options: { ...BASE, lr: 1e30, saveSteps: 1, epochs: 3 } }),
        (e: Error) => e instanceof TrainingDiverged && /checkpoint-1/.test(e.message) && /step 2/.test(e.message),
      );
    } finally {
      model.dispose();
    }
    assert.ok(existsSync(join(out, 'checkpoint-1', 'trainer_state.safetensors')));
    assert.ok(!existsSync(join(out, 'model.safetensors')), 'no model is written from a diverged run');
    assert.equal((await readLog(out)).length, 1);
  });

  describe('npm run finetune: kill after a checkpoint, resume, same curve', () => {
    const args = (out: string, extra: string[] = []): string[] => ['run', '--silent', 'finetune', '--', '--model', TEXT_MODEL, '--dataset', dataset,
      '--output', out, '--epochs', '25', '--lr', '2e-3', '--warmup', '3', '--schedule', 'cosine', '--save-steps', '4', '--cond-dropout', '0.5',
      '--grad-accum', '2', '--seed', '11', ...extra];
    /** Runs npm in its own process group; `until` is polled and the group killed (SIGKILL) when it holds. */
    const run = (a: string[], until?: () => boolean): Promise<{ code: number | null; killed: boolean; output: string }> => new Promise((resolve, reject) => {
      const child = spawn('npm', a, { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
      let killed = false;
      const timer = until ? setInterval(() => {
        if (!killed && until()) {
          killed = true;
          process.kill(-child.pid!, 'SIGKILL');
        }
      }, 5) : null;
      child.on('error', reject);
      child.on('close', (code) => {
        if (timer) clearInterval(timer);
        resolve({ code, killed, output });
      });
    });

    it('resumed log and model equal the uninterrupted run\'s', async () => {
      const whole = join(tmp, 'cli-whole');
      const cut = join(tmp, 'cli-cut');
      const a = await run(args(whole));
      assert.equal(a.code, 0, a.output);
      const b = await run(args(cut), () => existsSync(join(cut, 'checkpoint-4', 'trainer_state.safetensors')));
      assert.ok(b.killed, `the run was not interrupted:\n${b.output}`);
      assert.ok(!existsSync(join(cut, 'model.safetensors')), 'killed before the end');
      // resume from the output folder (its newest checkpoint); the options come from the checkpoint
      const c = await run(['run', '--silent', 'finetune', '--', '--model', TEXT_MODEL, '--dataset', dataset, '--output', cut, '--resume', cut]);
      assert.equal(c.code, 0, c.output);
      assert.match(c.output, /resuming from .*checkpoint-\d+ at step \d+/);
      const [logA, logC] = [await readLog(whole), await readLog(cut)];
      assert.equal(logA.length, 25);
      assert.deepEqual(logC, logA, 'same loss curve');
      assert.ok(logA[0].lr < logA[2].lr && logA[24].lr < logA[10].lr, 'warmup then cosine');
      const [ma, mc] = [await fsp.readFile(join(whole, 'model.safetensors')), await fsp.readFile(join(cut, 'model.safetensors'))];
      assert.ok(ma.equals(mc), 'same final model');
      // a fresh run into a folder with checkpoints: refused, in flags, as bad input
      const d = await run(args(cut));
      assert.equal(d.code, 2, d.output);
      assert.match(d.output, /finetune: --output: .* already holds checkpoints of an earlier run .*continue it with `--resume` = .*, or choose another folder/);
      // so is a dataset that cannot be read
      const junk = join(tmp, 'junk-cli.tar');
      await fsp.writeFile(junk, new Uint8Array(3000).map((_, i) => (i * 7919) % 251));
      const e = await run(['run', '--silent', 'finetune', '--', '--model', TEXT_MODEL, '--dataset', junk, '--output', join(tmp, 'cli-junk')]);
      assert.equal(e.code, 2, e.output);
      assert.match(e.output, /finetune: --dataset .*junk-cli\.tar: cannot read the archive/);
    });
  });
});
