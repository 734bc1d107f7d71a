// EnCodec (the 32 kHz model MusicGen uses): a port of transformers' modeling_encodec.py. SEANet encoder and
// decoder of weight-normalised, non-causal convs (reflect padding), residual blocks and a 2-layer LSTM with a
// skip, and the residual vector quantiser. Weight norm is folded at load (g·v/‖v‖).

import { Tensor, tidy, keep } from '../tensor.js';
import * as ops from '../ops.js';
import type { Weights } from './weights.js';

/** config.json's `audio_encoder` (EncodecConfig) fields used here, as checked by parseEncodecConfig (config.ts). */
export interface EncodecConfig {
  sampling_rate: number;
  audio_channels: number;
  num_filters: number;
  num_residual_layers: number;
  upsampling_ratios: number[];
  hidden_size: number;
  kernel_size: number;
  last_kernel_size: number;
  residual_kernel_size: number;
  dilation_growth_rate: number;
  compress: number;
  num_lstm_layers: number;
  codebook_size: number;
  codebook_dim?: number;
  target_bandwidths: number[];
  pad_mode?: 'reflect' | 'constant' | 'replicate';
  use_causal_conv?: boolean;
  trim_right_ratio?: number;
  use_conv_shortcut?: boolean;
  norm_type?: 'weight_norm' | 'time_group_norm';
  normalize?: boolean;
}

export const hopLength = (cfg: EncodecConfig): number => cfg.upsampling_ratios.reduce((a, b) => a * b, 1);
export const frameRate = (cfg: EncodecConfig): number => Math.ceil(cfg.sampling_rate / hopLength(cfg));
/** Quantisers at the highest target bandwidth (EncodecConfig.num_quantizers). */
export function numQuantizers(cfg: EncodecConfig): number {
  const bits = Math.ceil(Math.log2(cfg.codebook_size));
  return Math.floor((1000 * Math.max(...cfg.target_bandwidths)) / (frameRate(cfg) * bits));
}

/**
 * How far outputs reach into a layer's input: output position q depends on input positions [q − left, q + right]
 * (at the input's rate, q mapped to it). Derived per layer from its kernel, stride, dilation and padding, so a
 * decoder run over a window of its input gives the whole-clip result wherever the window holds that reach.
 */
export interface Reach { left: number; right: number }

type Layer = {
  forward(x: Tensor): Tensor;
  parameters(): Tensor[];
  /** The reach at this layer's input of outputs that reach `out` further on (`{0, 0}`: this layer's own). */
  reach(out: Reach): Reach;
};

/** GroupNorm(1, C) (the `time_group_norm` variant): normalise each item over (C, T), then a per-channel affine. */
class TimeGroupNorm {
  constructor(readonly weight: Tensor, readonly bias: Tensor) {}
  static async load(w: Weights, C: number): Promise<TimeGroupNorm> {
    return new TimeGroupNorm(await w.get('weight', [C]), await w.get('bias', [C]));
  }
  forward(x: Tensor): Tensor {
    const [B, C, T] = x.shape;
    const normed = ops.reshape(ops.layerNorm(ops.reshape(x, [B, C * T]), undefined, undefined, 1e-5), [B, C, T]);
    return ops.add(ops.mul(normed, ops.reshape(this.weight, [C, 1])), ops.reshape(this.bias, [C, 1]));
  }
  parameters(): Tensor[] { return [this.weight, this.bias]; }
}

/** How a conv is set up by the config: causal or centred padding, its mode, and the norm after the conv. */
interface ConvStyle {
  causal: boolean;
  padMode: ops.PadMode;
  trimRightRatio: number;
}

function convStyle(cfg: EncodecConfig): ConvStyle {
  const padMode = ({ reflect: 'reflect', constant: 'zero', replicate: 'replicate' } as const)[cfg.pad_mode ?? 'reflect'];
  return { causal: !!cfg.use_causal_conv, padMode, trimRightRatio: cfg.trim_right_ratio ?? 1 };
}

