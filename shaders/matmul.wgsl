// Batched C[b] = act(op(A[b]) · op(B[b]) + bias), op = optional transpose, expressed through strides.
// Each invocation computes a 4×4 block of C in registers (workgroup barriers are slow on llvmpipe). The fallback
// for adapters without subgroups of ≥ 8 lanes: matmul_sg.wgsl and matmul_sg4.wgsl do the same with ~4× fewer loads.
// act: 0 none, 1 relu, 2 exact gelu. Batch strides of 0 broadcast an operand (e.g. a weight) over the batch.

#include "lib/matmul_io.wgsl"

#include "lib/matmul_finish.wgsl"

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  let b = gid.z;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let aBase = b * p.sAb;
  let bBase = b * p.sBb;
  // clamp indices so loads stay in bounds; out-of-range results are simply not stored
  var am: array<u32, 4>;
  var bn: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    am[i] = aBase + min(m0 + i, p.M - 1u) * p.sAm;
    bn[i] = bBase + min(n0 + i, p.N - 1u) * p.sBn;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < p.K; k++) {
    let ak = k * p.sAk;
    let bk = k * p.sBk;
    let bv = vec4<f32>(B[bn[0] + bk], B[bn[1] + bk], B[bn[2] + bk], B[bn[3] + bk]);
    acc[0] += A[am[0] + ak] * bv;
    acc[1] += A[am[1] + ak] * bv;
    acc[2] += A[am[2] + ak] * bv;
    acc[3] += A[am[3] + ak] * bv;
  }
  let cBase = b * p.M * p.N;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= p.N) { break; }
      C[cBase + m * p.N + n] = finish(acc[i][j], n);
    }
  }
}
