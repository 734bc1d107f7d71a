// `npm run probe -- [--model DIR] [--demucs FILE.th] --inputs IN.safetensors --output OUT.safetensors`
// Runs each network on whichever inputs are present and writes the outputs under fixed names, so a converted
// model can be checked against PyTorch (tools/fixtures/models.py writes the matching reference files).
// With --demucs: `demucs.mix` f32 [C, N] at the Demucs rate → `demucs.stems` f32 [S, C, N] (the package's
// source order; apply_model with split, overlap 0.25, shifts 0).

import { LOAD_INPUTS } from '../inputs.js';
import { addInputOptions, optionValues } from './inputs.js';
import type { WeightDType } from '../quant.js';
import { Command } from 'commander';
import { Tensor, tidy } from '../tensor.js';
import { cliRuntime } from './gpu.js';
import * as ops from '../ops.js';
import { encodeSafetensors, type TensorReader, type TensorToWrite } from '../io/safetensors.js';
import { FileSource, dirFolder, openSafetensorsFile } from '../io/file-source.js';
import { MultiBandDiffusion, defaultStepList } from '../model/mbd.js';
import { MusicgenModel } from '../model/musicgen.js';
import { Demucs } from '../model/demucs.js';
import { extractChroma } from '../model/chroma.js';
import { toMono } from '../audio/resample.js';
import { stemmedMelody, type StemSeparator } from '../model/stems.js';
import { writeFileAtomic } from '../io/atomic.js';
import { lmLoss, trainingConditioning } from '../train/loop.js';
import { backward, noGrad } from '../autograd.js';
import { splitParts } from '../train/state.js';
import { labelsByCodebook, shiftRight } from '../model/pattern.js';

export type ProbeOutputs = Record<string, TensorToWrite>;

async function f32Out(t: Tensor): Promise<TensorToWrite> {
  return { dtype: 'F32', shape: [...t.shape], data: (await t.read()) as Float32Array };
}

/** Rows of channel c among interleaved stereo codebooks (L0 R0 L1 R1 …). */
function channelRows(rows: number, channels: number, c: number): number[] {
  return Array.from({ length: rows / channels }, (_, k) => k * channels + c);
}

async function upload(inputs: TensorReader, name: string): Promise<Tensor> {
  const info = inputs.info(name);
  const isInt = info.dtype.startsWith('I') || info.dtype.startsWith('U');
  return Tensor.from(isInt ? await inputs.readI32(name) : await inputs.readF32(name), info.shape, isInt ? 'i32' : 'f32');
}

export interface ProbeOptions {
  /** A Demucs package (.th) for the demucs.* outputs and, with a melody model, the stemmed melody. */
  demucs?: string;
  /** A multi-band diffusion package (`.th`) for the mbd.* inputs. */
  mbd?: string;
  /** How the model's matrices are stored (default: the folder's own, f32 unless converted). */
  dtype?: WeightDType;
}

/** Runs the model in `modelDir` (and/or the Demucs package) on the inputs present; returns the outputs by name. */
export async function probe(modelDir: string | undefined, inputs: TensorReader, opts: ProbeOptions = {}): Promise<ProbeOutputs> {
  if (!modelDir && !opts.demucs) throw new Error('probe: give --model, --demucs or both');
  const demucs = opts.demucs ? await Demucs.load(opts.demucs) : undefined;
  try {
    const out = demucs ? await demucsProbe(demucs, inputs) : {};
    if (!modelDir) return out;
    const model = await MusicgenModel.load(dirFolder(modelDir), { dtype: opts.dtype });
    try {
      Object.assign(out, await runProbe(model, inputs));
      if (demucs) Object.assign(out, await melodyStemsProbe(model, demucs, inputs));
      if (inputs.has('mbd.codes')) Object.assign(out, await mbdProbe(model, inputs, opts.mbd));
      return out;
    } finally {
      model.dispose();
    }
  } finally {
    demucs?.dispose();
  }
}

/** `demucs.mix` [C, N] → `demucs.stems` [S, C, N]. */
async function demucsProbe(demucs: Demucs, inputs: TensorReader): Promise<ProbeOutputs> {
  const out: ProbeOutputs = {};
  if (inputs.has('demucs.mix')) {
    const shape = inputs.info('demucs.mix').shape;
    if (shape.length !== 2) throw new Error(`demucs.mix must be [C, N], got [${shape.join(', ')}]`);
    const [C, N] = shape;
    const mix = await inputs.readF32('demucs.mix');
    const stems = await demucs.separate(Array.from({ length: C }, (_, c) => mix.subarray(c * N, (c + 1) * N)));
    const data = new Float32Array(stems.length * C * N);
    stems.forEach((s, i) => s.forEach((ch, c) => data.set(ch, (i * C + c) * N)));
    out['demucs.stems'] = { dtype: 'F32', shape: [stems.length, C, N], data };
  }
  return out;
}