/** The conv's weight (weight-normalised, or plain with a GroupNorm after it) and its optional norm. */
async function loadConvWeights(w: Weights, cfg: EncodecConfig, shape: number[], cout: number): Promise<{ weight: Tensor; bias: Tensor; norm: TimeGroupNorm | null }> {
  const conv = w.pp('conv');
  const weight = await conv.getWeightNorm(shape);
  const bias = await conv.get('bias', [cout]);
  const norm = cfg.norm_type === 'time_group_norm' ? await TimeGroupNorm.load(w.pp('norm'), cout) : null;
  return { weight, bias, norm };
}

class EncodecConv1d implements Layer {
  constructor(
    readonly weight: Tensor, readonly bias: Tensor, readonly norm: TimeGroupNorm | null,
    readonly stride: number, readonly dilation: number, readonly style: ConvStyle,
  ) {}

  static async load(w: Weights, cfg: EncodecConfig, cin: number, cout: number, k: number, stride = 1, dilation = 1): Promise<EncodecConv1d> {
    const { weight, bias, norm } = await loadConvWeights(w, cfg, [cout, cin, k], cout);
    return new EncodecConv1d(weight, bias, norm, stride, dilation, convStyle(cfg));
  }

  /** The fixed padding: causal, all of it on the left; otherwise centred, the odd one on the left. */
  private padding(): { k: number; left: number; right: number } {
    const k = (this.weight.shape[2] - 1) * this.dilation + 1;
    const paddingTotal = k - this.stride;
    const right = this.style.causal ? 0 : Math.floor(paddingTotal / 2);
    return { k, left: paddingTotal - right, right };
  }

  forward(x: Tensor): Tensor {
    const { k, left, right } = this.padding();
    const paddingTotal = left + right;
    const length = x.shape[2];
    // extra right padding so the last window is complete (transformers' _get_extra_padding_for_conv1d)
    const nFrames = Math.ceil((length - k + paddingTotal) / this.stride + 1) - 1;
    const extra = nFrames * this.stride + k - paddingTotal - length;
    const padded = this.style.padMode === 'reflect'
      ? ops.encodecPad1d(x, left, right + extra, 'reflect')
      : ops.pad1d(x, left, right + extra, this.style.padMode);
    const y = ops.conv1d(padded, this.weight, this.bias, { stride: this.stride, dilation: this.dilation });
    return this.norm ? this.norm.forward(y) : y;
  }

  /** Output q reads padded inputs [q − left, q − left + k − 1] (stride 1: the decoder's convs). */
  reach(out: Reach): Reach {
    if (this.stride !== 1) throw new Error('EncodecConv1d.reach: only stride-1 convs (the decoder\'s) are streamed');
    const { k, left } = this.padding();
    return { left: out.left + left, right: out.right + k - 1 - left };
  }

  parameters(): Tensor[] { return [this.weight, this.bias, ...(this.norm?.parameters() ?? [])]; }
}

class EncodecConvTranspose1d implements Layer {
  constructor(
    readonly weight: Tensor, readonly bias: Tensor, readonly norm: TimeGroupNorm | null,
    readonly stride: number, readonly style: ConvStyle,
  ) {}

  static async load(w: Weights, cfg: EncodecConfig, cin: number, cout: number, k: number, stride: number): Promise<EncodecConvTranspose1d> {
    const { weight, bias, norm } = await loadConvWeights(w, cfg, [cin, cout, k], cout);
    return new EncodecConvTranspose1d(weight, bias, norm, stride, convStyle(cfg));
  }

  /** The fixed padding trimmed off the output: causal models trim trim_right_ratio of it on the right. */
  private trim(): { left: number; right: number } {
    const paddingTotal = this.weight.shape[2] - this.stride;
    const right = this.style.causal ? Math.ceil(paddingTotal * this.style.trimRightRatio) : Math.floor(paddingTotal / 2);
    return { left: paddingTotal - right, right };
  }

  forward(x: Tensor): Tensor {
    let y = ops.convTranspose1d(x, this.weight, this.bias, { stride: this.stride });
    if (this.norm) y = this.norm.forward(y);
    const { left, right } = this.trim();
    return ops.narrow(y, 2, left, y.shape[2] - left - right);
  }

