// Loads checkpoint tensors onto the GPU by name, the way candle's VarBuilder does: `w.pp('layers.0')` prefixes
// names, so a model's class tree mirrors the checkpoint's key tree; every shape is checked at load; every key
// used is remembered, so the loader can say which keys a checkpoint has that nothing read.
// It also records what it binds (each tensor and the key, or keys of a stack, it holds): a network's
// `namedParameters()` is that record, so saving and checkpointing read the tree the load built, backwards,
// instead of writing the key paths out again.
// Tensors are uploaded in chunks straight from the file: loading never holds a whole checkpoint in memory.
// Matrices (`getMatrix`, `getStacked` with `matrix`) are stored in the load's weight dtype (src/quant.ts): packed a
// few MiB of rows at a time as they stream in, or uploaded as they are from a folder `musicgen convert` wrote
// (the `.weight` I8 / U8 / F16 words and a `.weight_scale` F32 tensor beside it).

import { Tensor, keep, type Shape } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import type { TensorReader } from '../io/safetensors.js';
import { toF32 } from '../io/safetensors.js';
import { PackedMatrix, type Matrix } from '../kernels/packed.js';
import { dataWords, matrixDType, packRows, packable, scalesPerRow, type PackedFormat, type WeightDType } from '../quant.js';

/**
 * A tensor the loader bound and the checkpoint key(s) it holds: one key, or the keys of the equal parts stacked
 * along dim 0 (the LM's K codebook tables [K, V+1, D] and heads [K·V, D], EnCodec's codebooks).
 */
export interface NamedTensor {
  /** The tensor (for a packed matrix, its words). */
  tensor: Tensor;
  names: string[];
  /** The shape of each part under its checkpoint key. */
  partShape: number[];
  /** Set when the matrix is stored packed (then `tensor` is `packed.words`). */
  packed?: PackedMatrix;
}

/** What one load shares across prefixes: the keys read, the tensors bound in load order, the matrices' dtype. */
interface LoadRecord {
  used: Set<string>;
  bound: NamedTensor[];
  /**
   * Chunks uploads read into, reused across the load (no 8 MiB allocation per chunk): one per upload in flight
   * (loaders fetch a norm's weight and bias with Promise.all).
   */
  scratch: Uint8Array[];
  dtype: WeightDType;
}

/** The suffix of a packed matrix's scales in a converted checkpoint: `fc1.weight` → `fc1.weight_scale`. */
export const SCALE_SUFFIX = '_scale';

const CHUNK_BYTES = 8 << 20;

/** How one matrix is stored: `dtype` overrides the load's and `KEPT`'s choice (src/quant.ts). */
export interface MatrixOptions {
  dtype?: WeightDType;
}

export class Weights {
  constructor(
    readonly reader: TensorReader,
    readonly rt: Runtime,
    readonly prefix = '',
    private readonly record: LoadRecord = { used: new Set(), bound: [], scratch: [], dtype: 'f32' },
  ) {}

  /** A loader whose matrices (`getMatrix`, `getStacked` with `matrix`) are stored as `dtype`. */
  static withDType(reader: TensorReader, rt: Runtime, dtype: WeightDType): Weights {
    return new Weights(reader, rt, '', { used: new Set(), bound: [], scratch: [], dtype });
  }

  /** How this load stores matrices. */
  get dtype(): WeightDType { return this.record.dtype; }

  /** The same checkpoint under `prefix.name`. */
  pp(name: string | number): Weights {
    return new Weights(this.reader, this.rt, this.key(String(name)), this.record);
  }

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  has(name: string): boolean {
    return this.reader.has(this.key(name));
  }

  shapeOf(name: string): readonly number[] {
    return this.reader.info(this.key(name)).shape;
  }

  /** Marks keys as deliberately not loaded (e.g. a table that is recomputed). */
  skip(name: string): void {
    if (this.has(name)) this.record.used.add(this.key(name));
  }

  /** Uploads a float tensor as f32, checking its shape when one is given. Kept out of tidy scopes. */
  async get(name: string, shape?: Shape): Promise<Tensor> {
    const key = this.key(name);
    const info = this.infoChecked(key, shape);
    const t = keep(Tensor.exact(info.shape, 'f32', this.rt));
    await this.upload(key, t, 0);
    this.record.bound.push({ tensor: t, names: [key], partShape: [...info.shape] });
    return t;
  }