/**
 * mbd.codes i32 [K, T] and mbd.noise f32 [D, S, C, N] (model d's initial noise at s = 0, the noise added after
 * step s at s ≥ 1) → mbd.audio [C, N] (bands summed) and mbd.audio_eq [C, N] (after re_eq, 32 bands).
 */
async function mbdProbe(model: MusicgenModel, inputs: TensorReader, file: string | undefined): Promise<ProbeOutputs> {
  if (!file) throw new Error('mbd.codes needs the multi-band diffusion weights: --mbd FILE.th');
  if (!inputs.has('mbd.noise')) throw new Error('mbd.codes needs mbd.noise [D, S, C, N]');
  const mbd = await MultiBandDiffusion.load(new FileSource(file), model.rt, file);
  try {
    const [K, T] = inputs.info('mbd.codes').shape;
    const [D, S, C, N] = inputs.info('mbd.noise').shape;
    const want = [mbd.numModels, defaultStepList().length, model.audioChannels, T * model.encodec.hopLength];
    if ([D, S, C, N].some((v, i) => v !== want[i])) {
      throw new Error(`mbd.noise is [${[D, S, C, N].join(', ')}]; this model and package need [${want.join(', ')}] (D models, S steps, C channels, N = T·hop)`);
    }
    const noise = await inputs.readF32('mbd.noise');
    const res = await mbd.decode(model.encodec, await inputs.readI32('mbd.codes'), K, T, C,
      (d, s, size) => noise.slice((d * S + s) * size, (d * S + s + 1) * size));
    return {
      'mbd.audio': { dtype: 'F32', shape: [C, N], data: res.audio },
      'mbd.audio_eq': { dtype: 'F32', shape: [C, N], data: res.audioEq },
    };
  } finally {
    mbd.dispose();
  }
}

/**
 * audiocraft's ChromaStemConditioner path (src/model/stems.ts) for a melody model: `melody.wav` f32 [N] at the
 * model's rate -> `melody.stemmed` f32 [N] (vocals + other, mono, same rate) and `chroma.stems_onehot` [frames, 12].
 */
export async function melodyStemsProbe(model: MusicgenModel, demucs: StemSeparator, inputs: TensorReader): Promise<ProbeOutputs> {
  if (!model.isMelody || !inputs.has('melody.wav')) return {};
  const info = inputs.info('melody.wav');
  if (info.shape.length !== 1) throw new Error(`melody.wav must be mono [N], got [${info.shape.join(', ')}]`);
  const stemmed = await stemmedMelody(demucs, await inputs.readF32('melody.wav'), model.sampleRate);
  const chroma = extractChroma(stemmed, { sampleRate: model.sampleRate });
  return {
    'melody.stemmed': { dtype: 'F32', shape: [stemmed.length], data: stemmed },
    'chroma.stems_onehot': { dtype: 'F32', shape: [chroma.frames, 12], data: chroma.onehot },
  };
}

/**
 * Loss and gradients for one batch, as tools/fixtures/models.py computed `train.loss` / `train.grad.*`: labels
 * [B, T, K] (delay pattern, pad outside), decoder input = labels shifted right; no dropout. Gradients are named
 * as in the checkpoint (stacked tables and heads split). The model's gradients are cleared afterwards.
 */
