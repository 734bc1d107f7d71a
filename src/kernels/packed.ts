// Matrices stored packed (f16, q8, q4: the formats of src/quant.ts) and the kernels that read them as they are,
// with no dequantised copy: the decode gemv (a few rows), the prefill matmul (any number of rows) and the embedding
// lookup. The weights are decoded to f32 in registers and every product and sum is f32; only the weights are
// rounded. All three are generated per format (the decode of a word differs) and, for the gemv, per row count.
//
// A packed matrix is one i32 buffer: the data words (row-major, `PER_WORD` elements each), then the scales' f32
// bits (`scaleBase` words in). The kernels bind it twice, as vec4<u32> words and as f32 scales.
//
// gemv: one group of lanes computes 4 output rows; each lane reads one vec4<u32> (4 words: 8, 16 or 32 weights,
// one q4 group) of each row per step, neighbouring lanes neighbouring words, so a group reads contiguous bytes.
// The lanes' partial sums are combined with `subgroupAdd` where the adapter has subgroups (the group is the
// subgroup, whatever its size: 8 on llvmpipe, 32 or 64 on GPUs; read at run time from `subgroup_size`), else
// through workgroup memory with a fixed lane count (the fallback, also how tests run other widths).
// q8 words decode with `unpack4xI8` where the adapter has WGSL's packed_4x8_integer_dot_product, else with
// shifts. (`dot4I8Packed` would need the activations in int8 too: another rounding, so it is not used.)

import { Tensor, keep, shapeStr, type Shape } from '../tensor.js';
import { isRecording } from '../autograd.js';
import { shaderSource, type Runtime } from '../runtime.js';
import { PER_WORD, Q4_GROUP, dataWords, scalesPerRow, type PackedFormat } from '../quant.js';
import { launch1d } from './elementwise.js';

/** A matrix [..., cols] stored packed: the rows are every index but the last. Never differentiable. */
export class PackedMatrix {
  constructor(
    readonly format: PackedFormat,
    readonly shape: Shape,
    /** i32 [data words + scales]. */
    readonly words: Tensor,
  ) {}

  /** An uninitialised packed matrix (kept out of tidy scopes, like every loaded weight). */
  static empty(format: PackedFormat, shape: Shape, rt: Runtime): PackedMatrix {
    const cols = shape[shape.length - 1];
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const n = dataWords(format, rows, cols) + rows * scalesPerRow(format, cols);
    return new PackedMatrix(format, shape, keep(Tensor.exact([n], 'i32', rt))); // exact size, as every weight
  }

  get rt(): Runtime { return this.words.rt; }
  get cols(): number { return this.shape[this.shape.length - 1]; }
  get rows(): number { return this.shape.slice(0, -1).reduce((a, b) => a * b, 1); }
  get rank(): number { return this.shape.length; }
  /** Where the scales start, in words. */
  get scaleBase(): number { return dataWords(this.format, this.rows, this.cols); }
  /** Bytes on the GPU. */
  get bytes(): number { return this.words.bytes; }

  /** Writes packed rows from `row` on: their words and (q8, q4) their scales. */
  uploadRows(row: number, data: Uint32Array, scales: Float32Array): void {
    this.words.upload(new Int32Array(data.buffer, data.byteOffset, data.length), dataWords(this.format, row, this.cols));
    if (scales.length > 0) {
      const at = this.scaleBase + row * scalesPerRow(this.format, this.cols);
      this.words.upload(new Int32Array(scales.buffer, scales.byteOffset, scales.length), at);
    }
  }

  /** The packed words and scales, read back (for writing a converted checkpoint). */
  async read(): Promise<{ data: Uint32Array; scales: Float32Array }> {
    const all = await this.words.read();
    const base = this.scaleBase;
    return {
      data: new Uint32Array(all.buffer, all.byteOffset, base),
      scales: new Float32Array(all.buffer, all.byteOffset + base * 4, all.length - base),
    };
  }

  toString(): string {
    return `PackedMatrix(${this.format}[${this.shape.join(', ')}])`;
  }

  dispose(): void {
    this.words.dispose();
  }
}

/** A weight as the model holds it: f32, or packed. */
export type Matrix = Tensor | PackedMatrix;

