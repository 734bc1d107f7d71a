// Element-wise ops, declared as data: each unary op is a WGSL expression for its forward and one for its
// backward, from which the kernels are generated. Binary ops broadcast (numpy rules, rank ≤ 6) and reduce
// their gradients back to each input's shape with `sumTo`.

import { Tensor, checkF32, numel, shapeStr, type DType, type Shape } from '../tensor.js';
import { shaderSource, type Runtime } from '../runtime.js';
import { record } from '../autograd.js';

const WG = 256;
const MAX_RANK = 6;

export function launch1d(rt: Runtime, n: number): [number, number] {
  return rt.grid(Math.ceil(n / WG));
}

export interface Kernel1d {
  /** Fields of the uniform struct P; the first is `n: u32`, the element count. */
  params: string;
  /** Storage buffers read, e.g. 'X: array<f32>', bound after the uniforms in order... */
  read: string[];
  /** ...then those written. */
  write: string[];
  /** WGSL run for each element index `i` < p.n. */
  body: string;
  /** Functions or `enable` lines placed before the struct. */
  lib?: string;
}

/** A generated kernel with one invocation per element, dispatched with `launch1d` (256 per workgroup, 2-D grid). */
export function kernel1d(k: Kernel1d): string {
  const buffers = [...k.read.map((b) => ['read', b]), ...k.write.map((b) => ['read_write', b])];
  return `${k.lib ?? ''}
struct P { ${k.params} }
@group(0) @binding(0) var<uniform> p: P;
${buffers.map(([access, b], j) => `@group(0) @binding(${j + 1}) var<storage, ${access}> ${b};`).join('\n')}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  ${k.body}
}`;
}

// Generated kernels index tensors of rank ≤ 6 through uniforms named `${name}0` … `${name}5`.
const DIMS = [0, 1, 2, 3, 4, 5];
/** Uniform struct fields `${name}0: u32, …, ${name}5: u32`. */
export const fields6 = (name: string): string => DIMS.map((k) => `${name}${k}: u32`).join(', ');
/** WGSL lines splitting the flat index `idx` into coordinates `${c}0` … `${c}5` over the dims `p.${dims}k`. */
export const unravel6 = (idx: string, c: string, dims: string): string =>
  [`var ${c}r = ${idx};`, ...[5, 4, 3, 2, 1].map((k) => `let ${c}${k} = ${c}r % p.${dims}${k}; ${c}r = ${c}r / p.${dims}${k};`), `let ${c}0 = ${c}r;`]
    .join('\n  ');
/** The WGSL offset Σₖ `${c}k` · `p.${strides}k`. */
export const offset6 = (c: string, strides: string): string => DIMS.map((k) => `${c}${k} * p.${strides}${k}`).join(' + ');

/** The uniforms `${name}0` … `${name}5` that `fields6(name)` declares, from ≤ 6 values padded on the left with `fill`. */
export function params6(name: string, xs: number[], fill: number): Record<string, number> {
  return Object.fromEntries(pad6(xs, fill).map((v, k) => [`${name}${k}`, v]));
}

/** Pads a list of ≤ 6 dims (or strides) on the left to exactly 6. */
export function pad6(xs: number[], fill: number): number[] {
  if (xs.length > MAX_RANK) throw new Error(`rank ${xs.length} > ${MAX_RANK} is not supported`);
  return [...new Array<number>(MAX_RANK - xs.length).fill(fill), ...xs];
}

// ---- unary ----

interface UnaryDef {
  /** y from x (and params a, b). */
  fwd: string;
  /** dx from x, y, dy (and params a, b); null when the op is not differentiable. */
  bwd: string | null;
  /** Extra WGSL functions the expressions use. */
  lib?: string;
}

const ERF = shaderSource('lib/erf');

export const UNARY = {
  neg: { fwd: '-x', bwd: '-dy' },
  relu: { fwd: 'max(x, 0.0)', bwd: 'select(0.0, dy, x > 0.0)' },
  // exact (erf) GELU, as MusicGen's decoder uses
  gelu: { fwd: '0.5 * x * (1.0 + erf_(x * 0.70710678118654752))', bwd: 'dy * (0.5 * (1.0 + erf_(x * 0.70710678118654752)) + x * 0.39894228040143268 * exp(-0.5 * x * x))', lib: ERF },
  // ELU with alpha = a
  elu: { fwd: 'select(a * (exp(x) - 1.0), x, x > 0.0)', bwd: 'select(dy * (y + a), dy, x > 0.0)' },
  tanh: { fwd: 'tanh(x)', bwd: 'dy * (1.0 - y * y)' },
  sigmoid: { fwd: '1.0 / (1.0 + exp(-x))', bwd: 'dy * y * (1.0 - y)' },
  exp: { fwd: 'exp(x)', bwd: 'dy * y' },
  log: { fwd: 'log(x)', bwd: 'dy / x' },
  sqrt: { fwd: 'sqrt(x)', bwd: 'dy * 0.5 / y' },
  square: { fwd: 'x * x', bwd: 'dy * 2.0 * x' },
  abs: { fwd: 'abs(x)', bwd: 'dy * sign(x)' },
  /** a·x + b */
  affine: { fwd: 'a * x + b', bwd: 'a * dy' },
  /** x^a */
  pow: { fwd: 'pow(x, a)', bwd: 'dy * a * pow(x, a - 1.0)' },
  clamp: { fwd: 'clamp(x, a, b)', bwd: 'select(0.0, dy, x >= a && x <= b)' },
} satisfies Record<string, UnaryDef>;
export type UnaryOp = keyof typeof UNARY;

