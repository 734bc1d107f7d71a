// The WebGPU runtime: one device, a pool of storage buffers, a pipeline cache, and one command encoder that
// records many dispatches before a single submit. Nothing here reads back unless asked (`Tensor.read()`).

import { requestGpu, parseLimits, type DeviceOptions, type GpuContext } from './device.js';
import { WGSL } from './wgsl.generated.js';

/** The WGSL of shaders/NAME.wgsl, its `#include` lines expanded (embedded by tools/embed-shaders.mjs). */
export function shaderSource(name: string): string {
  const source = WGSL[name];
  if (source === undefined) throw new Error(`unknown shader "${name}" (not in shaders/)`);
  return source;
}

const specialised = new Map<string, string>();

/**
 * shaders/NAME.wgsl compiled for one value of a constant it declares as `const K = 16u;` or
 * `const K: u32 = 16u;` (sizes that must be known at compile time: a head dim, outputs per invocation), or for
 * values of several such constants: `specialise('x', { FORMAT: 2, R: 4 })`.
 */
export function specialise(name: string, constant: string, value: number): { shader: string; code: string };
export function specialise(name: string, constants: Readonly<Record<string, number>>): { shader: string; code: string };
export function specialise(name: string, constant: string | Readonly<Record<string, number>>, value?: number): { shader: string; code: string } {
  const values = Object.entries(typeof constant === 'string' ? { [constant]: value ?? NaN } : constant);
  const shader = [name, ...values.map(([c, v]) => `${c}${v}`)].join('_');
  let code = specialised.get(shader);
  if (code === undefined) {
    code = shaderSource(name);
    for (const [c, v] of values) {
      if (!(Number.isInteger(v) && v >= 0)) throw new Error(`specialise("${name}"): ${c} = ${v} is not a u32`);
      const line = new RegExp(`const ${c}(: u32)? = \\d+u;`);
      if (!line.test(code)) throw new Error(`shader "${name}" declares no "const ${c} = …u;" line to specialise`);
      code = code.replace(line, `const ${c}: u32 = ${v}u;`);
    }
    specialised.set(shader, code);
  }
  return { shader, code };
}

/**
 * Uniform values by name. The names and their order come from the shader's `struct P` (4-byte scalar fields
 * u32, i32, f32), so a value is written as its field's type; every field must be given, except padding fields
 * whose names start with `_` (written as 0), and no other name is accepted.
 */
export type Params = Readonly<Record<string, number>>;

type ScalarType = 'u32' | 'i32' | 'f32';
interface UniformField { name: string; type: ScalarType }

/** The fields of `struct P` in WGSL `source`, in order (none when it declares no such struct). */
export function uniformFields(source: string, label = 'shader'): UniformField[] {
  const m = /\bstruct\s+P\s*\{([^}]*)\}/.exec(source.replace(/\/\/[^\n]*/g, ''));
  if (!m) return [];
  return m[1].split(',').map((f) => f.trim()).filter((f) => f.length > 0).map((f) => {
    const fm = /^(\w+)\s*:\s*(\w+)$/.exec(f);
    if (!fm || !['u32', 'i32', 'f32'].includes(fm[2])) {
      throw new Error(`${label}: uniform field "${f}" of struct P is not a u32, i32 or f32 scalar`);
    }
    return { name: fm[1], type: fm[2] as ScalarType };
  });
}

/** Writes `params` into `view` in the order of `fields`, checking names and value ranges. */
function writeParams(view: DataView, fields: readonly UniformField[], params: Params, label: string): void {
  let used = 0;
  fields.forEach((f, i) => {
    const v = params[f.name];
    if (v === undefined) {
      if (f.name.startsWith('_')) return view.setUint32(i * 4, 0, true);
      throw new Error(`${label}: uniform "${f.name}" is missing (struct P: ${fields.map((x) => x.name).join(', ')})`);
    }
    used++;
    if (f.type === 'f32') view.setFloat32(i * 4, v, true);
    else if (!Number.isInteger(v) || (f.type === 'u32' ? v < 0 || v > 0xffffffff : v < -(2 ** 31) || v >= 2 ** 31)) {
      throw new Error(`${label}: uniform "${f.name}" is ${f.type}, got ${v}`);
    } else if (f.type === 'u32') view.setUint32(i * 4, v, true);
    else view.setInt32(i * 4, v, true);
  });
  if (used !== Object.keys(params).length) {
    const extra = Object.keys(params).filter((k) => !fields.some((f) => f.name === k));
    throw new Error(`${label}: no uniform named ${extra.map((k) => `"${k}"`).join(', ')} (struct P: ${fields.map((x) => x.name).join(', ') || 'none'})`);
  }
}

