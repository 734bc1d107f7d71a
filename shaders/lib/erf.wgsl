// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26): exact GELU needs erf, which WGSL lacks. Used by
// the matmul and gemv kernels' fused GELU (lib/matmul_finish.wgsl) and by the generated element-wise kernels
// (through the runtime's shaderSource).

fn erf_(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
