// The diffusion U-Net of multi-band diffusion: a port of audiocraft's models/unet.py (DiffusionUnet, ResBlock,
// EncoderLayer, DecoderLayer) with the bottleneck transformer of modules/transformer.py as DiffusionUnet builds
// it: StreamingTransformer(C, 8 heads, 6 layers, bias_ff=False, bias_attn=False, cross_attention) with its
// defaults (post-norm layers, ReLU feed-forward of 2048, nn.MultiheadAttention, sinusoidal positions, eval mode).
//
//   x [B, chin, N] ─ encoder × depth (conv k/stride → GroupNorm → ReLU → ResBlocks) ─ + step embedding(s)
//   bottleneck: + interpolate(conv_codec(condition)) | cross-attention to it; transformer (or zeros)
//   decoder × depth (+ skip → ResBlocks → GroupNorm → ReLU → conv_transpose) ─ trimmed to N
//
// Checkpoint keys are audiocraft's (`encoders.0.conv.weight`, `transformer.layers.0.self_attn.mha.in_proj_weight`).

import { Tensor, keep } from '../tensor.js';
import * as ops from '../ops.js';
import { groupNorm } from '../kernels/group-norm.js';
import type { Weights } from './weights.js';

/** `cfg.diffusion_unet` with `chin` (cfg.channels) and `num_steps` (cfg.schedule.num_steps), as get_diffusion_model passes them. */
export interface DiffusionUnetConfig {
  chin: number;
  hidden: number;
  depth: number;
  growth: number;
  max_channels: number;
  num_steps: number;
  emb_all_layers: boolean;
  cross_attention: boolean;
  bilstm: boolean;
  transformer: boolean;
  codec_dim: number | null;
  kernel: number;
  stride: number;
  norm_groups: number;
  res_blocks: number;
}

/** DiffusionUnet's and its layers' defaults (unet.py), for keys a config leaves out. */
export const UNET_DEFAULTS: Omit<DiffusionUnetConfig, 'chin' | 'num_steps'> = {
  hidden: 24, depth: 3, growth: 2, max_channels: 10_000, emb_all_layers: false, cross_attention: false,
  bilstm: false, transformer: false, codec_dim: null, kernel: 4, stride: 2, norm_groups: 4, res_blocks: 1,
};

/** What StreamingTransformer gets from DiffusionUnet (fixed there) and its own defaults. */
const TRANSFORMER = { heads: 8, layers: 6, ffn: 2048, maxPeriod: 10_000, eps: 1e-5 };

/** nn.Linear's parameters (no activation fused: the callers pick it). */
interface Lin {
  weight: Tensor;
  bias?: Tensor;
}

/** nn.GroupNorm(groups, C) */
class GroupNorm {
  constructor(readonly groups: number, readonly weight: Tensor, readonly bias: Tensor) {}
  static async load(w: Weights, groups: number, C: number): Promise<GroupNorm> {
    return new GroupNorm(groups, await w.get('weight', [C]), await w.get('bias', [C]));
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.groups, this.weight, this.bias, 1e-5);
  }
  parameters(): Tensor[] { return [this.weight, this.bias]; }
}

/** nn.Conv1d with zero padding on both sides. */
class Conv {
  constructor(readonly weight: Tensor, readonly bias: Tensor | null, readonly stride: number, readonly padding: number, readonly dilation = 1) {}
  static async load(w: Weights, cin: number, cout: number, k: number, stride: number, padding: number, bias: boolean, dilation = 1): Promise<Conv> {
    return new Conv(await w.get('weight', [cout, cin, k]), bias ? await w.get('bias', [cout]) : null, stride, padding, dilation);
  }
  forward(x: Tensor): Tensor {
    return ops.conv1d(x, this.weight, this.bias ?? undefined, { stride: this.stride, padding: this.padding, dilation: this.dilation });
  }
  parameters(): Tensor[] { return this.bias ? [this.weight, this.bias] : [this.weight]; }
}