  /**
   * Untrimmed output j = i·r + m (0 ≤ m < k) takes input i; the outputs r·q + s (0 ≤ s < r) of input position q,
   * widened by `out`, therefore take inputs [q − ⌊(left + k − 1 − trim)/r⌋, q + ⌊(r − 1 + right + trim)/r⌋].
   */
  reach(out: Reach): Reach {
    const r = this.stride;
    const k = this.weight.shape[2];
    const trim = this.trim().left;
    return { left: Math.floor((out.left + k - 1 - trim) / r), right: Math.floor((r - 1 + out.right + trim) / r) };
  }

  parameters(): Tensor[] { return [this.weight, this.bias, ...(this.norm?.parameters() ?? [])]; }
}

class Elu implements Layer {
  forward(x: Tensor): Tensor { return ops.elu(x, 1); }
  parameters(): Tensor[] { return []; }
  reach(out: Reach): Reach { return out; }
}

/** The reach at the input of a stack of layers run in order. */
function reachOf(layers: Layer[], out: Reach = { left: 0, right: 0 }): Reach {
  return layers.reduceRight((r, l) => l.reach(r), out);
}

class EncodecResnetBlock implements Layer {
  constructor(readonly block: Layer[], readonly shortcut: Layer | null) {}

  static async load(w: Weights, cfg: EncodecConfig, dim: number, dilations: [number, number]): Promise<EncodecResnetBlock> {
    const kernels = [cfg.residual_kernel_size, 1];
    const hidden = Math.floor(dim / cfg.compress);
    const block: Layer[] = [];
    for (let i = 0; i < kernels.length; i++) {
      const cin = i === 0 ? dim : hidden;
      const cout = i === kernels.length - 1 ? dim : hidden;
      block.push(new Elu()); // block.{2i} has no weights
      block.push(await EncodecConv1d.load(w.pp(`block.${2 * i + 1}`), cfg, cin, cout, kernels[i], 1, dilations[i]));
    }
    const shortcut = cfg.use_conv_shortcut ? await EncodecConv1d.load(w.pp('shortcut'), cfg, dim, dim, 1) : null;
    return new EncodecResnetBlock(block, shortcut);
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.block) h = l.forward(h);
    return ops.add(this.shortcut ? this.shortcut.forward(x) : x, h);
  }

  parameters(): Tensor[] { return [...this.block.flatMap((l) => l.parameters()), ...(this.shortcut?.parameters() ?? [])]; }

  reach(out: Reach): Reach {
    const a = reachOf(this.block, out);
    const b = this.shortcut ? this.shortcut.reach(out) : out;
    return { left: Math.max(a.left, b.left), right: Math.max(a.right, b.right) };
  }
}

class EncodecLSTM implements Layer {
  constructor(readonly layers: { wIh: Tensor; wHh: Tensor; bIh: Tensor; bHh: Tensor }[]) {}

  static async load(w: Weights, cfg: EncodecConfig, dim: number): Promise<EncodecLSTM> {
    const lstm = w.pp('lstm');
    const layers = [];
    for (let l = 0; l < cfg.num_lstm_layers; l++) {
      layers.push({
        wIh: await lstm.get(`weight_ih_l${l}`, [4 * dim, dim]),
        wHh: await lstm.get(`weight_hh_l${l}`, [4 * dim, dim]),
        bIh: await lstm.get(`bias_ih_l${l}`, [4 * dim]),
        bHh: await lstm.get(`bias_hh_l${l}`, [4 * dim]),
      });
    }
    return new EncodecLSTM(layers);
  }

  /** x [B, C, T] → lstm(x) + x */
  forward(x: Tensor): Tensor {
    return this.step(x, null).y;
  }