function unaryForwardCode(op: UnaryOp): string {
  const d: UnaryDef = UNARY[op];
  return kernel1d({
    lib: d.lib,
    params: 'n: u32, a: f32, b: f32',
    read: ['X: array<f32>'],
    write: ['Y: array<f32>'],
    body: `let x = X[i]; let a = p.a; let b = p.b;
  Y[i] = ${d.fwd};`,
  });
}

function unaryBackwardCode(op: UnaryOp): string {
  const d: UnaryDef = UNARY[op];
  return kernel1d({
    lib: d.lib,
    params: 'n: u32, a: f32, b: f32',
    read: ['X: array<f32>', 'Y: array<f32>', 'DY: array<f32>'],
    write: ['DX: array<f32>'],
    body: `let x = X[i]; let y = Y[i]; let dy = DY[i]; let a = p.a; let b = p.b;
  _ = x; _ = y;
  DX[i] = ${d.bwd};`,
  });
}

/** Applies a unary op; `a` and `b` are the op's scalar parameters where it has them. */
export function unary(op: UnaryOp, x: Tensor, a = 0, b = 0): Tensor {
  checkF32(op, x);
  const rt = x.rt;
  const y = Tensor.empty(x.shape, 'f32', rt);
  rt.dispatch({
    shader: `unary_${op}`,
    code: unaryForwardCode(op),
    params: { n: x.size, a, b },
    bindings: [x.binding(), y.binding()],
    workgroups: launch1d(rt, x.size),
  });
  return record(op, y, [x], (dy) => {
    const dx = Tensor.empty(x.shape, 'f32', rt);
    rt.dispatch({
      shader: `unary_${op}_bwd`,
      code: unaryBackwardCode(op),
      params: { n: x.size, a, b },
      bindings: [x.binding(), y.binding(), dy.binding(), dx.binding()],
      workgroups: launch1d(rt, x.size),
    });
    return [dx];
  });
}

export const relu = (x: Tensor): Tensor => unary('relu', x);
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const elu = (x: Tensor, alpha = 1): Tensor => unary('elu', x, alpha);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const neg = (x: Tensor): Tensor => unary('neg', x);
export const square = (x: Tensor): Tensor => unary('square', x);
/** s·x + t */
export const affine = (x: Tensor, s: number, t = 0): Tensor => unary('affine', x, s, t);
export const scale = (x: Tensor, s: number): Tensor => unary('affine', x, s, 0);

// ---- binary, broadcasting ----

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum';
const BINARY_EXPR: Record<BinaryOp, string> = {
  add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b', maximum: 'max(a, b)',
};

