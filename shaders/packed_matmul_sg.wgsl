// The prefill matmul on a packed weight with subgroups (src/kernels/packed.ts `matmulPacked`): y = act(x · Wᵀ +
// bias) for x [M, K] and W [N, K] packed (f16, q8, q4; lib/packed.wgsl), read as stored. matmul_sg4.wgsl's scheme
// for llvmpipe, where a load instruction costs ~10 FMAs whatever it reads: each workgroup takes 16 rows of x, lane l
// loads row (l mod 8) of each half as vec4s and subgroupShuffle hands them to every lane; each invocation owns CN
// columns of y (WG apart). A lane load of W is 4 words (8, 16 or 32 weights along k), so per 4 k's 2 + CN/PER
// loads feed 64·CN FMAs (packed_matmul.wgsl, without subgroups: 9 loads per 32 weights and 4 rows). q4's group
// scale multiplies the decoded weights, q8's row scale the sums. Needs subgroups of ≥ 8 lanes. WG and CN set by
// the wrapper; FORMAT per format. Grid: x ⌈N / (WG·CN)⌉, y ⌈M / 16⌉.

enable subgroups;

const CN = 2u;
const WG = 32u;

#include "lib/packed_matmul_io.wgsl"

#include "lib/matmul_finish.wgsl"
#include "lib/packed.wgsl"

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let m0 = wg.y * 16u;
  let K4 = p.K / 4u;
  let KW = p.K / (4u * PER); // lane loads per row of W
  // rows and columns past the edge are clamped for the loads and never stored (no early return: the shuffles
  // need every lane)
  var row: array<u32, CN>;
  for (var c = 0u; c < CN; c++) { row[c] = min(wg.x * WG * CN + WG * c + lid.x, p.N - 1u) * KW; }
  let am = min(vec2<u32>(m0, m0 + 8u) + (lane & 7u), vec2<u32>(p.M - 1u)) * K4;
  var acc: array<array<f32, 16>, CN>;
  for (var kb = 0u; kb < KW; kb++) {
    var wv: array<vec4<u32>, CN>;
    for (var c = 0u; c < CN; c++) { wv[c] = W[row[c] + kb]; }
    for (var j = 0u; j < PER; j++) {
      let o = kb * PER + j;
      let a0: vec4<f32> = X[am.x + o];
      let a1: vec4<f32> = X[am.y + o];
      var d: array<vec4<f32>, CN>;
      for (var c = 0u; c < CN; c++) { d[c] = weights4(wv[c], j) * load_scale(row[c] + kb); }
      for (var r = 0u; r < 8u; r++) {
        let x0 = subgroupShuffle(a0, r);
        let x1 = subgroupShuffle(a1, r);
        for (var c = 0u; c < CN; c++) {
          acc[c][r] += dot(x0, d[c]);
          acc[c][r + 8u] += dot(x1, d[c]);
        }
      }
    }
  }
  for (var c = 0u; c < CN; c++) {
    let n = wg.x * WG * CN + WG * c + lid.x;
    if (n >= p.N) { break; }
    let s = row_scale(n);
    for (var r = 0u; r < 16u; r++) {
      let m = m0 + r;
      if (m >= p.M) { break; }
      Y[m * p.N + n] = finish(acc[c][r] * s, n);
    }
  }
}