/** x + conv2(relu(norm2(conv1(relu(norm1(x)))))), kernel 3 with `dilation` (dropout: eval). */
class ResBlock {
  constructor(readonly norm1: GroupNorm, readonly conv1: Conv, readonly norm2: GroupNorm, readonly conv2: Conv) {}
  static async load(w: Weights, C: number, groups: number, dilation: number): Promise<ResBlock> {
    const pad = (dilation * (3 - 1)) >> 1;
    return new ResBlock(
      await GroupNorm.load(w.pp('norm1'), groups, C), await Conv.load(w.pp('conv1'), C, C, 3, 1, pad, true, dilation),
      await GroupNorm.load(w.pp('norm2'), groups, C), await Conv.load(w.pp('conv2'), C, C, 3, 1, pad, true, dilation),
    );
  }
  forward(x: Tensor): Tensor {
    const h = this.conv1.forward(ops.relu(this.norm1.forward(x)));
    return ops.add(x, this.conv2.forward(ops.relu(this.norm2.forward(h))));
  }
  parameters(): Tensor[] { return [this.norm1, this.conv1, this.norm2, this.conv2].flatMap((m) => m.parameters()); }
}

async function loadResBlocks(w: Weights, n: number, C: number, groups: number): Promise<ResBlock[]> {
  const out: ResBlock[] = [];
  for (let i = 0; i < n; i++) out.push(await ResBlock.load(w.pp(i), C, groups, 2 ** i));
  return out;
}

/** Right-pad to a multiple of the stride, strided conv (no bias), GroupNorm, ReLU, ResBlocks. */
class EncoderLayer {
  constructor(readonly conv: Conv, readonly norm: GroupNorm, readonly res: ResBlock[]) {}
  static async load(w: Weights, cin: number, cout: number, c: DiffusionUnetConfig): Promise<EncoderLayer> {
    return new EncoderLayer(
      await Conv.load(w.pp('conv'), cin, cout, c.kernel, c.stride, (c.kernel - c.stride) >> 1, false),
      await GroupNorm.load(w.pp('norm'), c.norm_groups, cout),
      await loadResBlocks(w.pp('res_blocks'), c.res_blocks, cout, c.norm_groups),
    );
  }
  forward(x: Tensor): Tensor {
    const T = x.shape[2];
    const pad = (this.conv.stride - (T % this.conv.stride)) % this.conv.stride;
    let h = ops.relu(this.norm.forward(this.conv.forward(pad ? ops.padZeros(x, 2, 0, pad) : x)));
    for (const r of this.res) h = r.forward(h);
    return h;
  }
  parameters(): Tensor[] { return [this.conv, this.norm, ...this.res].flatMap((m) => m.parameters()); }
}

/** ResBlocks, GroupNorm, ReLU, transposed conv (no bias) back up by the stride. */
class DecoderLayer {
  constructor(readonly res: ResBlock[], readonly norm: GroupNorm, readonly weight: Tensor, readonly stride: number, readonly padding: number) {}
  static async load(w: Weights, cin: number, cout: number, c: DiffusionUnetConfig): Promise<DecoderLayer> {
    return new DecoderLayer(
      await loadResBlocks(w.pp('res_blocks'), c.res_blocks, cin, c.norm_groups),
      await GroupNorm.load(w.pp('norm'), c.norm_groups, cin),
      await w.pp('convtr').get('weight', [cin, cout, c.kernel]),
      c.stride, (c.kernel - c.stride) >> 1,
    );
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const r of this.res) h = r.forward(h);
    return ops.convTranspose1d(ops.relu(this.norm.forward(h)), this.weight, undefined, { stride: this.stride, padding: this.padding });
  }
  parameters(): Tensor[] { return [...this.res.flatMap((r) => r.parameters()), ...this.norm.parameters(), this.weight]; }
}

