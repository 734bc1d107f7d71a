// Scaled dot-product attention (shaders/attention*.wgsl) with its backward, and a preallocated KV cache for
// decoding. Flash-attention style: the forward streams the keys with an online softmax and saves only the
// row log-sum-exp; the backward recomputes the probabilities from it. Masked-out rows (every key masked: the
// unconditional text branch) give zeros, not NaN. The head dim is compiled into the shaders (one pipeline
// per head size) so their per-row registers have fixed sizes.

import { Tensor, keep, shapeStr, type DType } from '../tensor.js';
import { runtime, shaderSource, specialise, type Runtime } from '../runtime.js';
import { isRecording, record } from '../autograd.js';
import { cast, launch1d, sumTo } from './elementwise.js';
import { narrow } from './shape.js';

export interface AttentionOptions {
  /** Query i sees keys j ≤ i + (tk − Tq): the queries are the last Tq positions (KV-cache decoding). */
  causal?: boolean;
  /** [B, Tk] (or [B, ≥ tk]), f32 or i32: 1 keep, 0 masked. Gets no gradient. */
  keyMask?: Tensor;
  /** Added to the scores: [H, Tq, tk] (shared by the batch; its gradient is summed over B) or [B, H, Tq, tk]. */
  bias?: Tensor;
  /** Score scale; default 1/√D (T5 uses 1). */
  scale?: number;
  /**
   * Number of valid keys when k and v are longer along dim 2 (a preallocated KV cache [B, H, maxT, D]): only
   * the first `tk` rows are read. Default: all of them.
   */
  tk?: number;
}

/** Head dims the shaders are compiled for go up to this (private arrays of D floats per invocation). */
const MAX_HEAD_DIM = 256;
/** Split the keys of a row only while each split keeps at least this many keys... */
const MIN_KEYS_PER_SPLIT = 16;
/** ...and only until rows × splits reaches this many invocations (decoding has few rows and many keys). */
const TARGET_INVOCATIONS = 4096;

/** `kernel` (shader name + code) reading its K/V cache as f16: the `alias KV = f32;` line rewritten, f16 enabled. */
const kvF16Code = new Map<string, string>();
function withKV(kernel: { shader: string; code?: string }, kv: DType): { shader: string; code?: string } {
  if (kv === 'f32') return kernel;
  const shader = `${kernel.shader}_kv${kv}`;
  let code = kvF16Code.get(shader);
  if (code === undefined) {
    const source = kernel.code ?? shaderSource(kernel.shader);
    if (!source.includes('alias KV = f32;')) throw new Error(`shader "${kernel.shader}" has no "alias KV = f32;" line`);
    code = `enable f16;\n${source.replace('alias KV = f32;', 'alias KV = f16;')}`;
    kvF16Code.set(shader, code);
  }
  return { shader, code };
}

function grid64(rt: Runtime, n: number): [number, number] {
  return rt.grid(Math.ceil(n / 64));
}


