// Scratch prototypes of a decode-specific gemv (y[R, N] = x[R, K] · Wᵀ for a handful of rows R, W [N, K] as
// PyTorch stores a Linear weight), measured in isolation by the kernel benchmark and the decode profile. Nothing
// in the model uses them: they show what a kernel change would buy before anyone makes it.
//
//   'subgroup'   W as stored, [N, K] f32: the library's decode gemv (src/kernels/gemv.ts), which grew out of this
//                prototype (one subgroup per 4 output rows, lanes reading consecutive vec4s along k).
//   'subgroup16' the same with W as f16 packed along k ([N, K/8] of vec4<u32>, unpack2x16float): half the bytes
//                (needs a converted copy of the weights, made once at load).
//   'coalesced'  W transposed to [K, N] ([in, out]); invocation n4 computes outputs 4·n4 … 4·n4 + 3 of every
//                row with one vec4 load per k (neighbouring invocations read neighbouring addresses).
// The x rows (R ≤ 8) are compiled into each pipeline; every kind needs K % 8 == 0 and N % 4 == 0.

import { Tensor } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { gemv } from '../kernels/gemv.js';

export type ProtoKind = 'subgroup' | 'subgroup16' | 'coalesced';

const RO = 4;
const SG_WG = 64;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The f16-weight variant of the library's gemv: W packed as f16 pairs along k ([N, K/8] of vec4<u32>). */
function subgroupCode(R: number): string {
  const accs = range(RO).map((j) => `  var a${j}: array<f32, ${R}>; let w${j} = min(n0 + ${j}u, p.N - 1u) * K8;`).join('\n');
  const body = `  for (var k8 = lane; k8 < K8; k8 += sgs) {
${range(R).map((r) => `    let xa${r} = X[${r}u * K4 + 2u * k8]; let xb${r} = X[${r}u * K4 + 2u * k8 + 1u];`).join('\n')}
${range(RO).map((j) => `    { let u = W[w${j} + k8]; let wa = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); let wb = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
${range(R).map((r) => `      a${j}[${r}] += dot(xa${r}, wa) + dot(xb${r}, wb);`).join('\n')} }`).join('\n')}
  }`;
  const store = range(RO).map((j) => range(R).map((r) =>
    `  { let s = subgroupAdd(a${j}[${r}]); if (lane == 0u && n0 + ${j}u < p.N) { Y[${r}u * p.N + n0 + ${j}u] = s; } }`).join('\n')).join('\n');
  return `
enable subgroups;
struct P { N: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${SG_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = ((gid.x + gid.y * nwg.x * ${SG_WG}u) / sgs) * ${RO}u;
  let K4 = p.K / 4u;
  let K8 = p.K / 8u;
${accs}
${body}
${store}
}`;
}

function coalescedCode(R: number): string {
  return `
struct P { N4: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4<f32>>;
@compute @workgroup_size(32)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n4 = gid.x;
  if (n4 >= p.N4) { return; }
  let K4 = p.K / 4u;
${range(R).map((r) => `  var a${r} = vec4<f32>(0.0);`).join('\n')}
  for (var k4 = 0u; k4 < K4; k4++) {
    let b = 4u * k4 * p.N4 + n4;
    let w0 = W[b]; let w1 = W[b + p.N4]; let w2 = W[b + 2u * p.N4]; let w3 = W[b + 3u * p.N4];
${range(R).map((r) => `    { let x = X[${r}u * K4 + k4]; a${r} += x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3; }`).join('\n')}
  }
${range(R).map((r) => `  Y[${r}u * p.N4 + n4] = a${r};`).join('\n')}
}`;
}

const CONVERT = `
struct P { N: u32, K: u32, mode: u32, total: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.total) { return; }
  if (p.mode == 0u) {
    // transpose [N, K] -> [K, N]
    let k = i / p.N;
    let n = i % p.N;
    O[i] = bitcast<u32>(W[n * p.K + k]);
  } else {
    // f16 pairs along k, same [N, K] order
    O[i] = pack2x16float(vec2<f32>(W[2u * i], W[2u * i + 1u]));
  }
}`;

/** The weight in the layout a prototype reads, from a PyTorch-layout [N, K] f32 weight (a view for 'subgroup'). */
export function protoWeight(kind: ProtoKind, w: Tensor): Tensor {
  const [N, K] = w.shape;
  if (kind === 'subgroup') return w.reshape([N, K]);
  const rt = w.rt;
  const f16 = kind === 'subgroup16';
  const total = f16 ? (N * K) / 2 : N * K;
  const out = Tensor.empty([total], f16 ? 'i32' : 'f32', rt);
  rt.dispatch({
    shader: 'bench_proto_convert', code: CONVERT, params: [N, K, f16 ? 1 : 0, total],
    bindings: [w.binding(), out.binding()], workgroups: rt.grid(Math.ceil(total / 64)),
  });
  return out;
}

/** y [R, N] = x [R, K] · Wᵀ with a prototype kernel; `wp` from protoWeight. */
export function protoGemv(rt: Runtime, kind: ProtoKind, x: Tensor, wp: Tensor, N: number, K: number): Tensor {
  const R = x.size / K;
  if (!Number.isInteger(R) || R < 1 || R > 16 || K % 8 !== 0 || N % 4 !== 0) {
    throw new Error(`protoGemv: x [${x.shape.join(', ')}] with N ${N}, K ${K}`);
  }
  const y = Tensor.empty([R, N], 'f32', rt);
  if (kind === 'coalesced') {
    rt.dispatch({
      shader: `bench_gemv_coalesced_r${R}`, code: coalescedCode(R), params: [N / 4, K, 0, 0],
      bindings: [x.binding(), wp.binding(), y.binding()], workgroups: rt.grid(Math.ceil(N / 4 / 32)),
    });
  } else {
    if (kind === 'subgroup') return gemv(x, wp, undefined, 0, [R, N]);
    const invocations = Math.ceil(N / RO) * subgroupSize(rt);
    rt.dispatch({
      shader: `bench_gemv_${kind}_r${R}`, code: subgroupCode(R), params: [N, K, 0, 0],
      bindings: [x.binding(), wp.binding(), y.binding()], workgroups: rt.grid(Math.ceil(invocations / SG_WG)),
    });
  }
  return y;
}

/** The adapter's largest subgroup size (8 on llvmpipe); 8 when the device does not say. */
function subgroupSize(rt: Runtime): number {
  const info = (rt.device as unknown as { adapterInfo?: { subgroupMaxSize?: number } }).adapterInfo;
  return info?.subgroupMaxSize ?? 8;
}

/** One LSTM layer for B = 1: the library's `lstm`, whose inference path grew out of this file's prototype. */
export function protoLstm(_rt: Runtime, x: Tensor, wIh: Tensor, wHh: Tensor, bIh: Tensor, bHh: Tensor): Tensor {
  const { y, h, c } = ops.lstm(x, wIh, wHh, bIh, bHh);
  h.dispose();
  c.dispose();
  return y;
}

/** Bytes of weight a prototype reads per element. */
export const protoBytes = (kind: ProtoKind): number => (kind === 'subgroup16' ? 2 : 4);