  /** `forward` continued from `state` (each layer's last h and c; null: zeros), and the state after x. */
  step(x: Tensor, state: LstmState | null): { y: Tensor; state: LstmState } {
    const seq = ops.permute(x, [2, 0, 1]); // T B C
    let h = seq;
    const next: LstmState = [];
    this.layers.forEach((l, i) => {
      const r = ops.lstm(h, l.wIh, l.wHh, l.bIh, l.bHh, state?.[i].h, state?.[i].c);
      h = r.y;
      next.push({ h: r.h, c: r.c });
    });
    return { y: ops.permute(ops.add(h, seq), [1, 2, 0]), state: next }; // B C T
  }

  parameters(): Tensor[] { return this.layers.flatMap((l) => [l.wIh, l.wHh, l.bIh, l.bHh]); }

  /** Recurrent: every earlier input reaches an output, so it is never run over windows (see EncodecStream). */
  reach(): Reach { throw new Error('EncodecLSTM has no finite reach: carry its state instead'); }
}

/** Each LSTM layer's last hidden and cell state [B, H]. */
type LstmState = { h: Tensor; c: Tensor }[];

/** Runs a list of layers in order; `layers.{i}` in the checkpoint. */
class Sequential implements Layer {
  constructor(readonly layers: Layer[]) {}
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
  parameters(): Tensor[] { return this.layers.flatMap((l) => l.parameters()); }
  reach(out: Reach): Reach { return reachOf(this.layers, out); }
}

async function loadEncoder(w: Weights, cfg: EncodecConfig): Promise<Sequential> {
  const layers: Layer[] = [];
  const at = (): Weights => w.pp(`layers.${layers.length}`);
  const nf = cfg.num_filters;
  layers.push(await EncodecConv1d.load(at(), cfg, cfg.audio_channels, nf, cfg.kernel_size));
  let scaling = 1;
  for (const ratio of [...cfg.upsampling_ratios].reverse()) {
    const dim = scaling * nf;
    for (let j = 0; j < cfg.num_residual_layers; j++) {
      layers.push(await EncodecResnetBlock.load(at(), cfg, dim, [cfg.dilation_growth_rate ** j, 1]));
    }
    layers.push(new Elu());
    layers.push(await EncodecConv1d.load(at(), cfg, dim, dim * 2, ratio * 2, ratio));
    scaling *= 2;
  }
  layers.push(await EncodecLSTM.load(at(), cfg, scaling * nf));
  layers.push(new Elu());
  layers.push(await EncodecConv1d.load(at(), cfg, scaling * nf, cfg.hidden_size, cfg.last_kernel_size));
  return new Sequential(layers);
}

async function loadDecoder(w: Weights, cfg: EncodecConfig): Promise<Sequential> {
  const layers: Layer[] = [];
  const at = (): Weights => w.pp(`layers.${layers.length}`);
  const nf = cfg.num_filters;
  let scaling = 2 ** cfg.upsampling_ratios.length;
  layers.push(await EncodecConv1d.load(at(), cfg, cfg.hidden_size, scaling * nf, cfg.kernel_size));
  layers.push(await EncodecLSTM.load(at(), cfg, scaling * nf));
  for (const ratio of cfg.upsampling_ratios) {
    const dim = scaling * nf;
    layers.push(new Elu());
    layers.push(await EncodecConvTranspose1d.load(at(), cfg, dim, dim / 2, ratio * 2, ratio));
    for (let j = 0; j < cfg.num_residual_layers; j++) {
      layers.push(await EncodecResnetBlock.load(at(), cfg, dim / 2, [cfg.dilation_growth_rate ** j, 1]));
    }
    scaling /= 2;
  }
  layers.push(new Elu());
  layers.push(await EncodecConv1d.load(at(), cfg, nf, cfg.audio_channels, cfg.last_kernel_size));
  return new Sequential(layers);
}

export class EncodecModel {
  constructor(
    readonly cfg: EncodecConfig,
    readonly encoder: Sequential,
    readonly decoder: Sequential,
    /** [K, codebook_size, D]: the quantiser's codebooks, stacked. */
    readonly codebooks: Tensor,
  ) {}

