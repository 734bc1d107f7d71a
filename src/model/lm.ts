// The MusicGen language model over EnCodec codes: a port of transformers' MusicgenForCausalLM
// (modeling_musicgen.py) and MusicgenMelodyForCausalLM (modeling_musicgen_melody.py).
//   input  = Σ_k embed_tokens[k](codes[:, k]) + sinusoidal positions
//   block  = x + SelfAttn(LN(x)) [+ CrossAttn(LN(x), text)] + FFN(LN(x)),  FFN = fc2(gelu(fc1(·)))
//   logits = lm_heads[k](LN(x)) for each codebook k
// Text models attend to the projected T5 states; melody models have no cross-attention: the conditioning
// (projected chroma, then projected text) is prepended to the code embeddings and its logits are dropped.

import { Tensor, keep } from '../tensor.js';
import * as ops from '../ops.js';
import type { MatrixOptions, NamedTensor, Weights } from './weights.js';
import { FusedLinear, Linear, type Adaptable } from './linear.js';

/** config.json's `decoder` fields the LM uses (MusicgenDecoderConfig / MusicgenMelodyDecoderConfig), as parsed in config.ts. */
export interface DecoderConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  ffn_dim: number;
  num_codebooks: number;
  pad_token_id: number;
  bos_token_id?: number;
  audio_channels?: number;
  activation_function?: 'gelu' | 'relu';
  scale_embedding?: boolean;
  max_position_embeddings?: number;
}

/** Per-layer decoding state: the self-attention KV cache and the cross-attention keys/values of the text. */
export interface LayerCache {
  self: ops.KVCache;
  crossK?: Tensor;
  crossV?: Tensor;
}

/** Conditioning for one forward pass. */
export interface Conditioning {
  /** Text models: projected T5 states [B, S, D] and their mask [B, S] (f32 1/0). */
  encoderStates?: Tensor;
  encoderMask?: Tensor;
  /** Melody models: the prefix [B, P, D] put before the code embeddings. */
  prefix?: Tensor;
}

function layerNormLoad(w: Weights, D: number): Promise<[Tensor, Tensor]> {
  return Promise.all([w.get('weight', [D]), w.get('bias', [D])]);
}

/** [x + r, LN(x + r)] in one kernel. */
function addNorm(x: Tensor, r: Tensor, [w, b]: [Tensor, Tensor]): [Tensor, Tensor] {
  return ops.addLayerNorm(x, r, w, b, 1e-5);
}

/** Multi-head attention's shared shape work: heads split from [B, T, D] and merged back through out_proj. */
class AttentionHeads {
  constructor(readonly heads: number, readonly out: Linear) {}

  /** [B, T, D] → [B, H, T, Dh] */
  splitHeads(x: Tensor): Tensor {
    const [B, T, D] = x.shape;
    return ops.permute(ops.reshape(x, [B, T, this.heads, D / this.heads]), [0, 2, 1, 3]);
  }

  /** [B, H, T, Dh] → out_proj([B, T, D]) */
  merge(y: Tensor): Tensor {
    const [B, H, T, Dh] = y.shape;
    return this.out.forward(ops.reshape(ops.permute(y, [0, 2, 1, 3]), [B, T, H * Dh]));
  }
}

/**
 * Causal self-attention, q_proj/k_proj/v_proj stacked into one [3D, D] matrix at load (one matmul per step; the
 * parts keep their checkpoint names and adapters).
 */
class MusicgenSelfAttention extends AttentionHeads {
  constructor(heads: number, readonly qkv: FusedLinear, out: Linear) {
    super(heads, out);
  }

  static async load(w: Weights, D: number, heads: number): Promise<MusicgenSelfAttention> {
    const qkv = await FusedLinear.load(w, ['q_proj', 'k_proj', 'v_proj'], D, D);
    return new MusicgenSelfAttention(heads, qkv, await Linear.load(w.pp('out_proj'), D, D));
  }

  linears(): Adaptable[] {
    return [...this.qkv.parts, this.out];
  }

  /** With a cache, x holds only the new positions and its keys/values are appended. */
  attend(x: Tensor, cache?: ops.KVCache): Tensor {
    const qkv = this.qkv.forward(x); // B T 3D
    if (cache) return this.merge(cache.attend(cache.appendQKV(qkv), { causal: true }));
    const D = qkv.shape[2] / 3;
    const [q, k, v] = [0, 1, 2].map((i) => this.splitHeads(ops.narrow(qkv, 2, i * D, D)));
    return this.merge(ops.attention(q, k, v, { causal: true }));
  }
}

/** Attention to the text states; their keys/values are computed once per generation when cached. */
class MusicgenCrossAttention extends AttentionHeads {
  constructor(heads: number, readonly q: Linear, readonly k: Linear, readonly v: Linear, out: Linear) {
    super(heads, out);
  }

  static async load(w: Weights, D: number, heads: number): Promise<MusicgenCrossAttention> {
    const proj = (n: string): Promise<Linear> => Linear.load(w.pp(n), D, D);
    return new MusicgenCrossAttention(heads, await proj('q_proj'), await proj('k_proj'), await proj('v_proj'), await proj('out_proj'));
  }

