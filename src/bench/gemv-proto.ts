// Scratch prototypes of a decode-specific gemv (y[R, N] = x[R, K] · Wᵀ for a handful of rows R), measured in
// isolation by the kernel benchmark and the decode profile. Nothing in the model uses them: they show what a
// kernel change would buy before anyone makes it.
//
//   'coalesced'  weights stored transposed, [K, N] ([in, out]); invocation n4 computes outputs 4·n4 … 4·n4 + 3
//                for every row, reading one vec4 per k: neighbouring invocations (llvmpipe's SIMD lanes) read
//                neighbouring addresses. Needs the weights transposed once at load.
//   'coalesced16' the same with the weights as f16 pairs packed in u32 (unpack2x16float): half the bytes.
//   'subgroup'   weights as PyTorch stores them, [N, K] ([out, in]); one subgroup (8 lanes on llvmpipe) per output
//                row group: lanes read consecutive vec4s along k (contiguous), then subgroupAdd. No transposition.
//
// Each is specialised for R (rows in registers) at pipeline creation.

import { Tensor } from '../tensor.js';
import type { Runtime } from '../runtime.js';

export type ProtoKind = 'coalesced' | 'coalesced16' | 'subgroup';

const WG = 64;

function coalescedCode(R: number, f16: boolean): string {
  const load = f16
    ? (k: string) => `wv(${k})`
    : (k: string) => `W[${k}]`;
  return `
const R = ${R}u;
struct P { N4: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<${f16 ? 'vec2<u32>' : 'vec4<f32>'}>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4<f32>>;
${f16 ? 'fn wv(i: u32) -> vec4<f32> { let u = W[i]; return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); }' : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n4 = gid.x;
  if (n4 >= p.N4) { return; }
  let K4 = p.K / 4u;
  var acc: array<vec4<f32>, R>;
  for (var k4 = 0u; k4 < K4; k4++) {
    let base = 4u * k4 * p.N4 + n4;
    let w0 = ${load('base')};
    let w1 = ${load('base + p.N4')};
    let w2 = ${load('base + 2u * p.N4')};
    let w3 = ${load('base + 3u * p.N4')};
    for (var r = 0u; r < R; r++) {
      let x = X[r * K4 + k4];
      acc[r] += x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
    }
  }
  for (var r = 0u; r < R; r++) { Y[r * p.N4 + n4] = acc[r]; }
}`;
}

/** One subgroup of 8 lanes per 8 output rows: lane l sums k ≡ l (mod 8) in vec4s for each of the 8 rows. */
function subgroupCode(R: number): string {
  return `
enable subgroups;
const R = ${R}u;
const RO = 4u; // output rows per subgroup
struct P { N: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
  let group = gid.x / sg;
  let n0 = group * RO;
  let K4 = p.K / 4u;
  var acc: array<array<f32, RO>, R>;
  for (var k4 = lane; k4 < K4; k4 += sg) {
    var xs: array<vec4<f32>, R>;
    for (var r = 0u; r < R; r++) { xs[r] = X[r * K4 + k4]; }
    for (var j = 0u; j < RO; j++) {
      let w = W[min(n0 + j, p.N - 1u) * K4 + k4];
      for (var r = 0u; r < R; r++) { acc[r][j] += dot(xs[r], w); }
    }
  }
  for (var r = 0u; r < R; r++) {
    for (var j = 0u; j < RO; j++) {
      let s = subgroupAdd(acc[r][j]);
      if (lane == 0u && n0 + j < p.N) { Y[r * p.N + n0 + j] = s; }
    }
  }
}`;
}

/** Weights in the layout a prototype reads, made from a PyTorch-layout [N, K] f32 weight. */
export function protoWeight(kind: ProtoKind, w: Tensor): Tensor {
  const [N, K] = w.shape;
  if (kind === 'subgroup') return w.reshape([N, K]);
  const rt = w.rt;
  const out = Tensor.empty(kind === 'coalesced16' ? [K, N / 2] : [K, N], kind === 'coalesced16' ? 'i32' : 'f32', rt);
  const code = `
struct P { N: u32, K: u32, f16: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u; // index into the output [K, N] (f32) or [K, N/2] (packed pairs)
  if (p.f16 == 0u) {
    if (i >= p.N * p.K) { return; }
    let k = i / p.N; let n = i % p.N;
    O[i] = bitcast<u32>(W[n * p.K + k]);
  } else {
    let half = p.N / 2u;
    if (i >= half * p.K) { return; }
    let k = i / half; let n = 2u * (i % half);
    O[i] = pack2x16float(vec2<f32>(W[n * p.K + k], W[(n + 1u) * p.K + k]));
  }
}`;
  const total = kind === 'coalesced16' ? (K * N) / 2 : K * N;
  rt.dispatch({
    shader: 'bench_proto_transpose', code, params: [N, K, kind === 'coalesced16' ? 1 : 0, 0],
    bindings: [w.binding(), out.binding()], workgroups: rt.grid(Math.ceil(total / 64)),
  });
  return out;
}

/** y [R, N] = x [R, K] · Wᵀ with the prototype kernel; `wp` from protoWeight (N, K the logical sizes). */
export function protoGemv(rt: Runtime, kind: ProtoKind, x: Tensor, wp: Tensor, N: number, K: number): Tensor {
  const R = x.size / K;
  if (!Number.isInteger(R) || K % 4 !== 0 || N % 4 !== 0) throw new Error(`protoGemv: x ${x.shape} with N ${N}, K ${K}`);
  const y = Tensor.empty([R, N], 'f32', rt);
  if (kind === 'subgroup') {
    const groups = Math.ceil(N / 4);
    rt.dispatch({
      shader: `bench_gemv_sg_r${R}`, code: subgroupCode(R), params: [N, K, 0, 0],
      bindings: [x.binding(), wp.binding(), y.binding()], workgroups: rt.grid(Math.ceil((groups * 8) / WG)),
    });
  } else {
    rt.dispatch({
      shader: `bench_gemv_${kind}_r${R}`, code: coalescedCode(R, kind === 'coalesced16'), params: [N / 4, K, 0, 0],
      bindings: [x.binding(), wp.binding(), y.binding()], workgroups: rt.grid(Math.ceil(N / 4 / WG)),
    });
  }
  return y;
}
