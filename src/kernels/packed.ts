// Matrices stored packed (f16, q8, q4: the formats of src/quant.ts) and the kernels that read them as they are,
// with no dequantised copy: the decode gemv (a few rows: shaders/packed_gemv.wgsl, or without subgroups of 8
// lanes packed_gemv_parts.wgsl + packed_gemv_sum.wgsl), the prefill matmul (any number of rows:
// packed_matmul.wgsl) and the embedding lookup (embedding.wgsl, through src/kernels/embedding.ts). The weights are
// decoded to f32 in registers (shaders/lib/packed.wgsl) and every product and sum is f32; only the weights are
// rounded. Each kernel is specialised per format (its FORMAT constant) and the gemv per row count (R).
//
// A packed matrix is one i32 buffer: the data words (row-major, `PER_WORD` elements each), then the scales' f32
// bits (`scaleBase` words in). The kernels bind it twice, as words and as f32 scales (f16 binds it as scales too,
// unread, so every format has the same bindings).

import { Tensor, keep, shapeStr, type Shape } from '../tensor.js';
import { isRecording } from '../autograd.js';
import { specialise, type Runtime } from '../runtime.js';
import { dataWords, scalesPerRow, type PackedFormat, type WeightDType } from '../quant.js';
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

/** lib/packed.wgsl's FORMAT values. */
export const FORMAT_ID: Readonly<Record<WeightDType, number>> = { f32: 0, f16: 1, q8: 2, q4: 3 };

// ---------------------------------------------------------------------------------------------------------------
// decode gemv

const ROWS_PER_LANE = 2; // packed_gemv.wgsl's ROWS (1 and 4 measured slower for q8 on lavapipe)
const LANE_WG = 64; // packed_gemv.wgsl's workgroup: a 1024-row matrix still makes 8 workgroups for the cores
const ROWS_PER_GROUP = 4; // packed_gemv_parts.wgsl's ROWS
const WG = 256; // packed_gemv_parts.wgsl's workgroup
export const PACKED_GEMV_MAX_ROWS = 8;

/**
 * How the gemv runs: `subgroup` (packed_gemv.wgsl: x shared by subgroups of ≥ 8 lanes, whatever their size), or
 * `partials`: `lanes` lanes per group of rows write their partial sums to a scratch buffer and a second pass adds
 * them (no subgroups needed, and no workgroup barrier: llvmpipe took seconds to compile one). Tests run
 * `partials` at the widths GPUs have (8, 32, 64) to check its lane indexing.
 */
export type GemvMode = { kind: 'subgroup' } | { kind: 'partials'; lanes: number };

/**
 * The gemv mode the adapter supports: its subgroups if they have at least 8 lanes (an adapter that reports no
 * minimum may have 4), else 16 lanes of partial sums.
 */
export function defaultGemvMode(rt: Runtime): GemvMode {
  return rt.shuffleSubgroups ? { kind: 'subgroup' } : { kind: 'partials', lanes: 16 };
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
  const consts = { FORMAT: FORMAT_ID[w.format], R };
  if (m.kind === 'subgroup') {
    rt.dispatch({
      ...specialise('packed_gemv', { ...consts, ROWS: ROWS_PER_LANE }),
      params: { N, K, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
      bindings: [x.binding(), w.words.binding(), w.words.binding(), (bias ?? x).binding(), y.binding()],
      workgroups: rt.grid(Math.ceil(Math.ceil(N / ROWS_PER_LANE) / LANE_WG)),
    });
    return y;
  }
  const part = Tensor.empty([m.lanes, R, N], 'f32', rt);
  rt.dispatch({
    ...specialise('packed_gemv_parts', consts),
    params: { N, K, lanes: m.lanes, scaleBase: w.scaleBase },
    bindings: [x.binding(), w.words.binding(), w.words.binding(), part.binding()],
    workgroups: rt.grid(Math.ceil((Math.ceil(N / ROWS_PER_GROUP) * m.lanes) / WG)),
  });
  rt.dispatch({
    shader: 'packed_gemv_sum',
    params: { N, rows: R, lanes: m.lanes, hasBias: bias ? 1 : 0, act },
    bindings: [part.binding(), (bias ?? part).binding(), y.binding()],
    workgroups: launch1d(rt, R * N),
  });
  part.dispose();
  return y;
}

// ---------------------------------------------------------------------------------------------------------------
// prefill matmul

/** y = act(x · Wᵀ + bias) for x [..., K] (any number of rows) and W packed [N, K]. */
export function matmulPacked(x: Tensor, w: PackedMatrix, bias: Tensor | undefined, act: number, outShape: Shape): Tensor {
  const rt = x.rt;
  const [N, K] = [w.rows, w.cols];
  const M = x.size / K;
  const y = Tensor.empty(outShape, 'f32', rt);
  if (M === 0) return y;
  // the shuffle kernel, shaped as matmul_sg4 for few rows (4 columns compiled 4× slower on llvmpipe: ~20 s)
  if (rt.shuffleSubgroups) {
    const { WG, CN } = fewRowsWorkgroup(rt);
    rt.dispatch({
      ...specialise('packed_matmul_sg', { FORMAT: FORMAT_ID[w.format], CN, WG }),
      params: { M, N, K, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
      bindings: [x.binding(), w.words.binding(), w.words.binding(), (bias ?? x).binding(), y.binding()],
      workgroups: [Math.ceil(N / (WG * CN)), Math.ceil(M / 16)],
    });
    return y;
  }
  rt.dispatch({
    ...specialise('packed_matmul', 'FORMAT', FORMAT_ID[w.format]),
    params: { M, N, K, hasBias: bias ? 1 : 0, act, scaleBase: w.scaleBase },
    bindings: [x.binding(), w.words.binding(), w.words.binding(), (bias ?? x).binding(), y.binding()],
    workgroups: [Math.ceil(N / 32), Math.ceil(M / 32)],
  });
  return y;
}

/**
 * The workgroup of the shuffle matmuls for few rows (packed_matmul_sg always, matmul_sg4 for ≤ 4 row blocks):
 * 64 columns as 32 lanes × 2 columns, or one wider subgroup × 1 (matmul.ts `sg4Shape` says why).
 */
export function fewRowsWorkgroup(rt: Runtime): { WG: number; CN: number } {
  const WG = Math.max(32, rt.maxSubgroupSize);
  return { WG, CN: Math.max(1, 64 / WG) };
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
