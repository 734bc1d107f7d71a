// HTDemucs (Hybrid Transformer Demucs) source separation on the GPU, loaded from a Demucs package
// ({klass, args, kwargs, state}, as demucs.states.serialize_model writes it; the published `htdemucs` is one).
// A port of facebookresearch/demucs: htdemucs.py (HTDemucs: the spectrogram branch over complex-as-channels
// STFT frames, the waveform branch, the cross-domain transformer between them), hdemucs.py (HEncLayer,
// HDecLayer, the frequency embedding), demucs.py (DConv residual branches), transformer.py
// (CrossTransformerEncoder and its layers, sinusoidal position embeddings), spec.py (STFT/iSTFT) and apply.py
// (`apply_model` with split=True, overlap, shifts=0: segments of the model's training length, weighted by a
// triangular window where they overlap). Inference only; batch 1 (one clip at a time).

import { Tensor, keep, tidy } from '../tensor.js';
import { runtime, type Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import type { ByteSource } from '../io/safetensors.js';
import { BufferSource } from '../io/safetensors.js';
import { UrlSource } from '../io/url-source.js';
import { TorchFile } from '../io/pytorch.js';
import { PyDict, PyFraction, PyGlobal, describe, type PickleValue } from '../io/pickle.js';
import { Weights } from './weights.js';

// ---- configuration: HTDemucs.__init__'s arguments ----

/** HTDemucs's constructor arguments that shape inference, with the package's values over demucs's defaults. */
export interface HTDemucsConfig {
  sources: string[];
  audio_channels: number;
  channels: number;
  channels_time: number | null;
  growth: number;
  nfft: number;
  cac: boolean;
  depth: number;
  rewrite: boolean;
  multi_freqs: number[] | null;
  freq_emb: number;
  emb_scale: number;
  kernel_size: number;
  time_stride: number;
  stride: number;
  context: number;
  context_enc: number;
  norm_starts: number;
  norm_groups: number;
  dconv_mode: number;
  dconv_depth: number;
  dconv_comp: number;
  bottom_channels: number;
  t_layers: number;
  t_emb: string;
  t_hidden_scale: number;
  t_heads: number;
  t_norm_in: boolean;
  t_norm_in_group: boolean;
  t_group_norm: boolean | number;
  t_norm_first: boolean;
  t_norm_out: boolean;
  t_max_period: number;
  t_layer_scale: boolean;
  t_gelu: boolean;
  t_weight_pos_embed: number;
  t_sin_random_shift: number;
  t_sparse_self_attn: boolean;
  t_sparse_cross_attn: boolean;
  t_cross_first: boolean;
  samplerate: number;
  /** Seconds; packages may store it as a Fraction (htdemucs: 39/5). */
  segment: number | PyFraction;
  use_train_segment: boolean;
}

const DEFAULTS: Omit<HTDemucsConfig, 'sources'> = {
  audio_channels: 2, channels: 48, channels_time: null, growth: 2, nfft: 4096, cac: true, depth: 4, rewrite: true,
  multi_freqs: null, freq_emb: 0.2, emb_scale: 10, kernel_size: 8, time_stride: 2, stride: 4, context: 1,
  context_enc: 0, norm_starts: 4, norm_groups: 4, dconv_mode: 1, dconv_depth: 2, dconv_comp: 8, bottom_channels: 0,
  t_layers: 5, t_emb: 'sin', t_hidden_scale: 4.0, t_heads: 8, t_norm_in: true, t_norm_in_group: false,
  t_group_norm: false, t_norm_first: true, t_norm_out: true, t_max_period: 10000.0, t_layer_scale: true, t_gelu: true,
  t_weight_pos_embed: 1.0, t_sin_random_shift: 0, t_sparse_self_attn: false, t_sparse_cross_attn: false,
  t_cross_first: false, samplerate: 44100, segment: 10, use_train_segment: true,
};

/** Arguments that only matter for training (or for options refused below): accepted and ignored. */
const IGNORED = new Set(['wiener_iters', 'end_iters', 'wiener_residual', 'multi_freqs_depth', 'emb_smooth',
  'dconv_init', 't_dropout', 't_max_positions', 't_weight_decay', 't_lr', 't_cape_mean_normalize', 't_cape_augment',
  't_cape_glob_loc_scale', 't_mask_type', 't_mask_random_seed', 't_sparse_attn_window', 't_global_window',
  't_sparsity', 't_auto_sparsity', 'rescale']);

/** Plain JS value of a pickled kwarg (lists, numbers, strings, booleans, None, Fractions). */
function plain(v: PickleValue, where: string): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string' || v instanceof PyFraction) return v;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map((x, i) => plain(x, `${where}[${i}]`));
  throw new Error(`Demucs package: ${where} is ${describe(v)}, not a plain value`);
}

/** HTDemucsConfig from a package's args and kwargs; refuses options this port does not implement. */
export function parseHTDemucsConfig(args: readonly PickleValue[], kwargs: PyDict): HTDemucsConfig {
  const cfg: Record<string, unknown> = { ...DEFAULTS };
  if (args.length > 1) throw new Error(`Demucs package: ${args.length} positional arguments; HTDemucs takes one (sources)`);
  if (args.length === 1) cfg.sources = plain(args[0]!, 'args[0]');
  for (const [k, v] of kwargs) {
    if (typeof k !== 'string') throw new Error(`Demucs package: kwargs key ${describe(k)}`);
    if (k === 'sources' || k in DEFAULTS) cfg[k] = plain(v, `kwargs.${k}`);
    else if (!IGNORED.has(k)) throw new Error(`Demucs package: unknown HTDemucs argument "${k}"`);
  }
  const c = cfg as unknown as HTDemucsConfig;
  if (!Array.isArray(c.sources) || c.sources.length === 0 || !c.sources.every((s) => typeof s === 'string')) {
    throw new Error(`Demucs package: sources must be a list of names, got ${JSON.stringify(c.sources)}`);
  }
  const refuse = (cond: boolean, what: string): void => {
    if (cond) throw new Error(`Demucs package: ${what} is not supported (only HTDemucs as published is)`);
  };
  refuse(!c.cac, 'cac=False (masking with Wiener filtering)');
  refuse(!!c.multi_freqs && c.multi_freqs.length > 0, 'multi_freqs (MultiWrap)');
  refuse(c.t_emb !== 'sin', `t_emb="${c.t_emb}"`);
  refuse(c.t_sparse_self_attn || c.t_sparse_cross_attn, 'sparse attention');
  refuse(c.t_sin_random_shift !== 0, 't_sin_random_shift (a random position shift)');
  refuse(Number(c.t_group_norm) > 1, 't_group_norm with more than one group');
  refuse(c.nfft % 4 !== 0, `nfft ${c.nfft}`);
  return c;
}