/** nn.MultiheadAttention (batch_first) as StreamingMultiheadAttention(custom=False) wraps it under `.mha`. */
class Attention {
  constructor(
    readonly q: Lin, readonly k: Lin, readonly v: Lin, readonly out: Lin,
    readonly heads: number,
  ) {}
  static async load(w: Weights, C: number, heads: number): Promise<Attention> {
    const m = w.pp('mha');
    const inW = await m.readF32('in_proj_weight', [3 * C, C]);
    const inB = m.has('in_proj_bias') ? await m.readF32('in_proj_bias', [3 * C]) : null;
    const part = (i: number): Lin => ({
      weight: keep(Tensor.from(inW.subarray(i * C * C, (i + 1) * C * C), [C, C], 'f32', w.rt)),
      bias: inB ? keep(Tensor.from(inB.subarray(i * C, (i + 1) * C), [C], 'f32', w.rt)) : undefined,
    });
    const o = m.pp('out_proj');
    const out = { weight: await o.get('weight', [C, C]), bias: o.has('bias') ? await o.get('bias', [C]) : undefined };
    return new Attention(part(0), part(1), part(2), out, heads);
  }
  /** x [B, T, C] attends to src [B, S, C] (src = x for self-attention), no mask; heads wider than `fusedMax` unfused. */
  forward(x: Tensor, src: Tensor, fusedMax: number): Tensor {
    const [B, T, C] = x.shape;
    const S = src.shape[1];
    const H = this.heads;
    const D = C / H;
    const split = (t: Tensor, p: Lin, n: number) =>
      ops.permute(ops.linear(t, p.weight, p.bias).reshape([B, n, H, D]), [0, 2, 1, 3]); // B, H, n, D
    const q = split(x, this.q, T);
    const k = split(src, this.k, S);
    const v = split(src, this.v, S);
    // the fused kernel holds a head in registers (≤ 256 wide); wider heads (a 3072-channel bottleneck has 384)
    // take the plain softmax(q·kᵀ/√D)·v
    const a = D <= fusedMax
      ? ops.attention(q, k, v)
      : ops.matmul(ops.softmax(ops.scale(ops.matmul(q, k, { transB: true }), 1 / Math.sqrt(D))), v);
    const merged = ops.permute(a, [0, 2, 1, 3]).reshape([B, T, C]);
    return ops.linear(merged, this.out.weight, this.out.bias);
  }
  parameters(): Tensor[] {
    return [this.q, this.k, this.v, this.out].flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight]));
  }
}

class LayerNorm {
  constructor(readonly weight: Tensor, readonly bias: Tensor) {}
  static async load(w: Weights, C: number): Promise<LayerNorm> {
    return new LayerNorm(await w.get('weight', [C]), await w.get('bias', [C]));
  }
  forward(x: Tensor): Tensor { return ops.layerNorm(x, this.weight, this.bias, TRANSFORMER.eps); }
  parameters(): Tensor[] { return [this.weight, this.bias]; }
}

async function loadLinear(w: Weights, cin: number, cout: number): Promise<Lin> {
  return { weight: await w.get('weight', [cout, cin]), bias: w.has('bias') ? await w.get('bias', [cout]) : undefined };
}

/**
 * StreamingTransformerLayer with norm_first=False (its default): x = norm1(x + sa(x)); with cross-attention
 * x = norm_cross(x + ca(src, cond)) where the queries are the layer's *input* `src`, as audiocraft writes it;
 * x = norm2(x + linear2(relu(linear1(x)))).
 */
class TransformerLayer {
  constructor(
    readonly selfAttn: Attention, readonly norm1: LayerNorm, readonly linear1: Lin, readonly linear2: Lin,
    readonly norm2: LayerNorm, readonly cross: { attn: Attention; norm: LayerNorm } | null,
  ) {}
  static async load(w: Weights, C: number, cross: boolean): Promise<TransformerLayer> {
    return new TransformerLayer(
      await Attention.load(w.pp('self_attn'), C, TRANSFORMER.heads), await LayerNorm.load(w.pp('norm1'), C),
      await loadLinear(w.pp('linear1'), C, TRANSFORMER.ffn), await loadLinear(w.pp('linear2'), TRANSFORMER.ffn, C),
      await LayerNorm.load(w.pp('norm2'), C),
      cross ? { attn: await Attention.load(w.pp('cross_attention'), C, TRANSFORMER.heads), norm: await LayerNorm.load(w.pp('norm_cross'), C) } : null,
    );
  }
  forward(src: Tensor, cond: Tensor | null, fusedMax: number): Tensor {
    let x = this.norm1.forward(ops.add(src, this.selfAttn.forward(src, src, fusedMax)));
    if (this.cross) {
      if (!cond) throw new Error('DiffusionUnet: a cross-attention transformer needs the condition');
      x = this.cross.norm.forward(ops.add(x, this.cross.attn.forward(src, cond, fusedMax)));
    }
    const ff = ops.linear(ops.linear(x, this.linear1.weight, this.linear1.bias, 'relu'), this.linear2.weight, this.linear2.bias);
    return this.norm2.forward(ops.add(x, ff));
  }
  parameters(): Tensor[] {
    const lin = [this.linear1, this.linear2].flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight]));
    return [...this.selfAttn.parameters(), ...this.norm1.parameters(), ...lin, ...this.norm2.parameters(),
      ...(this.cross ? [...this.cross.attn.parameters(), ...this.cross.norm.parameters()] : [])];
  }
}

