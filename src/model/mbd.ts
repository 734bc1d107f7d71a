// Multi-band diffusion (MBD): audiocraft's models/multibanddiffusion.py `MultiBandDiffusion.tokens_to_wav` for
// MusicGen's 32 kHz EnCodec, with modules/diffusion_schedule.py (NoiseSchedule.generate_subsampled,
// MultiBandProcessor.return_sample) and julius' SplitBands (bands.py, lowpass.py) for the band processor and the
// final equaliser.
//
//   codes ─ EnCodec quantizer decode → latent [B, 128, T] (the condition) ─┐
//   for each of the D band models: noise → 20 denoising steps of its U-Net → processor.return_sample ─ Σ → audio
//   codes ─ EnCodec decode → reference;  re_eq(audio, reference, 32 bands) → audio_eq
//
// The package is the `.th` that audiocraft's load_diffusion_models reads: {'sample_rate', 'n_bands', i: {'cfg':
// omegaconf DictConfig, 'model_state': state dict, 'processor_state': MultiBandProcessor buffers}}. The omegaconf
// objects are kept as inert data by the reader (nothing in the file is run) and turned into plain values here.
// A stereo MusicGen decodes each channel as a batch item (its left and right codebooks), as audiocraft's demo
// does; re_eq then matches band energies over the whole batch, as it does there.

import { Tensor, tidy } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { PyDict, PyObject, PyGlobal, describe, isTuple, type PickleValue } from '../io/pickle.js';
import { TorchFile } from '../io/pytorch.js';
import type { ByteSource } from '../io/safetensors.js';
import { Weights } from './weights.js';
import { DiffusionUnet, UNET_DEFAULTS, type DiffusionUnetConfig } from './mbd-unet.js';
import type { EncodecModel } from './encodec.js';

/** The published MBD weights for MusicGen (audiocraft's MultiBandDiffusion.get_mbd_musicgen). */
export const MBD_REPO = 'facebook/multiband-diffusion';
export const MBD_FILE = 'mbd_musicgen_32khz.th';

/** audiocraft's default step list: range(1000)[::-50] + [0] (999, 949, …, 49, 0). */
export function defaultStepList(numSteps = 1000): number[] {
  const out: number[] = [];
  for (let s = numSteps - 1; s >= 0; s -= 50) out.push(s);
  out.push(0);
  return out;
}

const f = Math.fround;

// ---- omegaconf configs as plain values ----

type Plain = null | boolean | number | string | Plain[] | { [k: string]: Plain };

/** An omegaconf DictConfig / ListConfig / value node (pickled as NEWOBJ + BUILD) or plain data → plain JSON-like values. */
export function omegaconfToPlain(v: PickleValue, depth = 0): Plain {
  if (depth > 64) throw new Error('MBD config: nested deeper than 64 levels');
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyObject) {
    const state = v.state instanceof PyDict ? v.state : isTuple(v.state) && v.state[0] instanceof PyDict ? v.state[0] : null;
    const q = v.cls.qualname;
    if (!state) throw new Error(`MBD config: ${q} without a state dict`);
    if (q === 'omegaconf.dictconfig.DictConfig' || q === 'omegaconf.listconfig.ListConfig') return omegaconfToPlain(state.get('_content') ?? null, depth + 1);
    if (q.startsWith('omegaconf.nodes.')) return omegaconfToPlain(state.get('_val') ?? null, depth + 1);
    throw new Error(`MBD config: unexpected ${q} object`);
  }
  if (v instanceof PyDict) {
    const o: { [k: string]: Plain } = {};
    for (const [k, x] of v) o[String(k)] = omegaconfToPlain(x, depth + 1);
    return o;
  }
  if (Array.isArray(v)) return v.map((x) => omegaconfToPlain(x, depth + 1));
  if (v instanceof PyGlobal) return v.qualname;
  throw new Error(`MBD config: cannot read ${describe(v)}`);
}