/** Samples per segment, int(segment · samplerate) as demucs computes it (exactly, for a Fraction). */
export function segmentLength(cfg: HTDemucsConfig): number {
  const s = cfg.segment;
  if (s instanceof PyFraction) return Number((s.numerator * BigInt(cfg.samplerate)) / s.denominator);
  return Math.floor(s * cfg.samplerate);
}

// ---- building blocks ----

/** A conv over time ([B, C, T], Conv1d) or over frequency ([B, C, F, T], Conv2d with a [k, 1] kernel). */
class Conv {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor,
    readonly twoD: boolean,
    readonly stride: number,
    readonly padding: number,
    /** 2-D only: padding along time (the decoder's 3×3 rewrite pads both axes). */
    readonly padT = 0,
    readonly dilation = 1,
  ) {}

  static async load(w: Weights, shape: number[], opts: { stride?: number; padding?: number; padT?: number; dilation?: number } = {}): Promise<Conv> {
    return new Conv(await w.get('weight', shape), await w.get('bias', [shape[0]]), shape.length === 4,
      opts.stride ?? 1, opts.padding ?? 0, opts.padT ?? 0, opts.dilation ?? 1);
  }

  forward(x: Tensor): Tensor {
    if (!this.twoD) return ops.conv1d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation });
    return ops.conv2d(x, this.weight, this.bias, { stride: [this.stride, 1], padding: [this.padding, this.padT] });
  }
}

/** ConvTranspose1d over time, or ConvTranspose2d with a [k, 1] kernel over frequency; no padding. */
class ConvTr {
  constructor(readonly weight: Tensor, readonly bias: Tensor, readonly stride: number) {}
  static async load(w: Weights, shape: number[], stride: number): Promise<ConvTr> {
    return new ConvTr(await w.get('weight', shape), await w.get('bias', [shape[1]]), stride);
  }
  forward(x: Tensor): Tensor {
    if (this.weight.rank === 3) return ops.convTranspose1d(x, this.weight, this.bias, { stride: this.stride });
    return ops.convTranspose2d(x, this.weight, this.bias, { stride: [this.stride, 1] });
  }
}

/** nn.GroupNorm(groups, C) (eps 1e-5), or nothing where the layer has no norm (nn.Identity). */
class GroupNorm {
  constructor(readonly groups: number, readonly weight: Tensor, readonly bias: Tensor) {}
  static async load(w: Weights, groups: number, C: number, enabled: boolean): Promise<GroupNorm | null> {
    return enabled ? new GroupNorm(groups, await w.get('weight', [C]), await w.get('bias', [C])) : null;
  }
  static apply(n: GroupNorm | null, x: Tensor): Tensor {
    return n ? ops.groupNorm(x, n.groups, n.weight, n.bias, 1e-5) : x;
  }
}

/** demucs.py DConv: residual branches of dilated conv → GroupNorm → GELU → 1×1 conv → GroupNorm → GLU → LayerScale. */
class DConv {
  constructor(readonly layers: { conv1: Conv; norm1: GroupNorm; conv2: Conv; norm2: GroupNorm; scale: Tensor }[]) {}

  static async load(w: Weights, C: number, cfg: HTDemucsConfig): Promise<DConv> {
    const hidden = Math.trunc(C / cfg.dconv_comp);
    const layers = [];
    for (let d = 0; d < Math.abs(cfg.dconv_depth); d++) {
      const lw = w.pp('layers').pp(d);
      const dilation = cfg.dconv_depth > 0 ? 2 ** d : 1;
      layers.push({
        conv1: await Conv.load(lw.pp(0), [hidden, C, 3], { dilation, padding: dilation }),
        norm1: (await GroupNorm.load(lw.pp(1), 1, hidden, true))!,
        conv2: await Conv.load(lw.pp(3), [2 * C, hidden, 1]),
        norm2: (await GroupNorm.load(lw.pp(4), 1, 2 * C, true))!,
        scale: await lw.pp(6).get('scale', [C]),
      });
    }
    return new DConv(layers);
  }

  /** x [N, C, T] */
  forward(x: Tensor): Tensor {
    for (const l of this.layers) {
      x = tidy(() => {
        const h = ops.gelu(GroupNorm.apply(l.norm1, l.conv1.forward(x)));
        const g = ops.glu(GroupNorm.apply(l.norm2, l.conv2.forward(h)), 1);
        return ops.add(x, ops.mul(g, l.scale.reshape([l.scale.shape[0], 1]))); // LayerScale over [N, C, T]
      });
    }
    return x;
  }

  /** The branch over time for every frequency row of a frequency layer's [B, C, F, T]. */
  forwardFreq(y: Tensor): Tensor {
    return tidy(() => {
      const [B, C, F, T] = y.shape;
      const rows = ops.permute(y, [0, 2, 1, 3]).reshape([B * F, C, T]); // [B·F, C, T]
      return ops.permute(this.forward(rows).reshape([B, F, C, T]), [0, 2, 1, 3]);
    });
  }
}

/** Shape facts of one encoder/decoder level, as HTDemucs.__init__ derives them. */
interface Level {
  freq: boolean;
  kernel: number;
  stride: number;
  pad: boolean;
  lastFreq: boolean;
  norm: boolean;
  /** frequency branch channels in → out (encoder direction) */
  chinZ: number;
  choutZ: number;
  /** time branch channels in → out (encoder direction) */
  chin: number;
  chout: number;
  /** decoder output channels (the encoder's input, or S·C(·2) at level 0) */
  decOutZ: number;
  decOut: number;
}

