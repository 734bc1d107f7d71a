// Batched C[b] = act(op(A[b]) · op(B[b]) + bias), op = optional transpose through strides: matmul.wgsl's
// maths and uniforms, laid out for llvmpipe (which runs 8 invocations as the SIMD lanes of one subgroup).
//
// On llvmpipe every storage load instruction costs ~10 FMAs whatever it reads (a scalar, a vec4, the same
// address in every lane or a different one: measured alike), while a subgroup shuffle costs about one FMA. So
// the kernel counts loads, not bytes: each invocation owns CN columns of C (64 apart, so neighbouring lanes
// hold neighbouring columns) for the workgroup's 16 rows. Per k, lane l loads A for row (l mod 8) of each
// half of the 16 (2 loads) and B for its CN columns (CN loads), and the 16 A values reach every lane by
// subgroupShuffle: 2 + CN loads feed 16·CN FMAs (matmul.wgsl: 8 loads for 16). Needs subgroups of ≥ 8 lanes
// (lanes 8… load duplicate rows). CN (1, 2 or 4) is chosen by the wrapper so small products still make
// enough workgroups for every core. Grid: x ⌈N / (64·CN)⌉, y ⌈M / 16⌉, z batch.
// act: 0 none, 1 relu, 2 exact gelu. Batch strides of 0 broadcast an operand.

enable subgroups;

const CN = 4u;

#include "lib/matmul_io.wgsl"

#include "lib/matmul_finish.wgsl"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let m0 = wg.y * 16u;
  let b = wg.z;
  // rows and columns past the edge are clamped for the loads and never stored (no early return: the
  // shuffles need every lane)
  var bn: array<u32, CN>;
  for (var c = 0u; c < CN; c++) {
    bn[c] = b * p.sBb + min(wg.x * 64u * CN + 64u * c + lid.x, p.N - 1u) * p.sBn;
  }
  var am = vec2<u32>(b * p.sAb) + min(vec2<u32>(m0, m0 + 8u) + (lane & 7u), vec2<u32>(p.M - 1u)) * p.sAm;
  var acc: array<array<f32, 16>, CN>;
  var bk = 0u;
  for (var k = 0u; k < p.K; k++) {
    var bv: array<f32, CN>;
    for (var c = 0u; c < CN; c++) { bv[c] = B[bn[c] + bk]; }
    let av = vec2<f32>(A[am.x], A[am.y]);
    am += p.sAk;
    bk += p.sBk;
    for (var r = 0u; r < 8u; r++) {
      let a = subgroupShuffle(av, r);
      for (var c = 0u; c < CN; c++) {
        acc[c][r] = fma(a.x, bv[c], acc[c][r]);
        acc[c][r + 8u] = fma(a.y, bv[c], acc[c][r + 8u]);
      }
    }
  }
  let cBase = b * p.M * p.N;
  for (var c = 0u; c < CN; c++) {
    let n = wg.x * 64u * CN + 64u * c + lid.x;
    if (n >= p.N) { break; }
    for (var r = 0u; r < 16u; r++) {
      let m = m0 + r;
      if (m >= p.M) { break; }
      C[cBase + m * p.N + n] = finish(acc[c][r], n);
    }
  }
}
