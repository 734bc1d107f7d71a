// PyTorch checkpoints (`torch.save` files: .pt, .th, .bin) read without PyTorch and without running their pickle
// (torch/serialization.py, `_save` / `_legacy_save` and their loaders, is the reference):
//
//   zip format (default since PyTorch 1.6): an uncompressed zip holding `<name>/data.pkl` (the object, with
//     storages as persistent ids), `<name>/byteorder` and one entry `<name>/data/<key>` of raw bytes per storage;
//   legacy format (`_use_new_zipfile_serialization=False`): pickles back to back (magic number, protocol
//     version, sys info, the object, the sorted storage keys), then per storage an int64 element count and its
//     bytes.
//
// The object is rebuilt by the restricted unpickler of pickle.ts: tensors come from `_rebuild_tensor_v2/_v3` and
// `_rebuild_parameter` over typed or untyped storages, and are kept as descriptions (storage, dtype, shape,
// strides, offset); their bytes are read on demand through ranged reads, non-contiguous views gathered into
// contiguous order. Platform-neutral: works over any ByteSource (a file in Node, a URL in the browser).

import {
  PickleTruncatedError,
  PyDict,
  PyGlobal,
  UnpicklingError,
  describe,
  isTuple,
  unpickle,
  type PickleCallable,
  type PickleValue,
  type UnpickleOptions,
} from './pickle.js';
import { ZipArchive, looksLikeZip } from './zip.js';
import {
  dtypeSize,
  tensorNotFound,
  toF32,
  toI32,
  type ByteSource,
  type Bytes,
  type Dtype,
  type TensorInfo,
  type TensorReader,
} from './safetensors.js';

/** Storage classes as torch.save names them, and their element types. */
const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8',
  BoolStorage: 'BOOL', UntypedStorage: 'U8',
};

/** `torch.<dtype>` globals (what `_rebuild_tensor_v3` receives for untyped storages). */
const TORCH_DTYPES: Readonly<Record<string, Dtype>> = {
  float64: 'F64', float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', bool: 'BOOL', uint16: 'U16', uint32: 'U32', uint64: 'U64',
};

/** torch.save's magic number, the first pickle of a legacy file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** Raw bytes of one saved storage: `root` names its record in the file; `byteOffset` is a legacy view's start. */
export class TorchStorage {
  constructor(
    readonly root: string,
    readonly dtype: Dtype,
    /** Elements of `dtype` (bytes for an untyped storage). */
    readonly numel: number,
    readonly location: string,
    readonly byteOffset = 0,
  ) {}
  get byteLength(): number {
    return this.numel * dtypeSize(this.dtype);
  }
}

/** A tensor as the file describes it: a strided view of a storage. Its bytes are read with TorchFile.readTensor. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: Dtype,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    /** In elements of `dtype`. */
    readonly storageOffset: number,
    readonly requiresGrad: boolean,
  ) {}

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Row-major with no gaps (dims of size 1 may have any stride). */
  get isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }

  /** One past the last storage element the view touches (0 when empty). */
  get storageEnd(): number {
    if (this.numel === 0) return 0;
    let last = this.storageOffset;
    for (let i = 0; i < this.shape.length; i++) last += (this.shape[i]! - 1) * this.stride[i]!;
    return last + 1;
  }
}

function isCount(v: PickleValue): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intTuple(v: PickleValue, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isCount)) throw new UnpicklingError(`${what} ${describe(v)} is not a tuple of non-negative integers`);
  return [...(v as number[])];
}

