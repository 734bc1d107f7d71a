// GroupNorm (PyTorch nn.GroupNorm) over x [B, C, L] (any trailing dims flattened into L): the C channels are
// split into G groups of Cg = C/G consecutive channels; each (b, g) is one contiguous row of Cg·L elements,
// normalised by its own mean and biased variance, then scaled and shifted per channel:
// y = (x − mean)·rstd·w[c] + b[c], rstd = 1/sqrt(var + eps). One workgroup of 64 per (b, g) row; the row is
// read three times (mean, variance about the mean — two passes, as PyTorch does, for accuracy — then the
// output). Forward only (inference: Demucs, multi-band diffusion). flags: bit 0 has weight, bit 1 has bias
// (absent ones are bound to X and never read).

struct P { rows: u32, C: u32, L: u32, Cg: u32, G: u32, eps: f32, flags: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

#include "lib/row_reduce.wgsl"
#include "lib/row_kernel.wgsl"

// here p.C is the row length Cg·L (the row kernel's `C`), not the channel count
fn row_main(row: u32, base: u32, n: u32, t: u32) {
  var s = 0.0;
  for (var i = t; i < n; i += WG) { s += X[base + i]; }
  let mean = wg_sum(s, t) / f32(n);
  var q = 0.0;
  for (var i = t; i < n; i += WG) { let d = X[base + i] - mean; q += d * d; }
  let rstd = inverseSqrt(wg_sum(q, t) / f32(n) + p.eps);
  let hasW = (p.flags & 1u) != 0u;
  let hasB = (p.flags & 2u) != 0u;
  let c0 = (row % p.G) * p.Cg;
  for (var i = t; i < n; i += WG) {
    let c = c0 + i / p.L;
    var y = (X[base + i] - mean) * rstd;
    if (hasW) { y *= W[c]; }
    if (hasB) { y += B[c]; }
    Y[base + i] = y;
  }
}