// ---------------------------------------------------------------------------------------------------------------
// WGSL pieces shared by the generated kernels

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Lines decoding `wv` (a vec4<u32>: 4 words) into `d${j}_0 …` vec4<f32>s (PER_WORD[format] of them). */
function decodeWords(format: PackedFormat, wv: string, j: string, packed4x8: boolean): string {
  if (format === 'f16') {
    return [
      `let d${j}_0 = vec4<f32>(unpack2x16float(${wv}.x), unpack2x16float(${wv}.y));`,
      `let d${j}_1 = vec4<f32>(unpack2x16float(${wv}.z), unpack2x16float(${wv}.w));`,
    ].join(' ');
  }
  const comps = ['x', 'y', 'z', 'w'];
  if (format === 'q8') {
    return comps.map((c, i) => (packed4x8
      ? `let d${j}_${i} = vec4<f32>(unpack4xI8(${wv}.${c}));`
      : `let d${j}_${i} = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(${wv}.${c}) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));`)).join(' ');
  }
  return comps.map((c, i) => [
    `let d${j}_${2 * i} = vec4<f32>((vec4<u32>(${wv}.${c}) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) - 8.0;`,
    `let d${j}_${2 * i + 1} = vec4<f32>((vec4<u32>(${wv}.${c}) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u)) - 8.0;`,
  ].join(' ')).join(' ');
}

/** `requires` / `enable` lines for a kernel. */
function directives(opts: { subgroups?: boolean; packed4x8?: boolean }): string {
  return [opts.subgroups ? 'enable subgroups;' : '', opts.packed4x8 ? 'requires packed_4x8_integer_dot_product;' : ''].filter(Boolean).join('\n');
}

const FINISH = `
fn finish(v: f32, n: u32) -> f32 {
  var y = v;
  if (p.hasBias != 0u) { y += Bias[n]; }
  switch p.act {
    case 1u: { return max(y, 0.0); }
    case 2u: { return 0.5 * y * (1.0 + erf_(y * 0.70710678118654752)); }
    default: { return y; }
  }
}`;

/** Bindings of the matrix kernels: X, W (words), S (scales, not for f16), Bias, Y. */
function matrixBindings(format: PackedFormat): string {
  return [
    '@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;',
    '@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;',
    ...(format === 'f16' ? [] : ['@group(0) @binding(3) var<storage, read> S: array<f32>;']),
    `@group(0) @binding(${format === 'f16' ? 3 : 4}) var<storage, read> Bias: array<f32>;`,
    `@group(0) @binding(${format === 'f16' ? 4 : 5}) var<storage, read_write> Y: array<f32>;`,
  ].join('\n');
}

function bindMatrix(x: Tensor, w: PackedMatrix, bias: Tensor | undefined, y: Tensor): ReturnType<Tensor['binding']>[] {
  return [x.binding(), w.words.binding(), ...(w.format === 'f16' ? [] : [w.words.binding()]), (bias ?? x).binding(), y.binding()];
}

// ---------------------------------------------------------------------------------------------------------------
// decode gemv

const ROWS_PER_GROUP = 4;
const WG = 256; // as gemv.ts: fewer, larger workgroups read faster on lavapipe
export const PACKED_GEMV_MAX_ROWS = 8;

/**
 * How the gemv combines its lanes: `subgroup` (the adapter's subgroups, whatever their size), or `partials`:
 * `lanes` lanes per group of rows write their partial sums to a scratch buffer and a second pass adds them (no
 * subgroups needed, and no workgroup barrier: llvmpipe took seconds to compile one). Tests run `partials` at the
 * widths GPUs have (8, 32, 64) to check the lane indexing this adapter's subgroups never exercise.
 */
export type GemvMode = { kind: 'subgroup' } | { kind: 'partials'; lanes: number };

