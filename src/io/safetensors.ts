// Reader and writer for the safetensors format
// (spec: https://github.com/huggingface/safetensors, "Format" section):
//
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data area]
//
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]},
// offsets relative to the start of the data area, plus an optional
// "__metadata__" map of string -> string. All tensor data is little-endian.
//
// This module is platform-neutral (no Node built-ins) so it runs in Node and in
// browsers; bytes come from a ByteSource (see file-source.ts / url-source.ts).

import { getF16Table } from '../dtype.js';

/** Bytes backed by a plain ArrayBuffer (what WebGPU writeBuffer and friends accept). */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Random-access bytes: a local file, an HTTP URL, or memory. */
export interface ByteSource {
  /** Total size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes starting at `offset`; the caller owns the result. */
  read(offset: number, length: number): Promise<Bytes>;
  /** Optional: fills all of `into` with the bytes from `offset` on (a loader reusing one chunk allocates nothing). */
  readInto?(offset: number, into: Uint8Array): Promise<void>;
  close?(): Promise<void>;
  /** Where the bytes come from, for error messages. */
  readonly label?: string;
}

/** In-memory ByteSource (tests, or a file the browser already holds). */
export class BufferSource implements ByteSource {
  readonly label: string;
  constructor(private readonly bytes: Uint8Array, label = 'in-memory buffer') {
    this.label = label;
  }
  async size(): Promise<number> {
    return this.bytes.byteLength;
  }
  async read(offset: number, length: number): Promise<Bytes> {
    checkRange(offset, length);
    if (offset + length > this.bytes.byteLength) {
      throw new Error(
        `${this.label}: read of ${length} bytes at offset ${offset} is past the end (${this.bytes.byteLength} bytes)`,
      );
    }
    // Copy so callers own (and may reinterpret or mutate) what they get, as with the other sources.
    return copyBytes(this.bytes.subarray(offset, offset + length));
  }
}

/**
 * A fresh, ArrayBuffer-backed copy at byteOffset 0. (Not `.slice()`: on a Node Buffer
 * that is a view sharing memory, possibly at an unaligned offset.)
 */
export function copyBytes(src: Uint8Array): Bytes {
  const out = new Uint8Array(src.byteLength);
  out.set(src);
  return out;
}

/** Shared argument check for ByteSource.read implementations. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`invalid read range: offset ${offset}, length ${length}`);
  }
}

// ---------------------------------------------------------------------------
// dtypes

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export const SUPPORTED_DTYPES: readonly Dtype[] = Object.keys(DTYPE_SIZE) as Dtype[];

export function dtypeSize(dtype: Dtype): number {
  return DTYPE_SIZE[dtype];
}

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

// ---------------------------------------------------------------------------
// byte-order helpers

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes laid out so a typed array of `elem`-byte elements can view them (aligned, host order). */
function hostView(raw: Uint8Array, elem: number): Bytes {
  if (!LITTLE_ENDIAN_HOST && elem > 1) {
    const out = new Uint8Array(raw.byteLength);
    for (let i = 0; i < raw.byteLength; i += elem) {
      for (let j = 0; j < elem; j++) out[i + j] = raw[i + elem - 1 - j]!;
    }
    return out;
  }
  // Views over a SharedArrayBuffer are copied too, so results are always ArrayBuffer-backed.
  return raw.byteOffset % elem === 0 && raw.buffer instanceof ArrayBuffer ? (raw as Bytes) : copyBytes(raw);
}

// ---------------------------------------------------------------------------
// reading