/** Resolves omegaconf's absolute interpolations ("${schedule.num_steps}") against the root. */
function resolveInterpolations(root: Plain): Plain {
  const lookup = (path: string, seen: Set<string>): Plain => {
    if (seen.has(path)) throw new Error(`MBD config: interpolation cycle at \${${path}}`);
    let cur: Plain = root;
    for (const part of path.split('.')) {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !(part in cur)) throw new Error(`MBD config: \${${path}} does not resolve`);
      cur = cur[part];
    }
    return walk(cur, new Set([...seen, path]));
  };
  const walk = (v: Plain, seen: Set<string>): Plain => {
    if (typeof v === 'string') {
      const m = /^\$\{([A-Za-z_][\w.]*)\}$/.exec(v);
      return m ? lookup(m[1], seen) : v;
    }
    if (Array.isArray(v)) return v.map((x) => walk(x, seen));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, seen)]));
    return v;
  };
  return walk(root, new Set());
}

function section(cfg: Plain, name: string, where: string): Record<string, Plain> {
  const s = cfg !== null && typeof cfg === 'object' && !Array.isArray(cfg) ? cfg[name] : undefined;
  if (s === undefined || s === null) return {};
  if (typeof s !== 'object' || Array.isArray(s)) throw new Error(`${where}: cfg.${name} is not a mapping`);
  return s;
}