  get numQuantizers(): number { return this.codebooks.shape[0]; }
  get hopLength(): number { return hopLength(this.cfg); }
  /** Whether time windows give the whole clip's result: not with GroupNorm, whose statistics span the clip. */
  get chunkable(): boolean { return this.cfg.norm_type !== 'time_group_norm'; }

  /** `w` at `audio_encoder`. */
  static async load(w: Weights, cfg: EncodecConfig): Promise<EncodecModel> {
    const encoder = await loadEncoder(w.pp('encoder'), cfg);
    const decoder = await loadDecoder(w.pp('decoder'), cfg);
    const K = numQuantizers(cfg);
    const D = cfg.codebook_dim ?? cfg.hidden_size;
    const books = Array.from({ length: K }, (_, k) => `quantizer.layers.${k}.codebook`);
    for (const b of books) for (const unused of ['inited', 'cluster_size', 'embed_avg']) w.pp(b).skip(unused); // k-means training state
    const codebooks = await w.getStacked(books.map((b) => `${b}.embed`), [cfg.codebook_size, D], [K, cfg.codebook_size, D]);
    return new EncodecModel(cfg, encoder, decoder, codebooks);
  }

  /**
   * audio [B, C, N] → codes i32 [B, K, T] at the full bandwidth. Past `chunkFrames` frames the conv stack runs
   * over windows (aligned to the hop, with `overlap` frames of context each side, trimmed off) so the full-rate
   * activations of a long clip never exist at once; the LSTM and the last conv see the whole latent sequence.
   */
  encode(audio: Tensor, chunkFrames = 250, overlap = 16): Tensor {
    const hop = this.hopLength;
    const N = audio.shape[2];
    const T = Math.ceil(N / hop);
    if (T <= chunkFrames || !this.chunkable) return tidy(() => ops.rvqEncode(this.encoder.forward(audio), this.codebooks, this.numQuantizers));
    const split = this.encoder.layers.length - 3; // LSTM, ELU, last conv
    const convs = new Sequential(this.encoder.layers.slice(0, split));
    const tail = new Sequential(this.encoder.layers.slice(split));
    return tidy(() => {
      const pieces: Tensor[] = [];
      for (let start = 0; start < T; start += chunkFrames) {
        const len = Math.min(chunkFrames, T - start);
        const from = Math.max(0, start - overlap);
        const to = Math.min(T, start + len + overlap);
        const a = from * hop;
        const b = Math.min(N, to * hop);
        const latent = convs.forward(ops.narrow(audio, 2, a, b - a)); // B, D', frames of [a, b)
        pieces.push(ops.narrow(latent, 2, start - from, len));
      }
      return ops.rvqEncode(tail.forward(ops.concat(pieces, 2)), this.codebooks, this.numQuantizers);
    });
  }

  /** codes i32 [B, K, T] → audio [B, C, T·hop] */
  decode(codes: Tensor): Tensor {
    return tidy(() => this.decoder.forward(ops.rvqDecode(codes, this.codebooks)));
  }

  /**
   * The same as `decode`, with the upsampling stack run over windows of `chunkFrames` latent frames (plus
   * `overlap` frames of context each side, trimmed off), so long clips never need the full-rate activations
   * at once (30 s at 64 channels is 245 MB, more than one storage binding holds). The first conv and the
   * LSTM, whose state spans the whole clip, run on the whole (50 Hz) sequence. Returns host samples
   * [B·C·T·hop] in the layout of `decode`'s output.
   */
  async decodeChunked(codes: Tensor, chunkFrames = 250, overlap = 16): Promise<Float32Array> {
    if (!this.chunkable) {
      const audio = this.decode(codes);
      const data = (await audio.read()) as Float32Array;
      audio.dispose();
      return data;
    }
    const [B, , T] = codes.shape;
    const C = this.cfg.audio_channels;
    const hop = this.hopLength;
    const split = 2; // decoder layers 0 (conv) and 1 (LSTM) see the whole clip
    const head = tidy(() => {
      let h = ops.rvqDecode(codes, this.codebooks);
      for (const l of this.decoder.layers.slice(0, split)) h = l.forward(h);
      return h; // B, Ch, T
    });
    const tail = new Sequential(this.decoder.layers.slice(split));
    const out = new Float32Array(B * C * T * hop);
    try {
      for (let start = 0; start < T; start += chunkFrames) {
        const len = Math.min(chunkFrames, T - start);
        const from = Math.max(0, start - overlap);
        const to = Math.min(T, start + len + overlap);
        const piece = tidy(() => {
          const y = tail.forward(ops.narrow(head, 2, from, to - from)); // B, C, (to - from)·hop
          return ops.narrow(y, 2, (start - from) * hop, len * hop);
        });
        const data = (await piece.read()) as Float32Array;
        piece.dispose();
        for (let bc = 0; bc < B * C; bc++) {
          out.set(data.subarray(bc * len * hop, (bc + 1) * len * hop), bc * T * hop + start * hop);
        }
      }
    } finally {
      head.dispose();
    }
    return out;
  }