/** The gemv's first pass; with subgroups it is the whole kernel. */
function gemvCode(format: PackedFormat, R: number, sub: boolean, packed4x8: boolean): string {
  const O = ROWS_PER_GROUP;
  const per = PER_WORD[format];
  const head = sub
    ? `@builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {`
    : `) {
  let lanes = p.lanes;
  let lane = (gid.x + gid.y * nwg.x * ${WG}u) % lanes;`;
  const store = (j: number, r: number): string => sub
    ? `  { let s = subgroupAdd(a${j}[${r}]); if (lane == 0u && n0 + ${j}u < p.N) { Y[${r}u * p.N + n0 + ${j}u] = finish(s${format === 'q8' ? ` * S[p.scaleBase + n0 + ${j}u]` : ''}, n0 + ${j}u); } }`
    : `  if (n0 + ${j}u < p.N) { Part[(lane * ${R}u + ${r}u) * p.N + n0 + ${j}u] = a${j}[${r}]; }`;
  const bindings = sub ? matrixBindings(format) : [
    '@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;',
    '@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;',
    ...(format === 'q4' ? ['@group(0) @binding(3) var<storage, read> S: array<f32>;'] : []),
    `@group(0) @binding(${format === 'q4' ? 4 : 3}) var<storage, read_write> Part: array<f32>;`,
  ].join('\n');
  return `${directives({ subgroups: sub, packed4x8: packed4x8 && format === 'q8' })}
struct P { N: u32, K: u32, ${sub ? 'hasBias: u32, act: u32, scaleBase: u32' : `lanes: u32${format === 'q4' ? ', scaleBase: u32' : ''}`} }
@group(0) @binding(0) var<uniform> p: P;
${bindings}
${sub ? `${shaderSource('lib/erf')}\n${FINISH}` : ''}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, ${head}
  let n0 = ((gid.x + gid.y * nwg.x * ${WG}u) / lanes) * ${O}u;
  let K4 = p.K / 4u;
  let KW = p.K / ${4 * per}u; // vec4<u32> steps per row
  // rows past N (the last group's) are clamped for the loads and never stored
${range(O).map((j) => `  var a${j}: array<f32, ${R}>;\n  let r${j} = min(n0 + ${j}u, p.N - 1u);`).join('\n')}
  for (var kb = lane; kb < KW; kb += lanes) {
${range(O).map((j) => `    {
      let wv = W[r${j} * KW + kb]; ${decodeWords(format, 'wv', String(j), packed4x8)}
${format === 'q4' ? `      let s = S[p.scaleBase + r${j} * KW + kb];\n` : ''}${range(R).map((r) => `      a${j}[${r}] += (${range(per).map((c) => `dot(X[${r}u * K4 + kb * ${per}u + ${c}u], d${j}_${c})`).join(' + ')})${format === 'q4' ? ' * s' : ''};`).join('\n')}
    }`).join('\n')}
  }
${range(O).map((j) => range(R).map((r) => store(j, r)).join('\n')).join('\n')}
}`;
}

/** The `partials` mode's second pass: Y[r, n] = finish(Σ_lane Part[lane, r, n] (· q8 row scale)). */
function gemvSumCode(format: PackedFormat): string {
  return `struct P { N: u32, rows: u32, lanes: u32, hasBias: u32, act: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Part: array<f32>;
${format === 'q8' ? '@group(0) @binding(2) var<storage, read> S: array<f32>;' : ''}
@group(0) @binding(${format === 'q8' ? 3 : 2}) var<storage, read> Bias: array<f32>;
@group(0) @binding(${format === 'q8' ? 4 : 3}) var<storage, read_write> Y: array<f32>;
${shaderSource('lib/erf')}
${FINISH}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.N) { return; }
  let n = i % p.N;
  var s = 0.0;
  for (var l = 0u; l < p.lanes; l++) { s += Part[l * p.rows * p.N + i]; }
  Y[i] = finish(s${format === 'q8' ? ' * S[p.scaleBase + n]' : ''}, n);
}`;
}

/** The gemv mode the adapter supports: its subgroups, else 16 lanes of partial sums. */
export function defaultGemvMode(rt: Runtime): GemvMode {
  return rt.ctx.features.subgroups ? { kind: 'subgroup' } : { kind: 'partials', lanes: 16 };
}

/**
 * y = act(x · Wᵀ + bias) for x holding R = x.size / K ≤ 8 rows and W packed [N, K]; y gets `outShape`.
 * `mode` defaults to the adapter's (see `defaultGemvMode`).
 */