function levels(cfg: HTDemucsConfig): { levels: Level[]; freqsAfterFirst: number } {
  const out: Level[] = [];
  let chin = cfg.audio_channels;
  let chinZ = cfg.cac ? chin * 2 : chin;
  let chout = cfg.channels_time ?? cfg.channels;
  let choutZ = cfg.channels;
  let freqs = cfg.nfft / 2;
  let freqsAfterFirst = 0;
  for (let index = 0; index < cfg.depth; index++) {
    const norm = index >= cfg.norm_starts;
    const freq = freqs > 1;
    let kernel = cfg.kernel_size;
    let stride = cfg.stride;
    if (!freq) {
      kernel = cfg.time_stride * 2;
      stride = cfg.time_stride;
    }
    let pad = true;
    let lastFreq = false;
    if (freq && freqs <= cfg.kernel_size) {
      kernel = freqs;
      pad = false;
      lastFreq = true;
    }
    if (lastFreq) {
      choutZ = Math.max(chout, choutZ);
      chout = choutZ;
    }
    const encChin = chin;
    const encChinZ = chinZ;
    if (index === 0) {
      chin = cfg.audio_channels * cfg.sources.length;
      chinZ = cfg.cac ? chin * 2 : chin;
    }
    out.push({ freq, kernel, stride, pad, lastFreq, norm, chinZ: encChinZ, choutZ, chin: encChin, chout, decOutZ: chinZ, decOut: chin });
    chin = chout;
    chinZ = choutZ;
    chout = Math.trunc(cfg.growth * chout);
    choutZ = Math.trunc(cfg.growth * choutZ);
    if (freq) freqs = freqs <= cfg.kernel_size ? 1 : Math.floor(freqs / cfg.stride);
    if (index === 0) freqsAfterFirst = freqs;
  }
  return { levels: out, freqsAfterFirst };
}

/** hdemucs.py HEncLayer: conv (stride) → [+ injected time branch] → norm → GELU → DConv → 1×1 rewrite → norm → GLU. */
class HEncLayer {
  constructor(
    readonly freq: boolean,
    readonly stride: number,
    readonly empty: boolean,
    readonly conv: Conv,
    readonly norm1: GroupNorm | null,
    readonly rewrite: Conv | null,
    readonly norm2: GroupNorm | null,
    readonly dconv: DConv | null,
  ) {}

  static async load(w: Weights, cfg: HTDemucsConfig, o: { chin: number; chout: number; kernel: number; stride: number; pad: boolean; freq: boolean; norm: boolean; empty: boolean }): Promise<HEncLayer> {
    const padding = o.pad ? Math.floor(o.kernel / 4) : 0;
    const convShape = o.freq ? [o.chout, o.chin, o.kernel, 1] : [o.chout, o.chin, o.kernel];
    const conv = await Conv.load(w.pp('conv'), convShape, { stride: o.stride, padding });
    if (o.empty) return new HEncLayer(o.freq, o.stride, true, conv, null, null, null, null);
    const norm1 = await GroupNorm.load(w.pp('norm1'), cfg.norm_groups, o.chout, o.norm);
    let rewrite: Conv | null = null;
    let norm2: GroupNorm | null = null;
    if (cfg.rewrite) {
      const k = 1 + 2 * cfg.context_enc;
      const shape = o.freq ? [2 * o.chout, o.chout, k, k] : [2 * o.chout, o.chout, k];
      rewrite = await Conv.load(w.pp('rewrite'), shape, { padding: cfg.context_enc, padT: cfg.context_enc });
      norm2 = await GroupNorm.load(w.pp('norm2'), cfg.norm_groups, 2 * o.chout, o.norm);
    }
    const dconv = cfg.dconv_mode & 1 ? await DConv.load(w.pp('dconv'), o.chout, cfg) : null;
    return new HEncLayer(o.freq, o.stride, false, conv, norm1, rewrite, norm2, dconv);
  }

  forward(x: Tensor, inject?: Tensor): Tensor {
    return tidy(() => {
      if (!this.freq && x.rank === 4) x = x.reshape([x.shape[0], x.shape[1] * x.shape[2], x.shape[3]]);
      if (!this.freq) {
        const le = x.shape[2];
        if (le % this.stride !== 0) x = ops.padZeros(x, 2, 0, this.stride - (le % this.stride));
      }
      let y = this.conv.forward(x);
      if (this.empty) return y;
      if (inject) {
        if (inject.shape[inject.rank - 1] !== y.shape[y.rank - 1]) {
          throw new Error(`HEncLayer: injected time branch of length ${inject.shape[inject.rank - 1]} for ${y.shape[y.rank - 1]} frames`);
        }
        y = ops.add(y, inject.rank === 3 && y.rank === 4 ? inject.reshape([inject.shape[0], inject.shape[1], 1, inject.shape[2]]) : inject);
      }
      y = ops.gelu(GroupNorm.apply(this.norm1, y));
      if (this.dconv) y = this.freq ? this.dconv.forwardFreq(y) : this.dconv.forward(y);
      if (!this.rewrite) return y;
      return ops.glu(GroupNorm.apply(this.norm2, this.rewrite.forward(y)), 1);
    });
  }
}

/** hdemucs.py HDecLayer: + skip → rewrite → norm → GLU → DConv → transposed conv → norm → crop → GELU. */
class HDecLayer {
  constructor(
    readonly freq: boolean,
    readonly chin: number,
    readonly pad: number,
    readonly last: boolean,
    readonly empty: boolean,
    readonly convTr: ConvTr,
    readonly norm2: GroupNorm | null,
    readonly rewrite: Conv | null,
    readonly norm1: GroupNorm | null,
    readonly dconv: DConv | null,
  ) {}

  static async load(w: Weights, cfg: HTDemucsConfig, o: { chin: number; chout: number; kernel: number; stride: number; pad: boolean; freq: boolean; norm: boolean; empty: boolean; last: boolean }): Promise<HDecLayer> {
    const pad = o.pad ? Math.floor(o.kernel / 4) : 0;
    const trShape = o.freq ? [o.chin, o.chout, o.kernel, 1] : [o.chin, o.chout, o.kernel];
    const convTr = await ConvTr.load(w.pp('conv_tr'), trShape, o.stride);
    const norm2 = await GroupNorm.load(w.pp('norm2'), cfg.norm_groups, o.chout, o.norm);
    if (o.empty) return new HDecLayer(o.freq, o.chin, pad, o.last, true, convTr, norm2, null, null, null);
    let rewrite: Conv | null = null;
    let norm1: GroupNorm | null = null;
    if (cfg.rewrite) {
      const k = 1 + 2 * cfg.context;
      const shape = o.freq ? [2 * o.chin, o.chin, k, k] : [2 * o.chin, o.chin, k];
      rewrite = await Conv.load(w.pp('rewrite'), shape, { padding: cfg.context, padT: cfg.context });
      norm1 = await GroupNorm.load(w.pp('norm1'), cfg.norm_groups, 2 * o.chin, o.norm);
    }
    const dconv = cfg.dconv_mode & 2 ? await DConv.load(w.pp('dconv'), o.chin, cfg) : null;
    return new HDecLayer(o.freq, o.chin, pad, o.last, false, convTr, norm2, rewrite, norm1, dconv);
  }