function rebuildTensor(args: readonly PickleValue[], dtypeArg?: PickleValue): TorchTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) throw new UnpicklingError(`tensor storage is ${describe(storage)}, not a saved storage`);
  if (!isCount(offset!)) throw new UnpicklingError(`tensor storage offset ${describe(offset)} is not a non-negative integer`);
  const shape = intTuple(size!, 'tensor size');
  const strides = intTuple(stride!, 'tensor stride');
  if (shape.length !== strides.length) throw new UnpicklingError(`tensor size has ${shape.length} dims but its stride ${strides.length}`);
  let dtype = storage.dtype;
  if (dtypeArg !== undefined) {
    const d = dtypeArg instanceof PyGlobal && dtypeArg.module === 'torch' ? TORCH_DTYPES[dtypeArg.name] : undefined;
    if (!d) throw new UnpicklingError(`tensor dtype ${describe(dtypeArg)} is not supported (supported: ${Object.keys(TORCH_DTYPES).join(', ')})`);
    dtype = d;
  }
  const t = new TorchTensor(storage, dtype, shape, strides, offset as number, requiresGrad === true);
  if (t.storageEnd * dtypeSize(dtype) > storage.byteLength) {
    throw new UnpicklingError(`a tensor of shape [${shape}] (stride [${strides}], offset ${offset}) reaches past its storage of ${storage.byteLength} bytes`);
  }
  return t;
}

function tensorArg(v: PickleValue | undefined, what: string): TorchTensor {
  if (!(v instanceof TorchTensor)) throw new UnpicklingError(`${what}: expected a tensor, got ${describe(v)}`);
  return v;
}

/** The functions a checkpoint may call: each rebuilds a tensor description, nothing else. */
const REBUILD: Readonly<Record<string, PickleCallable>> = {
  'torch._utils._rebuild_tensor': (a) => rebuildTensor(a),
  'torch._utils._rebuild_tensor_v2': (a) => rebuildTensor(a),
  'torch._utils._rebuild_tensor_v3': (a) => rebuildTensor(a, a[6]),
  // nn.Parameter: the tensor it wraps (requires_grad and hooks do not matter to a reader).
  'torch._utils._rebuild_parameter': (a) => tensorArg(a[0], '_rebuild_parameter'),
  'torch._utils._rebuild_parameter_with_state': (a) => tensorArg(a[0], '_rebuild_parameter_with_state'),
};

const PLAIN_TENSOR_TYPES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);

const TORCH_CALLABLES: Readonly<Record<string, PickleCallable>> = {
  ...REBUILD,
  // A Tensor or Parameter carrying Python attributes: rebuilt by one of the above, attributes refused.
  'torch._tensor._rebuild_from_type_v2': ([func, type, args, state]) => {
    const f = func instanceof PyGlobal ? REBUILD[func.qualname] : undefined;
    if (!f) throw new UnpicklingError(`_rebuild_from_type_v2: refusing to call ${describe(func)}`);
    if (!(type instanceof PyGlobal) || !PLAIN_TENSOR_TYPES.has(type.qualname)) {
      throw new UnpicklingError(`_rebuild_from_type_v2: refusing tensor subclass ${describe(type)}`);
    }
    if (!(state === null || (state instanceof PyDict && state.size === 0))) {
      throw new UnpicklingError('_rebuild_from_type_v2: tensors with Python attributes are not supported');
    }
    if (!Array.isArray(args)) throw new UnpicklingError('_rebuild_from_type_v2: arguments are not a tuple');
    return f(args);
  },
  'torch.Size': ([dims]) => Object.freeze(intTuple(dims ?? null, 'torch.Size')),
};

function storageDtype(type: PickleValue): Dtype {
  const name = type instanceof PyGlobal && (type.module === 'torch' || type.module === 'torch.storage') ? type.name : undefined;
  const d = name !== undefined ? STORAGE_DTYPES[name] : undefined;
  if (!d) throw new UnpicklingError(`storage type ${describe(type)} is not supported (supported: ${Object.keys(STORAGE_DTYPES).join(', ')})`);
  return d;
}

/**
 * Persistent ids of both formats: ('storage', storage_type, key, location, numel[, view_metadata]).
 * One TorchStorage per key, so tensors sharing a storage share the object.
 */