export async function trainingProbe(
  model: MusicgenModel, labels: Int32Array, shape: readonly number[], inputIds: Tensor, attentionMask: Tensor, chroma?: Tensor,
): Promise<{ loss: number; grads: Map<string, { shape: number[]; data: Float32Array }> }> {
  const [B, T, K] = shape;
  const named = model.trainableParameters();
  const prev = named.map((p) => p.tensor.requiresGrad);
  for (const p of named) p.tensor.requiresGrad = true;
  try {
    const loss = tidy(() => {
      const maskF = ops.castToF32(attentionMask);
      const hidden = noGrad(() => model.textHidden(inputIds, attentionMask));
      const cond = trainingConditioning(model, hidden, maskF, chroma);
      const dec = Tensor.from(shiftRight(labels, B, T, K, model.lm.padId), [B, K, T], 'i32', model.rt);
      const rows = labelsByCodebook(labels, B, T, K).map((r) => Tensor.from(r, [B * T], 'i32', model.rt));
      const l = lmLoss(model, dec, rows, cond);
      backward(l);
      return noGrad(() => ops.scale(l, 1)); // a copy without the graph
    });
    const value = ((await loss.read()) as Float32Array)[0];
    loss.dispose();
    const grads = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const p of named) {
      if (!p.tensor.grad) throw new Error(`trainingProbe: no gradient for ${p.names[0]}`);
      const data = (await p.tensor.grad.read()) as Float32Array;
      for (const [name, part] of splitParts(p, data)) grads.set(name, { shape: p.partShape, data: part });
    }
    return { loss: value, grads };
  } finally {
    named.forEach((p, i) => {
      p.tensor.grad?.release();
      p.tensor.grad = null;
      p.tensor.requiresGrad = prev[i];
    });
  }
}