export interface Binding {
  buffer: GPUBuffer;
  /** Bytes of the binding (the tensor's data, rounded up to 4). */
  size: number;
}

export interface Dispatch {
  /** Name of a file in shaders/ (without .wgsl), or a key for `code`. */
  shader: string;
  /** Full WGSL source when the kernel is generated; `shader` is then its cache key. */
  code?: string;
  entry?: string;
  /** Uniform params by the names of the shader's `struct P` fields, bound at @binding(0) when present. */
  params?: Params;
  /** Storage bindings in order after the params: inputs (read) then outputs (read_write). */
  bindings: Binding[];
  workgroups: [number, number?, number?];
}

/** Size classes of the pool: powers of two and 1.5× powers of two, so at most a third is wasted. */
function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.ceil(Math.log2(b));
  return (p * 3) / 4 >= b ? (p * 3) / 4 : p;
}

const UNIFORM_STRIDE = 256;
const UNIFORM_SLOTS = 4096;
const MAX_DISPATCHES_PER_SUBMIT = 4000;
/** Past this many bytes of uploads waiting in staging buffers, `write` submits (the loader streams 8 MiB chunks). */
const MAX_STAGED_BYTES = 64 << 20;

/**
 * The device limits the runtime and the kernels plan with (chunked grids, split buffers, stacked weights): a
 * copy of the device's, which a test may lower (never raise) to run a split path on small data.
 */