function storageLoader(storages: Map<string, TorchStorage>): (pid: PickleValue) => PickleValue {
  return (pid) => {
    if (!isTuple(pid) || pid[0] !== 'storage' || (pid.length !== 5 && pid.length !== 6)) {
      // ('module', ...) ids come from whole pickled nn.Modules (with their source code), which we refuse.
      throw new UnpicklingError(`unsupported persistent id ${describe(pid)}${isTuple(pid) ? ` (${describe(pid[0])})` : ''}: only storages are read`);
    }
    const [, type, key, location, numel, view] = pid;
    const dtype = storageDtype(type!);
    if (typeof key !== 'string' || !isCount(numel!)) throw new UnpicklingError(`storage id has key ${describe(key)} and size ${describe(numel)}`);
    let root = storages.get(key);
    if (!root) {
      root = new TorchStorage(key, dtype, numel as number, typeof location === 'string' ? location : 'cpu');
      storages.set(key, root);
    }
    if (view === undefined || view === null) return root;
    // Legacy storage views (pre-1.0 files): (view_key, offset, size) in elements of the root's dtype.
    if (!isTuple(view) || view.length !== 3 || typeof view[0] !== 'string' || !isCount(view[1]!) || !isCount(view[2]!)) {
      throw new UnpicklingError(`bad storage view ${describe(view)}`);
    }
    const elem = dtypeSize(root.dtype);
    if ((view[1] + view[2]) * elem > root.byteLength) throw new UnpicklingError(`storage view ${view[0]} reaches past its storage`);
    return new TorchStorage(key, root.dtype, view[2], root.location, root.byteOffset + view[1] * elem);
  };
}

export interface TorchOpenOptions {
  inert?: UnpickleOptions['inert'];
}

/** An opened torch.save file: its unpickled object (`root`) and ranged access to its tensors' bytes. */
export class TorchFile {
  private constructor(
    private readonly source: ByteSource,
    readonly label: string,
    readonly format: 'zip' | 'legacy',
    /** The saved object; tensors in it are TorchTensor descriptions. */
    readonly root: PickleValue,
    /** Absolute offset in the file of a storage record's first byte. */
    private readonly storageStart: (root: string) => Promise<number>,
  ) {}

  /** `opts.inert`: classes kept as inert data rather than refused (see UnpickleOptions.inert). */
  static async open(source: ByteSource, label: string = source.label ?? 'PyTorch checkpoint', opts: TorchOpenOptions = {}): Promise<TorchFile> {
    try {
      const size = await source.size();
      const head = await source.read(0, Math.min(size, 8));
      if (looksLikeZip(head)) return await TorchFile.openZip(source, label, opts);
      if (head[0] === 0x80) return await TorchFile.openLegacy(source, label, size, opts);
      throw new Error(`${label}: not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy pickle file)`);
    } catch (e) {
      await source.close?.(); // a refused or damaged file leaves no open handle behind
      throw e;
    }
  }

  private static async openZip(source: ByteSource, label: string, opts: TorchOpenOptions): Promise<TorchFile> {
    const zip = await ZipArchive.open(source, label);
    const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl === undefined) throw new Error(`${label}: a zip archive without <name>/data.pkl: not a torch.save file`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    if (zip.entries.has(`${prefix}byteorder`)) {
      const order = new TextDecoder().decode(await zip.read(`${prefix}byteorder`));
      if (order !== 'little') throw new Error(`${label}: saved on a ${order}-endian machine; only little-endian files are read`);
    }
    const storages = new Map<string, TorchStorage>();
    const root = parse(await zip.read(pkl), `${label}:${pkl}`, storages, opts).value;
    for (const s of storages.values()) {
      const name = `${prefix}data/${s.root}`;
      const e = zip.entries.get(name);
      if (!e) throw new Error(`${label}: storage "${s.root}" has no entry ${name}`);
      if (e.size < s.byteOffset + s.byteLength) throw new Error(`${label}: entry ${name} holds ${e.size} bytes, its storage needs ${s.byteLength}`);
    }
    return new TorchFile(source, label, 'zip', root, (key) => zip.dataOffset(`${prefix}data/${key}`));
  }

