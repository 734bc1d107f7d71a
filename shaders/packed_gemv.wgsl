// The decode gemv on a packed weight (src/kernels/packed.ts `gemvPacked`), where the adapter has subgroups:
// y[r, n] = act(Σ_k x[r, k] · W[n, k] + bias[n]) for R ≤ 8 rows of x (one token per batch row, twice with
// guidance). A decode step reads every weight once, so this kernel is about memory traffic: packed words are
// 2–8× fewer bytes than f32. One subgroup (any size: 8 lanes on llvmpipe, 32 or 64 on GPUs, read at run time)
// computes 4 rows of W (lib/packed_gemv.wgsl) and `subgroupAdd` combines its lanes' partial sums.
// Specialised per FORMAT (lib/packed.wgsl) and per row count R.

enable subgroups;

struct P { N: u32, K: u32, hasBias: u32, act: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read> Bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;

#include "lib/matmul_finish.wgsl"
#include "lib/packed.wgsl"
#include "lib/packed_gemv.wgsl"

// lane 0 writes row n of y for every row of x (subgroupAdd in uniform control flow: R is a constant)
fn store(v: mat2x4<f32>, n: u32, lane: u32) {
  for (var r = 0u; r < R; r++) {
    let s = subgroupAdd(v[r / 4u][r % 4u]);
    if (lane == 0u && n < p.N) { Y[r * p.N + n] = finish(s * row_scale(n), n); }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
  let n0 = ((gid.x + gid.y * nwg.x * 256u) / lanes) * ROWS;
  let a = gemv_lane(n0, lane, lanes);
  store(a[0], n0, lane);
  store(a[1], n0 + 1u, lane);
  store(a[2], n0 + 2u, lane);
  store(a[3], n0 + 3u, lane);
}
