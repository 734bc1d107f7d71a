// The end of a Linear kernel: y = act(v + bias[n]) with p.hasBias and p.act (0 none, 1 ReLU, 2 exact GELU), as
// src/kernels/packed.ts's `ACT_ID`. Needs lib/erf.wgsl and a `Bias` binding.

fn finish(v: f32, n: u32) -> f32 {
  var y = v;
  if (p.hasBias != 0u) { y += Bias[n]; }
  switch p.act {
    case 1u: { return max(y, 0.0); }
    case 2u: { return 0.5 * y * (1.0 + erf_(y * 0.70710678118654752)); }
    default: { return y; }
  }
}
