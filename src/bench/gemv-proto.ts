// Scratch prototypes of a decode-specific gemv (y[R, N] = x[R, K] · Wᵀ for a handful of rows R, W [N, K] as
// PyTorch stores a Linear weight), measured in isolation by the kernel benchmark and the decode profile. Nothing
// in the model uses them: they show what a kernel change would buy before anyone makes it.
//
//   'subgroup'   W as stored, [N, K] f32. One subgroup (8 lanes on llvmpipe) computes RO = 4 output rows: lane l
//                reads vec4s l, l + 8, l + 16, … along k, so the 8 lanes read 128 contiguous bytes per row and
//                step (no transposition needed), then subgroupAdd reduces. Rows of x are unrolled in registers.
//   'subgroup16' the same with W as f16 packed along k ([N, K/8] of vec4<u32>, unpack2x16float): half the bytes
//                (needs a converted copy of the weights, made once at load).
//   'coalesced'  W transposed to [K, N] ([in, out]); invocation n4 computes outputs 4·n4 … 4·n4 + 3 of every
//                row with one vec4 load per k (neighbouring invocations read neighbouring addresses).
// The x rows (R ≤ 8) are compiled into each pipeline; every kind needs K % 8 == 0 and N % 4 == 0.

import { Tensor } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';

export type ProtoKind = 'subgroup' | 'subgroup16' | 'coalesced';

const RO = 4;
const SG_WG = 64;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function subgroupCode(R: number, f16: boolean): string {
  const accs = range(RO).map((j) => `  var a${j}: array<f32, ${R}>; let w${j} = min(n0 + ${j}u, p.N - 1u) * ${f16 ? 'K8' : 'K4'};`).join('\n');
  const body = f16
    ? `  for (var k8 = lane; k8 < K8; k8 += sgs) {
${range(R).map((r) => `    let xa${r} = X[${r}u * K4 + 2u * k8]; let xb${r} = X[${r}u * K4 + 2u * k8 + 1u];`).join('\n')}
${range(RO).map((j) => `    { let u = W[w${j} + k8]; let wa = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); let wb = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
${range(R).map((r) => `      a${j}[${r}] += dot(xa${r}, wa) + dot(xb${r}, wb);`).join('\n')} }`).join('\n')}
  }`
    : `  for (var k4 = lane; k4 < K4; k4 += sgs) {
${range(R).map((r) => `    let x${r} = X[${r}u * K4 + k4];`).join('\n')}
${range(RO).map((j) => `    { let w = W[w${j} + k4];
${range(R).map((r) => `      a${j}[${r}] += dot(x${r}, w);`).join('\n')} }`).join('\n')}
  }`;
  const store = range(RO).map((j) => range(R).map((r) =>
    `  { let s = subgroupAdd(a${j}[${r}]); if (lane == 0u && n0 + ${j}u < p.N) { Y[${r}u * p.N + n0 + ${j}u] = s; } }`).join('\n')).join('\n');
  return `
enable subgroups;
struct P { N: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<${f16 ? 'vec4<u32>' : 'vec4<f32>'}>;
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
    const f16 = kind === 'subgroup16';
    const invocations = Math.ceil(N / RO) * subgroupSize(rt);
    rt.dispatch({
      shader: `bench_gemv_${kind}_r${R}`, code: subgroupCode(R, f16), params: [N, K, 0, 0],
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

// ---- LSTM recurrence for one sequence (EnCodec's decoder LSTM runs with B = 1) ----
// One subgroup per hidden unit j: its 4 gate rows (j, H + j, 2H + j, 3H + j) of W_hh as stored ([4H, H]), lanes
// striding along k in vec4s, subgroupAdd, then lane 0 applies the gates. The library's step kernel instead
// computes 4 batch items per invocation against a transposed W_hh (3 of the 4 wasted when B = 1).
const LSTM_STEP = `
enable subgroups;
struct P { t: u32, H: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> XP: array<f32>;       // [T, 4H]: x·W_ihᵀ + b_ih + b_hh
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;  // W_hh [4H, H]
@group(0) @binding(3) var<storage, read_write> S: array<f32>;  // [T + 1, H]: h0 = 0, h_1 … h_T
@group(0) @binding(4) var<storage, read_write> CS: array<f32>; // [T + 1, H]
fn sigmoid_(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn tanh_(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let j = gid.x / sgs;
  let H = p.H;
  let H4 = H / 4u;
  let jj = min(j, H - 1u);
  var a = vec4<f32>(0.0);
  for (var k4 = lane; k4 < H4; k4 += sgs) {
    let hb = p.t * H + 4u * k4;
    let h = vec4<f32>(S[hb], S[hb + 1u], S[hb + 2u], S[hb + 3u]);
    a += vec4<f32>(dot(W[jj * H4 + k4], h), dot(W[(H + jj) * H4 + k4], h), dot(W[(2u * H + jj) * H4 + k4], h), dot(W[(3u * H + jj) * H4 + k4], h));
  }
  let s = vec4<f32>(subgroupAdd(a.x), subgroupAdd(a.y), subgroupAdd(a.z), subgroupAdd(a.w));
  if (lane == 0u && j < H) {
    let xo = p.t * 4u * H + j;
    let i = sigmoid_(XP[xo] + s.x);
    let f = sigmoid_(XP[xo + H] + s.y);
    let g = tanh_(XP[xo + 2u * H] + s.z);
    let o = sigmoid_(XP[xo + 3u * H] + s.w);
    let cn = f * CS[p.t * H + j] + i * g;
    CS[(p.t + 1u) * H + j] = cn;
    S[(p.t + 1u) * H + j] = o * tanh_(cn);
  }
}`;

/** One LSTM layer for B = 1 (zero initial state): x [T, 1, I] → y [T, 1, H], as ops.lstm(...).y. */
export function protoLstm(rt: Runtime, x: Tensor, wIh: Tensor, wHh: Tensor, bIh: Tensor, bHh: Tensor): Tensor {
  const [T, B, I] = x.shape;
  const H = wHh.shape[1];
  if (B !== 1 || H % 4 !== 0) throw new Error(`protoLstm: x [${x.shape.join(', ')}], H ${H}`);
  const bias = ops.add(bIh, bHh);
  const xp = ops.linear(x.reshape([T, I]), wIh, bias);
  const s = Tensor.zeros([T + 1, H], 'f32', rt);
  const cs = Tensor.zeros([T + 1, H], 'f32', rt);
  const sg = subgroupSize(rt);
  for (let t = 0; t < T; t++) {
    rt.dispatch({
      shader: 'bench_lstm_step', code: LSTM_STEP, params: [t, H, 0, 0],
      bindings: [xp.binding(), wHh.binding(), s.binding(), cs.binding()], workgroups: rt.grid(Math.ceil((H * sg) / 64)),
    });
  }
  const y = ops.reshape(ops.narrow(s, 0, 1, T), [T, 1, H]);
  for (const tt of [bias, xp, s, cs]) tt.dispose();
  return y;
}

/** Bytes of weight a prototype reads per element. */
export const protoBytes = (kind: ProtoKind): number => (kind === 'subgroup16' ? 2 : 4);