  /** Returns [output, the input of the transposed conv] (HTDemucs feeds the latter to the time branch). */
  forward(x: Tensor, skip: Tensor | null, length: number): [Tensor, Tensor] {
    return tidy(() => {
      if (this.freq && x.rank === 3) x = x.reshape([x.shape[0], this.chin, -1, x.shape[2]]);
      let y: Tensor;
      if (!this.empty) {
        if (!skip) throw new Error('HDecLayer: missing skip connection');
        const s = ops.add(x, skip);
        y = this.rewrite ? ops.glu(GroupNorm.apply(this.norm1, this.rewrite.forward(s)), 1) : s;
        if (this.dconv) y = this.freq ? this.dconv.forwardFreq(y) : this.dconv.forward(y);
      } else {
        y = x;
      }
      let z = GroupNorm.apply(this.norm2, this.convTr.forward(y));
      if (this.freq) {
        if (this.pad) z = ops.narrow(z, 2, this.pad, z.shape[2] - 2 * this.pad);
      } else {
        z = ops.narrow(z, 2, this.pad, length);
      }
      if (!this.last) z = ops.gelu(z);
      return [z, y];
    });
  }
}

// ---- the cross-domain transformer (transformer.py) ----

/** nn.MultiheadAttention (batch_first), its in_proj split at load into the query and the key/value parts. */
class MultiheadAttention {
  constructor(readonly heads: number, readonly wq: Tensor, readonly bq: Tensor, readonly wkv: Tensor,
    readonly bkv: Tensor, readonly wo: Tensor, readonly bo: Tensor) {}

  static async load(w: Weights, C: number, heads: number): Promise<MultiheadAttention> {
    const win = await w.get('in_proj_weight', [3 * C, C]);
    const bin = await w.get('in_proj_bias', [3 * C]);
    const m = new MultiheadAttention(heads, keep(ops.narrow(win, 0, 0, C)), keep(ops.narrow(bin, 0, 0, C)),
      keep(ops.narrow(win, 0, C, 2 * C)), keep(ops.narrow(bin, 0, C, 2 * C)),
      await w.pp('out_proj').get('weight', [C, C]), await w.pp('out_proj').get('bias', [C]));
    win.dispose();
    bin.dispose();
    return m;
  }

  /** The split in_proj parts (not in the loader's record); the rest are freed with the model's weights. */
  dispose(): void {
    for (const t of [this.wq, this.bq, this.wkv, this.bkv]) t.dispose();
  }

  /** q [B, Tq, C] attends to kv [B, Tk, C] → [B, Tq, C] */
  forward(q: Tensor, kv: Tensor): Tensor {
    return tidy(() => {
      const [B, Tq, C] = q.shape;
      const Tk = kv.shape[1];
      const H = this.heads;
      const D = C / H;
      const qh = ops.permute(ops.linear(q, this.wq, this.bq).reshape([B, Tq, H, D]), [0, 2, 1, 3]); // [B, H, Tq, D]
      const kvh = ops.permute(ops.linear(kv, this.wkv, this.bkv).reshape([B, Tk, 2, H, D]), [2, 0, 3, 1, 4]); // [2, B, H, Tk, D]
      const k = ops.narrow(kvh, 0, 0, 1).reshape([B, H, Tk, D]);
      const v = ops.narrow(kvh, 0, 1, 1).reshape([B, H, Tk, D]);
      const o = ops.permute(ops.attention(qh, k, v), [0, 2, 1, 3]).reshape([B, Tq, C]); // [B, Tq, C]
      return ops.linear(o, this.wo, this.bo);
    });
  }
}

/** A norm over the channels of [B, T, C]: LayerNorm, or MyGroupNorm(1) (one group over all of T and C). */
class SeqNorm {
  constructor(readonly weight: Tensor, readonly bias: Tensor, readonly group: boolean) {}
  static async load(w: Weights, C: number, group: boolean): Promise<SeqNorm> {
    return new SeqNorm(await w.get('weight', [C]), await w.get('bias', [C]), group);
  }
  forward(x: Tensor): Tensor {
    if (!this.group) return ops.layerNorm(x, this.weight, this.bias, 1e-5);
    return tidy(() => {
      const [B, T, C] = x.shape;
      const n = ops.groupNorm(x.reshape([B, 1, T * C]), 1, undefined, undefined, 1e-5).reshape([B, T, C]);
      return ops.add(ops.mul(n, this.weight), this.bias);
    });
  }
}

/** MyTransformerEncoderLayer (self-attention) or CrossTransformerEncoderLayer (cross-attention). */
class TransformerLayer {
  constructor(
    readonly cross: boolean,
    readonly normFirst: boolean,
    readonly attn: MultiheadAttention,
    readonly linear1: { w: Tensor; b: Tensor },
    readonly linear2: { w: Tensor; b: Tensor },
    readonly act: 'gelu' | 'relu',
    readonly norm1: SeqNorm,
    readonly norm2: SeqNorm,
    readonly norm3: SeqNorm | null,
    readonly normOut: SeqNorm | null,
    readonly gamma1: Tensor | null,
    readonly gamma2: Tensor | null,
  ) {}

  static async load(w: Weights, cfg: HTDemucsConfig, C: number, cross: boolean): Promise<TransformerLayer> {
    const hidden = Math.trunc(C * cfg.t_hidden_scale);
    const group = Boolean(cfg.t_group_norm);
    const attn = await MultiheadAttention.load(w.pp(cross ? 'cross_attn' : 'self_attn'), C, cfg.t_heads);
    const lin = async (name: string, o: number, i: number) => ({ w: await w.pp(name).get('weight', [o, i]), b: await w.pp(name).get('bias', [o]) });
    const linear1 = await lin('linear1', hidden, C);
    const linear2 = await lin('linear2', C, hidden);
    const norm1 = await SeqNorm.load(w.pp('norm1'), C, group);
    const norm2 = await SeqNorm.load(w.pp('norm2'), C, group);
    let norm3: SeqNorm | null = null;
    if (cross) {
      if (cfg.t_norm_first) norm3 = await SeqNorm.load(w.pp('norm3'), C, group);
      else for (const p of ['weight', 'bias']) w.pp('norm3').skip(p); // built but unused after the layer
    }
    const normOut = cfg.t_norm_first && cfg.t_norm_out ? await SeqNorm.load(w.pp('norm_out'), C, true) : null;
    const gamma1 = cfg.t_layer_scale ? await w.pp('gamma_1').get('scale', [C]) : null;
    const gamma2 = cfg.t_layer_scale ? await w.pp('gamma_2').get('scale', [C]) : null;
    return new TransformerLayer(cross, cfg.t_norm_first, attn, linear1, linear2, cfg.t_gelu ? 'gelu' : 'relu',
      norm1, norm2, norm3, normOut, gamma1, gamma2);
  }

