// Weight formats for matrices (Linear weights, embedding tables, heads) and their CPU packing, at the bottom of
// the layers: the loader packs while it streams a checkpoint in, `musicgen convert` writes the packed words to
// safetensors as they are, and the kernels (src/kernels/packed.ts) read the same words.
//
// A matrix [rows, cols] (a PyTorch Linear's [out, in], a table's [V, D]) packs row by row into 32-bit words,
// element e = row·cols + col at bit ((e mod per) · bits) of word e / per, little end first:
//   f16  2 per word, IEEE half (round to nearest even)
//   q8   4 per word, int8 two's complement in [−127, 127], one f32 scale per row: w ≈ scale[row] · q
//        (absmax / 127: symmetric, so a zero stays exactly zero; a clipped, least-error scale measured no
//        better on Gaussian rows of 768–4096, whose absmax is already near the best clip at 8 bits)
//   q4   8 per word, a nibble holding q + 8 for q in [−8, 7], one f32 scale per group of 32 along the row:
//        w ≈ scale[row, col / 32] · q. Each group's scale is the one of least squared error among a few
//        candidates (`packRows`), the full 16 levels used (the largest magnitude near −8, as llama.cpp's Q4_0).
// The words are little-endian bytes, so a q8 matrix is its int8 values in order (safetensors I8 [rows, cols]) and a
// q4 matrix is two nibbles per byte, low nibble first (U8 [rows, cols / 2]); the scales follow in their own tensor.
// Kernels read a lane's 4 consecutive words (a vec4<u32>) at a time, so cols must be a multiple of 8 (f16), 16
// (q8) or 32 (q4); a matrix that is not stays f32 (`packable`).

import { f16ToF32, f32ToF16Bits } from './dtype.js';

export const WEIGHT_DTYPES = ['f32', 'f16', 'q8', 'q4'] as const;
/** How a model's matrices are stored on the GPU. Everything else (norms, biases, EnCodec) stays f32. */
export type WeightDType = (typeof WEIGHT_DTYPES)[number];
export type PackedFormat = Exclude<WeightDType, 'f32'>;
/** What `MusicGen.load` and the CLIs use when no dtype is given and the folder is not converted (README: why). */
export const DEFAULT_DTYPE: WeightDType = 'f32';

/**
 * Which matrices a load keeps at a higher precision than its dtype, by checkpoint key (MusicGen's transformers
 * names), and why: measured on the full-size random musicgen-small by rounding one group of matrices at a time
 * (BENCHMARKS.md, "Weight formats"). Every group of matrices adds a similar share of the logits' error, so the
 * ones kept are those with the largest share per byte:
 *   q8: T5 (run once per prompt, 110 M weights; at q8 its hidden state alone is 2.0e-2 off), the LM's heads, the
 *       text projection and the self-attention output projections stay f16.
 *   q4: T5, the LM's codebook tables and heads and the text projection stay q8 (at 4 bits T5's hidden state is
 *       2e-1 off, and the tables and heads enter the residual stream and the logits directly).
 * `musicgen convert` records this table in config.json (`quantization.kept`).
 */
export const KEPT: Readonly<Record<PackedFormat, ReadonlyArray<readonly [pattern: string, dtype: WeightDType]>>> = {
  f16: [],
  q8: [['text_encoder.*', 'f16'], ['decoder.lm_heads.*', 'f16'], ['enc_to_dec_proj.*', 'f16'], ['*.self_attn.out_proj.*', 'f16']],
  q4: [['text_encoder.*', 'q8'], ['decoder.model.decoder.embed_tokens.*', 'q8'], ['decoder.lm_heads.*', 'q8'], ['enc_to_dec_proj.*', 'q8']],
};

const globRe = (pattern: string): RegExp => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
const KEPT_RE = Object.fromEntries(Object.entries(KEPT).map(([f, list]) => [f, list.map(([p, d]) => [globRe(p), d] as const)])) as Record<PackedFormat, [RegExp, WeightDType][]>;

/** The dtype a load in `dtype` stores the matrix under checkpoint key `key` in (see `KEPT`). */
export function matrixDType(dtype: WeightDType, key: string): WeightDType {
  if (dtype === 'f32') return dtype;
  return KEPT_RE[dtype].find(([re]) => re.test(key))?.[1] ?? dtype;
}

/** q4's candidate levels for a group's largest-magnitude weight (see `packRows`); Q4_0's −8 first. */
const Q4_LEVELS = [-8, -7.5, -8.5, -9, -9.5];

/** Elements per 32-bit word. */
export const PER_WORD: Readonly<Record<PackedFormat, number>> = { f16: 2, q8: 4, q4: 8 };
/** q4's group along a row (one scale each). */
export const Q4_GROUP = 32;

export function isWeightDType(s: unknown): s is WeightDType {
  return typeof s === 'string' && (WEIGHT_DTYPES as readonly string[]).includes(s);
}

/** Whether rows of `cols` elements can be stored as `format` (each row a whole number of 4-word lane loads). */
export function packable(format: PackedFormat, cols: number): boolean {
  return cols > 0 && cols % (PER_WORD[format] * 4) === 0;
}