export interface TensorInfo {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** What both a single file and a sharded checkpoint offer; loaders take this. */
export interface TensorReader {
  readonly label: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  readRaw(name: string): Promise<Bytes>;
  /**
   * The tensor's bytes in chunks of `chunkBytes`. With `scratch` (at least `chunkBytes` long), sources that can read
   * in place fill it and each chunk is a view of it, valid only until the next one is asked for.
   */
  readRawChunks(name: string, chunkBytes: number, scratch?: Uint8Array): AsyncGenerator<Bytes, void, undefined>;
  readF32(name: string): Promise<Float32Array<ArrayBuffer>>;
  readI32(name: string): Promise<Int32Array<ArrayBuffer>>;
  close(): Promise<void>;
}

interface Entry extends TensorInfo {
  /** Absolute offset of the tensor's first byte in the file. */
  readonly fileOffset: number;
}

/** Rust's safetensors refuses bigger headers; so do we (a garbage length would otherwise be read). */
const MAX_HEADER_BYTES = 100_000_000;

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Error for a name that is not there, listing names sharing the longest dotted suffix. */
export function tensorNotFound(name: string, label: string, names: readonly string[]): Error {
  const want = name.split('.');
  let best = 0;
  const scored: { n: string; s: number }[] = [];
  for (const n of names) {
    const parts = n.split('.');
    let s = 0;
    while (s < want.length && s < parts.length && want[want.length - 1 - s] === parts[parts.length - 1 - s]) s++;
    if (s > 0) scored.push({ n, s });
    best = Math.max(best, s);
  }
  // With a single shared component ("weight") every name would match; then prefer nothing over noise.
  const minScore = want.length > 1 ? Math.max(2, best) : best;
  const close = scored
    .filter((x) => x.s >= minScore && best > 0)
    .sort((a, b) => b.s - a.s || (a.n < b.n ? -1 : 1))
    .slice(0, 5)
    .map((x) => x.n);
  const hint = close.length
    ? `; similar names: ${close.join(', ')}`
    : names.length
      ? `; it has ${names.length} tensors, e.g. ${names.slice(0, 3).join(', ')}`
      : '; it has no tensors';
  return new Error(`tensor "${name}" not found in ${label}${hint}`);
}

/** One .safetensors file: the header is parsed at open, tensor bytes are read on demand. */
export class SafetensorsFile implements TensorReader {
  private constructor(
    private readonly source: ByteSource,
    readonly label: string,
    private readonly entries: Map<string, Entry>,
    readonly metadata: Readonly<Record<string, string>>,
    /** Size of the whole file. */
    readonly fileSize: number,
  ) {}

  /** Reads and validates the header; throws with the file label on any inconsistency. */
  static async open(source: ByteSource, label: string = source.label ?? 'safetensors data'): Promise<SafetensorsFile> {
    const fileSize = await source.size();
    const bad = (msg: string) => new Error(`${label}: ${msg}`);
    if (fileSize < 8) {
      throw bad(`only ${fileSize} bytes, too short for the 8-byte header length: the file is truncated or not a safetensors file`);
    }
    const lenBytes = await source.read(0, 8);
    const big = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
    if (big > BigInt(fileSize - 8)) {
      throw bad(`header length ${big} is larger than the file (${fileSize} bytes): the file is truncated or not a safetensors file`);
    }
    const headerLen = Number(big);
    if (headerLen > MAX_HEADER_BYTES) throw bad(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes: not a safetensors file`);
    if (headerLen < 2) throw bad(`header length ${headerLen} is too small for a JSON object: not a safetensors file`);

    const headerBytes = await source.read(8, headerLen);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
    } catch (e) {
      throw bad(`header is not valid UTF-8 JSON (${(e as Error).message}): not a safetensors file`);
    }
    if (!isObject(header)) throw bad('header is not a JSON object: not a safetensors file');

    const dataStart = 8 + headerLen;
    const dataSize = fileSize - dataStart;
    const entries: Array<[string, Entry]> = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (!isObject(raw)) throw bad('"__metadata__" is not an object of strings');
        for (const [k, v] of Object.entries(raw)) {
          if (typeof v !== 'string') throw bad(`"__metadata__" value for "${k}" is not a string`);
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      const t = `tensor "${name}"`;
      if (!isObject(raw)) throw bad(`${t}: header entry is not an object`);
      const { dtype, shape, data_offsets: offs } = raw;
      if (!isDtype(dtype)) {
        throw bad(`${t} has unknown dtype ${JSON.stringify(dtype)}; supported: ${SUPPORTED_DTYPES.join(', ')}`);
      }
      if (!Array.isArray(shape) || !shape.every(isUint)) throw bad(`${t}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isUint)) {
        throw bad(`${t}: data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`);
      }
      const [begin, end] = offs as [number, number];
      if (end < begin) throw bad(`${t}: data_offsets [${begin}, ${end}] end before they begin`);
      if (end > dataSize) {
        throw bad(`${t}: data_offsets [${begin}, ${end}] lie outside the data area (${dataSize} bytes): the file is truncated`);
      }
      const expected = product(shape) * DTYPE_SIZE[dtype];
      if (expected !== end - begin) {
        throw bad(`${t}: header says shape ${fmtShape(shape)} of ${dtype} = ${expected} bytes but data_offsets span ${end - begin} bytes`);
      }
      entries.push([name, { dtype, shape: Object.freeze(shape.slice()), byteLength: end - begin, fileOffset: dataStart + begin }]);
    }
    // File order: sequential loading then reads the file front to back.
    entries.sort((a, b) => a[1].fileOffset - b[1].fileOffset);
    return new SafetensorsFile(source, label, new Map(entries), Object.freeze(metadata), fileSize);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: e.shape, byteLength: e.byteLength };
  }

  /** The tensor's bytes (little-endian, as stored), in one ranged read. */
  async readRaw(name: string): Promise<Bytes> {
    const e = this.entry(name);
    return this.source.read(e.fileOffset, e.byteLength);
  }

  /** Consecutive pieces of at most `chunkBytes` bytes, so big tensors need not sit in memory twice. */
  readRawChunks(name: string, chunkBytes: number, scratch?: Uint8Array): AsyncGenerator<Bytes, void, undefined> {
    // Checked here, not inside the generator, so mistakes throw at the call rather than at the first next().
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
    if (scratch && scratch.byteLength < chunkBytes) throw new RangeError(`scratch of ${scratch.byteLength} bytes for chunks of ${chunkBytes}`);
    return this.chunks(this.entry(name), chunkBytes, scratch);
  }

  private async *chunks(e: Entry, chunkBytes: number, scratch?: Uint8Array): AsyncGenerator<Bytes, void, undefined> {
    const inPlace = scratch && this.source.readInto ? this.source.readInto.bind(this.source) : null;
    for (let done = 0; done < e.byteLength; done += chunkBytes) {
      const n = Math.min(chunkBytes, e.byteLength - done);
      if (inPlace && scratch) {
        const view = scratch.subarray(0, n) as Bytes;
        await inPlace(e.fileOffset + done, view);
        yield view;
      } else yield await this.source.read(e.fileOffset + done, n);
    }
  }

  async readF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    const e = this.entry(name);
    return toF32(await this.readRaw(name), e.dtype, name);
  }

  async readI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    const e = this.entry(name);
    return toI32(await this.readRaw(name), e.dtype, name);
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw tensorNotFound(name, this.label, this.names());
    return e;
  }
}