/**
 * audiocraft's create_sin_embedding for positions 0…T-1, [T, C]: cos then sin halves, phase = t / 10000^(i/(C/2-1)),
 * rounded to f32 at each step as PyTorch computes it.
 */
export function sinEmbedding(T: number, C: number, maxPeriod = TRANSFORMER.maxPeriod): Float32Array {
  const f = Math.fround;
  const half = C >> 1;
  const out = new Float32Array(T * C);
  for (let i = 0; i < half; i++) {
    const div = f(f(maxPeriod) ** f(f(i) / f(half - 1)));
    for (let t = 0; t < T; t++) {
      const phase = f(f(t) / div);
      out[t * C + i] = Math.cos(phase);
      out[t * C + half + i] = Math.sin(phase);
    }
  }
  return out;
}

/** F.interpolate(x, size=out) in 'nearest' mode: PyTorch's source index floor(i · (in/out)) in f32. */
export function nearestIndices(inLen: number, outLen: number): Int32Array {
  const idx = new Int32Array(outLen);
  const scale = Math.fround(inLen / outLen);
  for (let i = 0; i < outLen; i++) {
    idx[i] = inLen === outLen ? i : outLen === 2 * inLen ? i >> 1 : Math.min(Math.floor(Math.fround(i * scale)), inLen - 1);
  }
  return idx;
}

export class DiffusionUnet {
  /** Widest attention head run by the fused kernel (ops.attention holds ≤ 256 per row); tests lower it. */
  fusedHeadLimit = 256;

  constructor(
    readonly cfg: DiffusionUnetConfig,
    readonly encoders: EncoderLayer[],
    readonly decoders: DecoderLayer[],
    /** [num_steps, hidden] for the first encoder, then (emb_all_layers) one per deeper encoder. */
    readonly embeddings: Tensor[],
    readonly convCodec: Conv | null,
    readonly transformer: TransformerLayer[] | null,
    /** Channels at the bottleneck. */
    readonly bottleneck: number,
  ) {}

  /** `w` at the model's state dict root. */
  static async load(w: Weights, cfg: DiffusionUnetConfig): Promise<DiffusionUnet> {
    if (cfg.bilstm && !cfg.transformer) {
      throw new Error('DiffusionUnet: the BLSTM bottleneck (bilstm: true) is not supported; the published models use none');
    }
    const encoders: EncoderLayer[] = [];
    const decoders: DecoderLayer[] = [];
    const embeddings = [await w.pp('embedding').get('weight', [cfg.num_steps, cfg.hidden])];
    let chin = cfg.chin;
    let hidden = cfg.hidden;
    for (let d = 0; d < cfg.depth; d++) {
      encoders.push(await EncoderLayer.load(w.pp('encoders').pp(d), chin, hidden, cfg));
      // decoders are stored outermost last: ModuleList.insert(0, ...) makes decoders.{depth-1-d} this level's
      decoders.unshift(await DecoderLayer.load(w.pp('decoders').pp(cfg.depth - 1 - d), hidden, chin, cfg));
      if (cfg.emb_all_layers && d > 0) embeddings.push(await w.pp('embeddings').pp(d - 1).get('weight', [cfg.num_steps, hidden]));
      chin = hidden;
      hidden = Math.min(Math.trunc(chin * cfg.growth), cfg.max_channels);
    }
    let transformer: TransformerLayer[] | null = null;
    if (cfg.transformer) {
      if (chin % TRANSFORMER.heads !== 0) throw new Error(`DiffusionUnet: ${chin} bottleneck channels do not split into ${TRANSFORMER.heads} heads`);
      transformer = [];
      for (let i = 0; i < TRANSFORMER.layers; i++) transformer.push(await TransformerLayer.load(w.pp('transformer').pp('layers').pp(i), chin, cfg.cross_attention));
    }
    const convCodec = cfg.codec_dim !== null ? await Conv.load(w.pp('conv_codec'), cfg.codec_dim, chin, 1, 1, 0, true) : null;
    return new DiffusionUnet(cfg, encoders, decoders, embeddings, convCodec, transformer, chin);
  }

