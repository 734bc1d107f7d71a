// The decode-time matmul on f32 weights (src/kernels/gemv.ts `gemv`): y[r, n] = act(Σ_k x[r, k] · W[n, k] + bias[n])
// for R ≤ 8 rows of x (one token per batch row, twice with guidance) against W [N, K] as PyTorch stores a Linear. A
// decode step reads every weight once, so this kernel is about memory traffic: one subgroup computes ROWS rows of W,
// its lanes reading consecutive vec4s along k (a subgroup reads 8 · 16 = 128 contiguous bytes per row and step on
// llvmpipe), each lane's x vec4s loaded once for the ROWS rows, and `subgroupAdd` combines the lanes. Measured 2.4×
// the general matmul on lavapipe. (Packed weights share x between lanes by subgroupShuffle instead,
// packed_gemv.wgsl; that layout, each lane on its own rows, measured slower here for f32's 4 bytes a weight.) Any
// subgroup size: read at run time. Specialised per row count R (the wrapper sets it).

enable subgroups;

struct P { N: u32, K: u32, hasBias: u32, act: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

#include "lib/matmul_finish.wgsl"

const R: u32 = 1u; // rows of x
const ROWS = 4u; // rows of W per subgroup (ROWS_PER_SUBGROUP in src/kernels/gemv.ts)

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = ((gid.x + gid.y * nwg.x * 256u) / sgs) * ROWS;
  let K4 = p.K / 4u;
  // rows past N (the last subgroup's) are clamped for the loads and never stored
  var wrow: array<u32, ROWS>;
  for (var j = 0u; j < ROWS; j++) { wrow[j] = min(n0 + j, p.N - 1u) * K4; }
  var acc: array<array<f32, R>, ROWS>;
  for (var k4 = lane; k4 < K4; k4 += sgs) {
    var xs: array<vec4<f32>, R>;
    for (var r = 0u; r < R; r++) { xs[r] = X[r * K4 + k4]; }
    for (var j = 0u; j < ROWS; j++) {
      let w = W[wrow[j] + k4];
      for (var r = 0u; r < R; r++) { acc[j][r] += dot(xs[r], w); }
    }
  }
  // every lane reaches the sums (R and ROWS are constants); lane 0 stores
  for (var j = 0u; j < ROWS; j++) {
    for (var r = 0u; r < R; r++) {
      let s = subgroupAdd(acc[j][r]);
      if (lane == 0u && n0 + j < p.N) { Y[r * p.N + n0 + j] = finish(s, n0 + j); }
    }
  }
}