function num(s: Record<string, Plain>, key: string, dflt: number, where: string): number {
  const v = s[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: ${key} = ${JSON.stringify(v)} is not a number`);
  return v;
}

function bool(s: Record<string, Plain>, key: string, dflt: boolean, where: string): boolean {
  const v = s[key] ?? dflt;
  if (typeof v !== 'boolean') throw new Error(`${where}: ${key} = ${JSON.stringify(v)} is not a boolean`);
  return v;
}

// ---- the noise schedule ----

/** cfg.schedule: NoiseSchedule's arguments (diffusion_schedule.py), defaults as there. */
export interface ScheduleConfig {
  beta_t0: number;
  beta_t1: number;
  beta_exp: number;
  num_steps: number;
  clip: number;
  rescale: number;
  noise_scale: number;
}

/** NoiseSchedule's betas: linspace(β0^(1/e), β1^(1/e), n) ** e, in f32 as torch.linspace and pow compute them. */
export function scheduleBetas(c: ScheduleConfig): Float32Array {
  const n = c.num_steps;
  const e = f(c.beta_exp);
  const start = f(f(c.beta_t0) ** (1 / c.beta_exp));
  const end = f(f(c.beta_t1) ** (1 / c.beta_exp));
  const step = f(f(end - start) / f(n - 1));
  const betas = new Float32Array(n);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    // torch.linspace: from the start for the first half, from the end for the second
    const x = i < half ? f(start + f(step * i)) : f(end - f(step * (n - 1 - i)));
    betas[i] = f(x ** e);
  }
  return betas;
}

/** One step of generate_subsampled: previous = a·current − b·estimate (+ σ·noise), clamped. */
export interface SubsampledStep {
  step: number;
  /** 1/√α */
  a: number;
  /** (1−α)/√(1−ᾱ)/√α */
  b: number;
  /** √σ² (0: no noise is added) */
  sigma: number;
}

/**
 * The coefficients NoiseSchedule.generate_subsampled uses for `stepList` (its arithmetic in f32): ᾱ starts at
 * the product over every step, each subsampled β comes from the ratio of consecutive ᾱ of the list, and the last
 * step adds no noise.
 */
export function subsampledSteps(c: ScheduleConfig, stepList: readonly number[]): SubsampledStep[] {
  const betas = scheduleBetas(c);
  // torch's CPU cumprod accumulates in double and rounds each output to f32
  const cum = new Float32Array(betas.length);
  let p = 1;
  for (let i = 0; i < betas.length; i++) cum[i] = p *= f(1 - betas[i]);
  const barAt = (s: number) => cum[s];
  const asc = [...stepList].reverse().map(barAt);
  const betasSub = asc.map((ab, i) => f(1 - (i === 0 ? ab : f(ab / asc[i - 1]))));
  let alphaBar = cum[c.num_steps - 1];
  const out: SubsampledStep[] = [];
  for (let idx = 0; idx < stepList.length - 1; idx++) {
    const step = stepList[idx];
    const alpha = f(1 - betasSub[betasSub.length - 1 - idx]);
    const sqrtAlpha = f(Math.sqrt(alpha));
    const b = f(f(f(1 - alpha) / f(Math.sqrt(f(1 - alphaBar)))));
    let prevBar = barAt(stepList[idx + 1]);
    let sigma2 = 0;
    if (step === stepList[stepList.length - 2]) prevBar = 1;
    else sigma2 = f(f(f(1 - prevBar) / f(1 - alphaBar)) * f(1 - alpha));
    out.push({ step, a: 1 / sqrtAlpha, b: b / sqrtAlpha, sigma: sigma2 > 0 ? f(Math.sqrt(sigma2)) : 0 });
    alphaBar = prevBar;
  }
  return out;
}

// ---- julius SplitBands ----

/** julius' mel_frequencies(n, fmin, fmax) (O'Shaughnessy's mel scale, linspace in f32). */
function melFrequencies(n: number, fmin: number, fmax: number): number[] {
  const toMel = (hz: number) => f(2595 * Math.log10(1 + hz / 700));
  const low = toMel(fmin);
  const high = toMel(fmax);
  const step = f(f(high - low) / f(n - 1));
  const half = Math.floor(n / 2);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = i < half ? f(low + f(step * i)) : f(high - f(step * (n - 1 - i)));
    out.push(f(700 * f(10 ** f(m / 2595) - 1)));
  }
  return out;
}

/**
 * julius.SplitBands(sample_rate, n_bands) (pad=True, zeros=8): windowed-sinc low-pass filters at cutoffs evenly
 * spaced in mel; band 0 is the lowest low-pass, band i the difference of consecutive low-passes, the last band
 * the input minus the highest. The bands sum to the input.
 */
export class SplitBands {
  /** [F, 1, K] low-pass filters (F = n_bands − 1), each summing to 1. */
  readonly filters: Float32Array;
  readonly halfSize: number;
  readonly count: number;

  /** `saved`: the filters as a checkpoint holds them (MultiBandProcessor's split_bands.lowpass.filters), used as they are. */
  constructor(sampleRate: number, readonly nBands: number, saved?: Float32Array, zeros = 8) {
    const cutoffs = melFrequencies(nBands + 1, 0, sampleRate / 2).slice(1, -1).map((c) => f(c / sampleRate));
    this.count = cutoffs.length;
    const positive = cutoffs.filter((c) => c > 0);
    this.halfSize = positive.length ? Math.trunc(f(f(zeros / Math.min(...positive)) / 2)) : 0;
    const K = 2 * this.halfSize + 1;
    this.filters = new Float32Array(this.count * K);
    if (saved) {
      if (saved.length !== this.filters.length) throw new Error(`SplitBands: ${saved.length} saved filter taps, expected ${this.count} filters of ${K}`);
      this.filters.set(saved);
      return;
    }
    // torch.hann_window(K, periodic=False)
    const win = Float32Array.from({ length: K }, (_, n) => (K === 1 ? 1 : f(0.5 - 0.5 * Math.cos((2 * Math.PI * n) / (K - 1)))));
    cutoffs.forEach((c, i) => {
      if (c === 0) return;
      const row = this.filters.subarray(i * K, (i + 1) * K);
      let sum = 0;
      for (let n = 0; n < K; n++) {
        const t = n - this.halfSize;
        const x = f(f(f(2 * c) * f(Math.PI)) * t);
        const sinc = x === 0 ? 1 : f(Math.sin(x) / x);
        row[n] = f(f(f(2 * c) * win[n]) * sinc);
        sum += row[n];
      }
      const s = f(sum);
      for (let n = 0; n < K; n++) row[n] = f(row[n] / s);
    });
  }

  /**
   * The bands of `x` (host samples, `rows` signals of length N each, row-major): [nBands][rows·N]. The low-pass
   * convolutions run on the GPU, a window of at most `chunk` output samples at a time.
   */
  async split(x: Float32Array, rows: number, rt: Runtime, chunk = 1 << 17): Promise<Float32Array[]> {
    const N = x.length / rows;
    const F = this.count;
    const h = this.halfSize;
    const lows = Array.from({ length: F }, () => new Float32Array(rows * N));
    if (F > 0) {
      const weight = Tensor.from(this.filters, [F, 1, 2 * h + 1], 'f32', rt);
      try {
        for (let r = 0; r < rows; r++) {
          const sig = x.subarray(r * N, (r + 1) * N);
          for (let start = 0; start < N; start += chunk) {
            const len = Math.min(chunk, N - start);
            // replicate padding of the whole signal, cut to this window's span [start − h, start + len + h)
            const win = new Float32Array(len + 2 * h);
            for (let i = 0; i < win.length; i++) win[i] = sig[Math.min(N - 1, Math.max(0, start - h + i))];
            const xin = Tensor.from(win, [1, 1, win.length], 'f32', rt);
            const y = ops.conv1d(xin, weight); // 1, F, len
            const data = (await y.read()) as Float32Array;
            xin.dispose();
            y.dispose();
            for (let i = 0; i < F; i++) lows[i].set(data.subarray(i * len, (i + 1) * len), r * N + start);
          }
        }
      } finally {
        weight.dispose();
      }
    }
    const bands: Float32Array[] = [];
    let low: Float32Array | null = null;
    for (const l of lows) {
      if (!low) bands.push(l);
      else bands.push(Float32Array.from(l, (v, i) => v - low![i]));
      low = l;
    }
    bands.push(low ? Float32Array.from(x, (v, i) => v - low![i]) : x.slice());
    return bands;
  }
}

// ---- the band processor ----

/** cfg.processor (use, name, n_bands, num_samples, power_std) as builders.get_processor reads it. */
export interface ProcessorConfig {
  use: boolean;
  name: string;
  n_bands: number;
  /** A number: audiocraft's return_sample cannot raise to a list (a per-band list fails there). */
  power_std: number;
}

/** MultiBandProcessor's buffers (processor_state). */
export interface ProcessorState {
  counts: number;
  sumX: Float32Array;
  sumX2: Float32Array;
  sumTargetX2: Float32Array;
  /** split_bands.lowpass.filters, flattened, when the state has them */
  filters?: Float32Array;
}

/**
 * MultiBandProcessor.return_sample from its saved statistics: each of n_bands mel bands is rescaled by
 * (std / target_std)^power_std and shifted by its mean. (target_std is sum_target_x2/counts, unrooted, as there.)
 */
export class MultiBandProcessor {
  readonly split: SplitBands;
  /** per band: scale and offset */
  readonly scale: Float32Array;
  readonly mean: Float32Array;

  constructor(sampleRate: number, readonly cfg: ProcessorConfig, state: ProcessorState) {
    const n = cfg.n_bands;
    this.split = new SplitBands(sampleRate, n, state.filters);
    this.mean = new Float32Array(n);
    this.scale = new Float32Array(n);
    const counts = f(state.counts);
    for (let i = 0; i < n; i++) {
      const mean = f(state.sumX[i] / counts);
      const std = f(Math.sqrt(Math.max(0, f(f(state.sumX2[i] / counts) - f(mean * mean)))));
      const target = f(state.sumTargetX2[i] / counts);
      this.mean[i] = mean;
      this.scale[i] = f(f(std / target) ** f(cfg.power_std));
    }
  }

  /** x host [rows·N] → Σ_bands band·scale + mean */
  async returnSample(x: Float32Array, rows: number, rt: Runtime): Promise<Float32Array> {
    const bands = await this.split.split(x, rows, rt);
    const out = new Float32Array(x.length);
    bands.forEach((b, i) => {
      const s = this.scale[i];
      const m = this.mean[i];
      for (let j = 0; j < out.length; j++) out[j] += f(f(b[j] * s) + m);
    });
    return out;
  }
}

/**
 * MultiBandDiffusion.re_eq: splits `wav` and `ref` (host [rows·N]) into n_bands and scales each band of wav by
 * (std(ref band) / std(wav band))^strictness, std over every sample of every row (unbiased, as torch.std).
 */
export async function reEq(wav: Float32Array, ref: Float32Array, rows: number, sampleRate: number, rt: Runtime, nBands = 32, strictness = 1): Promise<Float32Array> {
  const split = new SplitBands(sampleRate, nBands);
  const bands = await split.split(wav, rows, rt);
  const refs = await split.split(ref, rows, rt);
  const std = (a: Float32Array) => {
    let m = 0;
    for (const v of a) m += v;
    m /= a.length;
    let s = 0;
    for (const v of a) s += (v - m) ** 2;
    return Math.sqrt(s / (a.length - 1));
  };
  const out = new Float32Array(wav.length);
  bands.forEach((b, i) => {
    const g = f((std(refs[i]) / std(b)) ** strictness);
    for (let j = 0; j < out.length; j++) out[j] += f(b[j] * g);
  });
  return out;
}

// ---- one band's diffusion process ----

export interface BandModelConfig {
  unet: DiffusionUnetConfig;
  schedule: ScheduleConfig;
  processor: ProcessorConfig | null;
}

/** Reads one band's cfg (DictConfig turned plain) the way get_diffusion_model / NoiseSchedule / get_processor do. */
export function bandConfig(cfg: Plain, where: string): BandModelConfig {
  const u = section(cfg, 'diffusion_unet', where);
  const s = section(cfg, 'schedule', where);
  const p = section(cfg, 'processor', where);
  const top = cfg !== null && typeof cfg === 'object' && !Array.isArray(cfg) ? cfg : {};
  const schedule: ScheduleConfig = {
    beta_t0: num(s, 'beta_t0', 1e-4, where), beta_t1: num(s, 'beta_t1', 0.02, where), beta_exp: num(s, 'beta_exp', 1, where),
    num_steps: num(s, 'num_steps', 1000, where), clip: num(s, 'clip', 5, where), rescale: num(s, 'rescale', 1, where),
    noise_scale: num(s, 'noise_scale', 1, where),
  };
  if ((s.repartition ?? 'power') !== 'power') throw new Error(`${where}: schedule.repartition ${JSON.stringify(s.repartition)}: only "power" exists in audiocraft`);
  if (s.n_bands !== undefined && s.n_bands !== null) throw new Error(`${where}: schedule.n_bands must be null (audiocraft asserts it)`);
  const codec = u.codec_dim ?? null;
  if (codec !== null && typeof codec !== 'number') throw new Error(`${where}: diffusion_unet.codec_dim = ${JSON.stringify(codec)}`);
  const d = UNET_DEFAULTS;
  const unet: DiffusionUnetConfig = {
    chin: num(top, 'channels', NaN, where), num_steps: schedule.num_steps,
    hidden: num(u, 'hidden', d.hidden, where), depth: num(u, 'depth', d.depth, where), growth: num(u, 'growth', d.growth, where),
    max_channels: num(u, 'max_channels', d.max_channels, where), emb_all_layers: bool(u, 'emb_all_layers', d.emb_all_layers, where),
    cross_attention: bool(u, 'cross_attention', d.cross_attention, where), bilstm: bool(u, 'bilstm', d.bilstm, where),
    transformer: bool(u, 'transformer', d.transformer, where), codec_dim: codec, kernel: num(u, 'kernel', d.kernel, where),
    stride: num(u, 'stride', d.stride, where), norm_groups: num(u, 'norm_groups', d.norm_groups, where),
    res_blocks: num(u, 'res_blocks', d.res_blocks, where),
  };
  let processor: ProcessorConfig | null = null;
  if (bool(p, 'use', false, where) && p.name === 'multi_band_processor') {
    processor = { use: true, name: 'multi_band_processor', n_bands: num(p, 'n_bands', 8, where), power_std: num(p, 'power_std', 1, where) };
  }
  return { unet, schedule, processor };
}

/** A noise estimator: the U-Net at one step (tests pass simpler ones). */
export type Estimator = (x: Tensor, step: number) => Tensor;

/**
 * NoiseSchedule.generate_subsampled without the final return_sample: `initial` host noise of `shape`,
 * `stepNoise(i)` the noise added after step i (host, same size; asked for only when that step adds noise).
 * Returns the last iterate as host samples.
 */
export async function sampleSubsampled(
  s: ScheduleConfig, estimate: Estimator, initial: Float32Array, shape: readonly number[], rt: Runtime,
  stepNoise: (i: number) => Float32Array | Promise<Float32Array>, stepList = defaultStepList(s.num_steps),
): Promise<Float32Array> {
  const steps = subsampledSteps(s, stepList);
  let current = Tensor.from(initial, shape, 'f32', rt);
  if (s.noise_scale !== 1) current = swap(current, ops.scale(current, s.noise_scale));
  for (let i = 0; i < steps.length; i++) {
    const st = steps[i];
    const noise = st.sigma > 0 ? Tensor.from(await stepNoise(i + 1), shape, 'f32', rt) : null;
    const next = tidy(() => {
      let est = estimate(current, st.step);
      if (s.noise_scale !== 1) est = ops.scale(est, s.noise_scale);
      let prev = ops.sub(ops.scale(current, st.a), ops.scale(est, st.b));
      if (noise) prev = ops.add(prev, ops.scale(noise, f(st.sigma * s.noise_scale)));
      if (s.clip) prev = ops.unary('clamp', prev, -s.clip, s.clip);
      if (st.step === 0 && s.rescale !== 1) prev = ops.scale(prev, s.rescale);
      return prev;
    });
    noise?.dispose();
    current = swap(current, next);
    await rt.sync(); // one step per submit: keeps the queue and the pool bounded on long clips
  }
  const data = (await current.read()) as Float32Array;
  current.dispose();
  return data;
}

export class BandDiffusion {
  constructor(
    readonly cfg: BandModelConfig,
    readonly unet: DiffusionUnet,
    readonly processor: MultiBandProcessor | null,
  ) {}

  /** DiffusionProcess.generate: the subsampled reverse process of this band's U-Net, then processor.return_sample. */
  async generate(condition: Tensor, initial: Float32Array, shape: readonly number[], stepNoise: (i: number) => Float32Array | Promise<Float32Array>, stepList?: number[]): Promise<Float32Array> {
    const rt = condition.rt;
    const data = await sampleSubsampled(this.cfg.schedule, (x, step) => this.unet.forward(x, step, condition), initial, shape, rt, stepNoise, stepList);
    return this.processor ? this.processor.returnSample(data, shape[0] * shape[1], rt) : data;
  }

  dispose(): void {
    this.unet.dispose();
  }
}

function swap(old: Tensor, next: Tensor): Tensor {
  if (old !== next) old.dispose();
  return next;
}

// ---- the package and the whole decoder ----

/** Noise source: the noise for model d at index s (0: initial; s ≥ 1: after step s), host [B·chin·N]. */
export type MbdNoise = (d: number, s: number, size: number) => Float32Array;

/** Standard normal noise from a seeded generator (xorshift128+ and Box–Muller): reproducible per seed. */
export function gaussianNoise(seed: number): MbdNoise {
  let s0 = (seed >>> 0) ^ 0x9e3779b9;
  let s1 = ((seed / 2 ** 32) >>> 0) ^ 0x85ebca6b;
  const next = () => {
    // xorshift64 on two 32-bit halves
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) / 2 ** 32;
  };
  return (_d, _s, size) => {
    const out = new Float32Array(size);
    for (let i = 0; i < size; i += 2) {
      const u = Math.max(next(), 1e-12);
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      out[i] = r * Math.cos(2 * Math.PI * v);
      if (i + 1 < size) out[i + 1] = r * Math.sin(2 * Math.PI * v);
    }
    return out;
  };
}

export interface MbdResult {
  /** [C·N]: the bands summed, before re_eq */
  audio: Float32Array;
  /** [C·N]: after re_eq against the EnCodec decode */
  audioEq: Float32Array;
  channels: number;
  samples: number;
}

export class MultiBandDiffusion {
  constructor(readonly sampleRate: number, readonly bands: BandDiffusion[], readonly label: string) {}

  get numModels(): number { return this.bands.length; }

  /** Reads a `.th` as load_diffusion_models does (see the header); every tensor of each state dict must be used. */
  static async load(source: ByteSource, rt: Runtime, label = source.label ?? MBD_FILE): Promise<MultiBandDiffusion> {
    const file = await TorchFile.open(source, label, { inert: (q) => q.startsWith('omegaconf.') });
    const bands: BandDiffusion[] = [];
    try {
      const root = file.root;
      if (!(root instanceof PyDict)) throw new Error(`${label}: holds ${describe(root)}, not a multi-band diffusion package`);
      const sr = root.get('sample_rate');
      const n = root.get('n_bands');
      if (typeof sr !== 'number' || typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
        throw new Error(`${label}: not a multi-band diffusion package (no "sample_rate" / "n_bands"; keys: ${[...root.keys()].map(String).join(', ')})`);
      }
      for (let i = 0; i < n; i++) {
        const where = `${label}[${i}]`;
        const entry = root.get(i);
        if (!(entry instanceof PyDict)) throw new Error(`${where}: missing (the package says n_bands = ${n})`);
        const cfg = bandConfig(resolveInterpolations(omegaconfToPlain(entry.get('cfg') ?? null)), `${where}.cfg`);
        const w = new Weights(file.stateDict([i, 'model_state']), rt);
        const unet = await DiffusionUnet.load(w, cfg.unet);
        const unused = w.unused();
        if (unused.length) {
          unet.dispose();
          throw new Error(`${where}.model_state: ${unused.length} tensors the U-Net does not use, e.g. ${unused.slice(0, 4).join(', ')} (a configuration this port does not know?)`);
        }
        let processor: MultiBandProcessor | null = null;
        if (cfg.processor) {
          const ps = file.stateDict([i, 'processor_state']);
          const nb = cfg.processor.n_bands;
          const read = async (k: string, len: number) => {
            const v = await ps.readF32(k);
            if (v.length !== len) throw new Error(`${where}.processor_state.${k}: ${v.length} values, expected ${len}`);
            return v;
          };
          processor = new MultiBandProcessor(sr, cfg.processor, {
            counts: (await read('counts', 1))[0], sumX: await read('sum_x', nb), sumX2: await read('sum_x2', nb), sumTargetX2: await read('sum_target_x2', nb),
            filters: ps.has('split_bands.lowpass.filters') ? await ps.readF32('split_bands.lowpass.filters') : undefined,
          });
        }
        bands.push(new BandDiffusion(cfg, unet, processor));
      }
      return new MultiBandDiffusion(sr, bands, label);
    } catch (e) {
      for (const b of bands) b.dispose();
      throw e;
    } finally {
      await file.close();
    }
  }

  /**
   * tokens_to_wav for MusicGen codes [C·K, T] (a stereo model's codebooks interleaved L0 R0 L1 R1 …): each channel
   * is a batch item; the condition is EnCodec's quantizer decode of its codes, the reference EnCodec's decode.
   */
  async decode(encodec: EncodecModel, codes: Int32Array, K: number, T: number, channels: number, noise: MbdNoise): Promise<MbdResult> {
    if (encodec.cfg.sampling_rate !== this.sampleRate) {
      throw new Error(`${this.label}: trained at ${this.sampleRate} Hz, the model's EnCodec runs at ${encodec.cfg.sampling_rate} Hz`);
    }
    const rt = encodec.codebooks.rt;
    const k = K / channels;
    const hop = encodec.hopLength;
    const N = T * hop;
    const perChannel = new Int32Array(channels * k * T);
    for (let c = 0; c < channels; c++) for (let q = 0; q < k; q++) perChannel.set(codes.subarray((q * channels + c) * T, (q * channels + c + 1) * T), (c * k + q) * T);
    const codeTensor = Tensor.from(perChannel, [channels, k, T], 'i32', rt);
    const condition = tidy(() => ops.rvqDecode(codeTensor, encodec.codebooks)); // C, D, T
    try {
      const ref = await encodec.decodeChunked(codeTensor); // C·N
      const audio = new Float32Array(channels * N);
      for (const [d, band] of this.bands.entries()) {
        const chin = band.cfg.unet.chin;
        if (chin !== 1) throw new Error(`${this.label}[${d}]: a ${chin}-channel diffusion model (audiocraft's MusicGen MBD is mono per channel)`);
        const size = channels * chin * N;
        const out = await band.generate(condition, noise(d, 0, size), [channels, chin, N], (s) => noise(d, s, size));
        for (let i = 0; i < audio.length; i++) audio[i] += out[i];
      }
      const audioEq = await reEq(audio, ref, channels, this.sampleRate, rt);
      return { audio, audioEq, channels, samples: N };
    } finally {
      codeTensor.dispose();
      condition.dispose();
    }
  }

  dispose(): void {
    for (const b of this.bands) b.dispose();
  }
}