  private ff(x: Tensor): Tensor {
    return ops.linear(ops.linear(x, this.linear1.w, this.linear1.b, this.act), this.linear2.w, this.linear2.b);
  }

  private scaled(x: Tensor, gamma: Tensor | null): Tensor {
    return gamma ? ops.mul(x, gamma) : x;
  }

  /** x [B, T, C]; `other` [B, S, C] is what a cross-attention layer attends to. */
  forward(x: Tensor, other?: Tensor): Tensor {
    return tidy(() => {
      const attend = (q: Tensor, kv: Tensor): Tensor => this.attn.forward(q, kv);
      let y: Tensor;
      if (this.normFirst) {
        const n1 = this.norm1.forward(x);
        const a = attend(n1, this.cross ? this.norm2.forward(other!) : n1);
        y = ops.add(x, this.scaled(a, this.gamma1));
        const n = this.cross ? this.norm3! : this.norm2;
        y = ops.add(y, this.scaled(this.ff(n.forward(y)), this.gamma2));
        if (this.normOut) y = this.normOut.forward(y);
      } else {
        y = this.norm1.forward(ops.add(x, this.scaled(attend(x, this.cross ? other! : x), this.gamma1)));
        y = this.norm2.forward(ops.add(y, this.scaled(this.ff(y), this.gamma2)));
      }
      return y;
    });
  }
}

const f = Math.fround;

/** transformer.py create_sin_embedding (shift 0) as [T, C], in float32 arithmetic as PyTorch does it. */
function sinEmbedding(T: number, C: number, maxPeriod: number): Float32Array {
  const half = C / 2;
  const out = new Float32Array(T * C);
  for (let a = 0; a < half; a++) {
    const div = f(Math.pow(maxPeriod, f(a / (half - 1))));
    for (let t = 0; t < T; t++) {
      const phase = f(t / div);
      out[t * C + a] = Math.cos(phase);
      out[t * C + half + a] = Math.sin(phase);
    }
  }
  return out;
}

/** transformer.py create_2d_sin_embedding, rearranged "c fr t1 -> (t1 fr) c": [T1·Fr, C], in float32 steps. */
function sin2dEmbedding(C: number, Fr: number, T1: number, maxPeriod: number): Float32Array {
  const d = C / 2;
  const out = new Float32Array(T1 * Fr * C);
  const step = f(-(Math.log(maxPeriod) / d));
  for (let i = 0; i < d; i += 2) {
    const div = f(Math.exp(f(i * step)));
    for (let t = 0; t < T1; t++) {
      for (let h = 0; h < Fr; h++) {
        const row = (t * Fr + h) * C;
        const pw = f(t * div);
        const ph = f(h * div);
        out[row + i] = Math.sin(pw);
        out[row + i + 1] = Math.cos(pw);
        out[row + d + i] = Math.sin(ph);
        out[row + d + i + 1] = Math.cos(ph);
      }
    }
  }
  return out;
}

/** transformer.py CrossTransformerEncoder: alternating self- and cross-attention layers for both branches. */
class CrossTransformerEncoder {
  private readonly posCache = new Map<string, Tensor>();

  constructor(
    readonly cfg: HTDemucsConfig,
    readonly C: number,
    readonly normIn: SeqNorm | null,
    readonly normInT: SeqNorm | null,
    readonly layers: TransformerLayer[],
    readonly layersT: TransformerLayer[],
  ) {}

  static async load(w: Weights, cfg: HTDemucsConfig, C: number): Promise<CrossTransformerEncoder> {
    if (C % cfg.t_heads !== 0 || C % 4 !== 0) throw new Error(`HTDemucs: transformer width ${C} with ${cfg.t_heads} heads`);
    let normIn: SeqNorm | null = null;
    let normInT: SeqNorm | null = null;
    if (cfg.t_norm_in || cfg.t_norm_in_group) {
      const group = !cfg.t_norm_in; // norm_in wins when both are set
      normIn = await SeqNorm.load(w.pp('norm_in'), C, group);
      normInT = await SeqNorm.load(w.pp('norm_in_t'), C, group);
    }
    const parity = cfg.t_cross_first ? 1 : 0;
    const layers: TransformerLayer[] = [];
    const layersT: TransformerLayer[] = [];
    for (let i = 0; i < cfg.t_layers; i++) {
      const cross = i % 2 !== parity;
      layers.push(await TransformerLayer.load(w.pp('layers').pp(i), cfg, C, cross));
      layersT.push(await TransformerLayer.load(w.pp('layers_t').pp(i), cfg, C, cross));
    }
    return new CrossTransformerEncoder(cfg, C, normIn, normInT, layers, layersT);
  }

  private pos(key: string, make: () => Float32Array, shape: number[], rt: Runtime): Tensor {
    let t = this.posCache.get(key);
    if (!t) {
      const data = make();
      const w = this.cfg.t_weight_pos_embed;
      if (w !== 1) for (let i = 0; i < data.length; i++) data[i] = f(data[i]! * w);
      t = keep(Tensor.from(data, shape, 'f32', rt));
      this.posCache.set(key, t);
    }
    return t;
  }