  linears(): Adaptable[] {
    return [this.q, this.k, this.v, this.out];
  }

  attend(x: Tensor, states: Tensor, mask: Tensor | undefined, cache?: LayerCache): Tensor {
    const q = this.splitHeads(this.q.forward(x));
    let k: Tensor;
    let v: Tensor;
    if (cache?.crossK && cache.crossV) [k, v] = [cache.crossK, cache.crossV];
    else {
      k = this.splitHeads(this.k.forward(states));
      v = this.splitHeads(this.v.forward(states));
      if (cache) [cache.crossK, cache.crossV] = [keep(k), keep(v)];
    }
    return this.merge(ops.attention(q, k, v, { keyMask: mask }));
  }
}

class MusicgenDecoderLayer {
  constructor(
    readonly selfAttnNorm: [Tensor, Tensor], readonly selfAttn: MusicgenSelfAttention,
    readonly crossNorm: [Tensor, Tensor] | null, readonly crossAttn: MusicgenCrossAttention | null,
    readonly finalNorm: [Tensor, Tensor], readonly fc1: Linear, readonly fc2: Linear,
    readonly act: 'gelu' | 'relu',
  ) {}

  static async load(w: Weights, cfg: DecoderConfig, crossAttention: boolean): Promise<MusicgenDecoderLayer> {
    const D = cfg.hidden_size;
    const H = cfg.num_attention_heads;
    return new MusicgenDecoderLayer(
      await layerNormLoad(w.pp('self_attn_layer_norm'), D),
      await MusicgenSelfAttention.load(w.pp('self_attn'), D, H),
      crossAttention ? await layerNormLoad(w.pp('encoder_attn_layer_norm'), D) : null,
      crossAttention ? await MusicgenCrossAttention.load(w.pp('encoder_attn'), D, H) : null,
      await layerNormLoad(w.pp('final_layer_norm'), D),
      await Linear.load(w.pp('fc1'), D, cfg.ffn_dim),
      await Linear.load(w.pp('fc2'), cfg.ffn_dim, D),
      cfg.activation_function ?? 'gelu',
    );
  }

  /**
   * The block on the residual stream x plus `pending` (the previous block's last sublayer output, or the positions
   * for the first block), whose add is fused into this block's first norm. Returns the stream before the last add
   * and that add's other term.
   */
  forward(x: Tensor, pending: Tensor, cond: Conditioning, cache?: LayerCache): [Tensor, Tensor] {
    let [h, normed] = addNorm(x, pending, this.selfAttnNorm);
    let out = this.selfAttn.attend(normed, cache?.self);
    if (this.crossAttn && this.crossNorm && cond.encoderStates) {
      [h, normed] = addNorm(h, out, this.crossNorm);
      out = this.crossAttn.attend(normed, cond.encoderStates, cond.encoderMask, cache);
    }
    [h, normed] = addNorm(h, out, this.finalNorm);
    return [h, this.fc2.forward(this.fc1.forward(normed, this.act))];
  }

  /** The layer's matrices (what adapters can wrap): self-attention q/k/v/out, cross-attention's, fc1, fc2. */
  linears(): Adaptable[] {
    return [...this.selfAttn.linears(), ...(this.crossAttn?.linears() ?? []), this.fc1, this.fc2];
  }
}

/** sinusoidal position embeddings for positions [offset, offset + T), as transformers computes them in float32 */
export function sinusoidalPositions(offset: number, T: number, D: number): Float32Array {
  const f = Math.fround;
  const half = Math.floor(D / 2);
  const step = f(Math.log(10000) / (half - 1));
  const freqs = Array.from({ length: half }, (_, i) => f(Math.exp(f(i * -step))));
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const arg = f((offset + t) * freqs[i]);
      out[t * D + i] = Math.cos(arg);
      out[t * D + half + i] = Math.sin(arg);
    }
  }
  return out;
}

/**
 * The K per-codebook tables (or heads) stacked along dim 0 in groups of `size` codebooks, each group small
 * enough for one storage binding (one group for every published model but the stereo-large ones).
 */
export interface CodebookGroup {
  /** f32 or packed (the load's weight dtype). */
  tensor: ops.Matrix;
  first: number;
  size: number;
}

export class MusicgenLM {
  /**
   * The decoding KV cache's storage: f16 (where the adapter has shader-f16; f32 elsewhere) halves its memory and
   * the bytes attention reads each step, which at 30 s outgrow a musicgen-small step's weights. Keys and values
   * round to 11 bits; the scores and sums stay f32. 'f32' keeps decoding bit-for-bit with the full forward.
   */
  kvDtype: 'f32' | 'f16' = 'f16';