/**
 * softmax(scale·q·kᵀ + bias, masked) · v for q [B, H, Tq, D], k and v [B, H, Tk, D] (or [B, H, maxT, D] with
 * `tk`) → [B, H, Tq, D]. Differentiable in q, k, v and bias.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const { causal = false, keyMask, bias } = opts;
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.rank !== 4) throw new Error(`attention: ${name} must be [B, H, T, D], got ${shapeStr(t)}`);
  }
  // k and v may be an f16 KV cache (inference only: the backward kernels read f32)
  const kv = k.dtype;
  if (q.dtype !== 'f32' || (kv !== 'f32' && kv !== 'f16') || v.dtype !== kv) {
    throw new Error(`attention: q must be f32 and k, v both f32 or both f16 (a KV cache), got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  }
  if (kv === 'f16' && isRecording() && [q, k, v, ...(opts.bias ? [opts.bias] : [])].some((t) => t.requiresGrad)) {
    throw new Error('attention: f16 keys/values are for inference; gradients need f32');
  }
  const [B, H, Tq, D] = q.shape;
  const kvT = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new Error(`attention: q ${shapeStr(q)}, k ${shapeStr(k)}, v ${shapeStr(v)} do not match`);
  }
  if (D < 1 || D > MAX_HEAD_DIM) throw new Error(`attention: head dim ${D} is outside 1…${MAX_HEAD_DIM}`);
  const Tk = opts.tk ?? kvT;
  if (!Number.isInteger(Tk) || Tk < 0 || Tk > kvT) throw new Error(`attention: tk = ${Tk} with ${kvT} key rows`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (keyMask) {
    if (keyMask.dtype === 'f16' || keyMask.rank !== 2 || keyMask.shape[0] !== B || keyMask.shape[1] < Tk) {
      throw new Error(`attention: keyMask must be f32/i32 [${B}, ${Tk}], got ${keyMask.dtype} ${shapeStr(keyMask)}`);
    }
  }
  let biasBatchStride = 0;
  if (bias) {
    const tail = [H, Tq, Tk];
    const ok = bias.dtype === 'f32' && (
      (bias.rank === 3 && bias.shape.every((d, i) => d === tail[i])) ||
      (bias.rank === 4 && bias.shape[0] === B && bias.shape.slice(1).every((d, i) => d === tail[i])));
    if (!ok) throw new Error(`attention: bias must be f32 [${tail.join(', ')}] or [${B}, ${tail.join(', ')}], got ${shapeStr(bias)}`);
    if (bias.rank === 4) biasBatchStride = H * Tq * Tk;
  }
  const rt = q.rt;
  const rows = B * H * Tq;
  const out = Tensor.empty([B, H, Tq, D], 'f32', rt);
  const lse = Tensor.empty([rows], 'f32', rt);
  const maskBinding = (keyMask ?? q).binding();
  const biasBinding = (bias ?? q).binding();
  const maskParams = { hasMask: keyMask ? 1 : 0, maskStride: keyMask ? keyMask.shape[1] : 0 };

  let nsplit = 1;
  if (rows < TARGET_INVOCATIONS && Tk >= 2 * MIN_KEYS_PER_SPLIT) {
    nsplit = Math.min(Math.floor(Tk / MIN_KEYS_PER_SPLIT), Math.ceil(TARGET_INVOCATIONS / rows));
  }
  const chunk = Math.max(1, Math.ceil(Tk / nsplit));
  nsplit = Math.max(1, Math.ceil(Tk / chunk)); // no empty trailing split
  const params = { rows, H, Tq, Tk, kvT, nsplit, chunk, causal: causal ? 1 : 0, ...maskParams, hasBias: bias ? 1 : 0, biasBatchStride, scale };
  if (rows > 0) {
    if (nsplit === 1) {
      rt.dispatch({
        ...withKV(specialise('attention', 'D', D), kv),
        params,
        bindings: [q.binding(), k.binding(), v.binding(), maskBinding, biasBinding, out.binding(), lse.binding()],
        workgroups: grid64(rt, rows),
      });
    } else {
      const part = Tensor.empty([rows * nsplit, D], 'f32', rt);
      const partLse = Tensor.empty([rows * nsplit], 'f32', rt);
      rt.dispatch({
        ...withKV(specialise('attention', 'D', D), kv),
        params,
        bindings: [q.binding(), k.binding(), v.binding(), maskBinding, biasBinding, part.binding(), partLse.binding()],
        workgroups: grid64(rt, rows * nsplit),
      });
      rt.dispatch({
        shader: 'attention_combine',
        params: { rows, D, nsplit },
        bindings: [part.binding(), partLse.binding(), out.binding(), lse.binding()],
        workgroups: grid64(rt, rows * D),
      });
      part.dispose();
      partLse.dispose();
    }
  }

  const inputs = bias ? [q, k, v, bias] : [q, k, v];
  // the output itself is alive whenever its gradient arrives (the next op or the caller holds it): not saved,
  // which would make it keep itself alive
  const saved = keyMask ? [lse, keyMask] : [lse];
  const y = record('attention', out, inputs, (dO) => {
    // L, Δ and the key mask packed into one buffer of words (L | Δ | mask), so each kernel below binds 8 storage
    // buffers, the spec's default limit
    const maskWords = keyMask ? keyMask.size : 0;
    const aux = Tensor.empty([2 * rows + maskWords], 'i32', rt);
    const packing = { deltaBase: rows, maskBase: 2 * rows };
    rt.copy(lse.buffer, 0, aux.buffer, 0, rows * 4);
    if (keyMask) rt.copy(keyMask.buffer, 0, aux.buffer, 2 * rows * 4, maskWords * 4);
    rt.dispatch({
      shader: 'attention_bwd_delta',
      params: { rows, D, deltaBase: rows },
      bindings: [out.binding(), dO.binding(), aux.binding()],
      workgroups: grid64(rt, rows),
    });
    const dQ = Tensor.empty(q.shape, 'f32', rt);
    const wantBias = !!bias?.requiresGrad;
    const dS = Tensor.empty(wantBias ? [B, H, Tq, Tk] : [1], 'f32', rt);
    const common = { H, Tq, Tk, kvT, causal: causal ? 1 : 0, ...maskParams, hasBias: bias ? 1 : 0, biasBatchStride, scale, ...packing };
    rt.dispatch({
      ...specialise('attention_bwd_dq', 'D', D),
      params: { rows, ...common, writeDS: wantBias ? 1 : 0 },
      bindings: [q.binding(), k.binding(), v.binding(), dO.binding(), aux.binding(), biasBinding, dQ.binding(), dS.binding()],
      workgroups: grid64(rt, rows),
    });
    let dK: Tensor | null = null;
    let dV: Tensor | null = null;
    if (k.requiresGrad || v.requiresGrad) {
      dK = Tensor.empty(k.shape, 'f32', rt);
      dV = Tensor.empty(v.shape, 'f32', rt);
      const keyRows = B * H * kvT;
      rt.dispatch({
        ...specialise('attention_bwd_dkv', 'D', D),
        params: { keyRows, ...common },
        bindings: [q.binding(), k.binding(), v.binding(), dO.binding(), aux.binding(), biasBinding, dK.binding(), dV.binding()],
        workgroups: grid64(rt, keyRows),
      });
    }
    const grads: (Tensor | null)[] = [dQ, dK, dV];
    if (bias) grads.push(wantBias ? (bias.rank === 3 ? sumTo(dS, bias.shape) : dS) : null);
    return grads;
  }, saved);
  lse.dispose(); // the graph node, if any, holds its own reference
  return y;
}

/**
 * Keys and values of past positions for decoding, preallocated once as [B, H, maxT, D] and filled in place:
 * a decode step appends its new keys/values (a GPU copy of only the new rows) and attends over the first
 * `length` rows without copying the cache. Lives until `dispose()` (it is kept out of `tidy` scopes).
 */
