// Tensor: a shape, a dtype and a pooled GPU buffer. Tensors are always contiguous (row-major); reshapes share
// the buffer. Lifetimes are explicit: `dispose()`, or `tidy(fn)` which frees everything `fn` made except what
// it returns. The autograd fields (`requiresGrad`, `grad`, `node`) are used only when gradients are wanted.

import { runtime, type Binding, type Runtime } from './runtime.js';
import { f16ToF32 } from './dtype.js';

export type DType = 'f32' | 'f16' | 'i32';
export type Shape = readonly number[];
export type TypedArrayFor<D extends DType> = D extends 'i32' ? Int32Array : D extends 'f16' ? Uint16Array : Float32Array;

export const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4 };

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A shape as error messages print it: "[2, 3]". */
export function shapeStr(t: Tensor | Shape): string {
  return `[${(t instanceof Tensor ? t.shape : t).join(', ')}]`;
}

/** Throws unless every tensor given is f32 (undefined ones, absent optional inputs, are skipped). */
export function checkF32(op: string, ...ts: (Tensor | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'f32') throw new Error(`${op}: expects f32 tensors, got ${t.dtype}`);
}

/** A recorded op: how to turn the gradient of its output into gradients of its inputs. */
export interface GradNode {
  name: string;
  inputs: Tensor[];
  /** Returns one gradient per input (null where the input needs none). Runs with recording off. */
  backward: (gradOut: Tensor) => (Tensor | null)[];
  /** Tensors the backward reads (kept alive until the graph is freed). */
  saved: Tensor[];
}

/** A GPU buffer shared by a tensor and its reshaped views. */
class Storage {
  refs = 1;
  constructor(readonly rt: Runtime, readonly buffer: GPUBuffer, readonly bytes: number) {}
  retain(): void { this.refs++; }
  release(): void {
    if (--this.refs === 0) this.rt.release(this.buffer);
  }
}

// ---- scopes ----

const scopes: Set<Tensor>[] = [];

/** Runs `fn`, then frees every tensor it created except those it returns (a tensor, array or object of them). */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of kept) if (scope.has(t)) parent.add(t);
  return result;
}

function collectTensors(v: unknown, out: Set<Tensor>): void {
  if (v instanceof Tensor) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectTensors(x, out);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collectTensors(x, out);
  }
}

/** Takes a tensor out of every scope: it lives until `dispose()` (model weights, caches, optimiser state). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

// ---- the tensor ----

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly rt: Runtime;
  private storage: Storage | null;
  /** Owner reference + one per graph node that saved this tensor. */
  private refs = 1;
  private owned = true;

  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;

  private constructor(rt: Runtime, shape: Shape, dtype: DType, storage: Storage) {
    this.rt = rt;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.storage = storage;
    scopes[scopes.length - 1]?.add(this);
  }

  /** An uninitialised tensor (its contents are whatever the pooled buffer held). */
  static empty(shape: Shape, dtype: DType = 'f32', rt: Runtime = runtime()): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`bad shape ${shapeStr(shape)}`);
    }
    const bytes = numel(shape) * BYTES[dtype];
    return new Tensor(rt, shape, dtype, new Storage(rt, rt.alloc(bytes), bytes));
  }

  /**
   * An uninitialised tensor whose buffer is exactly its size rather than a pooled size class (up to 4/3 of it):
   * for what lives as long as a model, its weights. Freed buffers of odd sizes are destroyed, not pooled.
   */
  static exact(shape: Shape, dtype: DType = 'f32', rt: Runtime = runtime()): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`bad shape ${shapeStr(shape)}`);
    }
    const bytes = numel(shape) * BYTES[dtype];
    return new Tensor(rt, shape, dtype, new Storage(rt, rt.allocExact(bytes), bytes));
  }

  static from(data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32', rt: Runtime = runtime()): Tensor {
    const n = numel(shape);
    if (data.length !== n) throw new Error(`Tensor.from: ${data.length} values for shape ${shapeStr(shape)}`);
    const typed =
      dtype === 'i32' ? Int32Array.from(data) : dtype === 'f16' ? Uint16Array.from(data) : Float32Array.from(data);
    const t = Tensor.empty(shape, dtype, rt);
    t.upload(typed);
    return t;
  }

  static zeros(shape: Shape, dtype: DType = 'f32', rt: Runtime = runtime()): Tensor {
    const t = Tensor.empty(shape, dtype, rt);
    t.rt.clear(t.buffer, Math.ceil(t.bytes / 4) * 4);
    return t;
  }

  get size(): number { return numel(this.shape); }
  get rank(): number { return this.shape.length; }
  get bytes(): number { return this.size * BYTES[this.dtype]; }
  get disposed(): boolean { return this.storage === null; }

  get buffer(): GPUBuffer {
    if (!this.storage) throw new Error('tensor used after dispose()');
    return this.storage.buffer;
  }

  binding(): Binding {
    return { buffer: this.buffer, size: this.bytes };
  }

  /** Writes host data into the tensor (recorded in order with the kernels around it). */
  upload(data: Float32Array | Int32Array | Uint16Array, elementOffset = 0): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : (() => {
      const p = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      p.set(bytes);
      return p;
    })();
    this.rt.write(this.buffer, elementOffset * BYTES[this.dtype], padded);
  }

  /** A view with another shape over the same buffer. */
  reshape(shape: Shape): Tensor {
    const resolved = resolveShape(shape, this.size);
    if (numel(resolved) !== this.size) {
      throw new Error(`reshape: ${shapeStr(this)} has ${this.size} elements, ${shapeStr(shape)} does not`);
    }
    if (!this.storage) throw new Error('tensor used after dispose()');
    this.storage.retain();
    const view = new Tensor(this.rt, resolved, this.dtype, this.storage);
    return view;
  }

  /** Copies the tensor to the CPU (flushes recorded work). */
  async read(): Promise<TypedArrayFor<this['dtype']>> {
    const buf = await this.rt.readBuffer(this.buffer, this.bytes);
    const out = this.dtype === 'i32' ? new Int32Array(buf) : this.dtype === 'f16' ? new Uint16Array(buf) : new Float32Array(buf);
    return out as TypedArrayFor<this['dtype']>;
  }

  /** Reads as a JS number array (f16 converted); handy in tests. */
  async toArray(): Promise<number[]> {
    const d = await this.read();
    return this.dtype === 'f16' ? Array.from(d as Uint16Array, f16ToF32) : Array.from(d);
  }

  retain(): this {
    this.refs++;
    return this;
  }

  /** Drops one reference; the buffer returns to the pool when none remain. */
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs > 0) return;
    this.storage?.release();
    this.storage = null;
    const node = this.node;
    this.node = null;
    if (node) {
      for (const t of node.inputs) t.release();
      for (const t of node.saved) t.release();
    }
    this.grad?.release();
    this.grad = null;
  }

  /** Gives up the owner's reference (idempotent). Graph nodes that saved the tensor keep it alive. */
  dispose(): void {
    if (!this.owned) return;
    this.owned = false;
    for (const s of scopes) s.delete(this);
    this.release();
  }

  toString(): string {
    return `Tensor(${this.dtype}${shapeStr(this)})`;
  }
}

function resolveShape(shape: Shape, size: number): number[] {
  const free = shape.indexOf(-1);
  if (free < 0) return [...shape];
  const rest = numel(shape.filter((_, i) => i !== free));
  const out = [...shape];
  out[free] = rest === 0 ? 0 : size / rest;
  return out;
}
