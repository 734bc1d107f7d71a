// The matmul kernels' epilogue (matmul*.wgsl, gemv.wgsl, packed_gemv.wgsl, packed_gemv_sum.wgsl,
// packed_matmul*.wgsl): bias then the fused activation (0 none, 1 relu, 2 exact gelu). Expects the including
// shader's uniforms `p` (with `hasBias`, `act`) and its `Bias` binding.

#include "lib/erf.wgsl"

fn finish(v: f32, n: u32) -> f32 {
  var y = v;
  if (p.hasBias != 0u) { y += Bias[n]; }
  switch p.act {
    case 1u: { return max(y, 0.0); }
    case 2u: { return 0.5 * y * (1.0 + erf_(y * 0.70710678118654752)); }
    default: { return y; }
  }
}