  /** x [B, C, Fr, T1] (frequency branch), xt [B, C, T2] (time branch) → the same shapes. */
  forward(x: Tensor, xt: Tensor): [Tensor, Tensor] {
    return tidy(() => {
      const [B, C, Fr, T1] = x.shape;
      const T2 = xt.shape[2];
      const rt = x.rt;
      const mp = this.cfg.t_max_period;
      let s = ops.permute(x, [0, 3, 2, 1]).reshape([B, T1 * Fr, C]); // [B, T1·Fr, C]
      if (this.normIn) s = this.normIn.forward(s);
      s = ops.add(s, this.pos(`2d.${Fr}.${T1}`, () => sin2dEmbedding(C, Fr, T1, mp), [T1 * Fr, C], rt));
      let st = ops.transpose(xt, 1, 2); // [B, T2, C]
      if (this.normInT) st = this.normInT.forward(st);
      st = ops.add(st, this.pos(`1d.${T2}`, () => sinEmbedding(T2, C, mp), [T2, C], rt));
      for (let i = 0; i < this.layers.length; i++) {
        const l = this.layers[i]!;
        const lt = this.layersT[i]!;
        if (!l.cross) {
          s = l.forward(s);
          st = lt.forward(st);
        } else {
          const old = s;
          s = l.forward(s, st);
          st = lt.forward(st, old);
        }
      }
      const xo = ops.permute(s.reshape([B, T1, Fr, C]), [0, 3, 2, 1]); // [B, C, Fr, T1]
      return [xo, ops.transpose(st, 1, 2)];
    });
  }

  dispose(): void {
    for (const l of [...this.layers, ...this.layersT]) l.attn.dispose();
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }
}

// ---- HTDemucs ----

/** Mean and (unbiased) standard deviation of all of x, as [1] tensors on the GPU (no read-back). */
function meanStd(x: Tensor): [Tensor, Tensor] {
  const n = x.size;
  const mean = ops.scale(ops.sumAll(x), 1 / n);
  const d = ops.sub(x, mean);
  const std = ops.sqrt(ops.scale(ops.sumAll(ops.square(d)), 1 / (n - 1)));
  return [mean, std];
}

/** Replaces `x` (which it owns) by f(x), disposing the old tensor. */
function step(x: Tensor, fn: (x: Tensor) => Tensor): Tensor {
  const y = fn(x);
  if (y !== x) x.dispose();
  return y;
}

export class HTDemucs {
  private constructor(
    readonly cfg: HTDemucsConfig,
    readonly encoder: HEncLayer[],
    readonly decoder: HDecLayer[],
    readonly tencoder: HEncLayer[],
    readonly tdecoder: HDecLayer[],
    /** freq_emb_scale · emb_scale · freq_emb.embedding.weightᵀ as [C, Fr, 1], or null without one. */
    readonly freqEmb: Tensor | null,
    readonly bottom: { up: Conv; down: Conv; upT: Conv; downT: Conv } | null,
    readonly transformer: CrossTransformerEncoder | null,
    readonly params: Tensor[],
  ) {}

  get sources(): string[] { return this.cfg.sources; }

  static async load(w: Weights, cfg: HTDemucsConfig): Promise<HTDemucs> {
    const { levels: lv, freqsAfterFirst } = levels(cfg);
    const encoder: HEncLayer[] = [];
    const tencoder: HEncLayer[] = [];
    const decoder: HDecLayer[] = [];
    const tdecoder: HDecLayer[] = [];
    for (let i = 0; i < cfg.depth; i++) {
      const l = lv[i]!;
      encoder.push(await HEncLayer.load(w.pp('encoder').pp(i), cfg, {
        chin: l.chinZ, chout: l.choutZ, kernel: l.kernel, stride: l.stride, pad: l.pad, freq: l.freq, norm: l.norm, empty: false,
      }));
      if (l.freq) {
        tencoder.push(await HEncLayer.load(w.pp('tencoder').pp(i), cfg, {
          chin: l.chin, chout: l.chout, kernel: cfg.kernel_size, stride: cfg.stride, pad: true, freq: false, norm: l.norm, empty: l.lastFreq,
        }));
      }
    }
    const nT = tencoder.length;
    // decoder[j] mirrors encoder level depth − 1 − j; tdecoder[j] mirrors time level nT − 1 − j
    for (let j = 0; j < cfg.depth; j++) {
      const l = lv[cfg.depth - 1 - j]!;
      decoder.push(await HDecLayer.load(w.pp('decoder').pp(j), cfg, {
        chin: l.choutZ, chout: l.decOutZ, kernel: l.kernel, stride: l.stride, pad: l.pad, freq: l.freq, norm: l.norm,
        empty: false, last: cfg.depth - 1 - j === 0,
      }));
    }
    for (let j = 0; j < nT; j++) {
      const l = lv[nT - 1 - j]!;
      tdecoder.push(await HDecLayer.load(w.pp('tdecoder').pp(j), cfg, {
        chin: l.chout, chout: l.decOut, kernel: cfg.kernel_size, stride: cfg.stride, pad: true, freq: false, norm: l.norm,
        empty: l.lastFreq, last: nT - 1 - j === 0,
      }));
    }
    let freqEmb: Tensor | null = null;
    if (cfg.freq_emb) {
      const C = cfg.channels;
      const Fr = freqsAfterFirst;
      const table = await w.pp('freq_emb').pp('embedding').readF32('weight', [Fr, C]);
      const t = new Float32Array(C * Fr);
      for (let fr = 0; fr < Fr; fr++) {
        for (let c = 0; c < C; c++) t[c * Fr + fr] = f(cfg.freq_emb * f(table[fr * C + c]! * cfg.emb_scale));
      }
      freqEmb = keep(Tensor.from(t, [C, Fr, 1], 'f32', w.rt));
    }
    const tc = cfg.channels * cfg.growth ** (cfg.depth - 1);
    let bottom: HTDemucs['bottom'] = null;
    let dim = tc;
    if (cfg.bottom_channels) {
      const bc = cfg.bottom_channels;
      bottom = {
        up: await Conv.load(w.pp('channel_upsampler'), [bc, tc, 1]),
        down: await Conv.load(w.pp('channel_downsampler'), [tc, bc, 1]),
        upT: await Conv.load(w.pp('channel_upsampler_t'), [bc, tc, 1]),
        downT: await Conv.load(w.pp('channel_downsampler_t'), [tc, bc, 1]),
      };
      dim = bc;
    }
    const transformer = cfg.t_layers > 0 ? await CrossTransformerEncoder.load(w.pp('crosstransformer'), cfg, dim) : null;
    const unused = w.unused();
    if (unused.length) throw new Error(`Demucs package: ${unused.length} weights nothing reads: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', …' : ''}`);
    const params = w.bound().map((b) => b.tensor);
    return new HTDemucs(cfg, encoder, decoder, tencoder, tdecoder, freqEmb, bottom, transformer, params);
  }