  /** An incremental decoder: codes go in as they are generated, audio comes out as soon as it is final. */
  stream(): EncodecStream {
    return new EncodecStream(this);
  }

  parameters(): Tensor[] {
    return [...this.encoder.parameters(), ...this.decoder.parameters(), this.codebooks];
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

/**
 * EnCodec's decoder run incrementally, with the whole-clip result: codes are pushed frame by frame as they become
 * known; the layers before the LSTM run over the new frames plus the context their reach (derived from kernel
 * sizes, dilations, strides and padding) needs on either side, the LSTM carries its state from push to push, and
 * the upsampling stack after it runs over the new LSTM frames plus its own reach, every output kept only where
 * its whole reach was real data (or the clip's true edges). So the audio of frame f comes out once frame
 * f + head.right + tail.right is known, and the concatenated chunks are the one-shot decode. A GroupNorm model
 * (statistics over the whole clip) cannot be streamed: it decodes everything at the final push.
 * Tensors stay on the GPU; `push` records work and returns the new audio without reading anything back.
 */
export class EncodecStream {
  private readonly head: Sequential;
  private readonly lstm: EncodecLSTM;
  private readonly tail: Sequential;
  /** Reach of the layers before and after the LSTM, in frames. */
  readonly headReach: Reach;
  readonly tailReach: Reach;
  /** Latent frames [latentFrom, latentTo) still needed (the head's left context and what it has not run on). */
  private latent: Tensor | null = null;
  private latentFrom = 0;
  private latentTo = 0;
  /** LSTM outputs [hiddenFrom, hiddenTo) still needed by the tail. */
  private hidden: Tensor | null = null;
  private hiddenFrom = 0;
  private hiddenTo = 0;
  private lstmState: LstmState | null = null;
  /** Frames of audio returned so far. */
  private done = 0;
  /** Non-streamable models: the codes so far. */
  private codes: Tensor | null = null;
  private finished = false;

  constructor(readonly model: EncodecModel) {
    const layers = model.decoder.layers;
    const at = layers.findIndex((l) => l instanceof EncodecLSTM);
    if (at < 0) throw new Error('EncodecStream: the decoder has no LSTM');
    this.head = new Sequential(layers.slice(0, at));
    this.lstm = layers[at] as EncodecLSTM;
    this.tail = new Sequential(layers.slice(at + 1));
    this.headReach = this.head.reach({ left: 0, right: 0 });
    this.tailReach = this.tail.reach({ left: 0, right: 0 });
  }

  /** Frames of audio returned so far. */
  get frames(): number { return this.done; }

  /**
   * Appends codes [B, K, n] (the next n frames; n may be 0 or `codes` null at the end) and returns the audio that
   * became final: [B, C, (to − from)·hop] for frames [from, to), or null when none did. `final`: no more codes
   * follow, the clip's right edge is here. The caller owns the returned tensor.
   */
  push(codes: Tensor | null, final: boolean): { audio: Tensor; from: number; to: number } | null {
    if (this.finished) throw new Error('EncodecStream: push after the final push');
    this.finished = final;
    if (!this.model.chunkable) return this.pushWhole(codes, final);
    return tidy(() => {
      if (codes && codes.shape[2] > 0) {
        const z = this.model.codebooks;
        const fresh = ops.rvqDecode(codes, z); // B, D, n
        this.latent = this.swap(this.latent, this.latent ? ops.concat([this.latent, fresh], 2) : fresh);
        this.latentTo += codes.shape[2];
      }
      this.runHead(final);
      return this.runTail(final);
    });
  }

  private pushWhole(codes: Tensor | null, final: boolean): { audio: Tensor; from: number; to: number } | null {
    if (codes && codes.shape[2] > 0) {
      this.codes = this.swap(this.codes, tidy(() => ops.concat(this.codes ? [this.codes, codes] : [codes], 2)));
    }
    if (!final || !this.codes) return null;
    const audio = this.model.decode(this.codes);
    const to = this.codes.shape[2];
    this.codes.dispose();
    this.codes = null;
    this.done = to;
    return { audio, from: 0, to };
  }

  /** Layers up to the LSTM over the latent frames whose reach is known; their outputs join `hidden`. */
  private runHead(final: boolean): void {
    const { left, right } = this.headReach;
    const to = final ? this.latentTo : this.latentTo - right;
    const from = this.hiddenTo;
    const lo = Math.max(0, from - left);
    // a window shorter than the reach would reflect-pad differently from the whole clip: wait for more frames
    if (to <= from || (!final && this.latentTo - lo <= left + right) || !this.latent) return;
    const x = ops.narrow(this.latent, 2, lo - this.latentFrom, this.latentTo - lo);
    const h = ops.narrow(this.head.forward(x), 2, from - lo, to - from);
    const { y, state } = this.lstm.step(h, this.lstmState);
    for (const s of this.lstmState ?? []) { s.h.dispose(); s.c.dispose(); }
    this.lstmState = state.map((s) => ({ h: keep(s.h), c: keep(s.c) }));
    this.hidden = this.swap(this.hidden, this.hidden ? ops.concat([this.hidden, y], 2) : y);
    this.hiddenTo = to;
    // drop latent frames no later window reads
    const keepFrom = Math.max(this.latentFrom, to - left);
    if (keepFrom > this.latentFrom) {
      this.latent = this.swap(this.latent, ops.narrow(this.latent, 2, keepFrom - this.latentFrom, this.latentTo - keepFrom));
      this.latentFrom = keepFrom;
    }
  }

  /** The upsampling stack over the LSTM frames whose reach is known: the new audio. */
  private runTail(final: boolean): { audio: Tensor; from: number; to: number } | null {
    const { left, right } = this.tailReach;
    const hop = this.model.hopLength;
    const to = final ? this.hiddenTo : this.hiddenTo - right;
    const from = this.done;
    const lo = Math.max(0, from - left);
    if (to <= from || (!final && this.hiddenTo - lo <= left + right) || !this.hidden) return null;
    const x = ops.narrow(this.hidden, 2, lo - this.hiddenFrom, this.hiddenTo - lo);
    const audio = ops.narrow(this.tail.forward(x), 2, (from - lo) * hop, (to - from) * hop);
    this.done = to;
    const keepFrom = Math.max(this.hiddenFrom, to - left);
    if (keepFrom > this.hiddenFrom) {
      this.hidden = this.swap(this.hidden, ops.narrow(this.hidden, 2, keepFrom - this.hiddenFrom, this.hiddenTo - keepFrom));
      this.hiddenFrom = keepFrom;
    }
    return { audio, from, to };
  }

  /** Replaces a kept state tensor with a new one (kept), freeing the old. */
  private swap(old: Tensor | null, next: Tensor): Tensor {
    keep(next);
    if (old && old !== next) old.dispose();
    return next;
  }

  dispose(): void {
    for (const t of [this.latent, this.hidden, this.codes]) t?.dispose();
    for (const s of this.lstmState ?? []) { s.h.dispose(); s.c.dispose(); }
    this.latent = this.hidden = this.codes = null;
    this.lstmState = null;
  }
}