/** Decode stored bytes of a float dtype into a Float32Array (may reuse `raw`'s buffer). */
export function toF32(raw: Uint8Array, dtype: Dtype, name = 'tensor'): Float32Array<ArrayBuffer> {
  switch (dtype) {
    case 'F32': {
      const b = hostView(raw, 4);
      return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case 'F16': {
      const b = hostView(raw, 2);
      const src = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      const table = getF16Table();
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'BF16': {
      const b = hostView(raw, 2);
      const src = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      const out = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case 'F64': {
      const b = hostView(raw, 8);
      return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8));
    }
    default:
      throw new Error(`tensor "${name}" has dtype ${dtype}; readF32 reads F32, F16, BF16 and F64 only (use readI32 for integers)`);
  }
}

/** Decode stored bytes of an integer/bool dtype into an Int32Array, refusing values that do not fit. */
export function toI32(raw: Uint8Array, dtype: Dtype, name = 'tensor'): Int32Array<ArrayBuffer> {
  const overflow = (i: number, v: bigint | number) =>
    new Error(`tensor "${name}": element ${i} = ${v} (${dtype}) does not fit in int32`);
  switch (dtype) {
    case 'I32': {
      const b = hostView(raw, 4);
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    }
    case 'I64':
    case 'U64': {
      const b = hostView(raw, 8);
      const w = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      const n = w.length / 2;
      const out = new Int32Array(n);
      // Little-endian 64-bit: fits in i32 iff the high word is the sign extension of the low word.
      const [lo, hi] = LITTLE_ENDIAN_HOST ? [0, 1] : [1, 0];
      for (let i = 0; i < n; i++) {
        const l = w[2 * i + lo]!;
        const h = w[2 * i + hi]!;
        if (h !== l >> 31 || (dtype === 'U64' && h < 0)) {
          const v = dtype === 'I64'
            ? new BigInt64Array(b.buffer, b.byteOffset + 8 * i, 1)[0]!
            : new BigUint64Array(b.buffer, b.byteOffset + 8 * i, 1)[0]!;
          throw overflow(i, v);
        }
        out[i] = l;
      }
      return out;
    }
    case 'U32': {
      const b = hostView(raw, 4);
      const src = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        if (src[i]! > 0x7fffffff) throw overflow(i, src[i]!);
        out[i] = src[i]!;
      }
      return out;
    }
    case 'I16': {
      const b = hostView(raw, 2);
      return Int32Array.from(new Int16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    }
    case 'U16': {
      const b = hostView(raw, 2);
      return Int32Array.from(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
    }
    case 'I8':
      return Int32Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
    case 'U8':
      return Int32Array.from(raw);
    case 'BOOL':
      return Int32Array.from(raw, (v) => (v ? 1 : 0));
    default:
      throw new Error(`tensor "${name}" has dtype ${dtype}; readI32 reads integer and BOOL tensors only (use readF32 for floats)`);
  }
}

// ---------------------------------------------------------------------------
// sharded checkpoints

function joinLabel(folder: string, file: string): string {
  return folder.endsWith('/') ? folder + file : `${folder}/${file}`;
}

/** A folder of checkpoint files, wherever it lives (disk, HTTP, memory). */
export interface CheckpointFolder {
  /** Where the folder is, for error messages. */
  readonly label: string;
  /** A ByteSource for one file of the folder. */
  source(fileName: string): ByteSource;
  /** A text file's content, or null when the folder has no such file. */
  readText(fileName: string): Promise<string | null>;
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

type ShardedCtor<T> = new (
  label: string,
  owner: Map<string, TensorReader>,
  files: TensorReader[],
  metadata: Readonly<Record<string, unknown>>,
  fileNames: readonly string[],
) => T;

/**
 * One model split over shard files by a `*.index.json` ({"metadata": ..., "weight_map": {tensor: shardFile}}),
 * whatever the shards' format: each is opened by the function given, all at open, so names()/info() are
 * synchronous.
 */
export class ShardedCheckpoint implements TensorReader {
  constructor(
    readonly label: string,
    private readonly owner: Map<string, TensorReader>,
    private readonly files: TensorReader[],
    readonly metadata: Readonly<Record<string, unknown>>,
    /** The files opened, in folder terms. */
    readonly fileNames: readonly string[],
  ) {}

  /** Opens the shards `indexText` (the content of `entry`) names, checking that each holds its tensors. */
  static async fromIndex<T>(
    this: ShardedCtor<T>,
    folder: CheckpointFolder,
    entry: string,
    indexText: string,
    open: (source: ByteSource, label: string) => Promise<TensorReader>,
  ): Promise<T> {
    const where = joinLabel(folder.label, entry);
    let index: unknown;
    try {
      index = JSON.parse(indexText);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
    }
    if (!isObject(index) || !isObject(index.weight_map)) throw new Error(`${where}: no "weight_map" object`);
    const weightMap = index.weight_map;
    const shardNames = [...new Set(Object.values(weightMap))];
    if (shardNames.length === 0) throw new Error(`${where}: "weight_map" is empty`);
    for (const s of shardNames) {
      // Shards are plain names beside the index; refuse anything that could escape the folder.
      if (typeof s !== 'string' || s === '' || s.startsWith('/') || s.split(/[\\/]/).includes('..')) {
        throw new Error(`${where}: invalid shard file name ${JSON.stringify(s)}`);
      }
    }
    const settled = await Promise.allSettled((shardNames as string[]).map((s) => open(folder.source(s), joinLabel(folder.label, s))));
    const shards = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // Do not leak the file handles of the shards that did open.
      await Promise.all(shards.map((f) => f.close()));
      throw failed.reason;
    }
    const byName = new Map((shardNames as string[]).map((s, i) => [s, shards[i]!] as const));
    const owner = new Map<string, TensorReader>();
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      const shard = byName.get(shardName as string)!;
      if (!shard.has(tensor)) {
        await Promise.all(shards.map((f) => f.close()));
        throw new Error(`${where}: weight_map puts tensor "${tensor}" in ${shardName}, but that shard has no such tensor`);
      }
      owner.set(tensor, shard);
    }
    const metadata = isObject(index.metadata) ? index.metadata : {};
    return new this(where, owner, shards, Object.freeze({ ...metadata }), [entry, ...(shardNames as string[])]);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  readRaw(name: string): Promise<Bytes> {
    return this.file(name).readRaw(name);
  }

  readRawChunks(name: string, chunkBytes: number, scratch?: Uint8Array): AsyncGenerator<Bytes, void, undefined> {
    return this.file(name).readRawChunks(name, chunkBytes, scratch);
  }

  readF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return this.file(name).readF32(name);
  }

  readI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return this.file(name).readI32(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private file(name: string): TensorReader {
    const f = this.owner.get(name);
    if (!f) throw tensorNotFound(name, this.label, this.names());
    return f;
  }
}

/**
 * One model, stored either as a single .safetensors file or as shards listed by a
 * `*.safetensors.index.json`.
 */
export class SafetensorsCheckpoint extends ShardedCheckpoint {
  /**
   * Opens `entry` from the folder: an index (name ends in ".index.json") or one
   * .safetensors file. Without `entry`, uses the index if the folder has one,
   * else model.safetensors.
   */
  static async open(folder: CheckpointFolder, entry?: string): Promise<SafetensorsCheckpoint> {
    let indexText: string | null = null;
    if (entry === undefined) {
      indexText = await folder.readText(INDEX_FILE);
      entry = indexText === null ? SINGLE_FILE : INDEX_FILE;
    } else if (entry.endsWith('.index.json')) {
      indexText = await folder.readText(entry);
      if (indexText === null) throw new Error(`${folder.label}: no file "${entry}"`);
    }
    if (indexText !== null) return SafetensorsCheckpoint.fromIndex(folder, entry, indexText, (src, label) => SafetensorsFile.open(src, label));
    const where = joinLabel(folder.label, entry);
    const file = await SafetensorsFile.open(folder.source(entry), where);
    const owner = new Map(file.names().map((n) => [n, file as TensorReader] as const));
    return new SafetensorsCheckpoint(where, owner, [file], file.metadata, [entry]);
  }
}

// ---------------------------------------------------------------------------
// writing

export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';

export interface TensorToWrite {
  dtype: WritableDtype;
  shape: number[];
  /** F32: Float32Array; F16/BF16: Uint16Array of raw bits; I32: Int32Array; I64: BigInt64Array. */
  data: Float32Array | Int32Array | BigInt64Array | Uint16Array;
}

type ArrayCtor = Float32ArrayConstructor | Uint16ArrayConstructor | Int32ArrayConstructor | BigInt64ArrayConstructor;
const WRITE_ARRAY: Readonly<Record<WritableDtype, ArrayCtor>> = {
  F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I32: Int32Array, I64: BigInt64Array,
};

/** A tensor's header entry: what `encodeSafetensorsHeader` lays out. */
export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
}

/**
 * The header of a safetensors file (8-byte length, JSON padded with spaces to a multiple of 8, as the format
 * requires) for tensors laid out in sorted name order with no gaps; `order` is that order, `sizes` their bytes.
 * Shared by the in-memory writer below and the streaming one (io/file-source.ts).
 */
export function encodeSafetensorsHeader<T extends TensorEntry>(
  tensors: readonly T[],
  metadata?: Readonly<Record<string, string>>,
): { head: Bytes; order: T[]; sizes: number[] } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`metadata value for "${k}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  const order = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sizes: number[] = [];
  let offset = 0;
  for (const t of order) {
    if (t.name === '__metadata__') throw new Error('"__metadata__" is reserved and cannot name a tensor');
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new Error(`tensor "${t.name}" listed twice`);
    if (!t.shape.every(isUint)) throw new Error(`tensor "${t.name}": bad shape ${JSON.stringify(t.shape)}`);
    const n = product(t.shape) * dtypeSize(t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    sizes.push(n);
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + headerLen).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLen), true);
  head.set(json, 8);
  return { head, order, sizes };
}

/** Serializes tensors as a safetensors file in memory (tensors in sorted name order, no gaps). */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): Bytes {
  for (const [name, t] of Object.entries(tensors)) {
    if (!Object.prototype.hasOwnProperty.call(WRITE_ARRAY, t.dtype)) throw new Error(`tensor "${name}": cannot write dtype ${t.dtype}`);
    if (!(t.data instanceof WRITE_ARRAY[t.dtype])) {
      throw new Error(`tensor "${name}": dtype ${t.dtype} needs a ${WRITE_ARRAY[t.dtype].name}, got ${t.data.constructor.name}`);
    }
    if (t.shape.every(isUint) && product(t.shape) !== t.data.length) {
      throw new Error(`tensor "${name}": shape ${fmtShape(t.shape)} has ${product(t.shape)} elements but data has ${t.data.length}`);
    }
  }
  const { head, order } = encodeSafetensorsHeader(Object.entries(tensors).map(([name, t]) => ({ name, ...t })), metadata);
  const out = new Uint8Array(head.byteLength + order.reduce((n, t) => n + t.data.byteLength, 0));
  out.set(head);
  let pos = head.byteLength;
  for (const { data: d } of order) {
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    out.set(LITTLE_ENDIAN_HOST ? bytes : hostView(bytes, d.BYTES_PER_ELEMENT), pos); // hostView swaps on big-endian
    pos += d.byteLength;
  }
  return out;
}