async function runProbe(model: MusicgenModel, inputs: TensorReader): Promise<ProbeOutputs> {
  const out: ProbeOutputs = {};
  const C = model.audioChannels;
  const hasText = inputs.has('text.input_ids') && inputs.has('text.attention_mask');

  if (hasText) {
    const ids = await upload(inputs, 'text.input_ids');
    const mask = await upload(inputs, 'text.attention_mask');
    const hidden = model.textHidden(ids, mask);
    out['text.hidden'] = await f32Out(hidden);
    for (const t of [ids, mask, hidden]) t.dispose();
  }

  if (inputs.has('audio.wav')) {
    const info = inputs.info('audio.wav');
    const wav = await inputs.readF32('audio.wav');
    const channels = info.shape.length === 1 ? 1 : info.shape[0];
    const N = info.shape[info.shape.length - 1];
    if (channels !== C) throw new Error(`audio.wav has ${channels} channel(s); the model makes ${C}`);
    // a stereo model encodes each channel with its mono EnCodec and interleaves the codebooks
    const perChannel: Int32Array[] = [];
    for (let c = 0; c < channels; c++) {
      const audio = Tensor.from(wav.subarray(c * N, (c + 1) * N), [1, 1, N]);
      const codes = model.encodec.encode(audio);
      perChannel.push((await codes.read()) as Int32Array);
      audio.dispose();
      codes.dispose();
    }
    const K = model.encodec.numQuantizers;
    const T = perChannel[0].length / K;
    const codes = new Int32Array(K * C * T);
    for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) codes.set(perChannel[c].subarray(k * T, (k + 1) * T), (k * C + c) * T);
    out['encodec.codes'] = { dtype: 'I32', shape: [K * C, T], data: codes };
    if (channels === 1 || model.isMelody) {
      // the melody of a stereo clip is taken from its mono mix, as the feature extractor does
      const mono = channels === 1 ? wav : toMono(Array.from({ length: channels }, (_, c) => wav.subarray(c * N, (c + 1) * N)));
      const chroma = extractChroma(mono, { sampleRate: model.sampleRate });
      out['chroma.onehot'] = { dtype: 'F32', shape: [chroma.frames, 12], data: chroma.onehot };
    }
  }

  if (inputs.has('encodec.codes')) {
    const [rows, T] = inputs.info('encodec.codes').shape;
    const codes = await inputs.readI32('encodec.codes');
    const decoded: Float32Array[] = [];
    for (let c = 0; c < C; c++) {
      const sel = channelRows(rows, C, c);
      const mine = new Int32Array(sel.length * T);
      sel.forEach((r, i) => mine.set(codes.subarray(r * T, (r + 1) * T), i * T));
      const codeTensor = Tensor.from(mine, [1, sel.length, T], 'i32');
      const audio = model.encodec.decode(codeTensor);
      decoded.push((await audio.read()) as Float32Array);
      codeTensor.dispose();
      audio.dispose();
    }
    const N = decoded[0].length;
    const data = new Float32Array(C * N);
    decoded.forEach((d, c) => data.set(d, c * N));
    out['encodec.decoded'] = { dtype: 'F32', shape: C === 1 ? [N] : [C, N], data };
  }

  if (inputs.has('lm.codes')) {
    if (!hasText) throw new Error('lm.codes needs text.input_ids and text.attention_mask');
    const ids = await upload(inputs, 'text.input_ids');
    const mask = await upload(inputs, 'text.attention_mask');
    const codes = await upload(inputs, 'lm.codes');
    const B = codes.shape[0];
    let chroma: Tensor | undefined;
    if (model.isMelody && inputs.has('chroma.onehot')) {
      const one = await inputs.readF32('chroma.onehot');
      const frames = inputs.info('chroma.onehot').shape[0];
      const batch = new Float32Array(B * one.length);
      for (let b = 0; b < B; b++) batch.set(one, b * one.length);
      chroma = Tensor.from(batch, [B, frames, 12]);
    }
    const logits = tidy(() => {
      const maskF = ops.castToF32(mask);
      const states = model.projectText(model.textHidden(ids, mask), maskF);
      return model.lm.forward(codes, model.conditioning(states, maskF, chroma));
    });
    out['lm.logits'] = await f32Out(logits);
    for (const t of [ids, mask, codes, logits, ...(chroma ? [chroma] : [])]) t.dispose();
  }
  // ---- training (src/train): loss and gradients of one teacher-forced batch (f32 weights only: packed ones are frozen) ----
  if (inputs.has('train.labels') && model.dtype === 'f32') {
    if (!hasText) throw new Error('train.labels needs text.input_ids and text.attention_mask');
    const shape = inputs.info('train.labels').shape; // [B, T, K]
    const labels = await inputs.readI32('train.labels');
    const ids = await upload(inputs, 'text.input_ids');
    const mask = await upload(inputs, 'text.attention_mask');
    let chroma: Tensor | undefined;
    if (model.isMelody && inputs.has('chroma.onehot')) {
      const one = await inputs.readF32('chroma.onehot');
      const frames = inputs.info('chroma.onehot').shape[0];
      const batch = new Float32Array(shape[0] * one.length);
      for (let b = 0; b < shape[0]; b++) batch.set(one, b * one.length);
      chroma = Tensor.from(batch, [shape[0], frames, 12]);
    }
    const { loss, grads } = await trainingProbe(model, labels, shape, ids, mask, chroma);
    out['train.loss'] = { dtype: 'F32', shape: [1], data: Float32Array.of(loss) };
    for (const [name, g] of grads) out[`train.grad.${name}`] = { dtype: 'F32', shape: g.shape, data: g.data };
    for (const t of [ids, mask, ...(chroma ? [chroma] : [])]) t.dispose();
  }

  await model.rt.sync();
  return out;
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('probe')
    .description('Runs each network of a MusicGen folder on the inputs present and writes the outputs (see README)')
    .option('--model <dir>', 'model folder (transformers format)')
    .option('--demucs <file>', 'Demucs package (.th): demucs.mix -> demucs.stems; with a melody model, melody.wav -> melody.stemmed, chroma.stems_onehot')
    .requiredOption('--inputs <file>', 'inputs .safetensors')
    .requiredOption('--output <file>', 'outputs .safetensors to write')
    .option('--mbd <file>', 'multi-band diffusion weights (.th) for the mbd.* inputs');
  // the folder's own dtype when --dtype is not given (f32 unless converted), so the reference comparison is exact
  const load = addInputOptions(program, LOAD_INPUTS);
  program.parse(argv);
  const opts = program.opts<{ model?: string; demucs?: string; inputs: string; output: string; mbd?: string }>();
  if (!opts.model && !opts.demucs) program.error('probe: give --model, --demucs or both');
  await cliRuntime();
  const inputs = await openSafetensorsFile(opts.inputs);
  const out = await probe(opts.model, inputs, { demucs: opts.demucs, mbd: opts.mbd, dtype: optionValues(program, load).dtype as WeightDType | undefined });
  await writeFileAtomic(opts.output, encodeSafetensors(out));
  console.log(`wrote ${Object.keys(out).length} outputs to ${opts.output}: ${Object.keys(out).join(', ')}`);
}

/** `musicgen probe` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  main(argv).then(() => process.exit(0), (e: unknown) => {
    console.error(`probe: ${(e as Error).message}`);
    process.exit(1);
  });
}

// this file's own name too: in a bundle of a module that imports it (tools/gpu-check.ts through test/helpers.ts),
// import.meta.url is the bundle's, which is then also process.argv[1]
const invokedDirectly = process.argv[1] !== undefined && /\/probe\.[cm]?[jt]s$/.test(import.meta.url) &&
  import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