export interface RuntimeLimits {
  maxStorageBuffersPerShaderStage: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

const SUBGROUPS_ENABLED = /^\s*enable subgroups;/m;

/**
 * `source` (a kernel written with `enable subgroups;`) with its subgroups emulated at `lanes` lanes, for kernels
 * that use subgroups only as this project's do: the entry point takes `@builtin(subgroup_invocation_id)` (and
 * maybe `@builtin(subgroup_size)`), the workgroup is one-dimensional (a literal or a `const`) and a multiple of
 * `lanes`, and
 * `subgroupAdd` of an f32 or `subgroupShuffle` of a value declared `let name = f32|vecN<f32>(…)` or
 * `let name: T = …` is called where the whole workgroup reaches it (as a real subgroup needs its lanes to).
 * Lane l of emulated subgroup g is invocation g·lanes + l of the workgroup; values pass through workgroup
 * memory, a sum adding the group's values in lane order. What the emulation checks is the kernels' own lane
 * indexing and dispatch planning at widths the adapter does not have.
 */
export function emulateSubgroups(source: string, lanes: number, label = 'shader'): string {
  const fail = (why: string): never => { throw new Error(`${label}: cannot emulate subgroups of ${lanes} lanes: ${why}`); };
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 128 || (lanes & (lanes - 1)) !== 0) fail('a width is a power of two from 1 to 128');
  const code = source.replace(/\/\/[^\n]*/g, '');
  const used = new Set(code.match(/\bsubgroup\w*(?=\s*\()/g) ?? []);
  for (const f of used) if (f !== 'subgroupAdd' && f !== 'subgroupShuffle') fail(`${f} is not emulated (only subgroupAdd and subgroupShuffle)`);
  // one x size: a literal, or a constant the shader declares (`const WG: u32 = 16u;`, as `specialise` writes it)
  const wg = /@workgroup_size\(\s*(\w+)\s*(?:,\s*1u?\s*){0,2}\)/.exec(source);
  if (!wg) fail('the workgroup size is not one literal x size (or a constant)');
  const named = /^\d+u?$/.test(wg![1]) ? null : new RegExp(`const ${wg![1]}(?:: u32)? = (\\d+)u;`).exec(source);
  const size = Number(named ? named[1] : wg![1].replace(/u$/, ''));
  if (!Number.isInteger(size)) fail(`the workgroup size ${wg![1]} is not a literal or a declared constant`);
  if (size % lanes !== 0) fail(`the workgroup (${size}) is not a multiple of the width`);
  const id = /@builtin\(subgroup_invocation_id\)\s*(\w+)\s*:\s*u32/.exec(source);
  const sz = /,?\s*@builtin\(subgroup_size\)\s*(\w+)\s*:\s*u32/.exec(source);
  if (!id) fail('the entry point does not take subgroup_invocation_id');
  // each shuffled value's type, from its declaration: one workgroup array and one function per type
  const typeOf = (name: string): string => {
    const decl = new RegExp(`\\blet\\s+${name}\\s*(?::\\s*(f32|vec[234]<f32>)\\s*=|=\\s*(f32|vec[234]<f32>)\\s*\\()`).exec(code);
    return decl ? decl[1] ?? decl[2] : fail(`the shuffled value ${name} is not declared as \`let ${name}: T = …\` or \`let ${name} = T(…)\``);
  };
  const shuffleTypes = [...new Set([...code.matchAll(/\bsubgroupShuffle\s*\(\s*(\w+)\s*,/g)].map((m) => typeOf(m[1])))];
  let out = source.replace(SUBGROUPS_ENABLED, '').replace(id![0], '@builtin(local_invocation_index) emu_lid: u32');
  if (sz) out = out.replace(sz[0], '');
  // the entry point's body starts at the first `{` after its parameters
  const body = out.indexOf('{', out.indexOf('emu_lid: u32'));
  out = `${out.slice(0, body + 1)}
  emu_lid_p = emu_lid;${sz ? `
  let ${sz[1]} = EMU_LANES;` : ''}
  let ${id![1]} = emu_lid % EMU_LANES;${out.slice(body + 1)}`;
  // shuffles are renamed by their value's type (WGSL has no overloads of user functions)
  out = out.replace(/\bsubgroupShuffle\s*\(\s*(\w+)\s*,/g, (_, name: string) => `emu_subgroup_shuffle_${shuffleTypes.indexOf(typeOf(name))}(${name},`);
  const shuffles = shuffleTypes.map((type, i) => `
var<workgroup> emu_shuf_${i}: array<${type}, ${size}>;
fn emu_subgroup_shuffle_${i}(v: ${type}, lane: u32) -> ${type} {
  let lid = emu_lid_p;
  workgroupBarrier(); // every lane has read the previous shuffle
  emu_shuf_${i}[lid] = v;
  workgroupBarrier();
  return emu_shuf_${i}[lid - lid % EMU_LANES + lane];
}
`).join('');
  // the invocation's index goes through a private variable: subgroupAdd may be called from a helper function
  return `${out.replace(/\bsubgroupAdd\s*\(/g, 'emu_subgroup_add(')}

// ---- subgroups of ${lanes} lanes, emulated (Runtime.forcedSubgroupSize) ----
const EMU_LANES: u32 = ${lanes}u;
var<workgroup> emu_red: array<f32, ${size}>;
var<private> emu_lid_p: u32;
fn emu_subgroup_add(v: f32) -> f32 {
  let lid = emu_lid_p;
  workgroupBarrier(); // every lane has read the previous sum
  emu_red[lid] = v;
  workgroupBarrier();
  let first = lid - lid % EMU_LANES;
  var s = 0.0;
  for (var l = 0u; l < EMU_LANES; l++) { s += emu_red[first + l]; }
  return s;
}
${shuffles}`;
}

/** Storage buffers a WGSL source declares (its comments aside). */
export function storageBindings(source: string): number {
  return source.replace(/\/\/[^\n]*/g, '').match(/var<storage\b/g)?.length ?? 0;
}

export interface RuntimeStats {
  submits: number;
  dispatches: number;
  liveBuffers: number;
  liveBytes: number;
  pooledBuffers: number;
  pooledBytes: number;
  buffersCreated: number;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly ctx: GpuContext;
  readonly limits: RuntimeLimits;
  readonly stats: RuntimeStats = {
    submits: 0, dispatches: 0, liveBuffers: 0, liveBytes: 0, pooledBuffers: 0, pooledBytes: 0, buffersCreated: 0,
  };
  /** Cap on bytes kept in the free pool; beyond it freed buffers are destroyed. */
  poolCapBytes = 2 ** 30;

  private pipelines = new Map<string, GPUComputePipeline>();
  private uniforms = new Map<string, UniformField[]>();
  private free = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  private toDestroy: GPUBuffer[] = [];
  /** Bytes written through staging buffers since the last submit (see `write`). */
  private stagedBytes = 0;
  private uniformBuffer: GPUBuffer;
  private uniformData = new ArrayBuffer(UNIFORM_STRIDE * UNIFORM_SLOTS);
  private uniformSlot = 0;
  private errors: string[] = [];

  private constructor(ctx: GpuContext) {
    this.ctx = ctx;
    this.device = ctx.device;
    const L = ctx.device.limits;
    this.limits = {
      maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
      maxBufferSize: L.maxBufferSize,
      maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
      maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    };
    this.uniformBuffer = this.device.createBuffer({
      size: UNIFORM_STRIDE * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.addEventListener('uncapturederror', (ev) => {
      this.errors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
  }

  /**
   * Forces the width of every subgroup kernel's subgroups (tests: 8, 32, 64, the widths of GPUs this adapter
   * lacks): a kernel written with `enable subgroups;` is then compiled with its subgroups emulated at that width
   * (see `emulateSubgroups`), also on a device without subgroups. null (default): the adapter's own.
   */
  forcedSubgroupSize: number | null = null;

  /** Whether subgroup kernels can run: the adapter has subgroups, or a width is forced. */
  get subgroups(): boolean {
    return this.forcedSubgroupSize !== null || this.ctx.features.subgroups;
  }

  /**
   * The largest subgroup size a subgroup kernel may run with, to plan its dispatch for (a smaller real size only
   * adds idle invocations): the forced width, else the adapter's subgroupMaxSize, else 128 (the most WebGPU
   * allows: never fewer lanes planned than a subgroup may have, which would leave rows uncomputed).
   */
  get maxSubgroupSize(): number {
    if (this.forcedSubgroupSize !== null) return this.forcedSubgroupSize;
    const info = this.device.adapterInfo as (GPUAdapterInfo & { subgroupMaxSize?: number }) | undefined;
    return info?.subgroupMaxSize ?? 128;
  }

  /**
   * The smallest subgroup size a subgroup kernel may run with: the forced width, else the adapter's
   * subgroupMinSize, else 4 (the least WebGPU allows: never more lanes assumed than a subgroup may have).
   */
  get minSubgroupSize(): number {
    if (this.forcedSubgroupSize !== null) return this.forcedSubgroupSize;
    const info = this.device.adapterInfo as (GPUAdapterInfo & { subgroupMinSize?: number }) | undefined;
    return info?.subgroupMinSize ?? 4;
  }

  /**
   * Whether the kernels that pass values between lanes by `subgroupShuffle` (matmul_sg*, conv1d_sg,
   * conv_transpose1d_sg, packed_gemv, packed_matmul_sg) run here: they need subgroups of at least 8 lanes. A
   * forced width (tests) emulates the shuffles through workgroup memory.
   */
  get shuffleSubgroups(): boolean {
    return this.subgroups && this.minSubgroupSize >= 8;
  }

  static async create(opts: DeviceOptions = {}): Promise<Runtime> {
    return new Runtime(await requestGpu(opts));
  }

  // ---- buffers ----

  /** A storage buffer of at least `bytes`, from the pool when one of its size class is free. */
  alloc(bytes: number): GPUBuffer {
    // past the largest buffer the device allows, only the exact size could fit (and it is never pooled)
    if (sizeClass(bytes) > this.limits.maxBufferSize) return this.allocExact(bytes);
    const cls = sizeClass(bytes);
    const list = this.free.get(cls);
    let buf = list?.pop();
    if (buf) {
      this.stats.pooledBuffers--;
      this.stats.pooledBytes -= cls;
    } else {
      buf = this.device.createBuffer({
        size: cls,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.stats.buffersCreated++;
    }
    this.stats.liveBuffers++;
    this.stats.liveBytes += cls;
    return buf;
  }

  /**
   * A storage buffer of exactly `bytes` (rounded up to 4), never from the pool: for tensors that live as long as a
   * model (weights), which would otherwise carry up to a third of their size as the size class's slack.
   */
  allocExact(bytes: number): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.limits.maxBufferSize) {
      throw new Error(`cannot allocate ${bytes} bytes: the device's maxBufferSize is ${this.limits.maxBufferSize}${this.ctx.limits === 'default' ? " (the spec's default: limits 'default')" : ''}`);
    }
    const buf = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.stats.buffersCreated++;
    this.stats.liveBuffers++;
    this.stats.liveBytes += size;
    return buf;
  }

  /** Gives a buffer back to the pool. Safe while recorded work still uses it: the queue runs in order. */
  release(buf: GPUBuffer): void {
    const cls = buf.size;
    this.stats.liveBuffers--;
    this.stats.liveBytes -= cls;
    // an exact-size buffer (allocExact) is not of any size class: no alloc would ever take it from the pool
    if (this.stats.pooledBytes + cls > this.poolCapBytes || sizeClass(cls) !== cls) {
      this.toDestroy.push(buf); // destroyed after the next submit, which may still use it
      return;
    }
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(buf);
    this.stats.pooledBuffers++;
    this.stats.pooledBytes += cls;
  }

  /** Frees every pooled buffer (e.g. after loading a model). */
  trimPool(): void {
    for (const list of this.free.values()) for (const b of list) this.toDestroy.push(b);
    this.free.clear();
    this.stats.pooledBuffers = 0;
    this.stats.pooledBytes = 0;
    if (!this.encoder) this.destroyPending();
  }

  /**
   * Uploads `data` into `buf` at `offset`. With nothing recorded, a plain queue write; otherwise the bytes go
   * through a staging buffer copied inside the encoder, so work recorded earlier still sees the old contents
   * and nothing is submitted early.
   */
  write(buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!this.encoder) {
      this.device.queue.writeBuffer(buf, offset, bytes as Uint8Array<ArrayBuffer>);
      return;
    }
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    this.copy(staging, 0, buf, offset, size);
    this.toDestroy.push(staging);
    // staging buffers live until a submit: a model streamed in while work is recorded would otherwise keep a
    // second copy of every weight (the loader's chunks) alive until the end; submitting bounds that copy
    this.stagedBytes += size;
    if (this.stagedBytes >= MAX_STAGED_BYTES) this.flush();
  }

  // ---- pipelines and dispatch ----

  pipeline(shader: string, code?: string, entry = 'main'): GPUComputePipeline {
    const lanes = this.forcedSubgroupSize;
    const key = `${shader}:${entry}${lanes === null ? '' : `:lanes${lanes}`}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    let source = code ?? shaderSource(shader);
    if (lanes !== null && SUBGROUPS_ENABLED.test(source)) source = emulateSubgroups(source, lanes, shader);
    const storage = storageBindings(source);
    if (storage > this.limits.maxStorageBuffersPerShaderStage) {
      throw new Error(`${shader}: ${storage} storage buffers, over the device's maxStorageBuffersPerShaderStage (${this.limits.maxStorageBuffersPerShaderStage})`);
    }
    const module = this.device.createShaderModule({ code: source, label: shader });
    p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: entry }, label: key });
    this.pipelines.set(key, p);
    if (!this.uniforms.has(shader)) this.uniforms.set(shader, uniformFields(source, shader));
    return p;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  private commandEncoder(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Records one kernel launch; nothing is submitted until `flush()` (or a readback). */
  dispatch(d: Dispatch): void {
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (d.workgroups.some((n) => n !== undefined && n > maxWg)) {
      throw new Error(`${d.shader}: grid [${d.workgroups.join(', ')}] exceeds the device's ${maxWg} workgroups per dimension`);
    }
    if (this.uniformSlot >= UNIFORM_SLOTS || this.pendingDispatches >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
    const pipeline = this.pipeline(d.shader, d.code, d.entry);
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    const fields = this.uniforms.get(d.shader)!;
    if (d.params === undefined && fields.length > 0) throw new Error(`${d.shader}: the shader has uniforms (struct P) but no params were given`);
    if (d.params !== undefined) {
      if (fields.length === 0) throw new Error(`${d.shader}: params given but the shader declares no struct P`);
      const slot = this.uniformSlot++;
      const view = new DataView(this.uniformData, slot * UNIFORM_STRIDE, UNIFORM_STRIDE);
      writeParams(view, fields, d.params, d.shader);
      const size = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
      entries.push({ binding: binding++, resource: { buffer: this.uniformBuffer, offset: slot * UNIFORM_STRIDE, size } });
    }
    for (const b of d.bindings) {
      const size = Math.max(4, Math.ceil(b.size / 4) * 4);
      if (size > this.limits.maxStorageBufferBindingSize) {
        throw new Error(`${d.shader}: binding ${binding} is ${size} bytes, over the device's maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize}): the kernel must take it in parts`);
      }
      entries.push({ binding: binding++, resource: { buffer: b.buffer, offset: 0, size } });
    }
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = d.workgroups;
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    this.pendingDispatches++;
    this.stats.dispatches++;
  }

  /** Splits n workgroups over x and y so no dimension passes the device's limit (65535 by default). */
  grid(workgroups: number): [number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups <= max) return [Math.max(1, workgroups), 1];
    const y = Math.ceil(workgroups / max);
    if (y > max) throw new Error(`${workgroups} workgroups do not fit a ${max} × ${max} grid`);
    return [Math.ceil(workgroups / y), y];
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Zeroes the first `bytes` of a buffer (recorded in order). */
  clear(buf: GPUBuffer, bytes: number): void {
    if (bytes > 0) this.commandEncoder().clearBuffer(buf, 0, bytes);
  }

  /** Submits everything recorded so far, in one command buffer. */
  flush(): void {
    if (this.uniformSlot > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformData, 0, this.uniformSlot * UNIFORM_STRIDE);
    }
    if (this.encoder) {
      if (this.pass) this.pass.end();
      this.device.queue.submit([this.encoder.finish()]);
      this.stats.submits++;
    }
    this.encoder = null;
    this.pass = null;
    this.pendingDispatches = 0;
    this.uniformSlot = 0;
    this.stagedBytes = 0;
    this.destroyPending();
  }

  private destroyPending(): void {
    for (const b of this.toDestroy) b.destroy();
    this.toDestroy = [];
  }

  /** Copies `bytes` of `buf` to the CPU: one submit and one map. */
  async readBuffer(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(buf, 0, staging, 0, size);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.throwErrors();
    return out;
  }

  /** Waits for all submitted work (and reports any validation error Dawn raised meanwhile). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  private throwErrors(): void {
    if (this.errors.length > 0) {
      const msg = this.errors.join('\n');
      this.errors = [];
      throw new Error(`WebGPU error: ${msg}`);
    }
  }

  destroy(): void {
    this.flush();
    this.trimPool();
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}

let current: Runtime | null = null;

/**
 * The process-wide runtime, created on first use with `opts`. Later calls return it; one that asks for other
 * limits than it was created with is an error (a device's limits are fixed when it is made).
 */
export async function initRuntime(opts: DeviceOptions = {}): Promise<Runtime> {
  if (!current) current = await Runtime.create(opts);
  else if (opts.limits !== undefined && parseLimits(opts.limits) !== current.ctx.limits) {
    throw new Error(`the WebGPU runtime was already created with '${current.ctx.limits}' limits; '${opts.limits}' limits must be asked for before it is first used`);
  }
  return current;
}

export function runtime(): Runtime {
  if (!current) throw new Error('WebGPU runtime not initialised: call `await initRuntime()` first');
  return current;
}