  /**
   * The tensors `names` (each of `partShape`) stacked along dim 0 into one tensor of `shape`: each part is
   * uploaded straight to its place, so no copy of the parts is ever alive beside the stack.
   */
  async getStacked(names: string[], partShape: Shape, shape: Shape): Promise<Tensor>;
  async getStacked(names: string[], partShape: Shape, shape: Shape, matrix: MatrixOptions): Promise<Matrix>;
  async getStacked(names: string[], partShape: Shape, shape: Shape, matrix?: MatrixOptions): Promise<Matrix> {
    const per = partShape.reduce((a, b) => a * b, 1);
    if (per * names.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new Error(`getStacked: ${names.length} parts of [${partShape.join(', ')}] do not make [${shape.join(', ')}]`);
    }
    const keys = names.map((n) => this.key(n));
    const format = matrix ? this.formatFor(keys, partShape, matrix) : null;
    if (format) return this.getPacked(keys, partShape, shape, format);
    for (const key of keys) this.infoChecked(key, partShape);
    const t = keep(Tensor.exact(shape, 'f32', this.rt));
    for (let i = 0; i < keys.length; i++) await this.upload(keys[i], t, i * per);
    this.record.bound.push({ tensor: t, names: keys, partShape: [...partShape] });
    return t;
  }

  /**
   * A matrix [rows, cols] (a Linear's weight, a table) in the load's dtype; f32 when that is f32 or the rows do not
   * pack (see `packable`).
   */
  async getMatrix(name: string, shape: Shape, opts: MatrixOptions = {}): Promise<Matrix> {
    return this.getStacked([name], shape, shape, opts);
  }

  /**
   * The format `keys` (each [..., cols]) are stored in: null for f32. A matrix is stored in the load's dtype, or
   * in the one `matrixDType` keeps it in. A converted checkpoint's own q8 / q4 words load as they are when the
   * load or the matrix asks for that format (a folder converted before `KEPT` changed loads as it was written).
   */
  private formatFor(keys: string[], partShape: Shape, opts: MatrixOptions): PackedFormat | null {
    const stored = keys.map((k) => this.storedFormat(k));
    if (stored.some((f) => f !== stored[0])) throw new Error(`${keys.join(', ')}: stored in different formats (${stored.join(', ')})`);
    const wanted = opts.dtype ?? matrixDType(this.record.dtype, keys[0]);
    const cols = partShape[partShape.length - 1];
    if (stored[0] === 'q8' || stored[0] === 'q4') {
      if (wanted !== stored[0] && this.record.dtype !== stored[0]) {
        throw new Error(`"${keys[0]}" in ${this.reader.label} is stored as ${stored[0]}; load this model with dtype ${stored[0]} (or convert from its f32 weights)`);
      }
      return stored[0];
    }
    return wanted !== 'f32' && packable(wanted, cols) ? wanted : null;
  }

  /** q8 / q4 when `key` was written packed by `musicgen convert` (it has a scale tensor), else null. */
  private storedFormat(key: string): PackedFormat | null {
    if (!this.reader.has(key + SCALE_SUFFIX)) return null;
    const { dtype } = this.reader.info(key);
    if (dtype === 'I8') return 'q8';
    if (dtype === 'U8') return 'q4';
    throw new Error(`"${key}" in ${this.reader.label} has a scale tensor but dtype ${dtype} (packed weights are I8 or U8)`);
  }

