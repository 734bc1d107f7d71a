// The second pass of packed_gemv_parts.wgsl: y[r, n] = act(Σ_lane Part[lane, r, n] + bias[n]) (the lanes' sums
// already carry q8's row scale, so this pass is the same for every format).

struct P { N: u32, rows: u32, lanes: u32, hasBias: u32, act: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Part: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

#include "lib/matmul_finish.wgsl"

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.N) { return; }
  var s = 0.0;
  for (var l = 0u; l < p.lanes; l++) { s += Part[l * p.rows * p.N + i]; }
  Y[i] = finish(s, i % p.N);
}