  /** x [B, chin, N] at diffusion step `step`, condition [B, codec_dim, T] → the noise estimate [B, chin, N]. */
  forward(x: Tensor, step: number, condition: Tensor | null): Tensor {
    if (!Number.isInteger(step) || step < 0 || step >= this.cfg.num_steps) throw new Error(`DiffusionUnet: step ${step} outside 0…${this.cfg.num_steps - 1}`);
    const skips: Tensor[] = [];
    let z = x;
    this.encoders.forEach((enc, idx) => {
      z = enc.forward(z);
      const table = idx === 0 ? this.embeddings[0] : this.cfg.emb_all_layers ? this.embeddings[idx] : null;
      if (table) z = ops.add(z, ops.narrow(table, 0, step, 1).reshape([1, table.shape[1], 1])); // + emb[step] per channel
      skips.push(z);
    });
    const [B, C, Tz] = z.shape;
    let crossSrc: Tensor | null = null;
    if (this.convCodec) {
      if (!condition) throw new Error('DiffusionUnet: this model is conditional (codec_dim set) and needs the EnCodec latent');
      const emb = this.convCodec.forward(condition); // B, C, Tc
      const Tc = emb.shape[2];
      if (Tc > 2 * Tz) throw new Error(`DiffusionUnet: the condition (${Tc} frames) is downsampled by ≥ 2 against the bottleneck (${Tz})`);
      if (!this.cfg.cross_attention) {
        const idx = Tensor.from(nearestIndices(Tc, Tz), [Tz], 'i32', x.rt);
        const up = ops.permute(ops.embedding(ops.permute(emb, [2, 0, 1]).reshape([Tc, B * C]), idx).reshape([Tz, B, C]), [1, 2, 0]);
        z = ops.add(z, up);
        // audiocraft adds in place (`z += condition_emb`), and z is the last skip: the skip carries it too
        skips[skips.length - 1] = z;
      } else {
        const pos = Tensor.from(sinEmbedding(Tc, C), [1, Tc, C], 'f32', x.rt);
        crossSrc = ops.add(ops.permute(emb, [0, 2, 1]), pos); // B, Tc, C
      }
    }
    if (this.transformer) {
      let h = ops.add(ops.permute(z, [0, 2, 1]), Tensor.from(sinEmbedding(Tz, C), [1, Tz, C], 'f32', x.rt)); // B, Tz, C
      for (const layer of this.transformer) h = layer.forward(h, crossSrc, this.fusedHeadLimit);
      z = ops.permute(h, [0, 2, 1]);
    } else {
      z = Tensor.zeros(z.shape, 'f32', x.rt); // no bottleneck module: audiocraft zeroes it
    }
    for (const dec of this.decoders) {
      const s = skips.pop()!;
      if (z.shape[2] > s.shape[2]) z = ops.narrow(z, 2, 0, s.shape[2]);
      z = dec.forward(ops.add(z, s));
    }
    return z.shape[2] > x.shape[2] ? ops.narrow(z, 2, 0, x.shape[2]) : z;
  }

  parameters(): Tensor[] {
    return [
      ...this.encoders.flatMap((e) => e.parameters()), ...this.decoders.flatMap((d) => d.parameters()), ...this.embeddings,
      ...(this.convCodec?.parameters() ?? []), ...(this.transformer?.flatMap((l) => l.parameters()) ?? []),
    ];
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}