export function broadcastShapes(a: Shape, b: Shape): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`cannot broadcast [${a.join(', ')}] with [${b.join(', ')}]`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` seen through the broadcast `out` shape (0 along broadcast dims), padded to MAX_RANK. */
function broadcastStrides(shape: Shape, out: Shape): number[] {
  const r = out.length;
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let i = r - 1; i >= 0; i--) {
    const d = shape[shape.length - r + i] ?? 1;
    strides[i] = d === 1 ? 0 : s;
    s *= d;
  }
  return pad6(strides, 0);
}


function binaryCode(op: BinaryOp): string {
  return kernel1d({
    params: `n: u32, ${fields6('d')}, ${fields6('a')}, ${fields6('b')}`,
    read: ['A: array<f32>', 'B: array<f32>'],
    write: ['C: array<f32>'],
    body: `${unravel6('i', 'c', 'd')}
  let a = A[${offset6('c', 'a')}]; let b = B[${offset6('c', 'b')}];
  C[i] = ${BINARY_EXPR[op]};`,
  });
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkF32(op, a, b);
  const rt = a.rt;
  const shape = broadcastShapes(a.shape, b.shape);
  const c = Tensor.empty(shape, 'f32', rt);
  rt.dispatch({
    shader: `binary_${op}`,
    code: binaryCode(op),
    params: { n: c.size, ...params6('d', shape, 1), ...params6('a', broadcastStrides(a.shape, shape), 0), ...params6('b', broadcastStrides(b.shape, shape), 0) },
    bindings: [a.binding(), b.binding(), c.binding()],
    workgroups: launch1d(rt, c.size),
  });
  return record(op, c, [a, b], (g) => {
    switch (op) {
      case 'add': return [sumTo(g, a.shape), sumTo(g, b.shape)];
      case 'sub': return [sumTo(g, a.shape), sumTo(neg(g), b.shape)];
      case 'mul': return [sumTo(mul(g, b), a.shape), sumTo(mul(g, a), b.shape)];
      case 'div': return [sumTo(div(g, b), a.shape), sumTo(neg(div(mul(g, c), b)), b.shape)];
      case 'maximum': {
        const ma = binary('sub', a, c); // 0 where a won
        const maskA = unary('clamp', affine(unary('abs', ma), -1e30, 1), 0, 1); // 1 where a == c
        return [sumTo(mul(g, maskA), a.shape), sumTo(mul(g, affine(maskA, -1, 1)), b.shape)];
      }
    }
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);

// ---- sumTo: the reduction broadcasting's backward needs ----

const SUM_TO_CODE = kernel1d({
  params: `n: u32, r: u32, ${fields6('o')}, ${fields6('q')}, ${fields6('s')}`,
  read: ['X: array<f32>'],
  write: ['Y: array<f32>'],
  body: `// coordinates of this output element (kept dims; reduced dims have size 1 here)
  ${unravel6('i', 'c', 'o')}
  let base = ${offset6('c', 's')};
  var acc = 0.0;
  for (var k = 0u; k < p.r; k++) {
    // coordinates along the reduced dims (kept dims have size 1 here)
    ${unravel6('k', 'e', 'q')}
    acc += X[base + ${offset6('e', 's')}];
  }
  Y[i] = acc;`,
});

/** Sums `x` over the dims where `shape` (right-aligned) has 1 or is missing: the adjoint of broadcasting. */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  checkF32('sumTo', x);
  const rt = x.rt;
  const r = x.rank;
  const target = [...new Array<number>(r - shape.length).fill(1), ...shape];
  const kept: number[] = [];
  const reduced: number[] = [];
  for (let i = 0; i < r; i++) {
    if (target[i] === x.shape[i]) { kept.push(x.shape[i]); reduced.push(1); }
    else if (target[i] === 1) { kept.push(1); reduced.push(x.shape[i]); }
    else throw new Error(`sumTo: cannot reduce ${shapeStr(x)} to [${shape.join(', ')}]`);
  }
  const strides: number[] = new Array<number>(r);
  let s = 1;
  for (let i = r - 1; i >= 0; i--) { strides[i] = s; s *= x.shape[i]; }
  const y = Tensor.empty(shape, 'f32', rt);
  rt.dispatch({
    shader: 'sum_to',
    code: SUM_TO_CODE,
    params: { n: y.size, r: numel(reduced), ...params6('o', kept, 1), ...params6('q', reduced, 1), ...params6('s', strides, 0) },
    bindings: [x.binding(), y.binding()],
    workgroups: launch1d(rt, y.size),
  });
  return record('sumTo', y, [x], (g) => [expandTo(g, x.shape)]);
}

/** Broadcasts `x` to `shape` (materialised). */
export function expandTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const zeros = Tensor.zeros(shape, 'f32', x.rt);
  return add(zeros, x);
}

// ---- casts ----

const CAST_CODE = (from: string, to: string): string => kernel1d({
  lib: from === 'f16' || to === 'f16' ? 'enable f16;' : '',
  params: 'n: u32',
  read: [`X: array<${from}>`],
  write: [`Y: array<${to}>`],
  body: `Y[i] = ${to}(X[i]);`,
});

/**
 * Converts between dtypes: i32 ↔ f32 (f32 → i32 truncates toward zero), and f16 ↔ f32 where the adapter has
 * `shader-f16` (f16 is a storage format here: weights kept at half the bytes, computed on in f32). Not differentiable.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const rt = x.rt;
  if ((x.dtype === 'f16' || dtype === 'f16') && !rt.ctx.features.f16) throw new Error('cast: this adapter has no shader-f16');
  if (x.dtype === 'f16' && dtype === 'i32') throw new Error('cast: f16 → i32 is not supported (go through f32)');
  if (x.dtype === 'i32' && dtype === 'f16') throw new Error('cast: i32 → f16 is not supported (go through f32)');
  const y = Tensor.empty(x.shape, dtype, rt);
  rt.dispatch({
    shader: `cast_${x.dtype}_${dtype}`,
    code: CAST_CODE(x.dtype, dtype),
    params: { n: x.size },
    bindings: [x.binding(), y.binding()],
    workgroups: launch1d(rt, x.size),
  });
  return y;
}

export const castToF32 = (x: Tensor): Tensor => cast(x, 'f32');
