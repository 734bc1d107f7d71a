// The prefill matmul on a packed weight (src/kernels/packed.ts `matmulPacked`): y = act(x · Wᵀ + bias) for x
// [M, K] with any number of rows and W [N, K] packed, read as it is stored (no dequantised copy). Each
// invocation computes a 4×4 block of y, one row of W (4 outputs) at a time: each weight word is decoded once and
// used by 4 rows of x, and no array is indexed at run time (llvmpipe took tens of seconds to compile the kernel
// that kept the 4×4 block in an array). Specialised per FORMAT (lib/packed.wgsl).

#include "lib/packed_matmul_io.wgsl"

#include "lib/matmul_finish.wgsl"
#include "lib/packed.wgsl"

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let K4 = p.K / 4u;
  let KW = p.K / (4u * PER); // lane loads per row of W
  // rows of x past M are clamped for the loads and never stored
  let x0 = m0 * K4;
  let x1 = min(m0 + 1u, p.M - 1u) * K4;
  let x2 = min(m0 + 2u, p.M - 1u) * K4;
  let x3 = min(m0 + 3u, p.M - 1u) * K4;
  for (var j = 0u; j < 4u; j++) {
    let n = n0 + j;
    if (n >= p.N) { break; }
    let row = n * KW;
    var a = vec4<f32>(0.0); // rows m0…m0+3 of x against row n of W
    for (var kb = 0u; kb < KW; kb++) {
      let wv = W[row + kb];
      var t = vec4<f32>(0.0);
      for (var c = 0u; c < PER; c++) {
        let d = weights4(wv, c);
        let o = kb * PER + c;
        t += vec4<f32>(dot(X[x0 + o], d), dot(X[x1 + o], d), dot(X[x2 + o], d), dot(X[x3 + o], d));
      }
      a += t * load_scale(row + kb);
    }
    let y = a * row_scale(n);
    Y[m0 * p.N + n] = finish(y.x, n);
    if (m0 + 1u < p.M) { Y[(m0 + 1u) * p.N + n] = finish(y.y, n); }
    if (m0 + 2u < p.M) { Y[(m0 + 2u) * p.N + n] = finish(y.z, n); }
    if (m0 + 3u < p.M) { Y[(m0 + 3u) * p.N + n] = finish(y.w, n); }
  }
}