  /** Samples per segment (the training length): apply_model's chunk size. */
  get segmentLength(): number {
    return segmentLength(this.cfg);
  }

  /** htdemucs.py _spec: reflect-padded STFT, last bin and edge frames dropped → [C, 2, nfft/2, ⌈L/hop⌉]. */
  spec(mix: Tensor): Tensor {
    return tidy(() => {
      const hl = this.cfg.nfft / 4;
      const L = mix.shape[1];
      const le = Math.ceil(L / hl);
      const pad = Math.floor(hl / 2) * 3;
      const right = pad + le * hl - L;
      if (pad >= L || right >= L) throw new Error(`HTDemucs: ${L} samples are too few for the spectrogram padding`);
      const z = ops.stft(ops.pad1d(mix, pad, right, 'reflect'), this.cfg.nfft, hl); // [C, 2, nfft/2 + 1, le + 4]
      return ops.narrow(ops.narrow(z, 2, 0, this.cfg.nfft / 2), 3, 2, le);
    });
  }

  /** htdemucs.py _ispec: z [R, 2, nfft/2, T] → [R, length]. */
  private ispec(z: Tensor, length: number): Tensor {
    return tidy(() => {
      const hl = this.cfg.nfft / 4;
      const padded = ops.padZeros(ops.padZeros(z, 2, 0, 1), 3, 2, 2);
      const pad = Math.floor(hl / 2) * 3;
      const le = hl * Math.ceil(length / hl) + 2 * pad;
      return ops.narrow(ops.istft(padded, hl, le), 1, pad, length);
    });
  }

  /**
   * HTDemucs.forward for one clip: mix [C, L] → stems [S, C, L]. With use_train_segment (as published), a clip
   * shorter than the segment is zero-padded to it and the output cut back; a longer one is an error.
   */
  forward(mix: Tensor): Tensor {
    const cfg = this.cfg;
    if (mix.rank !== 2 || mix.shape[0] !== cfg.audio_channels) {
      throw new Error(`HTDemucs: mix must be [${cfg.audio_channels}, L], got [${mix.shape.join(', ')}]`);
    }
    return tidy(() => {
      const length = mix.shape[1];
      let L = length;
      if (cfg.use_train_segment) {
        const tl = this.segmentLength;
        if (length > tl) throw new Error(`HTDemucs: ${length} samples is longer than the model's segment of ${tl}`);
        if (length < tl) {
          mix = ops.padZeros(mix, 1, 0, tl - length);
          L = tl;
        }
      }
      const C = cfg.audio_channels;
      const S = cfg.sources.length;
      const z = this.spec(mix);
      const [, , Fq, T] = z.shape;
      const mag = z.reshape([1, 2 * C, Fq, T]); // complex as channels: c·2 + (re, im)
      const [mean, std] = meanStd(mag);
      let x = ops.div(ops.sub(mag, mean), ops.affine(std, 1, 1e-5));
      const [meant, stdt] = meanStd(mix);
      let xt = ops.div(ops.sub(mix, meant), ops.affine(stdt, 1, 1e-5)).reshape([1, C, L]);

      const saved: Tensor[] = [];
      const savedT: Tensor[] = [];
      const lengths: number[] = [];
      const lengthsT: number[] = [];
      for (let idx = 0; idx < this.encoder.length; idx++) {
        lengths.push(x.shape[x.rank - 1]);
        let inject: Tensor | undefined;
        if (idx < this.tencoder.length) {
          lengthsT.push(xt.shape[2]);
          const tenc = this.tencoder[idx]!;
          xt = tenc.forward(xt);
          if (!tenc.empty) savedT.push(xt);
          else inject = xt;
        }
        x = this.encoder[idx]!.forward(x, inject);
        if (idx === 0 && this.freqEmb) x = ops.add(x, this.freqEmb);
        saved.push(x);
      }
      if (this.transformer) {
        if (this.bottom) {
          const [b, c, fr, t] = x.shape;
          x = this.bottom.up.forward(x.reshape([b, c, fr * t])).reshape([b, -1, fr, t]);
          xt = this.bottom.upT.forward(xt);
        }
        [x, xt] = this.transformer.forward(x, xt);
        if (this.bottom) {
          const [b, c, fr, t] = x.shape;
          x = this.bottom.down.forward(x.reshape([b, c, fr * t])).reshape([b, -1, fr, t]);
          xt = this.bottom.downT.forward(xt);
        }
      }
      const offset = this.decoder.length - this.tdecoder.length;
      for (let idx = 0; idx < this.decoder.length; idx++) {
        const [xo, pre] = this.decoder[idx]!.forward(x, saved.pop()!, lengths.pop()!);
        x = xo;
        if (idx >= offset) {
          const tdec = this.tdecoder[idx - offset]!;
          const lengthT = lengthsT.pop()!;
          if (tdec.empty) {
            if (pre.shape[2] !== 1) throw new Error(`HTDemucs: expected one frequency before the time branch, got ${pre.shape[2]}`);
            xt = tdec.forward(pre.reshape([pre.shape[0], pre.shape[1], pre.shape[3]]), null, lengthT)[0];
          } else {
            xt = tdec.forward(xt, savedT.pop()!, lengthT)[0];
          }
        }
      }
      if (saved.length || savedT.length || lengthsT.length) throw new Error('HTDemucs: unused skip connections');
      // [1, S·C·2, Fq, T] → de-normalised → [S·C, 2, Fq, T] → iSTFT
      const zout = ops.add(ops.mul(x, std), mean).reshape([S * C, 2, Fq, T]);
      const wave = this.ispec(zout, L); // [S·C, L]
      const time = ops.add(ops.mul(xt, stdt), meant).reshape([S * C, L]);
      let out = ops.add(time, wave).reshape([S, C, L]);
      if (L !== length) out = ops.narrow(out, 2, 0, length);
      return out;
    });
  }

  dispose(): void {
    for (const t of this.params) if (!t.disposed) t.dispose();
    this.freqEmb?.dispose();
    this.transformer?.dispose();
  }
}

// ---- apply_model ----

export class AbortError extends Error {
  constructor() {
    super('separation aborted');
    this.name = 'AbortError';
  }
}