  constructor(
    readonly cfg: DecoderConfig,
    /** The codebook tables, stacked: groups of [size, vocab + 1, D]. */
    readonly embedTokens: CodebookGroup[],
    readonly layers: MusicgenDecoderLayer[],
    readonly norm: [Tensor, Tensor],
    /** The heads, stacked: groups of [size·vocab, D]. */
    readonly heads: CodebookGroup[],
    /** Every tensor under its checkpoint key(s), as the loader bound them. */
    private readonly named: NamedTensor[],
  ) {}

  get numCodebooks(): number { return this.cfg.num_codebooks; }
  get padId(): number { return this.cfg.pad_token_id; }

  /**
   * `w` at `decoder`; `crossAttention` false for melody models. `maxGroupBytes` caps a stacked group (default:
   * the adapter's largest storage binding).
   */
  static async load(w: Weights, cfg: DecoderConfig, crossAttention: boolean, maxGroupBytes?: number): Promise<MusicgenLM> {
    const { num_codebooks: K, vocab_size: V, hidden_size: D } = cfg;
    const dec = w.pp('model.decoder');
    const limit = maxGroupBytes ?? w.rt.limits.maxStorageBufferBindingSize;
    const stackGroups = async (at: Weights, name: (k: number) => string, part: number[], shape: (n: number) => number[], matrix: MatrixOptions): Promise<CodebookGroup[]> => {
      const size = Math.max(1, Math.min(K, Math.floor(limit / (part[0] * D * 4))));
      const groups: CodebookGroup[] = [];
      for (let first = 0; first < K; first += size) {
        const n = Math.min(size, K - first);
        const names = Array.from({ length: n }, (_, i) => name(first + i));
        groups.push({ tensor: await at.getStacked(names, part, shape(n), matrix), first, size: n });
      }
      return groups;
    };
    // tables and heads are matrices: stored in the load's dtype, or kept more precise (src/quant.ts, `KEPT`)
    const tables = await stackGroups(dec, (k) => `embed_tokens.${k}.weight`, [V + 1, D], (n) => [n, V + 1, D], {});
    // older conversions carry the (recomputed) sinusoidal table: not needed, never fatal
    dec.skip('embed_positions.weights');
    const layers: MusicgenDecoderLayer[] = [];
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      layers.push(await MusicgenDecoderLayer.load(dec.pp(`layers.${i}`), cfg, crossAttention));
    }
    const norm = await layerNormLoad(dec.pp('layer_norm'), D);
    const heads = await stackGroups(w, (k) => `lm_heads.${k}.weight`, [V, D], (n) => [n * V, D], {});
    return new MusicgenLM(cfg, tables, layers, norm, heads, w.bound());
  }

  /**
   * codes i32 [B, K, T] → logits [B, K, T, V]. `offset` is the position of codes[..., 0] (the prefix length
   * counts for melody models). With `caches`, only the new positions are passed and the caches grow.
   * `lastOnly` returns the logits of the last position only ([B, K, 1, V]), as decoding needs.
   */
  forward(codes: Tensor, cond: Conditioning, offset = 0, caches?: LayerCache[], lastOnly = false): Tensor {
    const [B, K, Tin] = codes.shape;
    const T = lastOnly ? 1 : Tin;
    const { hidden_size: D, vocab_size: V } = this.cfg;
    if (K !== this.numCodebooks) throw new Error(`LM: codes have ${K} codebooks, the model ${this.numCodebooks}`);
    const inGroup = (g: CodebookGroup): Tensor => (g.size === K ? codes : ops.narrow(codes, 1, g.first, g.size));
    let x = this.embedTokens.map((g) => ops.embeddingSum(g.tensor, inGroup(g))).reduce((a, b) => ops.add(a, b)); // B T D
    if (cond.prefix) x = ops.concat([cond.prefix, x], 1); // B P+T D
    const total = x.shape[1];
    // the positions are added inside the first block's norm (one kernel fewer), so they come once per batch row
    const pos = sinusoidalPositions(offset, total, D);
    const posRows = new Float32Array(B * pos.length);
    for (let b = 0; b < B; b++) posRows.set(pos, b * pos.length);
    let pending = Tensor.from(posRows, [B, total, D]); // then each FFN output, added inside the next norm
    for (let i = 0; i < this.layers.length; i++) [x, pending] = this.layers[i].forward(x, pending, cond, caches?.[i]);
    x = addNorm(x, pending, this.norm)[1];
    // the prefix's logits are dropped; decoding needs only the last position's (a decode step has only that one)
    if (total > T) x = ops.narrow(x, 1, total - T, T);
    const perGroup = this.heads.map((g) => ops.linear(x, g.tensor)); // B T size·V
    const logits = perGroup.length === 1 ? perGroup[0] : ops.concat(perGroup, 2); // B T K·V
    return ops.permute(ops.reshape(logits, [B, T, K, V]), [0, 2, 1, 3]); // B K T V
  }

  /** Every weight under its checkpoint key(s) (the stacked tables and heads name their parts), in load order. */
  namedParameters(): NamedTensor[] {
    return this.named;
  }

  /** Every weight (all of them train in full fine-tuning). */
  parameters(): Tensor[] {
    return this.named.map((p) => p.tensor);
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}
