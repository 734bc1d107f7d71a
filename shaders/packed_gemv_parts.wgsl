// The decode gemv on a packed weight without subgroups (src/kernels/packed.ts `gemvPacked`, mode `partials`):
// the first pass. Each group of p.lanes invocations computes 4 rows of W as packed_gemv.wgsl does
// (lib/packed_gemv.wgsl), and every lane writes its partial sums, q8's row scale applied, to
// Part[lane, r, n]; packed_gemv_sum.wgsl adds them. Two passes rather than workgroup memory and a barrier:
// llvmpipe took seconds to compile that. Tests run it at 8, 32 and 64 lanes, the subgroup widths of GPUs.
// Specialised per FORMAT (lib/packed.wgsl) and per row count R.

struct P { N: u32, K: u32, lanes: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read_write> Part: array<f32>;

#include "lib/packed.wgsl"
#include "lib/packed_gemv.wgsl"

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