export interface SeparateOptions {
  /** Called after each segment with (segments done, segments in all). */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Overlap between segments, as a fraction of a segment (apply_model's default 0.25). */
  overlap?: number;
}

/**
 * apply_model(model, mix, shifts=0, split=True, overlap) for one clip: mix[c] (each of length N) → [source][channel].
 * Each segment of the model's length, taken every (1 − overlap)·segment samples, is centred in the model's window
 * with its neighbouring samples as context (zeros past the clip's ends), separated, and added in with the
 * triangular weights [1, 2, …, n/2, n − n/2, …, 1]/max; the sum is divided by the summed weights.
 */
export async function applyModel(model: HTDemucs, mix: Float32Array[], opts: SeparateOptions = {}): Promise<Float32Array[][]> {
  const cfg = model.cfg;
  const C = cfg.audio_channels;
  if (mix.length !== C) throw new Error(`Demucs: the model takes ${C} channels, got ${mix.length}`);
  const N = mix[0]!.length;
  if (mix.some((m) => m.length !== N)) throw new Error('Demucs: channels of different lengths');
  const S = cfg.sources.length;
  const out = Array.from({ length: S }, () => Array.from({ length: C }, () => new Float32Array(N)));
  if (N === 0) return out;
  const overlap = opts.overlap ?? 0.25;
  if (!(overlap >= 0 && overlap < 1)) throw new Error(`Demucs: overlap ${overlap} must be in [0, 1)`);
  const seg = model.segmentLength;
  const stride = Math.trunc((1 - overlap) * seg);
  if (stride < 1) throw new Error(`Demucs: segment of ${seg} samples with overlap ${overlap} leaves no stride`);
  const half = Math.floor(seg / 2);
  const wmax = Math.max(half, seg - half);
  const weight = new Float32Array(seg);
  for (let i = 0; i < seg; i++) weight[i] = (i < half ? i + 1 : seg - i) / wmax;
  const sumWeight = new Float32Array(N);
  const offsets: number[] = [];
  for (let o = 0; o < N; o += stride) offsets.push(o);
  const rt = model.params[0]?.rt ?? runtime();
  let done = 0;
  for (const offset of offsets) {
    if (opts.signal?.aborted) throw new AbortError();
    const chunkLen = Math.min(N - offset, seg);
    // TensorChunk.padded(seg): centred, context from the clip, zeros past its ends
    const delta = seg - chunkLen;
    const start = offset - Math.floor(delta / 2);
    const input = new Float32Array(C * seg);
    for (let c = 0; c < C; c++) {
      const src = mix[c]!;
      for (let i = Math.max(0, -start); i < seg && start + i < N; i++) input[c * seg + i] = src[start + i]!;
    }
    const y = tidy(() => model.forward(Tensor.from(input, [C, seg], 'f32', rt)));
    const data = await y.read();
    y.dispose();
    // center_trim to chunkLen: keep [⌊delta/2⌋, ⌊delta/2⌋ + chunkLen)
    const from = Math.floor(delta / 2);
    for (let s = 0; s < S; s++) {
      for (let c = 0; c < C; c++) {
        const o = out[s]![c]!;
        const base = (s * C + c) * seg + from;
        for (let i = 0; i < chunkLen; i++) o[offset + i] += weight[i]! * data[base + i]!;
      }
    }
    for (let i = 0; i < chunkLen; i++) sumWeight[offset + i] += weight[i]!;
    opts.onProgress?.(++done, offsets.length);
  }
  for (const stem of out) for (const ch of stem) for (let i = 0; i < N; i++) ch[i] /= sumWeight[i]!;
  return out;
}

// ---- the public model ----

export interface DemucsLoadOptions {
  rt?: Runtime;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

async function byteSource(src: string | ArrayBuffer | Uint8Array | ByteSource): Promise<ByteSource> {
  if (src instanceof Uint8Array) return new BufferSource(src, 'Demucs package');
  if (src instanceof ArrayBuffer) return new BufferSource(new Uint8Array(src), 'Demucs package');
  if (typeof src !== 'string') return src;
  if (/^https?:\/\//.test(src) || !isNode()) return new UrlSource(src);
  const fsModule = '../io/file-source.js';
  const { FileSource } = (await import(/* @vite-ignore */ fsModule)) as typeof import('../io/file-source.js');
  return new FileSource(src);
}

/** A Demucs (HTDemucs) source separator. */
export class Demucs {
  private constructor(readonly model: HTDemucs) {}

  /**
   * Loads a Demucs package (`.th`: {klass, args, kwargs, state}) from a file path (Node), an http(s) URL, its
   * bytes, or a ByteSource. Only HTDemucs packages are accepted.
   */
  static async load(src: string | ArrayBuffer | Uint8Array | ByteSource, opts: DemucsLoadOptions = {}): Promise<Demucs> {
    const rt = opts.rt ?? runtime();
    const source = await byteSource(src);
    const file = await TorchFile.open(source, typeof src === 'string' ? src : undefined);
    try {
      const root = file.root;
      if (!(root instanceof PyDict) || !root.has('klass') || !root.has('state')) {
        throw new Error(`${file.label}: not a Demucs package (a dict with klass, args, kwargs and state)`);
      }
      const klass = root.get('klass');
      if (!(klass instanceof PyGlobal) || klass.qualname !== 'demucs.htdemucs.HTDemucs') {
        throw new Error(`${file.label}: a package of ${klass instanceof PyGlobal ? klass.qualname : describe(klass)}; only demucs.htdemucs.HTDemucs is supported`);
      }
      const args = root.get('args') ?? [];
      const kwargs = root.get('kwargs') ?? new PyDict();
      if (!Array.isArray(args) || !(kwargs instanceof PyDict)) throw new Error(`${file.label}: bad args/kwargs`);
      const cfg = parseHTDemucsConfig(args as PickleValue[], kwargs);
      const model = await HTDemucs.load(new Weights(file.stateDict('state'), rt), cfg);
      return new Demucs(model);
    } finally {
      await file.close();
    }
  }

  /** Source names in the package's order (htdemucs: drums, bass, other, vocals). */
  get sources(): string[] { return [...this.model.cfg.sources]; }
  get samplerate(): number { return this.model.cfg.samplerate; }
  get audioChannels(): number { return this.model.cfg.audio_channels; }

  /** Separates a clip given per channel at `samplerate` → [source][channel], each as long as the input. */
  separate(mix: Float32Array[], opts: SeparateOptions = {}): Promise<Float32Array[][]> {
    return applyModel(this.model, mix, opts);
  }

  dispose(): void {
    this.model.dispose();
  }
}