export function gemvPacked(x: Tensor, w: PackedMatrix, bias: Tensor | undefined, act: number, outShape: Shape, mode?: GemvMode): Tensor {
  const rt = x.rt;
  const m = mode ?? defaultGemvMode(rt);
  const [N, K] = [w.rows, w.cols];
  const R = x.size / K;
  if (!Number.isInteger(R) || R < 1 || R > PACKED_GEMV_MAX_ROWS) throw new Error(`gemvPacked: ${shapeStr(x)} is not 1…8 rows of ${K}`);
  if (m.kind === 'partials' && !(Number.isInteger(m.lanes) && m.lanes >= 1 && m.lanes <= WG)) throw new Error(`gemvPacked: ${m.lanes} lanes`);
  const y = Tensor.empty(outShape, 'f32', rt);
  const packed4x8 = rt.ctx.features.packed4x8;
  const lanes = m.kind === 'subgroup' ? rt.maxSubgroupSize : m.lanes;
  const workgroups = rt.grid(Math.ceil((Math.ceil(N / ROWS_PER_GROUP) * lanes) / WG));
  const shader = `gemv_${w.format}_r${R}${packed4x8 ? '_p' : ''}`;
  if (m.kind === 'subgroup') {
    rt.dispatch({
      shader: `${shader}_sg`,
      code: gemvCode(w.format, R, true, packed4x8),
      params: { N, K, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
      bindings: bindMatrix(x, w, bias, y),
      workgroups,
    });
    return y;
  }
  const part = Tensor.empty([m.lanes, R, N], 'f32', rt);
  rt.dispatch({
    shader: `${shader}_parts`,
    code: gemvCode(w.format, R, false, packed4x8),
    params: { N, K, lanes: m.lanes, ...(w.format === 'q4' ? { scaleBase: w.scaleBase } : {}) },
    bindings: [x.binding(), w.words.binding(), ...(w.format === 'q4' ? [w.words.binding()] : []), part.binding()],
    workgroups,
  });
  rt.dispatch({
    shader: `gemv_sum_${w.format}`,
    code: gemvSumCode(w.format),
    params: { N, rows: R, lanes: m.lanes, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
    bindings: [part.binding(), ...(w.format === 'q8' ? [w.words.binding()] : []), (bias ?? part).binding(), y.binding()],
    workgroups: launch1d(rt, R * N),
  });
  part.dispose();
  return y;
}

// ---------------------------------------------------------------------------------------------------------------
// prefill matmul

function matmulCode(format: PackedFormat, packed4x8: boolean): string {
  const per = PER_WORD[format];
  return `${directives({ packed4x8: packed4x8 && format === 'q8' })}
struct P { M: u32, N: u32, K: u32, hasBias: u32, act: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
${matrixBindings(format)}
${shaderSource('lib/erf')}
${FINISH}

// each invocation a 4×4 block of Y: each weight word decoded once, used by 4 rows of X
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let K4 = p.K / 4u;
  let KW = p.K / ${4 * per}u;
${range(4).map((i) => `  let x${i} = min(m0 + ${i}u, p.M - 1u) * K4;`).join('\n')}
  // one weight row (column n of Y) at a time, its 4 outputs stored at once: no array indexed at run time
  // (llvmpipe took tens of seconds to compile the kernel that kept a 4×4 block in an array)
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + j;
    if (n >= p.N) { break; }
    let row = n * KW;
    var a = vec4<f32>(0.0);
    for (var kb = 0u; kb < KW; kb++) {
      let wv = W[row + kb]; ${decodeWords(format, 'wv', '', packed4x8)}
      let t = vec4<f32>(${range(4).map((i) => range(per).map((c) => `dot(X[x${i} + kb * ${per}u + ${c}u], d_${c})`).join(' + ')).join(',\n        ')});
      a += t${format === 'q4' ? ' * S[p.scaleBase + row + kb]' : ''};
    }
${range(4).map((i) => `    if (m0 + ${i}u < p.M) { Y[(m0 + ${i}u) * p.N + n] = finish(a[${i}]${format === 'q8' ? ' * S[p.scaleBase + n]' : ''}, n); }`).join('\n')}
  }
}`;
}

/** y = act(x · Wᵀ + bias) for x [..., K] (any number of rows) and W packed [N, K]. */
export function matmulPacked(x: Tensor, w: PackedMatrix, bias: Tensor | undefined, act: number, outShape: Shape): Tensor {
  const rt = x.rt;
  const [N, K] = [w.rows, w.cols];
  const M = x.size / K;
  const y = Tensor.empty(outShape, 'f32', rt);
  if (M === 0) return y;
  const packed4x8 = rt.ctx.features.packed4x8;
  rt.dispatch({
    shader: `matmul_${w.format}${packed4x8 ? '_p' : ''}`,
    code: matmulCode(w.format, packed4x8),
    params: { M, N, K, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
    bindings: bindMatrix(x, w, bias, y),
    workgroups: [Math.ceil(N / 32), Math.ceil(M / 32)],
  });
  return y;
}

const ACT_ID = { none: 0, relu: 1, gelu: 2 } as const;

/**
 * PyTorch's Linear, x·Wᵀ + b, against a packed W [out, in]: a few rows go to the gemv, more to the matmul.
 * Packed weights are frozen and have no backward: recording a pass whose input needs a gradient is an error
 * (fine-tuning, LoRA included, needs f32 weights).
 */
export function linearPacked(x: Tensor, w: PackedMatrix, bias?: Tensor, act: keyof typeof ACT_ID = 'none'): Tensor {
  if (w.rank !== 2) throw new Error(`linear: packed weight ${w} is not a matrix`);
  const [N, K] = [w.rows, w.cols];
  if (x.dtype !== 'f32' || x.shape[x.rank - 1] !== K) throw new Error(`linear: input ${x.dtype}${shapeStr(x)} for ${w}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== N)) throw new Error(`linear: bias ${shapeStr(bias)} for N = ${N}`);
  if (isRecording() && (x.requiresGrad || bias?.requiresGrad)) {
    throw new Error(`linear: ${w} has no backward (packed weights are for inference; train from f32 weights: dtype 'f32')`);
  }
  const outShape = [...x.shape.slice(0, -1), N];
  const rows = x.size / K;
  return rows >= 1 && rows <= PACKED_GEMV_MAX_ROWS
    ? gemvPacked(x, w, bias, ACT_ID[act], outShape)
    : matmulPacked(x, w, bias, ACT_ID[act], outShape);
}

// ---------------------------------------------------------------------------------------------------------------
// embedding lookup

function embeddingCode(format: PackedFormat): string {
  const per = PER_WORD[format];
  const value = format === 'f16'
    ? 'unpack2x16float(W[e / 2u])[e % 2u]'
    : format === 'q8'
      ? 'f32(extractBits(bitcast<i32>(W[e / 4u]), (e % 4u) * 8u, 8u)) * S[p.scaleBase + row]'
      : `(f32(extractBits(W[e / 8u], (e % 8u) * 4u, 4u)) - 8.0) * S[p.scaleBase + e / ${Q4_GROUP}u]`;
  return `struct P { n: u32, K: u32, V: u32, T: u32, D: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<u32>;
${format === 'f16' ? '' : '@group(0) @binding(2) var<storage, read> S: array<f32>;'}
@group(0) @binding(${format === 'f16' ? 2 : 3}) var<storage, read> Ids: array<i32>;
@group(0) @binding(${format === 'f16' ? 3 : 4}) var<storage, read_write> Out: array<f32>;

// out[b, t, d] = Σ_k table[k, ids[b, k, t], d], one invocation per output element (${per} weights a word)
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let d = i % p.D;
  let bt = i / p.D;
  let b = bt / p.T;
  let t = bt % p.T;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let id = Ids[(b * p.K + k) * p.T + t];
    if (id >= 0 && u32(id) < p.V) {
      let row = k * p.V + u32(id);
      let e = row * p.D + d;
      acc += ${value};
    }
  }
  Out[i] = acc;
}`;
}

/**
 * Σ_k tables[k, ids[b, k, t]] for packed tables [K, V, D] and ids i32 [B, K, T] → [B, T, D] (a single table is
 * [V, D] with ids of any shape: see `embeddingPacked`). Ids outside 0…V−1 embed to zeros.
 */
export function embeddingSumPacked(tables: PackedMatrix, ids: Tensor): Tensor {
  if (tables.rank !== 3) throw new Error(`embeddingSum: packed tables must be [K, V, D], got ${tables}`);
  const [K, V, D] = tables.shape;
  if (ids.dtype !== 'i32' || ids.rank !== 3 || ids.shape[1] !== K) {
    throw new Error(`embeddingSum: ids must be i32 [B, ${K}, T], got ${ids.dtype} ${shapeStr(ids)}`);
  }
  const [B, , T] = ids.shape;
  return lookupPacked(tables, ids, B, K, V, T, D);
}

/** table packed [V, D], ids i32 of any shape → [...ids.shape, D]. */
export function embeddingPacked(table: PackedMatrix, ids: Tensor): Tensor {
  if (table.rank !== 2) throw new Error(`embedding: packed table must be [V, D], got ${table}`);
  if (ids.dtype !== 'i32') throw new Error(`embedding: ids must be i32, got ${ids.dtype}`);
  const [V, D] = table.shape;
  const out = lookupPacked(table, ids, 1, 1, V, ids.size, D);
  const y = out.reshape([...ids.shape, D]);
  out.dispose();
  return y;
}

function lookupPacked(w: PackedMatrix, ids: Tensor, B: number, K: number, V: number, T: number, D: number): Tensor {
  const rt = w.rt;
  const out = Tensor.empty([B, T, D], 'f32', rt);
  if (out.size > 0) {
    rt.dispatch({
      shader: `embedding_${w.format}`,
      code: embeddingCode(w.format),
      params: { n: out.size, K, V, T, D, scaleBase: w.scaleBase },
      bindings: [w.words.binding(), ...(w.format === 'f16' ? [] : [w.words.binding()]), ids.binding(), out.binding()],
      workgroups: launch1d(rt, out.size),
    });
  }
  return out;
}
