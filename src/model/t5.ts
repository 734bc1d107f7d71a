// The T5 encoder (text conditioning for every MusicGen), a port of transformers' modeling_t5.py (T5Stack with
// is_decoder=False): pre-norm blocks of self-attention and feed-forward, RMS-style norms, relative position
// buckets learned in block 0 and shared by the others, no 1/sqrt(d) score scaling.

import { Tensor, tidy } from '../tensor.js';
import * as ops from '../ops.js';
import type { Weights } from './weights.js';

/** The fields of config.json's `text_encoder` that the encoder uses, as parsed in config.ts. */
export interface T5Config {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  num_heads: number;
  num_layers: number;
  d_ff: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  feed_forward_proj: 'relu' | 'gelu' | 'gated-gelu';
}

class T5LayerNorm {
  constructor(readonly weight: Tensor, readonly eps: number) {}
  static async load(w: Weights, cfg: T5Config): Promise<T5LayerNorm> {
    return new T5LayerNorm(await w.get('weight', [cfg.d_model]), cfg.layer_norm_epsilon);
  }
  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.weight, this.eps);
  }
}

class T5Attention {
  constructor(
    readonly cfg: T5Config,
    readonly q: ops.Matrix, readonly k: ops.Matrix, readonly v: ops.Matrix, readonly o: ops.Matrix,
    /** [num_buckets, H], only in block 0. */
    readonly relativeBias: Float32Array | null,
  ) {}

  static async load(w: Weights, cfg: T5Config, hasRelativeBias: boolean): Promise<T5Attention> {
    const inner = cfg.num_heads * cfg.d_kv;
    return new T5Attention(
      cfg,
      await w.getMatrix('q.weight', [inner, cfg.d_model]),
      await w.getMatrix('k.weight', [inner, cfg.d_model]),
      await w.getMatrix('v.weight', [inner, cfg.d_model]),
      await w.getMatrix('o.weight', [cfg.d_model, inner]),
      hasRelativeBias
        ? await w.readF32('relative_attention_bias.weight', [cfg.relative_attention_num_buckets, cfg.num_heads])
        : null,
    );
  }

  /** x [B, L, C], mask [B, L], positionBias [H, L, L] → [B, L, C] */
  forward(x: Tensor, mask: Tensor, positionBias: Tensor): Tensor {
    const [B, L] = x.shape;
    const { num_heads: H, d_kv: D } = this.cfg;
    const heads = (t: Tensor): Tensor => ops.permute(ops.reshape(t, [B, L, H, D]), [0, 2, 1, 3]); // B H L D
    const q = heads(ops.linear(x, this.q));
    const k = heads(ops.linear(x, this.k));
    const v = heads(ops.linear(x, this.v));
    const y = ops.attention(q, k, v, { keyMask: mask, bias: positionBias, scale: 1 });
    return ops.linear(ops.reshape(ops.permute(y, [0, 2, 1, 3]), [B, L, H * D]), this.o); // B L C
  }

  /** The [H, L, L] score bias from bucketed relative positions (bidirectional), computed on the CPU. */
  positionBias(L: number): Tensor {
    if (!this.relativeBias) throw new Error('T5: only block 0 holds the relative attention bias');
    const H = this.cfg.num_heads;
    const out = new Float32Array(H * L * L);
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < L; j++) {
        const bucket = relativePositionBucket(j - i, this.cfg.relative_attention_num_buckets, this.cfg.relative_attention_max_distance);
        for (let h = 0; h < H; h++) out[(h * L + i) * L + j] = this.relativeBias[bucket * H + h];
      }
    }
    return Tensor.from(out, [H, L, L]);
  }
}

/** transformers' T5Attention._relative_position_bucket with bidirectional=True. */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const half = numBuckets / 2;
  let bucket = relative > 0 ? half : 0;
  const n = Math.abs(relative);
  const maxExact = Math.floor(half / 2);
  if (n < maxExact) return bucket + n;
  // float32 maths as in PyTorch, then truncation toward zero
  const f = Math.fround;
  const large = maxExact + Math.trunc(f(f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact))) * (half - maxExact)));
  bucket += Math.min(large, half - 1);
  return bucket;
}

