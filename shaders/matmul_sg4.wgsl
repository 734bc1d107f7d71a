// Batched C[b] = act(A[b] · B[b]ᵀ + bias) with A [M, K] and B [N, K] both contiguous along k, K a multiple of 4:
// a Linear (x · Wᵀ, W [out, in] as PyTorch stores it) and attention's q · kᵀ. matmul_sg.wgsl's scheme
// (16 rows per workgroup whose A values reach every lane by subgroupShuffle; each invocation owns CN columns,
// WG apart) with vec4 loads along k: on llvmpipe a vec4 load costs what a scalar one does, so per 4 k's
// 2 + CN loads feed 64·CN FMAs. WG (the workgroup size) and CN are set by the wrapper: a small product (T5's
// 16 rows) keeps its workgroups with WG 32 and CN 2 rather than CN 1 and 3 loads per 64 FMAs. Needs subgroups
// of ≥ 8 lanes. Grid: x ⌈N / (WG·CN)⌉, y ⌈M / 16⌉, z batch; batch strides in vec4s (0 broadcasts an operand).

enable subgroups;

const CN = 2u;
const WG = 64u;

struct P {
  M: u32, N: u32, K4: u32, hasBias: u32,
  sAb4: u32, sBb4: u32, act: u32, _pad: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

#include "lib/matmul_finish.wgsl"

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let m0 = wg.y * 16u;
  let b = wg.z;
  // rows and columns past the edge are clamped for the loads and never stored (no early return: the
  // shuffles need every lane)
  var bn: array<u32, CN>;
  for (var c = 0u; c < CN; c++) {
    bn[c] = b * p.sBb4 + min(wg.x * WG * CN + WG * c + lid.x, p.N - 1u) * p.K4;
  }
  let am = vec2<u32>(b * p.sAb4) + min(vec2<u32>(m0, m0 + 8u) + (lane & 7u), vec2<u32>(p.M - 1u)) * p.K4;
  var acc: array<array<f32, 16>, CN>;
  for (var k4 = 0u; k4 < p.K4; k4++) {
    var bv: array<vec4<f32>, CN>;
    for (var c = 0u; c < CN; c++) { bv[c] = B[bn[c] + k4]; }
    let a0: vec4<f32> = A[am.x + k4];
    let a1: vec4<f32> = A[am.y + k4];
    for (var r = 0u; r < 8u; r++) {
      let x0 = subgroupShuffle(a0, r);
      let x1 = subgroupShuffle(a1, r);
      for (var c = 0u; c < CN; c++) {
        acc[c][r] += dot(x0, bv[c]);
        acc[c][r + 8u] += dot(x1, bv[c]);
      }
    }
  }
  let cBase = b * p.M * p.N;
  for (var c = 0u; c < CN; c++) {
    let n = wg.x * WG * CN + WG * c + lid.x;
    if (n >= p.N) { break; }
    for (var r = 0u; r < 16u; r++) {
      let m = m0 + r;
      if (m >= p.M) { break; }
      C[cBase + m * p.N + n] = finish(acc[c][r], n);
    }
  }
}