/** Scales per row: 0 (f16), 1 (q8), cols/32 (q4). */
export function scalesPerRow(format: PackedFormat, cols: number): number {
  return format === 'f16' ? 0 : format === 'q8' ? 1 : cols / Q4_GROUP;
}

/** Words of packed data for `rows` rows (the scales are counted apart). */
export function dataWords(format: PackedFormat, rows: number, cols: number): number {
  return (rows * cols) / PER_WORD[format];
}

/**
 * Packs whole rows of `src` (rows × cols, f32) as `format`: the words into `data` from word `dataAt`, the scales
 * into `scales` from `scaleAt`.
 */
export function packRows(
  format: PackedFormat, src: Float32Array, cols: number,
  data: Uint32Array, dataAt: number, scales: Float32Array, scaleAt: number,
): void {
  const rows = src.length / cols;
  if (!Number.isInteger(rows)) throw new Error(`packRows: ${src.length} values are not whole rows of ${cols}`);
  if (!packable(format, cols)) throw new Error(`packRows: rows of ${cols} cannot be stored as ${format}`);
  if (format === 'f16') {
    for (let i = 0, w = dataAt; i < src.length; i += 2, w++) data[w] = (f32ToF16Bits(src[i]) | (f32ToF16Bits(src[i + 1]) << 16)) >>> 0;
    return;
  }
  if (format === 'q8') {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let amax = 0;
      for (let c = 0; c < cols; c++) {
        const a = Math.abs(src[o + c]);
        if (a > amax) amax = a;
      }
      const scale = Math.fround(amax / 127);
      scales[scaleAt + r] = scale;
      const inv = scale > 0 ? 1 / scale : 0;
      let w = dataAt + o / 4;
      for (let c = 0; c < cols; c += 4, w++) {
        let word = 0;
        for (let j = 0; j < 4; j++) {
          const q = clamp(roundHalfUp(src[o + c + j] * inv), -127, 127);
          word |= (q & 0xff) << (8 * j);
        }
        data[w] = word >>> 0;
      }
    }
    return;
  }
  const groups = src.length / Q4_GROUP;
  for (let g = 0; g < groups; g++) {
    const o = g * Q4_GROUP;
    let ext = 0; // the group's largest-magnitude weight, signed
    for (let c = 0; c < Q4_GROUP; c++) if (Math.abs(src[o + c]) > Math.abs(ext)) ext = src[o + c];
    // each candidate maps `ext` to a level near −8 and rounds the group; the least-squares scale for those
    // levels (Σ w·q / Σ q²) leaves an error of Σ w² − (Σ w·q)² / Σ q², so the candidate with the largest
    // (Σ w·q)² / Σ q² wins. Q4_0's −8 is the first candidate, so the error is never above Q4_0's.
    let inv = 0;
    let scale = 0;
    let best = -1;
    for (let k = 0; ext !== 0 && k < Q4_LEVELS.length; k++) {
      const i = Q4_LEVELS[k] / ext;
      let wq = 0;
      let qq = 0;
      for (let c = 0; c < Q4_GROUP; c++) {
        const q = clamp(roundHalfUp(src[o + c] * i), -8, 7);
        wq += src[o + c] * q;
        qq += q * q;
      }
      if ((wq * wq) / qq > best) { best = (wq * wq) / qq; inv = i; scale = wq / qq; }
    }
    scales[scaleAt + g] = Math.fround(scale);
    let w = dataAt + o / 8;
    for (let c = 0; c < Q4_GROUP; c += 8, w++) {
      let word = 0;
      for (let j = 0; j < 8; j++) {
        const q = clamp(roundHalfUp(src[o + c + j] * inv), -8, 7);
        word |= (q + 8) << (4 * j);
      }
      data[w] = word >>> 0;
    }
  }
}

/**
 * Math.round's rounding (halves up) as floor(x + 0.5), which V8 compiles to one instruction: Math.round measured
 * ~20 ns a call here against ~4 ns, and packing was half of a q8 load's time. The two differ only in the sign of a
 * zero and where x + 0.5 itself rounds (x = 0.5 − 2⁻⁵⁴), which no packed value tells apart.
 */
const roundHalfUp = (x: number): number => Math.floor(x + 0.5);
const clamp = (q: number, lo: number, hi: number): number => (q < lo ? lo : q > hi ? hi : q);

/** The f32 values of packed rows (for tests and CPU references): rows × cols. */
export function unpackRows(
  format: PackedFormat, data: Uint32Array, scales: Float32Array, rows: number, cols: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  const per = PER_WORD[format];
  for (let e = 0; e < out.length; e++) {
    const word = data[Math.floor(e / per)];
    const slot = e % per;
    if (format === 'f16') out[e] = f16ToF32((word >>> (16 * slot)) & 0xffff);
    else if (format === 'q8') out[e] = scales[Math.floor(e / cols)] * (((word >>> (8 * slot)) << 24) >> 24);
    else out[e] = scales[Math.floor(e / Q4_GROUP)] * (((word >>> (4 * slot)) & 0xf) - 8);
  }
  return out;
}