  private static async openLegacy(source: ByteSource, label: string, size: number, opts: TorchOpenOptions): Promise<TorchFile> {
    // The pickles come first and their length is unknown: parse a prefix, longer until it holds them all.
    let n = Math.min(size, 1 << 16);
    for (;;) {
      const bytes = await source.read(0, n);
      try {
        return TorchFile.parseLegacy(source, label, size, bytes, opts);
      } catch (e) {
        if (!(e instanceof PickleTruncatedError) || n >= size) throw e;
        n = Math.min(size, Math.max(2 * n, e.needed));
      }
    }
  }

  private static parseLegacy(source: ByteSource, label: string, size: number, bytes: Uint8Array, opts: TorchOpenOptions): TorchFile {
    const bad = (msg: string) => new Error(`${label}: ${msg}`);
    const plain = { label };
    const magic = unpickle(bytes, plain);
    if (magic.value !== LEGACY_MAGIC) throw bad('not a PyTorch checkpoint (wrong magic number)');
    const version = unpickle(bytes, plain, magic.end);
    if (version.value !== LEGACY_PROTOCOL) throw bad(`legacy protocol version ${describe(version.value)}, expected ${LEGACY_PROTOCOL}`);
    const sysInfo = unpickle(bytes, plain, version.end);
    if (!(sysInfo.value instanceof PyDict) || sysInfo.value.get('little_endian') !== true) {
      throw bad('saved on a big-endian machine (or without sys info); only little-endian files are read');
    }
    const storages = new Map<string, TorchStorage>();
    const main = parse(bytes, label, storages, opts, sysInfo.end);
    const keys = unpickle(bytes, plain, main.end);
    if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) throw bad('the storage key list is damaged');
    // Each storage record: int64 element count, then the bytes, in the order of the key list.
    const starts = new Map<string, number>();
    let pos = keys.end;
    for (const key of keys.value as string[]) {
      const s = storages.get(key);
      if (!s) throw bad(`storage key "${key}" is listed but no tensor uses it`);
      starts.set(key, pos + 8);
      pos += 8 + s.byteLength;
    }
    for (const key of storages.keys()) if (!starts.has(key)) throw bad(`storage "${key}" is used but not stored`);
    if (pos !== size) throw bad(`the storages end at byte ${pos} but the file has ${size} bytes: truncated or damaged`);
    return new TorchFile(source, label, 'legacy', main.value, async (key) => starts.get(key)!);
  }

  /** A tensor's elements in row-major order, as stored (little-endian), non-contiguous views gathered. */
  async readTensor(t: TorchTensor): Promise<Bytes> {
    const elem = dtypeSize(t.dtype);
    if (t.numel === 0) return new Uint8Array(0);
    const base = (await this.storageStart(t.storage.root)) + t.storage.byteOffset + t.storageOffset * elem;
    if (t.isContiguous) return this.source.read(base, t.numel * elem);
    const span = await this.source.read(base, (t.storageEnd - t.storageOffset) * elem);
    return gather(span, t, elem);
  }

  /** Like readTensor, in pieces of at most `chunkBytes` for contiguous tensors (a view is gathered whole). */
  async *readTensorChunks(t: TorchTensor, chunkBytes: number): AsyncGenerator<Bytes, void, undefined> {
    const elem = dtypeSize(t.dtype);
    if (!t.isContiguous || t.numel === 0) {
      yield await this.readTensor(t);
      return;
    }
    const base = (await this.storageStart(t.storage.root)) + t.storage.byteOffset + t.storageOffset * elem;
    const total = t.numel * elem;
    // Whole elements per chunk, so callers can decode each piece on its own.
    const step = Math.max(elem, chunkBytes - (chunkBytes % elem));
    for (let done = 0; done < total; done += step) yield await this.source.read(base + done, Math.min(step, total - done));
  }

  /**
   * The tensors of a state dict as a TensorReader: `key` picks an entry of the saved dict (a Demucs package's
   * "state"), or a path of entries (`[0, 'model_state']` in a multi-band diffusion file, whose keys are ints),
   * else the saved object itself. Nested dicts give dotted names; entries that are not tensors or dicts
   * (an OrderedDict's `_metadata`, counters) are left out.
   */
  stateDict(key?: string | readonly (string | number)[]): TorchStateDict {
    let v = this.root;
    let where = this.label;
    for (const k of key === undefined ? [] : typeof key === 'string' ? [key] : key) {
      if (!(v instanceof PyDict) || !v.has(k)) throw new Error(`${where}: has no ${JSON.stringify(k)} entry (it is a ${describe(v)})`);
      v = v.get(k)!;
      where = `${where}[${JSON.stringify(k)}]`;
    }
    if (!(v instanceof PyDict)) throw new Error(`${where}: holds ${describe(v)}, not a dict of tensors`);
    const tensors = new Map<string, TorchTensor>();
    collectTensors(v, '', tensors, 0);
    return new TorchStateDict(this, where, tensors);
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

function parse(bytes: Uint8Array, label: string, storages: Map<string, TorchStorage>, opts: TorchOpenOptions, start = 0): { value: PickleValue; end: number } {
  return unpickle(bytes, { label, callables: TORCH_CALLABLES, persistentLoad: storageLoader(storages), inert: opts.inert }, start);
}

const MAX_DEPTH = 64;

function collectTensors(d: PyDict, prefix: string, out: Map<string, TorchTensor>, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error(`dicts nested deeper than ${MAX_DEPTH} levels`);
  for (const [k, v] of d) {
    if (typeof k !== 'string' && typeof k !== 'number') continue;
    const name = prefix + String(k);
    if (v instanceof TorchTensor) out.set(name, v);
    else if (v instanceof PyDict) collectTensors(v, `${name}.`, out, depth + 1);
  }
}

/** Copies a strided view's elements into row-major order. `span` starts at the view's first element. */
function gather(span: Uint8Array, t: TorchTensor, elem: number): Bytes {
  const out = new Uint8Array(t.numel * elem);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < t.numel; i++) {
    for (let b = 0; b < elem; b++) out[i * elem + b] = span[src * elem + b]!;
    // Odometer step: bump the last index, carrying into earlier dims.
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      src += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      src -= idx[d]! * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** The tensors of a torch.save'd state dict, read like a safetensors file (loaders take either). */
export class TorchStateDict implements TensorReader {
  readonly metadata: Readonly<Record<string, unknown>> = Object.freeze({});

  constructor(
    readonly file: TorchFile,
    readonly label: string,
    private readonly tensors: ReadonlyMap<string, TorchTensor>,
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  tensor(name: string): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) throw tensorNotFound(name, this.label, this.names());
    return t;
  }

  info(name: string): TensorInfo {
    const t = this.tensor(name);
    return { dtype: t.dtype, shape: t.shape, byteLength: t.numel * dtypeSize(t.dtype) };
  }

  readRaw(name: string): Promise<Bytes> {
    return this.file.readTensor(this.tensor(name));
  }

  readRawChunks(name: string, chunkBytes: number): AsyncGenerator<Bytes, void, undefined> {
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
    return this.file.readTensorChunks(this.tensor(name), chunkBytes);
  }

  async readF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return toF32(await this.readRaw(name), this.tensor(name).dtype, name);
  }

  async readI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return toI32(await this.readRaw(name), this.tensor(name).dtype, name);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** Opens a torch.save'd state dict (e.g. `pytorch_model.bin`) as a TensorReader. */
export async function openTorchStateDict(source: ByteSource, label?: string): Promise<TorchStateDict> {
  const file = await TorchFile.open(source, label);
  try {
    return file.stateDict();
  } catch (e) {
    await file.close();
    throw e;
  }
}