class T5DenseActDense {
  constructor(readonly cfg: T5Config, readonly wi: ops.Matrix[], readonly wo: ops.Matrix) {}
  static async load(w: Weights, cfg: T5Config): Promise<T5DenseActDense> {
    const gated = cfg.feed_forward_proj.startsWith('gated-');
    const wi = gated
      ? [await w.getMatrix('wi_0.weight', [cfg.d_ff, cfg.d_model]), await w.getMatrix('wi_1.weight', [cfg.d_ff, cfg.d_model])]
      : [await w.getMatrix('wi.weight', [cfg.d_ff, cfg.d_model])];
    return new T5DenseActDense(cfg, wi, await w.getMatrix('wo.weight', [cfg.d_model, cfg.d_ff]));
  }
  forward(x: Tensor): Tensor {
    if (this.wi.length === 1) {
      const act = this.cfg.feed_forward_proj === 'relu' ? 'relu' : 'gelu';
      return ops.linear(ops.linear(x, this.wi[0], undefined, act), this.wo);
    }
    // gated-gelu (t5 v1.1): gelu_new(wi_0 x) * wi_1 x, gelu_new being the tanh approximation
    const h = ops.mul(geluTanh(ops.linear(x, this.wi[0])), ops.linear(x, this.wi[1]));
    return ops.linear(h, this.wo);
  }
}

function geluTanh(x: Tensor): Tensor {
  const inner = ops.scale(ops.add(x, ops.scale(ops.mul(ops.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return ops.mul(ops.scale(x, 0.5), ops.affine(ops.tanh(inner), 1, 1));
}

class T5Block {
  constructor(
    readonly attnNorm: T5LayerNorm, readonly attn: T5Attention,
    readonly ffNorm: T5LayerNorm, readonly ff: T5DenseActDense,
  ) {}
  static async load(w: Weights, cfg: T5Config, index: number): Promise<T5Block> {
    const sa = w.pp('layer.0');
    const ff = w.pp('layer.1');
    return new T5Block(
      await T5LayerNorm.load(sa.pp('layer_norm'), cfg),
      await T5Attention.load(sa.pp('SelfAttention'), cfg, index === 0),
      await T5LayerNorm.load(ff.pp('layer_norm'), cfg),
      await T5DenseActDense.load(ff.pp('DenseReluDense'), cfg),
    );
  }
  forward(x: Tensor, mask: Tensor, positionBias: Tensor): Tensor {
    const h = ops.add(x, this.attn.forward(this.attnNorm.forward(x), mask, positionBias));
    return ops.add(h, this.ff.forward(this.ffNorm.forward(h)));
  }
}

export class T5Encoder {
  constructor(
    readonly cfg: T5Config,
    readonly embedTokens: ops.Matrix,
    readonly blocks: T5Block[],
    readonly finalNorm: T5LayerNorm,
  ) {}

  /** `w` at the T5 model's root (`text_encoder`). The token table is tied: saved as `shared` or `encoder.embed_tokens`. */
  static async load(w: Weights, cfg: T5Config): Promise<T5Encoder> {
    const embed = await w.getAny(['shared.weight', 'encoder.embed_tokens.weight'], [cfg.vocab_size, cfg.d_model], {});
    const enc = w.pp('encoder');
    const blocks: T5Block[] = [];
    for (let i = 0; i < cfg.num_layers; i++) blocks.push(await T5Block.load(enc.pp(`block.${i}`), cfg, i));
    return new T5Encoder(cfg, embed, blocks, await T5LayerNorm.load(enc.pp('final_layer_norm'), cfg));
  }

  /** inputIds, attentionMask: i32 [B, L] → last hidden state [B, L, d_model] */
  forward(inputIds: Tensor, attentionMask: Tensor): Tensor {
    return tidy(() => {
      const L = inputIds.shape[1];
      const positionBias = this.blocks[0].attn.positionBias(L);
      let x = ops.embedding(this.embedTokens, inputIds);
      for (const block of this.blocks) x = block.forward(x, attentionMask, positionBias);
      return this.finalNorm.forward(x);
    });
  }

  /** Every weight on the GPU (block 0's relative position table lives on the CPU); a packed one's words. */
  parameters(): Tensor[] {
    const t = (m: ops.Matrix): Tensor => (m instanceof ops.PackedMatrix ? m.words : m);
    return [
      t(this.embedTokens),
      ...this.blocks.flatMap((b) => [b.attnNorm.weight, ...[b.attn.q, b.attn.k, b.attn.v, b.attn.o].map(t), b.ffNorm.weight, ...b.ff.wi.map(t), t(b.ff.wo)]),
      this.finalNorm.weight,
    ];
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}