export class KVCache {
  readonly k: Tensor;
  readonly v: Tensor;
  length = 0;

  /**
   * `dtype` f16 stores the cache at half the bytes (attention reads it every step: at 30 s it outgrows a
   * musicgen-small step's weights) where the adapter has shader-f16; elsewhere the cache stays f32.
   */
  constructor(
    readonly B: number, readonly H: number, readonly maxT: number, readonly D: number, rt?: Runtime,
    dtype: 'f32' | 'f16' = 'f32',
  ) {
    const dt = dtype === 'f16' && (rt ?? runtime()).ctx.features.f16 ? 'f16' : 'f32';
    this.k = keep(Tensor.empty([B, H, maxT, D], dt, rt));
    this.v = keep(Tensor.empty([B, H, maxT, D], dt, rt));
  }

  /** The dtype the cache is stored in (f16 only where asked for and the adapter has shader-f16). */
  get dtype(): DType { return this.k.dtype; }

  /**
   * Takes a step's fused projection qkv [B, Tnew, 3·H·D] (q, k, v side by side, self-attention's one matmul): writes
   * its keys and values at positions length … length + Tnew − 1, advances `length` and returns its queries as heads
   * [B, H, Tnew, D], in one kernel (a GPU copy of only the new rows). Inference only (no gradient).
   */
  appendQKV(qkv: Tensor): Tensor {
    const { B, H, D, maxT } = this;
    if (qkv.dtype !== 'f32' || qkv.rank !== 3 || qkv.shape[0] !== B || qkv.shape[2] !== 3 * H * D) {
      throw new Error(`KVCache.appendQKV: qkv ${qkv.dtype}${shapeStr(qkv)} does not fit f32 [${B}, Tnew, ${3 * H * D}]`);
    }
    const Tnew = qkv.shape[1];
    if (this.length + Tnew > maxT) throw new Error(`KVCache.appendQKV: ${this.length} + ${Tnew} positions exceed maxT = ${maxT}`);
    const rt = this.k.rt;
    const q = Tensor.empty([B, H, Tnew, D], 'f32', rt);
    if (q.size > 0) {
      rt.dispatch({
        ...withKV({ shader: 'attention_qkv_append' }, this.dtype),
        params: { n: q.size, H, Tnew, maxT, offset: this.length, D },
        bindings: [qkv.binding(), q.binding(), this.k.binding(), this.v.binding()],
        workgroups: launch1d(rt, q.size),
      });
    }
    this.length += Tnew;
    return q;
  }

  /** Attention of q [B, H, Tq, D] over the cached positions (q's positions are the last Tq of them when causal). */
  attend(q: Tensor, opts: Omit<AttentionOptions, 'tk'> = {}): Tensor {
    return attention(q, this.k, this.v, { ...opts, tk: this.length });
  }

  /** A copy of the cached keys [B, H, length, D] as f32 (for inspection; `attend` reads the cache in place). */
  keys(): Tensor {
    return this.rows(this.k);
  }

  /** A copy of the cached values [B, H, length, D] as f32. */
  values(): Tensor {
    return this.rows(this.v);
  }

  private rows(t: Tensor): Tensor {
    if (t.dtype === 'f32') return narrow(t, 2, 0, this.length);
    const f = cast(t, 'f32');
    const out = narrow(f, 2, 0, this.length);
    f.dispose();
    return out;
  }

  /** Forgets the cached positions (the buffers stay allocated). */
  reset(): void {
    this.length = 0;
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }
}