  /** Streams the parts `keys` into one packed matrix, packing while reading unless they are packed already. */
  private async getPacked(keys: string[], partShape: Shape, shape: Shape, format: PackedFormat): Promise<PackedMatrix> {
    const cols = partShape[partShape.length - 1];
    const partRows = partShape.slice(0, -1).reduce((a, b) => a * b, 1);
    const m = PackedMatrix.empty(format, shape, this.rt);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (this.storedFormat(key)) await this.uploadStored(key, m, format, partShape, i * partRows);
      else {
        this.infoChecked(key, partShape);
        await this.uploadPacking(key, m, i * partRows);
      }
    }
    this.record.bound.push({ tensor: m.words, names: keys, partShape: [...partShape], packed: m });
    return m;
  }

  /** A converted checkpoint's words and scales, uploaded as they are. */
  private async uploadStored(key: string, m: PackedMatrix, format: PackedFormat, partShape: Shape, row: number): Promise<void> {
    const cols = partShape[partShape.length - 1];
    const stored = [...partShape.slice(0, -1), format === 'q4' ? cols / 2 : cols];
    this.infoChecked(key, stored);
    const rows = partShape.slice(0, -1).reduce((a, b) => a * b, 1);
    const scaleKey = key + SCALE_SUFFIX;
    const per = scalesPerRow(format, cols);
    this.infoChecked(scaleKey, format === 'q8' ? partShape.slice(0, -1) : [...partShape.slice(0, -1), per]);
    if (this.reader.info(scaleKey).dtype !== 'F32') throw new Error(`"${scaleKey}" in ${this.reader.label} must be F32`);
    let at = dataWords(format, row, cols);
    for await (const chunk of this.reader.readRawChunks(key, CHUNK_BYTES)) {
      if (chunk.byteLength % 4 !== 0) throw new Error(`"${key}": a chunk of ${chunk.byteLength} bytes is not whole words`);
      const words = chunk.byteOffset % 4 === 0 ? new Int32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4)
        : new Int32Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
      m.words.upload(words, at);
      at += words.length;
    }
    const scales = await this.reader.readRaw(scaleKey);
    m.words.upload(new Int32Array(scales.buffer.slice(scales.byteOffset, scales.byteOffset + scales.byteLength)), m.scaleBase + row * per);
    if (rows * per * 4 !== scales.byteLength) throw new Error(`"${scaleKey}": ${scales.byteLength} bytes for ${rows * per} scales`);
    this.record.used.add(key);
    this.record.used.add(scaleKey);
  }

  /** A float tensor streamed in and packed a batch of whole rows at a time (never the whole tensor in f32). */
  private async uploadPacking(key: string, m: PackedMatrix, row: number): Promise<void> {
    const { dtype, shape } = this.reader.info(key);
    const cols = m.cols;
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const batch = Math.max(1, Math.min(rows, Math.floor(CHUNK_BYTES / 4 / cols)));
    const pending = new Float32Array(batch * cols);
    const data = new Uint32Array(dataWords(m.format, batch, cols));
    const scales = new Float32Array(batch * scalesPerRow(m.format, cols));
    let filled = 0;
    const flush = (n: number): void => {
      const words = dataWords(m.format, n, cols);
      packRows(m.format, pending.subarray(0, n * cols), cols, data, 0, scales, 0);
      m.uploadRows(row, data.subarray(0, words), scales.subarray(0, n * scalesPerRow(m.format, cols)));
      row += n;
    };
    for await (const chunk of this.reader.readRawChunks(key, CHUNK_BYTES)) {
      let values = dtype === 'F32' ? new Float32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4) : toF32(chunk, dtype, key);
      while (values.length > 0) {
        const take = Math.min(values.length, pending.length - filled);
        pending.set(values.subarray(0, take), filled);
        filled += take;
        values = values.subarray(take);
        if (filled === pending.length) {
          flush(batch);
          filled = 0;
        }
      }
    }
    if (filled % cols !== 0) throw new Error(`"${key}": ${filled} trailing values are not whole rows of ${cols}`);
    if (filled > 0) flush(filled / cols);
    this.record.used.add(key);
  }

  /** The tensors bound under this prefix so far, in load order (a network's `namedParameters()`). */
  bound(): NamedTensor[] {
    const p = this.prefix ? `${this.prefix}.` : '';
    return this.record.bound.filter((b) => b.names[0].startsWith(p));
  }

  /** The first of `names` the checkpoint has (tied tables are saved under either name). */
  async getAny(names: string[], shape?: Shape): Promise<Tensor>;
  async getAny(names: string[], shape: Shape, matrix: MatrixOptions): Promise<Matrix>;
  async getAny(names: string[], shape?: Shape, matrix?: MatrixOptions): Promise<Matrix> {
    for (const n of names) if (this.has(n)) {
      for (const other of names) if (other !== n) this.skip(other);
      return matrix && shape ? this.getMatrix(n, shape, matrix) : this.get(n, shape);
    }
    throw new Error(`none of ${names.map((n) => `"${this.key(n)}"`).join(', ')} is in ${this.reader.label}`);
  }

  /** Reads a tensor to the CPU as f32 (for work done once at load, like weight-norm folding). */
  async readF32(name: string, shape?: Shape): Promise<Float32Array> {
    const key = this.key(name);
    this.infoChecked(key, shape);
    this.record.used.add(key);
    return this.reader.readF32(key);
  }

  /**
   * A weight-normalised conv weight, folded: w = g · v / ‖v‖ (norm over all dims but the first). The hub's files
   * name the pair `weight_g`/`weight_v`; current `transformers` writes `parametrizations.weight.original0/1`.
   */
  async getWeightNorm(shape: Shape): Promise<Tensor> {
    const names = this.has('weight_g')
      ? ['weight_g', 'weight_v']
      : this.has('parametrizations.weight.original0')
        ? ['parametrizations.weight.original0', 'parametrizations.weight.original1']
        : null;
    if (!names) {
      if (this.has('weight')) return this.get('weight', shape);
      throw new Error(`"${this.key('weight_g')}" / "${this.key('parametrizations.weight.original0')}" not found in ${this.reader.label}`);
    }
    const v = await this.readF32(names[1], shape);
    const g = await this.readF32(names[0], [shape[0], ...shape.slice(1).map(() => 1)]);
    return keep(Tensor.from(foldWeightNorm(g, v), shape, 'f32', this.rt));
  }

  /** Checkpoint keys under this prefix that nothing loaded. */
  unused(): string[] {
    const p = this.prefix ? `${this.prefix}.` : '';
    return this.reader.names().filter((n) => n.startsWith(p) && !this.record.used.has(n));
  }

  /** Streams `key` into `t` from element `offset` on, as f32. */
  private async upload(key: string, t: Tensor, offset: number): Promise<void> {
    const { dtype } = this.reader.info(key);
    // each chunk is uploaded (copied by the queue) before the next is read into the same scratch
    const scratch = this.record.scratch.pop() ?? new Uint8Array(CHUNK_BYTES);
    try {
      await this.uploadChunks(key, dtype, t, offset, scratch);
    } finally {
      this.record.scratch.push(scratch);
    }
    this.record.used.add(key);
  }

  private async uploadChunks(key: string, dtype: Parameters<typeof toF32>[1], t: Tensor, offset: number, scratch: Uint8Array): Promise<void> {
    for await (const chunk of this.reader.readRawChunks(key, CHUNK_BYTES, scratch)) {
      const values = dtype === 'F32' ? new Float32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 4)
        : toF32(chunk, dtype, key);
      t.upload(values, offset);
      offset += values.length;
    }
  }

  private infoChecked(key: string, shape?: Shape): { dtype: Parameters<typeof toF32>[1]; shape: readonly number[] } {
    if (!this.reader.has(key)) {
      const near = this.reader.names().filter((n) => n.split('.').pop() === key.split('.').pop()).slice(0, 3);
      throw new Error(`tensor "${key}" is missing from ${this.reader.label}${near.length ? ` (similar: ${near.join(', ')})` : ''}`);
    }
    const info = this.reader.info(key);
    if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`tensor "${key}" in ${this.reader.label} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    return info;
  }
}

/**
 * PyTorch weight_norm with dim = 0, in place: v ← g · v / ‖v‖, the norm over all dims but the first (conv
 * [Cout, Cin, K], or transposed conv [Cin, Cout, K]: its first dim is Cin then); `g` has one value per row.
 * Done once at load on the CPU; the norm is summed in doubles. Returns `v`.
 */
export function foldWeightNorm(g: ArrayLike<number>, v: Float32Array): Float32Array {
  const rows = g.length;
  if (rows === 0 || v.length % rows !== 0) throw new Error(`weight norm: ${v.length} weights do not split into ${rows} rows`);
  const per = v.length / rows;
  for (let o = 0; o < rows; o++) {
    let ss = 0;
    for (let i = 0; i < per; i++) ss += v[o * per + i] ** 2;
    const s = g[o] / Math.sqrt(ss);
    for (let i = 0; i < per; i++) v[o * per + i] *= s;
  }
  return v;
}
