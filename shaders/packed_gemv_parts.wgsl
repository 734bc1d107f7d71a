// The decode gemv on a packed weight without subgroups of 8 lanes (src/kernels/packed.ts `gemvPacked`, mode
// `partials`; packed_gemv.wgsl where they exist): the first pass. A group of p.lanes lanes computes rows n0…n0+3 of
// W; lane `lane` takes every lanes-th lane load (4 words: 4·PER weights, one q4 group) of each row, so neighbouring
// lanes read neighbouring words, and each weight word is decoded once and used by every row of x. Every lane writes
// its partial sums, q8's row scale applied, to Part[lane, r, n]; packed_gemv_sum.wgsl adds them. Two passes rather
// than workgroup memory and a barrier: llvmpipe took seconds to compile that. Tests run it at 8, 32 and 64 lanes,
// the subgroup widths of GPUs. Specialised per FORMAT (lib/packed.wgsl) and per row count R.

struct P { N: u32, K: u32, lanes: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> Part: array<f32>;

#include "lib/packed.wgsl"

const R: u32 = 1u; // rows of x, set per count by the wrapper: each row's sum is a register (no array, no loop)
const ROWS = 4u; // rows of W per group of lanes (ROWS_PER_GROUP in src/kernels/packed.ts)

// rows 0–3 (column 0) and 4–7 (column 1) of x against lane load `at` of W, the kb-th of its row
fn gemv_load(at: u32, kb: u32, K4: u32) -> mat2x4<f32> {
  let wv = W[at];
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var c = 0u; c < PER; c++) {
    let d = weights4(wv, c);
    let o = kb * PER + c;
    lo.x += dot(X[o], d);
    if (R > 1u) { lo.y += dot(X[K4 + o], d); }
    if (R > 2u) { lo.z += dot(X[2u * K4 + o], d); }
    if (R > 3u) { lo.w += dot(X[3u * K4 + o], d); }
    if (R > 4u) { hi.x += dot(X[4u * K4 + o], d); }
    if (R > 5u) { hi.y += dot(X[5u * K4 + o], d); }
    if (R > 6u) { hi.z += dot(X[6u * K4 + o], d); }
    if (R > 7u) { hi.w += dot(X[7u * K4 + o], d); }
  }
  let s = load_scale(at);
  return mat2x4<f32>(lo * s, hi * s);
}

// this lane's partial sums: [j][r / 4][r % 4] is row n0 + j of W against row r of x
fn gemv_lane(n0: u32, lane: u32, lanes: u32) -> array<mat2x4<f32>, ROWS> {
  let K4 = p.K / 4u;
  let KW = p.K / (4u * PER); // lane loads per row
  // rows past N (the last group's) are clamped for the loads and never stored
  let w0 = min(n0, p.N - 1u) * KW;
  let w1 = min(n0 + 1u, p.N - 1u) * KW;
  let w2 = min(n0 + 2u, p.N - 1u) * KW;
  let w3 = min(n0 + 3u, p.N - 1u) * KW;
  var a0 = mat2x4<f32>();
  var a1 = mat2x4<f32>();
  var a2 = mat2x4<f32>();
  var a3 = mat2x4<f32>();
  for (var kb = lane; kb < KW; kb += lanes) {
    a0 += gemv_load(w0 + kb, kb, K4);
    a1 += gemv_load(w1 + kb, kb, K4);
    a2 += gemv_load(w2 + kb, kb, K4);
    a3 += gemv_load(w3 + kb, kb, K4);
  }
  return array(a0, a1, a2, a3);
}

fn store(v: mat2x4<f32>, n: u32, lane: u32) {
  if (n >= p.N) { return; }
  for (var r = 0u; r < R; r++) { Part[(lane * R + r) * p.N + n] = v[r / 4u][r % 4u] * row_scale(n); }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let lane = i % p.lanes;
  let n0 = (i / p.lanes) * ROWS;
  let a = gemv_lane(n0, lane, p.lanes);
  store(a[0], n0, lane);
  store(a[1], n0 + 1u, lane);
  store(a[2], n0 + 2u, lane);
  store(a[3], n0 + 3u, lane);
}
